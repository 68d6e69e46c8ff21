"""The README's demo command runs to its end and proves the Year 6 -> Year 7 match."""

import subprocess
import sys


def test_demo_ends_with_year_6_learners_holding_the_same_national_accounts_in_year_7(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hwb_demo", "--output", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Year 6 learners hold the same national account in Year 7" in result.stdout
    assert "15 of 15" in result.stdout
    assert "Result: OK" in result.stdout
    assert "Second run the next night with no MIS change: no batch is sent" in result.stdout
    assert "0 changes sent in 0 batches" in result.stdout
    # the leaving dates are entered weeks ahead: nobody leaves before the day after the last day of term
    assert "learner leaves on 2026-07-21: 15" in result.stdout
    # the national calendar keeps the Year 6 accounts active until 31 August, then releases them
    assert "Mon 20 Jul 2026  term_nightly: Year 6 at the primary: 15 leaving" in result.stdout
    assert (
        "Sun 30 Aug 2026  august_30: Year 6 at the primary: 15 leaving; at the secondary: 15 active"
        in result.stdout
    )
    assert (
        "Mon 31 Aug 2026  day_before_term: Year 6 at the primary: 15 left; at the secondary: 15 active"
        in result.stdout
    )

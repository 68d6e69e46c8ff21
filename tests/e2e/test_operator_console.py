"""The operator's console through the real CLI against the sandbox: history, why, report, status --nagios."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest

from headless_browser import run_chromium
from mis_builder import Mis, small_school, upn

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")
SECONDARY = ("6614001", "Ysgol Uwchradd Bro Taf")


@pytest.fixture
def two_schools(make_lab, sandbox):
    """A primary that has run, and a secondary with: a teacher without a start date, a learner still on
    roll at the primary, and a staff member whose leave the national side refuses."""
    lab = make_lab([PRIMARY, SECONDARY])
    small_school(lab.schools[0].mis_path, "6612001", learners=6).close()
    secondary = small_school(lab.schools[1].mis_path, "6614001", learners=4, first=300)
    secondary.add_learner(5, forename="Ifan", surname="Morgan", year="7", reg="7A")  # on roll at the primary
    secondary.add_staff(4, "NEW", start=None, forename="Elin", surname="Rowlands")
    secondary.commit()
    assert lab.cli("--run-now").returncode == 1  # the secondary holds a record back
    # The national side loses the secondary's record of SJE; the leave the school then sends is refused.
    db = sqlite3.connect(sandbox.db_path)
    db.execute(
        "DELETE FROM school_records WHERE dfes_number = '6614001' AND kind = 'staff' AND record_key = 'SJE'"
    )
    db.commit()
    db.close()
    secondary.execute("UPDATE mis_staff SET leaving_date = '2026-07-22' WHERE staff_code = 'SJE'")
    secondary.commit()
    assert lab.cli("--run-now", "--school", "6614001").returncode == 1
    return lab


def test_history_lists_each_run_with_outcome_counts_and_client_version(two_schools):
    lab = two_schools
    text = lab.cli("history", "--school", "6614001")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("6614001 ") == 2
    assert "PARTIAL" in text.stdout and "client 0." in text.stdout
    assert "held back: 1" in text.stdout and "start_date_missing=1" in text.stdout
    assert "sent: 7 people, " in text.stdout  # 5 learners and 2 staff (planned, in a 0.1.0-shape report)
    runs = json.loads(lab.cli("history", "--json", "--last", "1").stdout)["runs"]
    assert {run["dfes_number"] for run in runs} == {"6612001", "6614001"}
    assert all(run["outcome"] == "partial" or run["dfes_number"] == "6612001" for run in runs)


def test_why_a_teacher_without_a_start_date_is_held_back_with_the_fix(two_schools):
    result = two_schools.cli("why", "--school", "6614001", "--staff-code", "NEW")
    assert result.returncode == 0, result.stderr
    assert "staff row 3 (MIS id 4): Elin Rowlands, staff code NEW" in result.stdout
    assert "HELD BACK (start_date_missing)" in result.stdout
    assert "enter the staff member's start date" in result.stdout
    assert "no record of this person at this school" in result.stdout
    by_mis_id = two_schools.cli("why", "--school", "6614001", "--mis-id", "4")
    assert "staff row 3 (MIS id 4): Elin Rowlands" in by_mis_id.stdout
    by_name = two_schools.cli("why", "--school", "6614001", "--name", "rowlands")
    assert "HELD BACK (start_date_missing)" in by_name.stdout


def test_why_a_learner_still_on_roll_at_the_previous_school_says_so_without_naming_it(two_schools):
    lab = two_schools
    result = lab.cli("why", "--school", "6614001", "--upn", upn(5).lower())
    assert result.returncode == 0, result.stderr
    assert "(MIS id 5): Ifan Morgan" in result.stdout and "MIS: found, valid" in result.stdout
    assert "acknowledged" in result.stdout
    assert "ON ROLL AT ANOTHER SCHOOL (not named)" in result.stdout
    assert "6612001" not in result.stdout and PRIMARY[1] not in result.stdout
    assert upn(5) not in lab.log_file.read_text(encoding="utf-8")
    assert upn(5).lower() not in lab.log_file.read_text(encoding="utf-8")


def test_why_a_record_the_national_side_refused_gives_its_reason(two_schools):
    result = two_schools.cli("why", "--school", "6614001", "--staff-code", "SJE")
    assert result.returncode == 0, result.stderr
    assert "sent: leave in run" in result.stdout and "REFUSED by Hwb: not_found" in result.stdout
    assert "what to do:" in result.stdout


def test_why_someone_never_in_the_mis(two_schools):
    result = two_schools.cli("why", "--school", "6614001", "--upn", upn(777))
    assert result.returncode == 0, result.stderr
    assert "NOT FOUND IN THE MIS" in result.stdout
    assert "no record of this person at this school" in result.stdout
    by_name = two_schools.cli("why", "--school", "6614001", "--name", "Nobody Atall")
    assert "NOT FOUND IN THE MIS" in by_name.stdout


def test_report_is_owner_only_names_the_held_back_records_and_says_so(two_schools, tmp_path):
    lab = two_schools
    html = tmp_path / "out" / "report.html"
    result = lab.cli("report", "--school", "6614001", "--output", str(html))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(html.stat().st_mode) == 0o600
    text = html.read_text(encoding="utf-8")
    assert "This report names people" in text
    assert "Elin Rowlands" in text and "start_date_missing" in text and "enter the staff member" in text
    assert "<td>4</td>" in text  # the MIS id
    csv_path = tmp_path / "out" / "report.csv"
    assert lab.cli("report", "--school", "6614001", "--output", str(csv_path)).returncode == 0
    assert stat.S_IMODE(csv_path.stat().st_mode) == 0o600
    assert "staff,3,4,Elin Rowlands,start_date_missing," in csv_path.read_text(encoding="utf-8")
    assert "Elin" not in lab.log_file.read_text(encoding="utf-8")


def test_the_dry_run_plan_names_held_back_people_with_their_mis_id(two_schools):
    plan = two_schools.cli("--run-now", "--dry-run", "--school", "6614001")
    assert "- staff row 3 (MIS id 4) NEW, Elin Rowlands: start_date_missing" in plan.stdout, plan.stdout


def test_status_nagios_gives_plugin_exit_codes_and_performance_data(make_lab):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=40)
    never = lab.cli("status", "--nagios")
    assert never.returncode == 2 and never.stdout.startswith("HWB CRITICAL")
    assert lab.cli("--run-now").returncode == 0
    ok = lab.cli("status", "--nagios")
    assert ok.returncode == 0, ok.stdout
    line = ok.stdout.strip()
    assert line.startswith("HWB OK - 1 school") and "\n" not in line
    assert "| '6612001_success_age'=0.0h '6612001_held_back'=0;;;0 '6612001_pending_batches'=0;;;0" in line
    mis.execute("DELETE FROM mis_group_member WHERE pupil_id > 5")
    mis.execute("DELETE FROM mis_pupil WHERE pupil_id > 5")
    mis.commit()
    assert lab.cli("--run-now").returncode == 6
    blocked = lab.cli("status", "--nagios")
    assert blocked.returncode == 2 and "6612001 last run blocked" in blocked.stdout
    assert lab.cli("status").returncode == 2
    lab.config_path.write_text("not = [valid toml")
    broken = lab.cli("status", "--nagios")
    assert broken.returncode == 3 and broken.stdout.startswith("HWB UNKNOWN - ") and broken.stdout[-1] == "\n"


def test_report_renders_in_a_browser_to_png_and_prints_to_pdf(two_schools, tmp_path):
    mis = Mis(two_schools.schools[1].mis_path, "6614001")  # the same MIS: two more learners held back
    mis.add_learner(60, upn_value="K68123452501A", forename="Gwenllïan", surname="Huws", year="7")
    mis.add_learner(61, dob=None, forename="<script>alert(1)</script>", surname="O'Brien & Sons")
    mis.add_member(500, 1, pupil=60)
    mis.add_member(501, 1, pupil=61)
    mis.commit()
    html = tmp_path / "report.html"
    assert two_schools.cli("report", "--school", "6614001", "--output", str(html)).returncode == 0
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    run_chromium(f"--screenshot={png}", "--window-size=1200,1600", html.as_uri())
    run_chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    text = html.read_text(encoding="utf-8")
    assert "&lt;script&gt;" in text and "<script>" not in text  # autoescaped

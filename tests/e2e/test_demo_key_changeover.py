"""National UPN key rotation with the demo's two schools (hwb_synth's primary and secondary, the same
seed and rollover as ``python -m hwb_demo``): the real CLI in subprocesses, SQLite over ODBC, the sandbox
over HTTP. Every run is dated with --as-of (and the sandbox's national calendar set to the same day):
June in the summer term, a changeover window from 20 June to 20 July, the rollover read on 1 September."""

from __future__ import annotations

import datetime as dt
import os

from hwb_client.adapters.national_key import load_national_keys, write_national_keys
from hwb_demo.__main__ import SEED, learner_accounts, load_mis
from hwb_demo.lab import Lab, LabSchool
from hwb_synth.generate import generate
from hwb_synth.mutate import summer_rollover
from hwb_synth.scales import DEMO_PRIMARY, DEMO_SECONDARY

NEW_KEY_ID = "nat-demo-2"


def changes(stdout: str, dfes: str) -> str:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{dfes}:"))
    return next(line for line in lines[start + 1 :] if line.startswith("  sent:"))


JUNE, WINDOW_OPENS, OLD_KEY_LAST_DAY, SEPTEMBER = (
    dt.date(2026, 6, 15),
    dt.date(2026, 6, 20),
    dt.date(2026, 7, 20),
    dt.date(2026, 9, 1),
)


def run_now(lab: Lab, sandbox, day: dt.date) -> str:
    sandbox.set_today(day)
    done = lab.cli("--run-now", "--as-of", day.isoformat())
    assert done.returncode in (0, 1), done.stdout + done.stderr[-3000:]
    return done.stdout


def test_the_demo_schools_year_6_to_year_7_match_survives_a_national_key_changeover(tmp_path, sandbox):
    """The primary's Year 6 hashed under the old key; a changeover window in which both schools send both
    pseudonyms (no remove, and a second run sends nothing); then the old key retired and the summer
    rollover: every Year 6 learner admitted to the secondary as Year 7 under the new key holds the account
    the primary's Year 6 learner had under the old one."""
    data = generate(SEED, [DEMO_PRIMARY, DEMO_SECONDARY], academic_year=2025, broken=True)
    schools = [
        LabSchool(DEMO_PRIMARY.dfes_number, DEMO_PRIMARY.name, tmp_path / "mis-primary.sqlite3"),
        LabSchool(DEMO_SECONDARY.dfes_number, DEMO_SECONDARY.name, tmp_path / "mis-secondary.sqlite3"),
    ]
    lab = Lab(tmp_path / "lab", schools, sandbox.url)
    lab.root.mkdir()
    load_mis(lab, data)
    lab.write_config()
    lab.enrol_all(sandbox)
    run_now(lab, sandbox, JUNE)
    before = {s.dfes_number: learner_accounts(lab, s.dfes_number) for s in schools}
    (old,) = load_national_keys(lab.national_key_file)
    new_secret = os.urandom(32)

    write_national_keys(
        lab.national_key_file,
        [
            (old.key_id, old.hasher.key, None, OLD_KEY_LAST_DAY),
            (NEW_KEY_ID, new_secret, WINDOW_OPENS, None),
        ],
    )
    window = run_now(lab, sandbox, WINDOW_OPENS)
    for school in schools:
        sent = changes(window, school.dfes_number)
        assert "remove" not in sent and "learner upsert=" in sent, sent
        during = learner_accounts(lab, school.dfes_number)
        assert sorted(r["account_id"] for r in during.values()) == sorted(
            r["account_id"] for r in before[school.dfes_number].values()
        ), "same accounts, each held once"
        assert all(key.startswith(NEW_KEY_ID + ":") for key in during)
    second = run_now(lab, sandbox, WINDOW_OPENS + dt.timedelta(days=1))
    assert all(changes(second, s.dfes_number).endswith("sent: none") for s in schools), second

    new = next(p for p in load_national_keys(lab.national_key_file) if p.key_id == NEW_KEY_ID)
    rollover = summer_rollover(
        data,
        DEMO_PRIMARY.dfes_number,
        DEMO_SECONDARY.dfes_number,
        leaving_date=dt.date(2026, 7, 22),
        seed=SEED,
    )
    load_mis(lab, rollover.data)
    run_now(lab, sandbox, SEPTEMBER)  # the old key retired after 20 July: only new pseudonyms
    primary_after = learner_accounts(lab, DEMO_PRIMARY.dfes_number)
    secondary_after = learner_accounts(lab, DEMO_SECONDARY.dfes_number)
    movers = sorted(rollover.summary.y6_movers)
    matched = [
        upn
        for upn in movers
        if before[DEMO_PRIMARY.dfes_number][old.hasher(upn)]["account_id"]
        == secondary_after[new.hasher(upn)]["account_id"]
        and primary_after[new.hasher(upn)]["status"] == "left"
    ]
    assert movers and len(matched) == len(movers)

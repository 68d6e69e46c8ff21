"""One provisioning run, end to end: the real CLI in a subprocess, SQLite over ODBC, the sandbox over HTTP."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys

import pytest

from hwb_client.adapters.national_key import load_national_key
from mis_builder import small_school, upn

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")


def manifest(lab, dfes="6612001"):
    api = lab.api(dfes)
    try:
        return {(r.kind, r.key): dataclasses.asdict(r) for r in api.manifest(dfes).records}
    finally:
        api.close()


def sandbox_accounts(sandbox, dfes):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hwb_sandbox",
            "accounts",
            "--db",
            str(sandbox.db_path),
            "--dfes",
            dfes,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def hashed(lab, n):
    return load_national_key(lab.national_key_file)(upn(n))


def test_first_run_creates_every_record_and_a_second_run_without_mis_change_sends_no_batch(make_lab):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    first = lab.cli("--run-now")
    assert first.returncode == 0, first.stderr
    assert "SUCCESS" in first.stdout and "learner upsert=30" in first.stdout
    records = manifest(lab)
    assert len([k for k in records if k[0] == "learner"]) == 30
    assert ("learner", hashed(lab, 1)) in records
    second = lab.cli("--run-now")
    assert second.returncode == 0
    assert "0 changes sent in 0 batches" in second.stdout
    assert "batch_acknowledged" not in second.stderr
    assert "run_reported" in second.stderr  # the run report still goes upstream


def test_leaver_is_sent_with_leaving_date_and_a_returning_learner_keeps_the_same_account(make_lab, sandbox):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001")
    assert lab.cli("--run-now").returncode == 0
    account = manifest(lab)[("learner", hashed(lab, 3))]["account_id"]
    mis.execute("UPDATE mis_pupil SET leaving_date = '2026-07-22' WHERE pupil_id = 3")
    mis.commit()
    assert "learner leave=1" in lab.cli("--run-now").stdout
    assert manifest(lab)[("learner", hashed(lab, 3))]["status"] == "left"
    mis.execute("UPDATE mis_pupil SET leaving_date = NULL WHERE pupil_id = 3")
    mis.commit()
    assert "learner upsert=1" in lab.cli("--run-now").stdout
    record = manifest(lab)[("learner", hashed(lab, 3))]
    assert record["status"] == "active" and record["account_id"] == account


def test_broken_records_are_held_back_with_reasons_and_the_rest_is_sent(make_lab):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=5)
    mis.add_learner(50, upn_value="K68123452501A")  # temporary UPN
    mis.add_learner(51, dob=None)
    mis.add_staff(3, None)  # no staff code
    mis.add_staff(4, "NEW", start=None)  # no start date
    mis.commit()
    result = lab.cli("--run-now")
    assert result.returncode == 1  # finished, with records held back
    assert "PARTIAL" in result.stdout
    assert "upn_temporary=1" in result.stdout and "start_date_missing=1" in result.stdout
    assert len([k for k in manifest(lab) if k[0] == "learner"]) == 5
    status = json.loads(lab.cli("status", "--json").stdout)["schools"][0]
    assert status["last_run"]["held_back"] == {
        "upn_temporary": 1,
        "date_of_birth_missing": 1,
        "staff_code_missing": 1,
        "start_date_missing": 1,
    }


def test_dry_run_prints_the_plan_naming_held_back_records_and_sends_and_changes_nothing(make_lab):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=4)
    mis.add_learner(60, upn_value="K68123452501A", forename="Gwenllïan", surname="Huws")
    mis.commit()
    result = lab.cli("--run-now", "--dry-run")
    assert "learner upsert=4" in result.stdout
    assert "Gwenllïan Huws: upn_temporary" in result.stdout  # the school's own report names the record
    assert "for the school's administrators only" in result.stdout
    assert manifest(lab) == {}
    assert not (lab.state_dir / "6612001.sqlite3").exists()
    assert "Gwenllïan" not in lab.log_file.read_text(encoding="utf-8")


def test_mass_disappearance_is_blocked_until_a_person_allows_it(make_lab):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=60)
    assert lab.cli("--run-now").returncode == 0
    mis.execute("DELETE FROM mis_group_member WHERE pupil_id > 10")
    mis.execute("DELETE FROM mis_pupil WHERE pupil_id > 10")
    mis.commit()
    blocked = lab.cli("--run-now")
    assert blocked.returncode == 6
    assert "BLOCKED" in blocked.stdout and "50 of 60 active learner records vanished" in blocked.stdout
    assert len([k for k in manifest(lab) if k[0] == "learner"]) == 60  # nothing was sent
    status = lab.cli("status")
    assert status.returncode == 2 and "blocked" in status.stdout  # CRITICAL (0.1.0 exited 10)
    allowed = lab.cli("--run-now", "--allow-mass-removal")
    assert allowed.returncode == 0
    assert len([k for k in manifest(lab) if k[0] == "learner"]) == 10


def test_an_unreachable_mis_fails_the_run_cleanly_and_the_failure_is_reported(make_lab, sandbox):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    assert lab.cli("--run-now").returncode == 0
    lab.schools[0].mis_path.rename(lab.schools[0].mis_path.with_suffix(".moved"))
    sqlite3.connect(lab.schools[0].mis_path).close()  # an empty file: the tables are gone
    result = lab.cli("--run-now")
    assert result.returncode == 4
    assert "FAILED" in result.stdout and "learners query failed" in result.stdout
    assert len([k for k in manifest(lab) if k[0] == "learner"]) == 30  # nothing removed
    api = lab.api("6612001")
    try:
        assert api.status("6612001")["last_run"]["outcome"] == "failed"
    finally:
        api.close()


def test_a_second_manual_run_while_one_holds_the_lock_says_so(make_lab):
    from hwb_client.platform.lock import school_lock

    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    with school_lock(lab.state_dir, "6612001"):
        result = lab.cli("--run-now")
    assert result.returncode == 7
    assert "another run is in progress" in result.stderr


def test_bad_configuration_stops_before_anything_is_read_or_sent(make_lab):
    lab = make_lab([PRIMARY], enrol=False)
    lab.config_path.write_text(
        lab.config_path.read_text().replace('dfes_number = "6612001"', 'dfes_number = "66120"')
    )
    result = lab.cli("--run-now")
    assert result.returncode == 3
    assert "dfes_number: must be the school's 7-digit DfES number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not lab.state_dir.exists()


@pytest.mark.parametrize(
    "command",
    ["status", "schedule", "check-config", "enrol", "daemon", "rotate-key", "history", "why", "report"],
)
def test_every_command_has_help_and_a_readme_entry(command):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"hwb-client {command}" in readme
    result = subprocess.run(
        [sys.executable, "-m", "hwb_client", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage:" in result.stdout


def test_rotating_the_signing_key_keeps_runs_working_and_retires_the_old_key(make_lab):
    from hwb_client.adapters.signing import RequestSigner, key_id_for, load_signing_key
    from hwb_client.adapters.transport import NationalApi
    from hwb_client.errors import ApiError
    from hwb_client.settings import load_settings

    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    settings = load_settings(lab.config_path)
    old = load_signing_key(settings.signing_key_path(settings.schools[0]))
    result = lab.cli("rotate-key", "--school", "6612001")
    assert result.returncode == 0, result.stderr
    assert "signing key rotated" in result.stdout
    assert lab.cli("--run-now").returncode == 0
    stale = NationalApi(settings.api, signer=RequestSigner(old, key_id_for("6612001", old.public_key())))
    try:
        with pytest.raises(ApiError) as refused:
            stale.status("6612001")
        assert refused.value.status == 401
    finally:
        stale.close()


def test_a_run_report_the_national_api_refuses_for_good_is_set_aside_and_does_not_fail_later_runs(make_lab):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    assert lab.cli("--run-now").returncode == 0
    db = sqlite3.connect(lab.state_dir / "6612001.sqlite3")
    bad = {"run_id": "not-a-uuid", "outcome": "exploded", "started_at": "x", "finished_at": "y"}
    db.execute(
        "INSERT INTO runs (run_id, started_at, finished_at, outcome, report, reported) VALUES (?,?,?,?,?,0)",
        ("not-a-uuid", "x", "y", "exploded", json.dumps(bad)),
    )
    db.commit()
    db.close()
    result = lab.cli("--run-now")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run_report_refused" in result.stderr
    assert lab.cli("--run-now").returncode == 0


def _events(run, name):
    return [
        event
        for line in run.stderr.splitlines()
        if line.startswith("{") and (event := json.loads(line)).get("event") == name
    ]


def test_memberships_settle_after_a_clean_run_and_a_class_change_is_still_sent_exactly(make_lab):
    """Memberships are most of a school's rows. A run that leaves a class's memberships exactly as
    acknowledged keeps a token of what they came from; the next run with the same token for the class
    reads them but decides nothing for them. Any change to a class, a member or a person is still sent,
    and nothing else is; a change to one class leaves the others settled."""
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001")
    first = lab.cli("--run-now")
    assert first.returncode == 0, first.stderr
    assert [(e["classes"], e["records"]) for e in _events(first, "memberships_settled")] == [(1, 31)]
    second = lab.cli("--run-now")
    assert "0 changes sent in 0 batches" in second.stdout
    assert [(e["records"], e["by_whole_read"]) for e in _events(second, "memberships_settled_before")] == [
        (31, True)  # nothing changed: the whole read's token alone, no class compared
    ]
    before = manifest(lab)

    mis.add_group(2, "6B")  # a new class; learner 5 moves to it; learner 30 leaves the MIS with their row
    mis.execute("UPDATE mis_group_member SET group_pk = 2 WHERE pupil_id = 5")
    mis.execute("DELETE FROM mis_group_member WHERE pupil_id = 30")
    mis.execute("DELETE FROM mis_pupil WHERE pupil_id = 30")
    mis.commit()
    third = lab.cli("--run-now")
    assert third.returncode == 0, third.stderr
    assert _events(third, "memberships_settled_before") == []
    assert "group upsert=1" in third.stdout and "membership remove=2 upsert=1" in third.stdout
    assert "learner remove=1" in third.stdout
    after = manifest(lab)
    moved = f"6B/learner/{hashed(lab, 5)}"
    assert after[("membership", moved)]["status"] == "active"
    assert ("membership", f"6A/learner/{hashed(lab, 5)}") not in after or after[
        ("membership", f"6A/learner/{hashed(lab, 5)}")
    ]["status"] == "removed"
    unchanged = {
        k: v for k, v in before.items() if hashed(lab, 5) not in k[1] and hashed(lab, 30) not in k[1]
    }
    assert all(after[k]["digest"] == v["digest"] for k, v in unchanged.items())
    assert [(e["classes"], e["records"]) for e in _events(third, "memberships_settled")] == [(2, 30)]
    fourth = lab.cli("--run-now")
    assert "0 changes sent in 0 batches" in fourth.stdout
    assert [
        (e["classes"], e["records"], e["by_whole_read"])
        for e in _events(fourth, "memberships_settled_before")
    ] == [(2, 30, True)]

    mis.execute("UPDATE mis_group_member SET group_pk = 2 WHERE pupil_id = 6")  # only 6A and 6B change
    mis.add_group(3, "6C")  # and a new class with a teacher
    mis.add_member(900, 3, staff=2)
    mis.commit()
    fifth = lab.cli("--run-now")
    assert fifth.returncode == 0, fifth.stderr
    assert "membership remove=1 upsert=2" in fifth.stdout and "group upsert=1" in fifth.stdout
    assert _events(fifth, "memberships_settled_before") == []  # 6A and 6B both changed
    mis.execute("UPDATE mis_group_member SET group_pk = 3 WHERE pupil_id = 7")  # 6A and 6C change; 6B stands
    mis.commit()
    sixth = lab.cli("--run-now")
    assert "membership remove=1 upsert=1" in sixth.stdout
    assert [
        (e["classes"], e["records"], e["by_whole_read"]) for e in _events(sixth, "memberships_settled_before")
    ] == [(1, 2, False)]  # 6B by its own token


def test_a_date_of_birth_of_year_0_holds_back_its_learner_and_the_rest_is_sent(make_lab):
    """The SQLite ODBC driver cannot make a date of ``0000-01-01`` (year 0): read as text, the record
    is held back with its reason instead of the whole read failing."""
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001")
    mis.execute("UPDATE mis_pupil SET date_of_birth = '0000-01-01' WHERE pupil_id = 2")
    mis.commit()
    run = lab.cli("--run-now")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "learner upsert=29" in run.stdout
    held = {(e["kind"], e["reason"]) for e in _events(run, "record_held_back")}
    assert ("membership", "member_held_back") in held
    assert [r for k, r in held if k == "learner" and r.startswith("date_of_birth")]

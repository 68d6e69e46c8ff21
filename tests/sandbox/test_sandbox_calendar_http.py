"""The national calendar through real HTTP, on the sandbox clock: leavers in time, the summer, purges."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from sandbox_helpers import PRIMARY, SECONDARY, SchoolClient, batch, learner, op, staff

from hwb_sandbox.store import MIGRATIONS, SandboxStore
from hwb_sandbox.testing import SandboxProcess

D = dt.date.fromisoformat
V2 = {"Hwb-Protocol": "2"}


def _ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _account(sandbox: SandboxProcess, dfes: str, key: str) -> dict[str, Any] | None:
    """The school's account row for ``key`` as ``hwb-sandbox accounts --json`` reports it, or None."""
    store = SandboxStore(sandbox.db_path)
    try:
        return next((row for row in store.accounts(dfes) if row["key"] == key), None)
    finally:
        store.close()


def _held(sandbox: SandboxProcess, dfes: str, key: str) -> dict[str, Any]:
    """The account row for ``key``, which the school must hold."""
    row = _account(sandbox, dfes, key)
    assert row is not None, f"no account for {key} at {dfes}"
    return row


def _active(sandbox: SandboxProcess, dfes: str, key: str) -> bool:
    return bool(_held(sandbox, dfes, key)["account_active"])


def _v2_entry(school: SchoolClient, kind: str, key: str) -> dict[str, Any]:
    """The school's protocol 2 manifest record for ``key``, which must be listed."""
    manifest = _ok(school.call("GET", f"/v1/schools/{school.dfes}/manifest", headers=V2))
    entries: list[dict[str, Any]] = [r for r in manifest["records"] if r["kind"] == kind and r["key"] == key]
    assert len(entries) == 1, f"{kind} {key} is not in the manifest"
    return entries[0]


def _clock_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hwb_sandbox", "clock", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- leavers in time ------------------------------------------------------------------------------------------


def test_upsert_with_a_future_leaving_date_stays_active_leaving_on_that_day(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-06-01"))
    pupil = learner("future-leaver", year_group="6", leaving_date="2027-07-22")

    _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))

    assert _active(sandbox, PRIMARY, pupil["upn_hash"])
    entry = _v2_entry(primary, "learner", pupil["upn_hash"])
    assert (entry["status"], entry["state"], entry["on_roll_until"]) == ("active", "leaving", "2027-07-22")


def test_v1_early_leave_with_a_future_date_is_active_until_the_clock_passes_it(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-05-10"))
    pupil = learner("early-leave", year_group="8")
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))

    _ok(primary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2027-05-20")))))

    assert _active(sandbox, PRIMARY, pupil["upn_hash"])
    assert _held(sandbox, PRIMARY, pupil["upn_hash"])["state"] == "leaving"
    assert _clock_cli(sandbox.db_path, "--set", "2027-05-20").returncode == 0
    assert _active(sandbox, PRIMARY, pupil["upn_hash"])

    moved = _clock_cli(sandbox.db_path, "--set", "2027-05-21")  # while the server runs

    assert moved.returncode == 0 and moved.stdout.strip() == "today: 2027-05-21 (set)"
    assert not _active(sandbox, PRIMARY, pupil["upn_hash"])
    entry = _v2_entry(primary, "learner", pupil["upn_hash"])  # read by the running server
    assert (entry["status"], entry["state"], entry["on_roll_until"]) == ("left", "left", "2027-05-20")


def test_v1_manifest_keeps_its_shape_for_a_calendar_held_leaver(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-07-23"))
    pupil = learner("v1-shape", year_group="6")
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))
    _ok(primary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2027-07-22")))))

    entry = primary.manifest_entry("learner", pupil["upn_hash"])

    assert entry is not None
    assert set(entry) == {"kind", "key", "digest", "status", "account_id"}
    assert entry["status"] == "left"


def test_year_6_leaver_stays_at_the_primary_until_31_august_and_is_matched_in_year_7(
    sandbox: SandboxProcess, primary: SchoolClient, secondary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-07-01"))
    pupil = learner("y6-summer", year_group="6", leaving_date="2027-07-22")
    account_id = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]["account_id"]
    sandbox.set_today(D("2027-07-23"))  # the first run after the leaving date sends the leave
    _ok(primary.post_batch(batch(op("leave", "learner", pupil))))
    sandbox.set_today(D("2027-08-30"))
    assert _active(sandbox, PRIMARY, pupil["upn_hash"])
    assert _v2_entry(primary, "learner", pupil["upn_hash"])["on_roll_until"] == "2027-08-30"

    sandbox.set_today(D("2027-08-31"))

    assert not _active(sandbox, PRIMARY, pupil["upn_hash"])
    assert _held(sandbox, PRIMARY, pupil["upn_hash"])["state"] == "left"
    year_7 = dict(pupil, year_group="7", registration_group="7B", leaving_date=None)
    joined = _ok(secondary.post_batch(batch(op("upsert", "learner", year_7))))["results"][0]
    assert joined == {"index": 0, "status": "applied", "account_id": account_id}
    assert _active(sandbox, SECONDARY, pupil["upn_hash"])


def test_year_6_learner_admitted_by_the_secondary_before_31_august_is_the_same_account(
    sandbox: SandboxProcess, primary: SchoolClient, secondary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-07-23"))
    pupil = learner("y6-early-admission", year_group="6")
    account_id = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]["account_id"]
    _ok(primary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2027-07-22")))))

    joined = _ok(secondary.post_batch(batch(op("upsert", "learner", dict(pupil, year_group="7")))))

    assert joined["results"][0]["account_id"] == account_id
    sandbox.set_today(D("2027-08-31"))
    assert _held(sandbox, PRIMARY, pupil["upn_hash"])["state"] == "left"
    assert _active(sandbox, SECONDARY, pupil["upn_hash"])


def test_year_11_summer_leaver_is_kept_active_until_29_august(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-06-26"))
    pupil = learner("y11", year_group="11")
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))
    _ok(primary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2027-06-25")))))

    for day, active in (("2027-08-28", True), ("2027-08-29", True), ("2027-08-30", False)):
        sandbox.set_today(D(day))
        assert _active(sandbox, PRIMARY, pupil["upn_hash"]) is active, day


def test_staff_with_a_future_start_date_gets_an_account_now_starting_on_that_day(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-07-15"))

    result = _ok(primary.post_batch(batch(op("upsert", "staff", staff("NEW9", start_date="2027-09-01")))))

    assert result["results"][0]["status"] == "applied"
    row = _account(sandbox, PRIMARY, "NEW9")
    assert row is not None and row["account_active"]
    assert (row["state"], row["starts_on"]) == ("starting", "2027-09-01")
    sandbox.set_today(D("2027-09-01"))
    assert _held(sandbox, PRIMARY, "NEW9")["state"] == "active"


def test_staff_early_leave_keeps_the_account_until_the_day_after(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-07-01"))
    teacher = staff("T77")
    _ok(primary.post_batch(batch(op("upsert", "staff", teacher))))
    _ok(primary.post_batch(batch(op("leave", "staff", dict(teacher, leaving_date="2027-07-22")))))

    sandbox.set_today(D("2027-07-22"))
    assert _active(sandbox, PRIMARY, "T77")
    sandbox.set_today(D("2027-07-23"))
    assert not _active(sandbox, PRIMARY, "T77")


# -- classes in the summer -------------------------------------------------------------------------------------


def test_class_changes_from_2_june_are_flagged_not_passed_on(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    pupil = learner("classes", year_group="5")
    group = {"group_id": "5S", "name": "5 Science", "group_type": "teaching", "year_group": "5"}
    member_key = f"5S/learner/{pupil['upn_hash']}"
    member = {"group_id": "5S", "member_kind": "learner", "member_key": pupil["upn_hash"]}
    sandbox.set_today(D("2027-06-01"))
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil), op("upsert", "group", group))))
    assert _v2_entry(primary, "group", "5S")["passed_on_to_classrooms"] is True

    sandbox.set_today(D("2027-06-02"))
    _ok(
        primary.post_batch(
            batch(op("upsert", "group", dict(group, name="5 Sci")), op("upsert", "membership", member))
        )
    )

    assert _v2_entry(primary, "group", "5S")["passed_on_to_classrooms"] is False
    assert _v2_entry(primary, "membership", member_key)["passed_on_to_classrooms"] is False
    assert _v2_entry(primary, "learner", pupil["upn_hash"])["passed_on_to_classrooms"] is None
    portal = requests.get(sandbox.url + "/portal", timeout=30).text
    row = next(line for line in portal.splitlines() if f"<td>{PRIMARY}</td>" in line)
    assert "2 recorded, not passed on to Teams, Google Classroom or Apple Classroom" in row
    assert "Sandbox today: 2027-06-02" in portal

    sandbox.set_today(D("2027-09-01"))  # the new academic year's classes are passed on
    assert _v2_entry(primary, "group", "5S")["passed_on_to_classrooms"] is True


# -- purge ---------------------------------------------------------------------------------------------------------


def test_account_inactive_for_12_months_is_purged_and_a_returner_then_gets_a_new_account(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    sandbox.set_today(D("2027-03-13"))
    kept, purged = learner("returns-in-time", year_group="3"), learner("returns-late", year_group="3")
    first = _ok(primary.post_batch(batch(op("upsert", "learner", kept), op("upsert", "learner", purged))))
    ids = [r["account_id"] for r in first["results"]]
    leave = batch(*(op("leave", "learner", dict(p, leaving_date="2027-03-12")) for p in (kept, purged)))
    _ok(primary.post_batch(leave))  # released from 2027-03-13

    sandbox.set_today(D("2028-03-12"))  # 12 months less a day
    back = _ok(primary.post_batch(batch(op("upsert", "learner", kept))))["results"][0]
    assert back["account_id"] == ids[0]  # reactivated, not recreated
    assert _account(sandbox, PRIMARY, purged["upn_hash"]) is not None

    sandbox.set_today(D("2028-03-13"))  # 12 months

    assert _account(sandbox, PRIMARY, purged["upn_hash"]) is None
    assert primary.manifest_entry("learner", purged["upn_hash"]) is None
    assert _active(sandbox, PRIMARY, kept["upn_hash"])
    late = _ok(primary.post_batch(batch(op("upsert", "learner", purged))))["results"][0]
    assert late["status"] == "applied" and late["account_id"] not in ids


# -- the clock -------------------------------------------------------------------------------------------------


def test_serve_today_sets_the_clock_and_clock_real_follows_the_real_date(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hwb_sandbox",
            "serve",
            "--db",
            str(db),
            "--port",
            "0",
            "--today",
            "2027-08-30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().removeprefix("listening on ")
        portal = requests.get(url + "/portal", timeout=30).text
        assert "Sandbox today: 2027-08-30 (set with hwb-sandbox clock)" in portal

        assert _clock_cli(db, "--real").stdout.strip().endswith("(the real date)")
        assert "(the real date)" in requests.get(url + "/portal", timeout=30).text
    finally:
        server.terminate()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()


def test_clock_refuses_a_date_that_is_not_yyyy_mm_dd(tmp_path: Path) -> None:
    result = _clock_cli(tmp_path / "s.db", "--set", "30/08/2027")

    assert result.returncode == 2
    assert "not a date as YYYY-MM-DD" in result.stderr


# -- upgrade ---------------------------------------------------------------------------------------------------


def test_a_sandbox_database_from_0_1_0_migrates_in_place_with_its_leavers_still_left(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);"
        + MIGRATIONS[0]
        + "INSERT INTO schema_migrations VALUES (1, '2026-07-01T00:00:00Z');"
        "INSERT INTO schools VALUES ('6601234', 'Ysgol', '2026-07-01T00:00:00Z');"
        "INSERT INTO learner_accounts VALUES ('acc-1', 'k:aa', 0, '2026-07-01T00:00:00Z', '2026-07-20T00:00:00Z');"
        "INSERT INTO school_records VALUES ('6601234', 'learner', 'k:aa', '{\"year_group\": \"6\","
        " \"leaving_date\": \"2027-07-22\"}', 'sha-256:00', 'left', 'acc-1', '2027-07-22', '2026-07-20T10:00:00Z');"
    )
    old.commit()
    old.close()

    store = SandboxStore(db)
    try:
        store.set_today(D("2026-09-01"))
        rows = store.accounts("6601234")
    finally:
        store.close()

    assert [(r["key"], r["state"], r["account_active"]) for r in rows] == [("k:aa", "left", False)]

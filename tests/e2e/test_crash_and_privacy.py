"""Crash safety (SIGKILL mid-push) and privacy (no personal data in logs or state), end to end."""

from __future__ import annotations

import json
import sqlite3

from mis_builder import Mis, small_school, upn

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")


def sandbox_batches(sandbox, dfes="6612001"):
    db = sqlite3.connect(sandbox.db_path)
    try:
        rows = db.execute(
            "SELECT batch_id, response_json FROM batches WHERE dfes_number = ?", (dfes,)
        ).fetchall()
    finally:
        db.close()
    return {batch_id: json.loads(body) for batch_id, body in rows}


def totals(batches):
    applied = sum(b["applied"] for b in batches.values())
    unchanged = sum(b["unchanged"] for b in batches.values())
    return applied, unchanged


def test_sigkill_in_the_middle_of_a_push_then_a_new_run_applies_each_change_exactly_once(make_lab, sandbox):
    lab = make_lab([PRIMARY], api_overrides="")
    lab.config_path.write_text(lab.config_path.read_text() + "\n[batches]\nmax_operations = 10\n")
    small_school(lab.schools[0].mis_path, "6612001", learners=55).close()  # 55 + 2 + 1 + 56 = 114 changes
    lab.env["HWB_FAILPOINT"] = "mid_push"
    killed = lab.cli("--run-now")
    assert killed.returncode == -9  # killed by SIGKILL after the first acknowledged batch
    assert len(sandbox_batches(sandbox)) == 1
    lab.env.pop("HWB_FAILPOINT")
    again = lab.cli("--run-now")
    assert again.returncode == 0, again.stderr
    applied, unchanged = totals(sandbox_batches(sandbox))
    assert (applied, unchanged) == (114, 0)
    assert "0 changes" in lab.cli("--run-now").stdout


def test_sigkill_after_the_server_applied_a_batch_but_before_state_advanced_resends_it_byte_identical(
    make_lab, sandbox
):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001", learners=5).close()
    lab.env["HWB_FAILPOINT"] = "after_server_ack"
    assert lab.cli("--run-now").returncode == -9
    first = sandbox_batches(sandbox)
    assert len(first) == 1
    lab.env.pop("HWB_FAILPOINT")
    again = lab.cli("--run-now")
    assert again.returncode == 0
    assert '"replayed": true' in again.stderr  # the server answered from its idempotency record
    assert sandbox_batches(sandbox) == first  # nothing applied twice, no new batch
    assert totals(first) == (14, 0)  # 5 learners, 2 staff, 1 group, 6 memberships


def test_no_raw_upn_name_or_date_of_birth_reaches_the_logs_or_the_state_database(make_lab, sandbox):
    lab = make_lab([PRIMARY])
    mis = Mis(lab.schools[0].mis_path, "6612001")
    people = [(n, f"Gwenllïan{n}", f"Prydderch{n}", f"2015-0{1 + n % 9}-1{n % 10}") for n in range(1, 21)]
    mis.add_group(1, "6A")
    for n, forename, surname, dob in people:
        mis.add_learner(n, forename=forename, surname=surname, dob=dob)
    mis.add_learner(90, upn_value="K68123452501A", forename="Heledd", surname="Temporary")  # held back
    mis.add_learner(91, forename="Rhys", surname="NoBirth", dob=None)  # held back
    mis.add_staff(1, "T1", forename="Aneurin", surname="Staffmember")
    mis.commit()
    assert lab.cli("--run-now").returncode == 1
    mis.execute("UPDATE mis_pupil SET leaving_date = '2026-07-22' WHERE pupil_id < 5")
    mis.commit()
    lab.cli("--run-now")
    lab.cli("--run-now", "--dry-run")
    lab.cli("status", "--json")

    secrets = [upn(n) for n in range(1, 21)] + ["K68123452501A", upn(91)]
    secrets += [p[1] for p in people] + [p[2] for p in people] + [p[3] for p in people]
    secrets += ["Heledd", "Temporary", "NoBirth", "Aneurin", "Staffmember"]
    blobs = {
        path.name: path.read_bytes()
        for path in lab.root.rglob("*")
        if path.is_file() and "mis-" not in path.name
    }
    assert any(name.endswith(".log") for name in blobs) and any(".sqlite3" in name for name in blobs)
    leaks = [(name, s) for name, blob in blobs.items() for s in secrets if s.encode() in blob]
    assert leaks == []

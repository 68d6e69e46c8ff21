"""Lost or damaged local state: the state database deleted, or its bytes overwritten.

The client must notice, set the damaged file aside (kept for inspection), rebuild what was acknowledged
from the national manifest, and carry on: no duplicate accounts, no spurious removals, and a run with an
unchanged MIS sends nothing.
"""

from __future__ import annotations

import os

import pytest
from reliability_support import RLab, churn, learner_accounts, ledger, staff_accounts

from mis_builder import Mis, small_school

AREA = "Lost or damaged local state"


def _provisioned(rlab) -> tuple[RLab, dict, int, int]:
    lab = rlab(batches=20)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=30).close()
    assert lab.run_now().returncode == 0
    return lab, lab.manifest(), len(ledger(lab.sandbox, lab.dfes)), learner_accounts(lab.sandbox)


def _state_files(lab: RLab) -> list:
    return sorted(lab.lab.state_dir.glob(f"{lab.dfes}.sqlite3*"))


def _rebuilt_without_change(lab: RLab, before: dict, batches: int, accounts: int, scenario) -> None:
    rebuilt = lab.run_now()
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "0 changes sent in 0 batches" in rebuilt.stdout
    reconciled = rebuilt.events("state_reconciled")
    assert reconciled and reconciled[0]["records"] == len(before)
    assert lab.manifest() == before  # nothing removed, nothing re-created
    assert len(ledger(lab.sandbox, lab.dfes)) == batches
    assert learner_accounts(lab.sandbox) == accounts and staff_accounts(lab.sandbox, lab.dfes) == 2
    lab.assert_sandbox_matches_mis()
    scenario.figures.update(
        {"records rebuilt from the manifest": reconciled[0]["records"], "changes sent": 0, "new batches": 0}
    )


def test_a_deleted_state_database_is_rebuilt_from_the_manifest_and_nothing_is_resent(rlab, scenario):
    """State database deleted: the next run rebuilds it from the manifest and sends nothing."""
    lab, before, batches, accounts = _provisioned(rlab)
    for path in _state_files(lab):
        path.unlink()
    _rebuilt_without_change(lab, before, batches, accounts, scenario)


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_a_corrupted_state_database_is_set_aside_and_rebuilt_without_duplicates(damage, rlab, scenario):
    """State database overwritten (its header, or every page after the first): detected, set aside,
    rebuilt from the manifest; no duplicate account, no removal, nothing resent."""
    lab, before, batches, accounts = _provisioned(rlab)
    path = lab.lab.state_dir / f"{lab.dfes}.sqlite3"
    size = path.stat().st_size
    with path.open("r+b") as handle:
        if damage == "header":
            handle.write(os.urandom(100))
        else:
            handle.seek(4096)
            handle.write(os.urandom(size - 4096))
    _rebuilt_without_change(lab, before, batches, accounts, scenario)
    damaged = [
        p
        for p in lab.lab.state_dir.glob(f"{lab.dfes}.sqlite3.damaged-*")
        if p.name[-4:] not in {"-wal", "-shm"}
    ]
    assert len(damaged) == 1 and damaged[0].stat().st_size == size  # kept for inspection
    runs = lab.runs[-1]
    assert runs.events("state_damaged_set_aside")
    scenario.figures["bytes overwritten"] = 100 if damage == "header" else size - 4096


def test_state_lost_with_batches_waiting_is_rebuilt_and_each_change_is_applied_once(rlab, scenario):
    """Killed mid-push (one batch of four acknowledged), then the state database is lost with the rest
    of the outbox in it: the state rebuilt from the manifest plus a fresh diff sends every change once."""
    lab, _, _, _ = _provisioned(rlab)
    mis = Mis(lab.schools[0].mis_path, lab.dfes)
    churn(mis)
    mis.close()
    changes = lab.pending_changes()
    before = ledger(lab.sandbox, lab.dfes)
    killed = lab.run_now(HWB_FAILPOINT="mid_push")
    assert killed.killed
    assert len(ledger(lab.sandbox, lab.dfes).since(before)) == 1  # one batch went before the kill
    for path in _state_files(lab):
        path.unlink()
    rebuilt = lab.run_now()
    assert rebuilt.returncode == 1, rebuilt.stdout + rebuilt.stderr  # 1: the broken joiner is held back
    lab.assert_sandbox_matches_mis()
    after = ledger(lab.sandbox, lab.dfes).since(before)
    assert (after.applied, after.unchanged, after.refused) == (len(changes), 0, 0)
    scenario.figures.update(
        {
            "changes": len(changes),
            "records rebuilt": rebuilt.events("state_reconciled")[0]["records"],
            "batches": len(after),
            "applied once": after.applied,
        }
    )

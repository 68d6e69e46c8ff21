"""The real client, killed with SIGKILL at each stage of a run (``HWB_FAILPOINT``), then one clean run.

A school's MIS is provisioned, then changes (joiners, leavers, learners who vanished, edits, a broken
record); the run that would send those changes in batches of 10 is killed at one stage. One clean run
later the sandbox must hold exactly what the MIS says, and its ledger must show each change applied once.
"""

from __future__ import annotations

import pytest
from reliability_support import churn, counted, learner_accounts, ledger, run_reports

from mis_builder import small_school

AREA = "Crash matrix: SIGKILL at each stage of a run, then one clean run"

STAGES = ["while_reading", "after_diff", "after_outbox", "mid_push", "after_server_ack", "while_reporting"]


@pytest.mark.parametrize("stage", STAGES, ids=STAGES)
def test_sigkill_at_a_stage_then_one_clean_run_leaves_the_sandbox_equal_to_the_mis(stage, rlab, scenario):
    """Killed at this stage, the next clean run converges: sandbox == MIS, each change applied once."""
    lab = rlab(batches=10)
    mis = small_school(lab.schools[0].mis_path, lab.dfes, learners=40)
    assert lab.run_now().returncode == 0
    churn(mis)
    changes = lab.pending_changes()
    before = ledger(lab.sandbox, lab.dfes)
    accounts_before = learner_accounts(lab.sandbox)

    killed = lab.run_now(HWB_FAILPOINT=stage)
    assert killed.killed, f"the run was not killed at {stage}: exit {killed.returncode}\n{killed.stderr}"
    assert "Traceback" not in killed.stderr
    during = ledger(lab.sandbox, lab.dfes).since(before)

    clean = lab.run_now()
    assert clean.returncode == 1, clean.stderr  # 1: finished, one record held back (temporary UPN)
    assert "held back: learner upn_temporary=1" in clean.stdout

    records = lab.assert_sandbox_matches_mis()
    after = ledger(lab.sandbox, lab.dfes).since(before)
    assert (after.applied, after.unchanged, after.refused) == (len(changes), 0, 0)
    assert learner_accounts(lab.sandbox) == accounts_before + 25  # the joiners, and no one twice
    assert lab.dry_run_changes() == {}
    replayed = [e for e in clean.events("batch_acknowledged") if e.get("replayed")]
    if stage == "after_server_ack":
        assert len(replayed) == 1  # the batch the server had applied came back from its ledger
    else:
        assert replayed == []
    outcomes = [r["outcome"] for r in run_reports(lab.sandbox, lab.dfes)]
    if stage == "while_reporting":  # the killed run's own report reaches the portal late, not never
        assert outcomes[-2:] == ["partial", "partial"]
    scenario.figures.update(
        changes=f"{len(changes)} ({', '.join(f'{op}={n}' for op, n in sorted(counted(changes).items()))})",
        **{
            "batches before the kill": len(during),
            "batches in all": len(after),
            "applied": after.applied,
            "unchanged": after.unchanged,
            "replayed": len(replayed),
            "resent from outbox": sum(e["batches"] for e in clean.events("outbox_resent")),
            "records compared": records,
            "clean run s": round(clean.seconds, 1),
        },
    )

"""Random MIS histories with random crashes (hypothesis), for two schools sharing learners.

Each example is a fresh pair of schools on the shared sandbox. Hypothesis draws a short history of MIS
snapshots: learners join, leave with a leaving date, vanish, move from one school to the other, are
edited or broken; each snapshot is followed by a run of the real client that may be killed with SIGKILL
at any stage. After one final clean run, the sandbox must equal the projection of the last snapshot for
both schools, and a learner on both schools' books must be one national account.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from reliability_support import RLab

from mis_builder import Mis

AREA = "Random MIS histories with random crashes (property-based)"

STAGES = ["while_reading", "after_diff", "after_outbox", "mid_push", "after_server_ack", "while_reporting"]
POOL = range(1, 9)  # learners who may be at either school
PLACES = ["absent", "A", "B", "A-left", "B-left", "moved A->B", "moved B->A"]
EXAMPLES = int(os.environ.get("HWB_RELIABILITY_EXAMPLES", "15"))


@dataclass(frozen=True)
class Learner:
    place: str
    edited: bool
    year: str
    broken: bool


@dataclass(frozen=True)
class Snapshot:
    learners: tuple[Learner, ...]
    staff_b: str  # the second member of staff: absent, present or left (per school)
    crash: str | None


learners = st.builds(
    Learner,
    place=st.sampled_from(PLACES),
    edited=st.booleans(),
    year=st.sampled_from(["5", "6"]),
    broken=st.sampled_from([False, False, False, False, True]),
)
snapshots = st.builds(
    Snapshot,
    learners=st.tuples(*[learners for _ in POOL]),
    staff_b=st.sampled_from(["absent", "present", "left"]),
    crash=st.sampled_from([None, *STAGES]),
)


def _rows_at(school: str, snapshot: Snapshot) -> list[tuple[int, Learner, str | None]]:
    """(learner number, learner, leaving date) for the rows this school's MIS holds."""
    rows = []
    for n, learner in zip(POOL, snapshot.learners, strict=True):
        place = learner.place
        if place == school:
            rows.append((n, learner, None))
        elif place == f"{school}-left":
            rows.append((n, learner, "2026-07-22"))
        elif place.startswith("moved"):
            source, target = place.removeprefix("moved ").split("->")
            if school == source:
                rows.append((n, learner, "2026-07-22"))
            elif school == target:
                rows.append((n, learner, None))
    return rows


def _write(mis: Mis, school: str, snapshot: Snapshot) -> None:
    for table in ("mis_group_member", "mis_group", "mis_staff", "mis_pupil"):
        mis.execute(f"DELETE FROM {table}")
    mis.add_group(1, "6A")
    mis.add_staff(1, "DAP")
    mis.add_member(1, 1, staff=1)
    if snapshot.staff_b != "absent":
        leaving = "2026-07-22" if snapshot.staff_b == "left" else None
        mis.add_staff(2, "SJE", forename="Sioned", surname="Jones", leaving=leaving)
    mis.add_learner(100, forename="Angor", surname=f"Ysgol{school}")  # never empty: no guard block
    mis.add_member(1100, 1, pupil=100)
    for n, learner, leaving in _rows_at(school, snapshot):
        mis.add_learner(
            n,
            forename="Elen" if learner.edited else "Siân",
            year=learner.year,
            dob=None if learner.broken else "2015-03-04",
            leaving=leaving,
        )
        mis.add_member(1000 + n, 1, pupil=n)
    mis.commit()


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example costs seconds; it prints anyway
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(snapshots, min_size=1, max_size=3))
def test_after_any_history_with_crashes_a_clean_run_leaves_the_sandbox_equal_to_the_last_snapshot(
    history, rlab, scenario
):
    """Any history of snapshots with random SIGKILLs, then one clean run: sandbox == last snapshot."""
    lab: RLab = rlab(schools=2, batches=3)
    note(f"history: {history}")
    a, b = lab.schools
    mis = {"A": Mis(a.mis_path, a.dfes_number), "B": Mis(b.mis_path, b.dfes_number)}
    for snapshot in history:
        for name, school_mis in mis.items():
            _write(school_mis, name, snapshot)
        run = lab.run_now(**({"HWB_FAILPOINT": snapshot.crash} if snapshot.crash else {}))
        # -9: the client killed (one school at a time runs in it); 70: a school's worker process
        # killed, which the client lived to report
        assert run.returncode in {-9, 0, 1, 70}, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
    final = lab.run_now()
    for i, run in enumerate(lab.runs):
        note(f"run {i} {run.env} exit {run.returncode}: {run.stdout}")
    assert final.returncode in {0, 1}, final.stdout + final.stderr
    for school in lab.schools:
        lab.assert_sandbox_matches_mis(school.dfes_number)
    manifests = [lab.manifest(s.dfes_number) for s in lab.schools]
    accounts: dict[str, set[str]] = {}
    for manifest in manifests:
        for (kind, key), record in manifest.items():
            if kind == "learner":
                accounts.setdefault(key, set()).add(record["account_id"])
    assert all(len(ids) == 1 for ids in accounts.values())  # one national account per learner
    for school_mis in mis.values():
        school_mis.close()
    stats = scenario.figures
    stats["examples"] = stats.get("examples", 0) + 1
    stats["snapshots"] = stats.get("snapshots", 0) + len(history)
    stats["runs"] = stats.get("runs", 0) + len(history) + 1
    stats["killed by SIGKILL"] = stats.get("killed by SIGKILL", 0) + sum(1 for r in lab.runs if r.killed)
    both = {k for k in manifests[0] if k[0] == "learner"} & {k for k in manifests[1] if k[0] == "learner"}
    stats["learners on both schools' books"] = stats.get("learners on both schools' books", 0) + len(both)

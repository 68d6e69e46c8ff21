"""Schools in worker processes (``hwb_client.workers``): killed, stopped, orphaned, then one clean run.

With two schools and ``max_concurrent_schools = 2`` (the default) each school of ``--run-now`` runs in
its own worker process. What a person relies on must hold as it did with threads: a worker killed at a
failpoint leaves its school as a killed client does and the parent lives to say so; SIGTERM to the
``hwb-client`` a person started stops both schools between batches; a parent killed outright leaves no
worker behind holding a school's lock. Each time the next clean run converges, each change applied once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_proxy import FaultProxy, Rule
from reliability_support import churn, ledger

from mis_builder import small_school

AREA = "Crash matrix: SIGKILL at each stage of a run, then one clean run"

STAGES = ["after_outbox", "mid_push"]


@pytest.fixture
def proxy(national) -> Iterator[FaultProxy]:
    with FaultProxy(national.url, lifetime=120, hang_seconds=20) as running:
        yield running


def _two_schools(rlab, **options):
    lab = rlab(schools=2, **options)
    mis = [small_school(s.mis_path, s.dfes_number, learners=40) for s in lab.schools]
    return lab, mis


@pytest.mark.parametrize("stage", STAGES, ids=STAGES)
def test_workers_killed_at_a_stage_are_reported_and_the_next_run_converges(stage, rlab, scenario):
    """Both workers die at this stage (as by SIGKILL or the OOM killer): the parent is not killed, it
    reports each school as failed and says that nothing is lost, and one clean run leaves the sandbox
    equal to both MIS databases with each change applied once."""
    lab, mis = _two_schools(rlab, batches=10)
    assert lab.run_now().returncode == 0
    changes, before = {}, {}
    for school, database in zip(lab.schools, mis, strict=True):
        churn(database)
        changes[school.dfes_number] = lab.pending_changes(school.dfes_number)
        before[school.dfes_number] = ledger(lab.sandbox, school.dfes_number)

    killed = lab.run_now(HWB_FAILPOINT=stage)
    assert killed.returncode == 70, killed.stdout + killed.stderr  # the parent lived to say so
    assert "Traceback" not in killed.stderr
    assert killed.stdout.count("was killed by signal 9 before it finished; nothing is lost") == 2
    assert {e["dfes"] for e in killed.events("school_worker_died")} == set(changes)
    assert len(killed.events("school_worker_started")) == 2

    clean = lab.run_now()
    assert clean.returncode == 1, clean.stderr  # 1: finished, one record held back in each school
    for school in lab.schools:
        dfes = school.dfes_number
        lab.assert_sandbox_matches_mis(dfes)
        after = ledger(lab.sandbox, dfes).since(before[dfes])
        assert (after.applied, after.unchanged, after.refused) == (len(changes[dfes]), 0, 0)
        assert lab.dry_run_changes(dfes) == {}
    scenario.figures.update(
        {"schools": 2, "workers killed": 2, "changes": sum(len(c) for c in changes.values())}
    )


def _start_slow_run(lab, proxy: FaultProxy, mis, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """``--run-now`` of both schools, each with many small batches the proxy answers slowly; returns
    once each school has had a batch acknowledged (both workers are in the middle of their batches)."""
    for database in mis:
        churn(database)
    proxy.set_rules(Rule("slow", "/batches", delay=0.3))
    stderr = tmp_path / "run-now.stderr"
    with stderr.open("w") as written:  # the child has its own copy of the file
        process = lab.lab.popen("--run-now", stderr=written)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        acknowledged = {e["dfes"] for e in _events(stderr, "batch_acknowledged")}
        if acknowledged == {s.dfes_number for s in lab.schools}:
            return process, stderr
        assert process.poll() is None, stderr.read_text()
        time.sleep(0.1)
    process.kill()
    raise AssertionError("no school reached its batches within 60 s\n" + stderr.read_text()[-3000:])


def _events(path: Path, name: str) -> list[dict]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _converges(lab, before: dict) -> None:
    clean = lab.run_now()
    assert clean.returncode == 1, clean.stdout + clean.stderr  # no lock left held: 7 would say so
    for school in lab.schools:
        dfes = school.dfes_number
        lab.assert_sandbox_matches_mis(dfes)
        after = ledger(lab.sandbox, dfes).since(before[dfes])
        assert after.unchanged == 0 and after.refused == 0  # nothing applied twice
        assert lab.dry_run_changes(dfes) == {}


def test_sigterm_to_run_now_stops_both_workers_between_batches(rlab, proxy, scenario, tmp_path):
    """SIGTERM to the ``hwb-client --run-now`` a person started (as ``kill`` or a service stop does):
    both schools stop between batches, the command exits 143 within seconds, no worker is left, and the
    next run sends the rest, each change once."""
    lab, mis = _two_schools(rlab, batches=2, base_url=proxy.url)
    assert lab.run_now().returncode == 0
    before = {s.dfes_number: ledger(lab.sandbox, s.dfes_number) for s in lab.schools}
    process, stderr = _start_slow_run(lab, proxy, mis, tmp_path)
    workers = [e["pid"] for e in _events(stderr, "school_worker_started")]
    assert len(workers) == 2

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 143, stderr.read_text()[-3000:]
    stopped_in = time.monotonic() - signalled
    assert _wait_gone(workers, 5) == []
    interrupted = _events(stderr, "run_interrupted")
    assert {e["dfes"] for e in interrupted} == {s.dfes_number for s in lab.schools}
    assert "Traceback" not in stderr.read_text()

    proxy.set_rules()
    _converges(lab, before)
    scenario.figures.update({"schools": 2, "stopped in": f"{stopped_in:.1f} s"})


def test_a_parent_killed_outright_leaves_no_worker_holding_a_school(rlab, proxy, scenario, tmp_path):
    """SIGKILL to ``hwb-client`` itself (the OOM killer, ``kill -9``): its workers notice that their
    parent has gone, stop between batches and release their schools' locks; the next run is not refused
    as "in progress" and converges."""
    lab, mis = _two_schools(rlab, batches=2, base_url=proxy.url)
    assert lab.run_now().returncode == 0
    before = {s.dfes_number: ledger(lab.sandbox, s.dfes_number) for s in lab.schools}
    process, stderr = _start_slow_run(lab, proxy, mis, tmp_path)
    workers = [e["pid"] for e in _events(stderr, "school_worker_started")]

    process.kill()
    process.wait(10)
    assert _wait_gone(workers, 15) == [], "a worker outlived its parent"
    assert "Traceback" not in stderr.read_text()

    proxy.set_rules()
    _converges(lab, before)
    scenario.figures.update({"schools": 2, "parent": "SIGKILL", "workers left": 0})


def test_two_workers_run_three_schools_one_after_another(rlab, scenario):
    """Three schools, two at a time: two worker processes, one of which runs a second school when it
    is free (a process that has run a school reuses its memory; a fresh one per school spent a third of
    its time in the kernel). Every school is provisioned, and what the workers logged is in the log."""
    lab = rlab(schools=3)
    for school in lab.schools:
        small_school(school.mis_path, school.dfes_number, learners=30).close()
    run = lab.run_now()
    assert run.returncode == 0, run.stdout + run.stderr
    started = run.events("school_worker_started")
    assert sorted(e["dfes"] for e in started) == sorted(s.dfes_number for s in lab.schools)
    assert len({e["pid"] for e in started}) == 2
    assert {e["dfes"] for e in run.events("run_finished")} == {s.dfes_number for s in lab.schools}
    for school in lab.schools:
        lab.assert_sandbox_matches_mis(school.dfes_number)
    scenario.figures.update({"schools": 3, "worker processes": 2})

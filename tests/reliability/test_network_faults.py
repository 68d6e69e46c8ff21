"""Network and server faults between the client and the national API, injected by a loopback proxy.

Each scenario first makes the fault permanent for the batch posts: the client must retry what is safe to
retry (every batch carries its id as ``Idempotency-Key``), give up within the configured bound, exit 5
and say the run failed. Then the fault is made transient (the first two batch posts only): the client
retries through it in the same run, and the sandbox ends equal to the MIS with each change applied once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from fault_proxy import FaultProxy, Rule, Seen, free_port
from reliability_support import RLab, ledger, run_reports

from mis_builder import small_school

AREA = "Network and server faults between the client and the sandbox"

#: Bounded retries for the tests: attempts time out after 1.5 s, the client gives up after 3 s.
FAST_API = {
    "connect_timeout_seconds": 1,
    "read_timeout_seconds": 1.5,
    "max_attempts": 4,
    "backoff_base_seconds": 0.1,
    "backoff_max_seconds": 0.5,
    "give_up_after_seconds": 3,
}
#: Start-up, reading the MIS and the run report on top of the give-up time (a loaded CI machine).
OVERHEAD_SECONDS = 6


@pytest.fixture
def proxy(national) -> Iterator[FaultProxy]:
    with FaultProxy(national.url, lifetime=120, hang_seconds=20) as running:
        yield running


def _school(rlab, proxy: FaultProxy, **api: object) -> RLab:
    lab = rlab(batches=10, api={**FAST_API, **api}, base_url=proxy.url)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=25).close()  # 53 changes: 6 batches
    return lab


def _fails_then_converges(
    lab: RLab, proxy: FaultProxy, rule: Rule, scenario, *, transient: int = 2
) -> list[Seen]:
    """Permanent fault: exit 5 within the bound, status failed. Transient fault (the first ``transient``
    batch posts): retried in the same run, converged. Returns the batch posts of the failed run."""
    changes = len(lab.pending_changes())
    proxy.set_rules(rule)
    failed = lab.run_now()
    assert failed.returncode == 5, failed.stdout + failed.stderr
    assert "FAILED" in failed.stdout and "could not be reached after" in failed.stdout
    assert "Traceback" not in failed.stderr
    give_up = float(FAST_API["give_up_after_seconds"]) + float(FAST_API["read_timeout_seconds"])
    assert failed.seconds < give_up + OVERHEAD_SECONDS
    failed_posts = proxy.requests("/batches")
    attempts = len(failed_posts)
    retries = len(failed.events("request_retry"))
    assert retries >= 1 and attempts == retries + 1
    status = lab.cli("status")
    assert status.returncode == 2 and "failed" in status.stdout  # CRITICAL
    assert run_reports(lab.sandbox, lab.dfes)[-1]["outcome"] == "failed"  # the portal shows it too

    proxy.set_rules(Rule(rule.fault, "/batches", times=transient, status=rule.status, headers=rule.headers))
    recovered = lab.run_now()
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert len(recovered.events("request_retry")) == transient
    lab.assert_sandbox_matches_mis()
    applied = ledger(lab.sandbox, lab.dfes)
    assert (applied.applied, applied.unchanged, applied.refused) == (changes, 0, 0)
    scenario.figures.update(
        {
            "attempts before giving up": attempts,
            "retries": retries,
            "s to give up (whole run)": round(failed.seconds, 1),
            "retries when transient": len(recovered.events("request_retry")),
            "replayed": sum(1 for e in recovered.events("batch_acknowledged") if e.get("replayed")),
            "batches": len(applied),
            "applied once": applied.applied,
        }
    )
    return failed_posts


def test_refused_connections_fail_the_run_within_the_bound_and_the_next_run_converges(rlab, scenario):
    """Nothing listening: the run fails (exit 5) after bounded retries; the next run converges and the
    failed run's report reaches the portal late."""
    lab = rlab(batches=10, api=FAST_API)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=25).close()
    changes = len(lab.pending_changes())
    failed = lab.run_now(HWB_API__BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert failed.returncode == 5, failed.stdout + failed.stderr
    assert "could not be reached after" in failed.stdout and "ConnectionError" in failed.stdout
    assert "Traceback" not in failed.stderr
    # the manifest (first run) and then the run report each retry until the bound
    assert failed.seconds < 2 * float(FAST_API["give_up_after_seconds"]) + OVERHEAD_SECONDS
    assert lab.cli("status").returncode == 2  # CRITICAL
    recovered = lab.run_now()
    assert recovered.returncode == 0, recovered.stderr
    lab.assert_sandbox_matches_mis()
    applied = ledger(lab.sandbox, lab.dfes)
    assert (applied.applied, applied.unchanged) == (changes, 0)
    assert [r["outcome"] for r in run_reports(lab.sandbox, lab.dfes)] == ["failed", "success"]
    scenario.figures.update(
        {
            "retries": len(failed.events("request_retry")),
            "s to give up (manifest + report)": round(failed.seconds, 1),
            "batches": len(applied),
            "applied once": applied.applied,
        }
    )


def test_a_server_that_accepts_and_hangs_times_out_and_the_run_converges(rlab, proxy, scenario):
    """Accepted, never answered: each attempt times out, the run gives up in bounded time, then converges
    (one hanging attempt, retried)."""
    lab = _school(rlab, proxy)
    _fails_then_converges(lab, proxy, Rule("hang", "/batches"), scenario, transient=1)


def test_connection_reset_mid_body_is_retried_and_the_run_converges(rlab, proxy, scenario):
    """The sandbox applied the batch but the answer was cut by a TCP reset: the retry is answered from the
    sandbox's ledger and nothing is applied twice."""
    lab = _school(rlab, proxy)
    _fails_then_converges(lab, proxy, Rule("reset", "/batches"), scenario)


def test_http_500_is_retried_and_the_run_converges(rlab, proxy, scenario):
    """500 Internal Server Error: retried, bounded, then converges."""
    lab = _school(rlab, proxy)
    _fails_then_converges(lab, proxy, Rule("status", "/batches", status=500), scenario)


def test_http_502_after_the_server_applied_the_batch_is_retried_without_applying_it_twice(
    rlab, proxy, scenario
):
    """A gateway answers 502 although the sandbox applied the batch: the retry is answered from the ledger."""
    lab = _school(rlab, proxy)
    _fails_then_converges(lab, proxy, Rule("status_after", "/batches", status=502), scenario)


def test_http_503_is_retried_and_the_run_converges(rlab, proxy, scenario):
    """503 Service Unavailable: retried, bounded, then converges."""
    lab = _school(rlab, proxy)
    _fails_then_converges(lab, proxy, Rule("status", "/batches", status=503), scenario)


def test_http_429_retry_after_is_honoured_and_the_run_converges(rlab, proxy, scenario):
    """429 with Retry-After: 1: the client waits at least a second between attempts, gives up within the
    bound, then converges."""
    lab = _school(rlab, proxy, backoff_max_seconds=2)
    seen = _fails_then_converges(
        lab, proxy, Rule("status", "/batches", status=429, headers={"Retry-After": "1"}), scenario
    )
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert gaps and min(gaps) >= 0.95
    scenario.figures["shortest wait after 429 s"] = round(min(gaps), 2)


def test_a_slow_server_within_the_read_timeout_is_waited_for_without_retries(rlab, proxy, scenario):
    """Every batch answer held 0.5 s, then dribbled out: no retry, no failure, the run converges."""
    lab = _school(rlab, proxy)
    changes = len(lab.pending_changes())
    proxy.set_rules(Rule("slow", "/batches", delay=0.5))
    slow = lab.run_now()
    assert slow.returncode == 0, slow.stdout + slow.stderr
    assert slow.events("request_retry") == []
    lab.assert_sandbox_matches_mis()
    applied = ledger(lab.sandbox, lab.dfes)
    assert (applied.applied, applied.unchanged) == (changes, 0)
    scenario.figures.update(
        {
            "slow answers": len(proxy.requests("/batches")),
            "run s": round(slow.seconds, 1),
            "retries": 0,
            "batches": len(applied),
            "applied once": applied.applied,
        }
    )

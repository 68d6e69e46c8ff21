"""A hostile national API on loopback: replies that never end, are huge or expand, are malformed, or fake
an acknowledgement; and a national database edited behind the client's back.

Every scenario runs the real ``hwb-client`` in a subprocess against ``hostile_server.HostileServer``
(which forwards to the sandbox except where a rule says otherwise). Each must end in bounded time and
memory (the client's peak RSS, measured by the kernel for the child process, well under 300 MB), exit 5
with a clear message and no traceback, or a healed state; and leave the school's lock free (the next
run does not exit 7).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_server import HostileServer, Rule
from reliability_support import CliRun, RLab, ledger

from hwb_client.adapters.response_keys import ResponseKey, pin_path, save_pinned
from mis_builder import small_school

AREA = "A hostile national API, and national state edited behind the client's back"

FAST_API = {
    "connect_timeout_seconds": 1,
    "read_timeout_seconds": 2,
    "max_attempts": 2,
    "backoff_base_seconds": 0.1,
    "backoff_max_seconds": 0.2,
    "give_up_after_seconds": 4,
    "request_deadline_seconds": 2,
    "max_reply_bytes": 8 * 1024 * 1024,
}
#: Start-up, reading the MIS and the run report on top of the give-up time (a loaded machine).
BOUND_SECONDS = 4 + 2 + 20
RSS_BOUND_MB = 300


@pytest.fixture
def hostile(national) -> Iterator[HostileServer]:
    with HostileServer(national.url) as server:
        yield server


@pytest.fixture
def impostor(national) -> Iterator[HostileServer]:
    with HostileServer(national.url, impostor="all") as server:
        yield server


def _lab(rlab, server: HostileServer, learners: int = 12) -> RLab:
    lab = rlab(batches=10, api=FAST_API, base_url=server.url)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=learners).close()
    return lab


def _pin_impostor(lab: RLab, server: HostileServer) -> None:
    """As if the impostor had been present when the school first learned the national key."""
    settings_key = lab.root / "state" / "keys" / f"{lab.dfes}.pem"
    signer = server.impostor_key
    save_pinned(pin_path(settings_key), [ResponseKey.parse(signer.public())])


#: Runs its arguments and reports their peak RSS: ``RUSAGE_CHILDREN`` of this launcher covers only the
#: client (the test process's own covers every child of the whole session, a deb build included).
_LAUNCHER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(f'HWB_PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
    "sys.exit(done.returncode)"
)


def _measured_run(lab: RLab) -> tuple[CliRun, float]:
    """``hwb-client --run-now`` as ``lab.run_now`` runs it, and the client's own peak RSS in MB."""
    env = {**os.environ, **lab.lab.env}
    env.pop("HWB_CONFIG", None)
    args = (
        sys.executable,
        "-c",
        _LAUNCHER,
        sys.executable,
        "-m",
        "hwb_client",
        "--config",
        str(lab.lab.config_path),
        "--run-now",
    )
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)
    seconds = time.monotonic() - started
    stderr, _, peak = done.stderr.rpartition("HWB_PEAK_RSS_KB=")
    return CliRun(args, done.returncode, done.stdout, stderr, seconds), int(peak.strip()) / 1024


def _refused(lab: RLab, scenario, *, said: str) -> None:
    """The run exits 5 in bounded time and memory, saying ``said``; the lock is free afterwards."""
    run, rss = _measured_run(lab)
    output = run.stdout + run.stderr
    assert run.returncode == 5, output
    assert said in output, output
    assert "Traceback" not in output
    assert run.seconds < BOUND_SECONDS
    assert rss < RSS_BOUND_MB
    status = lab.cli("status")
    assert status.returncode == 2 and "failed" in status.stdout  # and not "in progress" (exit 7)
    scenario.figures.update({"s to exit 5": round(run.seconds, 1), "peak client RSS MB": round(rss)})


def _lock_is_free(lab: RLab, server: HostileServer) -> None:
    server.set_rules()
    after = lab.run_now()
    assert after.returncode != 7, after.stdout + after.stderr


def test_a_reply_that_never_ends_is_cut_at_the_deadline_and_the_lock_released(rlab, hostile, scenario):
    """A 200 whose body drips a byte a second for ever: each attempt is cut at the exchange deadline
    (2 s), the run gives up with exit 5 within its bound, and the next run is not locked out."""
    lab = _lab(rlab, hostile)
    hostile.set_rules(Rule("drip", "/batches", delay=0.5))
    _refused(lab, scenario, said="did not complete within")
    _lock_is_free(lab, hostile)


def test_sigterm_during_a_dripping_reply_ends_the_run_promptly_with_the_lock_released(
    rlab, hostile, scenario
):
    """SIGTERM while the client waits on a reply that never ends: it stops within seconds (exit 143),
    the run is recorded as failed and the lock is free for the next run."""
    lab = _lab(rlab, hostile)
    lab.write_config(
        batches=10, api={**FAST_API, "request_deadline_seconds": 600, "give_up_after_seconds": 600}
    )
    hostile.set_rules(Rule("drip", "/batches", delay=0.5))
    env = {**os.environ, **lab.env}
    env.pop("HWB_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "hwb_client", "--config", str(lab.lab.config_path), "--run-now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not any(fault == "drip" for _m, _t, fault in hostile.seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert process.returncode == 143, out + err
    assert "Traceback" not in err
    assert stopped < 10
    status = lab.cli("status")
    assert status.returncode == 2 and "failed" in status.stdout
    _lock_is_free(lab, hostile)
    scenario.figures["s from SIGTERM to exit"] = round(stopped, 1)


@pytest.mark.parametrize("fault", ["huge", "gzip_bomb"], ids=["3-GiB-reply", "gzip-expanding-to-1-GiB"])
def test_an_oversized_or_expanding_reply_is_refused_in_bounded_memory(fault, rlab, hostile, scenario):
    """A 3 GiB chunked reply, or a ~1 MB gzip reply inflating to 1 GiB: read and inflated only up to
    ``api.max_reply_bytes`` (8 MiB here), then exit 5; the client's memory stays bounded."""
    lab = _lab(rlab, hostile)
    size = 3 * 1024**3 if fault == "huge" else 1024**3
    hostile.set_rules(Rule(fault, "/batches", size=size))
    _refused(lab, scenario, said="too large")
    _lock_is_free(lab, hostile)


def _not_objects(answer: dict) -> dict:
    return {**answer, "results": [1] * len(answer["results"])}


def _bad_manifest(answer: dict) -> dict:
    return {**answer, "records": ["learner", 7]}


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        (Rule("html", "/batches"), "not JSON"),
        (Rule("rewrite", "/batches", transform=_not_objects), "results[0] is not an object"),
        (
            Rule("rewrite", "/batches", transform=lambda a: {**a, "batch_id": "0" * 36}),
            "batch_id is not the batch that was sent",
        ),
        (
            Rule(
                "rewrite",
                "/batches",
                transform=lambda a: {**a, "results": [{"status": "ok"}] * len(a["results"])},
            ),
            "not applied/unchanged/refused",
        ),
        (Rule("rewrite", "/manifest", transform=_bad_manifest), "records[0] is not an object"),
    ],
    ids=[
        "html-200",
        "results-not-objects",
        "other-batch-id",
        "unknown-status",
        "manifest-records-not-objects",
    ],
)
def test_a_malformed_2xx_is_an_api_error_not_a_traceback(rule, said, rlab, impostor, scenario):
    """Validly signed (by a key the school pinned) but malformed answers: an HTML 200, results that are
    not objects, another batch's id, an unknown per-operation status, manifest records that are not
    objects. Each is exit 5 naming what was wrong; nothing is acknowledged."""
    lab = _lab(rlab, impostor)
    _pin_impostor(lab, impostor)
    impostor.set_rules(rule)  # the manifest is read first, to rebuild the new state (reconcile)
    _refused(lab, scenario, said=said)
    assert lab.acknowledged()  # the state did not advance on the refused answers
    assert not any(lab.acknowledged().values())
    _lock_is_free(lab, impostor)


@pytest.mark.parametrize("signed_by", [None, "fakes"], ids=["unsigned", "signed-by-an-unpinned-key"])
def test_a_faked_acknowledgement_is_refused(signed_by, rlab, national, scenario):
    """A server on the path answers batch posts itself with well-formed acknowledgements (the right batch
    id, one ``applied`` per operation), unsigned or signed by a key the school never pinned: exit 5, the
    state does not advance, and the next run through the real API sends everything."""
    with HostileServer(national.url, impostor=signed_by) as server:
        lab = _lab(rlab, server)
        changes = len(lab.pending_changes())
        server.set_rules(Rule("fake_ack", "/batches"))
        _refused(lab, scenario, said="not signed" if signed_by is None else "not validly signed")
        assert len(ledger(lab.sandbox, lab.dfes)) == 0
        assert len(lab.pending_changes()) == changes
        _lock_is_free(lab, server)
        lab.assert_sandbox_matches_mis()
    scenario.figures["changes not acknowledged"] = changes


def test_acknowledgements_faked_by_a_pinned_impostor_are_healed_by_verify(rlab, impostor, scenario):
    """Worst case: the school pinned an impostor's key, which faked one run's acknowledgements (nothing
    reached the national side; the client believed it and the next run sent nothing). ``--run-now
    --verify`` compares the per-kind digests with the national manifest, finds every kind differs,
    forgets what the national side lacks and resends it: the sandbox ends equal to the MIS."""
    lab = _lab(rlab, impostor)
    _pin_impostor(lab, impostor)
    changes = len(lab.pending_changes())
    impostor.set_rules(Rule("fake_ack", "/batches"))
    assert lab.run_now().returncode == 0
    impostor.set_rules()
    assert lab.pending_changes() == [] and len(ledger(lab.sandbox, lab.dfes)) == 0  # believed, for good
    healed = lab.cli("--run-now", "--verify")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    (verified,) = healed.events("state_verified")
    assert verified["kinds_mismatched"] == 4 and verified["forgotten"] == changes
    lab.assert_sandbox_matches_mis()
    scenario.figures.update({"records healed": verified["forgotten"], "kinds mismatched": 4})


def _edit_national(db_path: Path, dfes: str) -> tuple[int, int]:
    """Behind the client's back: delete three of the school's records, change one digest."""
    with sqlite3.connect(db_path, timeout=30) as db:
        keys = [
            row[0]
            for row in db.execute(
                "SELECT record_key FROM school_records WHERE dfes_number = ? AND kind = 'learner' "
                "ORDER BY record_key LIMIT 4",
                (dfes,),
            )
        ]
        db.executemany(
            "DELETE FROM school_records WHERE dfes_number = ? AND kind = 'learner' AND record_key = ?",
            [(dfes, key) for key in keys[:3]],
        )
        db.execute(
            "UPDATE school_records SET digest = ? WHERE dfes_number = ? AND kind = 'learner' AND record_key = ?",
            ("sha-256:" + "0" * 64, dfes, keys[3]),
        )
    return 3, 1


def test_a_national_database_edited_behind_the_clients_back_is_healed_by_verify(rlab, national, scenario):
    """Three learners deleted from the sandbox's database and one learner's digest changed, after the
    client's run: ``--run-now --verify`` finds only the learner kind differs, fetches the records,
    resends the four and leaves the other kinds alone; the sandbox ends equal to the MIS."""
    lab = rlab(batches=10)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=12).close()
    assert lab.run_now().returncode == 0
    deleted, changed = _edit_national(national.db_path, lab.dfes)
    plain = lab.run_now()
    assert plain.returncode == 0 and plain.events("state_verified") == []  # weekly: not due yet
    healed = lab.cli("--run-now", "--verify")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    (verified,) = healed.events("state_verified")
    assert verified["kinds_mismatched"] == 1
    assert verified["forgotten"] == deleted and verified["adopted"] == changed
    (acked,) = [e for e in healed.events("batch_acknowledged")]
    assert acked["operations"] == deleted + changed
    lab.assert_sandbox_matches_mis()
    again = lab.cli("--run-now", "--verify")
    assert again.events("state_verified")[0]["kinds_mismatched"] == 0
    scenario.figures.update({"records healed": deleted + changed, "kinds fetched": 1})


def test_memberships_settled_by_the_client_are_healed_by_verify_when_the_national_side_lost_them(
    rlab, national, scenario
):
    """The client settled the school's memberships (a clean run left them exactly as acknowledged) and
    the next run skipped them. Then three memberships are deleted from the sandbox's database behind the
    client's back: ``--run-now --verify`` finds the membership kind differs, forgets the three, which
    unsettles the memberships, and resends exactly those; the run after settles them again."""
    lab = rlab(batches=10)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=12).close()
    first = lab.run_now()
    assert first.returncode == 0 and len(first.events("memberships_settled")) == 1
    with sqlite3.connect(national.db_path, timeout=30) as db:
        keys = [
            row[0]
            for row in db.execute(
                "SELECT record_key FROM school_records WHERE dfes_number = ? AND kind = 'membership' "
                "ORDER BY record_key LIMIT 3",
                (lab.dfes,),
            )
        ]
        db.executemany(
            "DELETE FROM school_records WHERE dfes_number = ? AND kind = 'membership' AND record_key = ?",
            [(lab.dfes, key) for key in keys],
        )
    skipped = lab.run_now()
    assert len(skipped.events("memberships_settled_before")) == 1 and skipped.events("batch_acknowledged") == []
    healed = lab.cli("--run-now", "--verify")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    (verified,) = healed.events("state_verified")
    assert verified["kinds_mismatched"] == 1 and verified["forgotten"] == 3
    assert healed.events("memberships_settled_before") == []
    (acked,) = healed.events("batch_acknowledged")
    assert acked["operations"] == 3
    assert len(healed.events("memberships_settled")) == 1
    lab.assert_sandbox_matches_mis()
    scenario.figures.update({"memberships healed": 3})

"""``serve --apply-workers N``: batches applied in worker processes, two schools' at once.

Each test of ``test_batches.py`` also runs against a sandbox with two apply workers (exactly once, the
answers, the refusals); these show what is particular to the workers: that they are real processes that
stop with the server, that a refusal made in one reads the same in Welsh, and that a bad count is refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sandbox_helpers import PRIMARY, SECONDARY, assert_problem, batch, enrol, learner, op

from hwb_sandbox.testing import SandboxProcess

WELSH = {"Accept-Language": "cy"}


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[SandboxProcess]:
    with SandboxProcess(tmp_path / "sandbox.db", serve_args=("--apply-workers", "2")) as process:
        yield process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_two_schools_batches_are_applied_in_two_worker_processes_that_stop_with_the_server(
    two_workers: SandboxProcess,
) -> None:
    primary, secondary = enrol(two_workers, PRIMARY), enrol(two_workers, SECONDARY)
    shared = learner("moving-up")  # on both schools' books: one national account
    bodies = [
        (
            primary,
            batch(
                op("upsert", "learner", shared),
                *(op("upsert", "learner", learner(f"p{i}")) for i in range(200)),
            ),
        ),
        (
            secondary,
            batch(
                op("upsert", "learner", shared),
                *(op("upsert", "learner", learner(f"s{i}")) for i in range(200)),
            ),
        ),
    ]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda pair: pair[0].post_batch(pair[1]), bodies))

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["applied"] for a in answers] == [201, 201]
    first = {a.json()["results"][0]["account_id"] for a in answers}
    assert len(first) == 1  # the learner on both rolls is one account, whichever worker applied it
    children = _children(two_workers.pid)  # the workers, and multiprocessing's resource tracker
    workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(workers) == 2, children

    assert two_workers.stop() == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "an apply worker outlived the server"


def test_a_batch_refused_in_a_worker_reads_as_it_does_from_the_server_itself_in_welsh(
    two_workers: SandboxProcess, sandbox: SandboxProcess
) -> None:
    documents = []
    for server in (two_workers, sandbox):
        school = enrol(server, PRIMARY)
        bad = batch(op("upsert", "learner", dict(learner("bad"), date_of_birth="not a date")))
        headers = {"Idempotency-Key": f'"{bad["batch_id"]}"', **WELSH}
        answer = school.call("POST", f"/v1/schools/{PRIMARY}/batches", json_body=bad, headers=headers)
        document = assert_problem(answer, 422, "validation-failed")
        documents.append({k: v for k, v in document.items() if k != "instance"})
    assert documents[0] == documents[1]
    assert documents[0]["detail"].startswith("nid yw 1 maes")  # in Welsh, with the count


@pytest.mark.parametrize("count", ["0", "17"])
def test_an_apply_worker_count_out_of_range_is_refused_with_exit_3(tmp_path: Path, count: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hwb_sandbox",
            "serve",
            "--port",
            "0",
            "--db",
            str(tmp_path / "s.db"),
            "--apply-workers",
            count,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 3
    assert f"--apply-workers {count}: give 1 to 16" in done.stderr
    assert "listening on" not in done.stdout

"""The sandbox under abuse: decompression bombs, idle and slow connections, names with hidden characters.

Each scenario runs a real ``hwb-sandbox serve`` subprocess on loopback and attacks it as an anonymous
client would (no enrolment, no signature): a gzip body that expands a thousandfold at the unauthenticated
enrolment endpoint, eight of them at once, 200 connections that never send a byte, 200 that send half a
request and then one byte at a time. Throughout, ``/healthz`` must keep answering; the server's peak
memory is read from ``/proc/PID/status`` (``VmHWM``). Then names with NUL, C1 controls or bidi overrides:
the client holds them back and the sandbox, sent them directly, refuses each with a reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import json
import select
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from reliability_support import RLab

from hwb_client.core.model import Kind
from hwb_sandbox.testing import SandboxProcess
from mis_builder import small_school

AREA = "The sandbox under abuse: decompression bombs, idle and slow clients, hidden characters in names"

MIB = 1024 * 1024
#: The issue's figure: a 32 KB body that expands to 32 MiB of JSON.
BOMB_EXPANDED = 32 * MIB
PEAK_LIMIT_MB = 100
IDLE_CONNECTIONS = 200
#: Every socket a test opens gives up after this long, so no scenario can hang.
SOCKET_TIMEOUT = 10


def _bomb(expanded: int) -> bytes:
    """A gzip body whose inflated JSON is ``expanded`` bytes (one string of a repeated digit)."""
    return gzip.compress(b'{"dfes_number": "' + b"6" * expanded + b'"}', compresslevel=9)


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``) in MB."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _healthy(url: str, timeout: float = 5) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=timeout).json()["status"] == "ok"
    except requests.RequestException:
        return False


def _address(sandbox: SandboxProcess) -> tuple[str, int]:
    host, port = sandbox.url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _post_bomb(url: str, body: bytes, *, chunked: bool = False) -> requests.Response:
    data: object = iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    return requests.post(
        url + "/v1/enrolments",
        data=data,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=60,
    )


@contextlib.contextmanager
def _open_sockets(
    sandbox: SandboxProcess, count: int, first_bytes: bytes = b""
) -> Iterator[list[socket.socket]]:
    """``count`` connections to the sandbox, each having sent ``first_bytes`` (none: idle), closed after."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            connection = socket.create_connection(_address(sandbox), timeout=SOCKET_TIMEOUT)
            if first_bytes:
                connection.sendall(first_bytes)
            sockets.append(connection)
        yield sockets
    finally:
        for connection in sockets:
            connection.close()


def _closed_by_server(connection: socket.socket) -> bool:
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1) == b""
    except OSError:
        return True


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox with the default limits, of its own: its peak memory is this module's doing."""
    with SandboxProcess(tmp_path_factory.mktemp("abuse") / "sandbox.db") as process:
        yield process


# -- decompression bombs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("expanded", [BOMB_EXPANDED, 3 * MIB], ids=["32KB-to-32MiB", "3KB-to-3MiB"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_enrolment_gzip_bomb_is_refused_413_with_peak_memory_under_100_mb(
    sandbox: SandboxProcess, expanded: int, framing: str, scenario
) -> None:
    """A gzip body expanding to 32 MiB (over the 4 KiB raw bound) or to 3 MiB (within the raw bound,
    over the 4 KiB inflated bound), declared or chunked: 413 body-too-large, peak RSS under 100 MB."""
    body = _bomb(expanded)
    before = _peak_mb(sandbox.pid)

    response = _post_bomb(sandbox.url, body, chunked=framing == "chunked")

    assert response.status_code == 413, response.text
    assert response.json()["type"] == "urn:hwb:problem:body-too-large"
    peak = _peak_mb(sandbox.pid)
    assert peak < PEAK_LIMIT_MB
    assert _healthy(sandbox.url)
    scenario.figures.update(
        {
            "body sent": f"{len(body):,} bytes",
            "would expand to": f"{expanded // MIB} MiB",
            "refused because": response.json()["detail"],
            "peak RSS before MB": round(before, 1),
            "peak RSS after MB": round(peak, 1),
        }
    )


def test_eight_enrolment_bombs_at_once_leave_healthz_answering(sandbox: SandboxProcess, scenario) -> None:
    """Eight clients each sending five 32 MiB bombs, in parallel, while /healthz is asked again and
    again: every bomb is refused 413, every health check answers, peak RSS stays under 100 MB."""
    body = _bomb(BOMB_EXPANDED)
    statuses: list[int] = []
    health: list[bool] = []

    def five_bombs(n: int) -> None:
        for i in range(5):
            statuses.append(_post_bomb(sandbox.url, body, chunked=(n + i) % 2 == 1).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(five_bombs, n) for n in range(8)]
        while not all(f.done() for f in futures) or not health:
            health.append(_healthy(sandbox.url))
        for future in futures:
            future.result()

    assert statuses == [413] * 40
    assert all(health) and health
    peak = _peak_mb(sandbox.pid)
    assert peak < PEAK_LIMIT_MB
    scenario.figures.update(
        {
            "bombs": len(statuses),
            "health checks answered": f"{sum(health)}/{len(health)}",
            "peak RSS MB": round(peak, 1),
        }
    )


# -- idle and slow connections ---------------------------------------------------------------------------


def test_healthz_answers_while_200_idle_connections_are_open(sandbox: SandboxProcess, scenario) -> None:
    """200 connections that never send a byte (waitress's default limit is 100): /healthz still answers."""
    with _open_sockets(sandbox, IDLE_CONNECTIONS) as idle:
        answered = _healthy(sandbox.url)
        still_open = sum(not _closed_by_server(c) for c in idle)

    assert answered
    scenario.figures.update({"idle connections": len(idle), "still open when answered": still_open})


def test_with_waitress_default_limit_of_100_idle_connections_stop_it(tmp_path: Path, scenario) -> None:
    """The same 200 idle connections against `serve --connection-limit 100` (the limit before 0.2.0):
    /healthz goes unanswered, which is why the default is now 1,000."""
    with SandboxProcess(tmp_path / "sandbox.db", serve_args=["--connection-limit", "100"]) as limited:
        with _open_sockets(limited, IDLE_CONNECTIONS):
            answered = _healthy(limited.url, timeout=3)
        recovered = _healthy(limited.url)

    assert not answered
    assert recovered
    scenario.figures["health check with 200 idle, limit 100"] = "no answer in 3 s; answers once they close"


SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = (
    b"POST /v1/enrolments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000\r\n\r\n{"
)


@pytest.mark.parametrize("first_bytes", [SLOW_HEAD, SLOW_BODY], ids=["half-sent-head", "half-sent-body"])
def test_healthz_answers_while_200_slowloris_clients_drip_half_sent_requests(
    sandbox: SandboxProcess, first_bytes: bytes, scenario
) -> None:
    """200 clients send half a request, then a byte every half second: they hold no worker thread
    (waitress reads them in its event loop), and /healthz answers throughout."""
    health: list[bool] = []
    with _open_sockets(sandbox, IDLE_CONNECTIONS, first_bytes) as slow:
        for _ in range(6):
            for connection in slow:
                with contextlib.suppress(OSError):
                    connection.send(b"a")
            health.append(_healthy(sandbox.url))
            time.sleep(0.5)

    assert health and all(health)
    scenario.figures.update(
        {"slow clients": len(slow), "health checks answered": f"{sum(health)}/{len(health)}"}
    )


def test_requests_that_take_too_long_to_arrive_and_idle_connections_are_closed(
    tmp_path: Path, scenario
) -> None:
    """With `--request-timeout 2 --channel-timeout 2`: a request still dripping after 2 s, and a
    connection idle for 2 s, are closed by the server (so they cannot fill the connection limit)."""
    args = ["--request-timeout", "2", "--channel-timeout", "2"]
    with SandboxProcess(tmp_path / "sandbox.db", serve_args=args) as strict:
        with _open_sockets(strict, 50, SLOW_HEAD) as slow, _open_sockets(strict, 50) as idle:
            started = time.monotonic()
            closed_after: dict[int, float] = {}
            while len(closed_after) < 100 and time.monotonic() - started < 30:
                for i, connection in enumerate(itertools.chain(slow, idle)):
                    if i in closed_after:
                        continue
                    if i < 50:
                        with contextlib.suppress(OSError):
                            connection.send(b"a")  # a steady drip: never idle
                    if _closed_by_server(connection):
                        closed_after[i] = time.monotonic() - started
                time.sleep(0.2)
        answered = _healthy(strict.url)

    assert len(closed_after) == 100, f"{100 - len(closed_after)} connection(s) were kept open for 30 s"
    assert answered
    scenario.figures.update(
        {
            "dripping requests closed after s (median)": round(
                statistics.median(closed_after[i] for i in range(50)), 1
            ),
            "idle connections closed after s (median)": round(
                statistics.median(closed_after[i] for i in range(50, 100)), 1
            ),
        }
    )


# -- names with hidden characters ------------------------------------------------------------------------

HIDDEN = {"NUL": "\x00", "C1 NEL": "\x85", "RLO": "\u202e", "LRI": "\u2066", "ESC": "\x1b"}
#: The SQLite ODBC driver ends a string at NUL ("Jones\x00Evil" is read as "Jones"): the client never
#: sees that one, so the MIS half of the test plants the others.
IN_THE_MIS = {name: char for name, char in HIDDEN.items() if char != "\x00"}


def test_names_with_control_or_bidi_characters_are_held_back_by_the_client_and_refused_by_the_sandbox(
    rlab, scenario
) -> None:
    """Learners whose surname holds a C0 or C1 control, a bidi override or isolate: the client holds each
    back (`text_control_characters`) and sends the rest; the same names (and NUL) posted to the sandbox
    directly are refused per operation with the same reason, and the records it holds are unchanged."""
    lab: RLab = rlab()
    mis = small_school(lab.schools[0].mis_path, lab.dfes, learners=10)
    for n, char in enumerate(IN_THE_MIS.values(), start=50):
        mis.add_learner(n, surname=f"Jones{char}Evil")
    mis.commit()
    mis.close()

    run = lab.run_now()

    assert run.returncode in {0, 1}, run.stdout + run.stderr
    held = [e["reason"] for e in run.events("record_held_back") if e["kind"] == "learner"]
    assert held == ["text_control_characters"] * len(IN_THE_MIS)
    lab.assert_sandbox_matches_mis()
    answer = _post_hostile_names(lab)
    assert [r["reason"] for r in answer["results"]] == ["text_control_characters"] * len(HIDDEN)
    assert answer["refused"] == len(HIDDEN)
    lab.assert_sandbox_matches_mis()  # the refused upserts changed nothing
    scenario.figures.update(
        {
            "characters": ", ".join(HIDDEN),
            "held back by the client": len(held),
            "refused by the sandbox": answer["refused"],
        }
    )


def _post_hostile_names(lab: RLab) -> dict[str, object]:
    """Upserts of an acknowledged learner with each hidden character in its surname, signed, sent directly."""
    key, entry = next(iter(lab.projection().entries[Kind.LEARNER].items()))
    operations = [
        {
            "op": "upsert",
            "kind": "learner",
            "key": key,
            "record": {**entry.record, "legal_surname": f"Jones{c}Evil"},
        }
        for c in HIDDEN.values()
    ]
    body = {
        "batch_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "sequence": 1,
        "academic_year": "2026/27",
        "upn_key_id": key.split(":", 1)[0],
        "operations": operations,
    }
    api = lab.lab.api(lab.dfes)
    try:
        ack = api.post_batch(lab.dfes, body["batch_id"], json.dumps(body).encode(), None, len(operations))
    finally:
        api.close()
    results = [dataclasses.asdict(result) for result in ack.results]
    return {"results": results, "refused": sum(1 for r in results if r["status"] == "refused")}

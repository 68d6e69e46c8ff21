"""A small fault-injecting HTTP proxy on loopback, between the client and the sandbox.

It accepts the client's connections, reads one HTTP/1.1 request (headers and ``Content-Length`` body),
and then, by the first matching rule, either forwards it to the sandbox unchanged (the ``Host`` header
is kept, so the signature over ``@target-uri`` still verifies) or misbehaves:

``hang``          accept, read the request, answer nothing (the client's read timeout must fire);
``reset``         forward (the sandbox applies the request), send the answer's headers and half its body,
                  then reset the connection (TCP RST);
``status``        answer a canned status (500, 503, 429 with ``Retry-After``, ...) without forwarding;
``status_after``  forward (the sandbox applies it), then answer a canned status instead (a gateway's 502);
``slow``          forward, then hold the answer for ``delay`` seconds and dribble it out.

A rule can be limited to requests whose path contains some text and to its first ``times`` matches.
Everything is bounded: sockets have timeouts, a hanging connection is released after ``hang_seconds``
or when the proxy stops, and the proxy stops itself after ``lifetime`` seconds if nobody stops it.
Every request seen is recorded (time, method, path, fault) for the tests' figures.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["pass", "hang", "reset", "status", "status_after", "slow"]
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Unavailable"}


@dataclass
class Rule:
    fault: Fault
    path_contains: str = ""
    times: int | None = None  # None: every matching request
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    used: int = 0

    def matches(self, path: str) -> bool:
        return self.path_contains in path and (self.times is None or self.used < self.times)


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    fault: Fault


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaultProxy:
    """Use as a context manager: ``with FaultProxy(sandbox.url) as proxy: ... proxy.url ...``."""

    def __init__(self, upstream: str, *, lifetime: float = 120.0, hang_seconds: float = 30.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lifetime = lifetime
        self.hang_seconds = hang_seconds
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_rules(self, *rules: Rule) -> None:
        with self._lock:
            self.rules = list(rules)

    def requests(self, path_contains: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path_contains in s.path]

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._started = time.monotonic()
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set() and time.monotonic() - self._started < self.lifetime:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        self._stop.set()

    # -- one connection -------------------------------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        with contextlib.closing(client):
            try:
                head, body = _read_request(client)
            except (OSError, ValueError):
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, path = ([*request_line.split(" "), "", ""])[:2]
            rule = self._choose(path)
            fault: Fault = rule.fault if rule else "pass"
            with self._lock:
                self.seen.append(Seen(time.monotonic(), method, path, fault))
            try:
                self._act(client, rule, head, body)
            except OSError:
                return

    def _choose(self, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(path):
                    rule.used += 1
                    return rule
        return None

    def _act(self, client: socket.socket, rule: Rule | None, head: bytes, body: bytes) -> None:
        if rule is None or rule.fault == "pass":
            client.sendall(self._forward(head, body))
        elif rule.fault == "hang":
            self._stop.wait(self.hang_seconds)
        elif rule.fault == "status":
            client.sendall(_canned(rule.status, rule.headers))
        elif rule.fault == "status_after":
            self._forward(head, body)
            client.sendall(_canned(rule.status, rule.headers))
        elif rule.fault == "reset":
            answer = self._forward(head, body)
            split = answer.find(b"\r\n\r\n") + 4
            client.sendall(answer[: split + max(1, (len(answer) - split) // 2)])
            time.sleep(0.05)
            # SO_LINGER with a zero timeout: close() sends a TCP RST instead of a FIN.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif rule.fault == "slow":
            answer = self._forward(head, body)
            if self._stop.wait(rule.delay):
                return
            for piece in _chunks(answer, max(1, len(answer) // 4)):
                client.sendall(piece)
                time.sleep(0.05)

    def _forward(self, head: bytes, body: bytes) -> bytes:
        lines = head.split(b"\r\n")
        kept = [line for line in lines[1:] if line and not line.lower().startswith(b"connection:")]
        request = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]) + body
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(request)
            answer = bytearray()
            while chunk := upstream.recv(65536):
                answer += chunk
        return bytes(answer)


def _read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a request")
        data += chunk
        if len(data) > 1_000_000:
            raise ValueError("request head too large")
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed mid-body")
        body += chunk
    return head, bytes(body)


def _canned(status: int, headers: dict[str, str]) -> bytes:
    body = (
        b'{"type":"urn:hwb:problem:injected","title":"injected fault","status":' + str(status).encode() + b"}"
    )
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]

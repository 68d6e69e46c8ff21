"""A hostile national API on loopback: forwards to the sandbox, or answers the way an attacker would.

Every request is read in full (headers and ``Content-Length`` body) and, by the first matching rule,
forwarded to the sandbox (``Host`` kept, so the school's request signature still verifies) or answered
with a fault:

``drip``         a 200 whose body never ends: one byte every ``delay`` seconds, for ever;
``huge``         a 200 streaming ``size`` bytes of JSON-ish filler, chunked (no Content-Length);
``gzip_bomb``    a 200 with ``Content-Encoding: gzip`` whose small body inflates to ``size`` bytes;
``html``         a 200 ``text/html`` page (a captive portal or a proxy's error page);
``fake_ack``     a well-formed batch acknowledgement (the right batch id, one ``applied`` per
                 operation) without forwarding: nothing reaches the national side;
``rewrite``      forward, then replace the JSON answer by ``transform(answer)``.

``impostor="all"``: every ``/v1`` answer, forwarded or made up, is signed with the server's own response
key (``impostor_key``), as a server that got itself pinned would; ``"fakes"``: only the made-up and
rewritten ones (a wrongly signed fake); ``None``: made-up answers are unsigned. Forwarded answers are
otherwise passed on as the sandbox signed them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hwb_sandbox.signatures import ResponseSigner, SignedRequest

Fault = Literal["pass", "drip", "huge", "gzip_bomb", "html", "fake_ack", "rewrite"]


@dataclass
class Rule:
    fault: Fault
    path_contains: str = ""
    times: int | None = None
    delay: float = 1.0
    size: int = 3 * 1024**3
    transform: Callable[[Any], Any] | None = None
    used: int = 0

    def matches(self, path: str) -> bool:
        return self.path_contains in path and (self.times is None or self.used < self.times)


def _bomb(size: int) -> bytes:
    """A gzip member of ``size`` zero bytes (about size/1000 bytes long), made in bounded memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


class HostileServer:
    def __init__(
        self, upstream: str, *, impostor: Literal["all", "fakes"] | None = None, lifetime: float = 300.0
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.impostor = impostor
        self.impostor_key = ResponseSigner(Ed25519PrivateKey.generate())
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str, Fault]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._lifetime = lifetime
        self._bombs: dict[int, bytes] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def set_rules(self, *rules: Rule) -> None:
        for rule in rules:  # made before the client asks (a 1 GiB bomb takes seconds to make)
            if rule.fault == "gzip_bomb" and rule.size not in self._bombs:
                self._bombs[rule.size] = _bomb(rule.size)
        with self._lock:
            self.rules = list(rules)

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._listener.close()

    # -- serving ---------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        ends = time.monotonic() + self._lifetime
        while not self._stopping.is_set() and time.monotonic() < ends:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        with contextlib.closing(client):
            try:
                head, body = _read_request(client)
            except (OSError, ValueError):
                return
            method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            with self._lock:
                rule = next((r for r in self.rules if r.matches(target)), None)
                if rule is not None:
                    rule.used += 1
                self.seen.append((method, target, rule.fault if rule else "pass"))
            with contextlib.suppress(OSError):
                self._act(client, rule, method, target, head, body)

    def _act(
        self, client: socket.socket, rule: Rule | None, method: str, target: str, head: bytes, body: bytes
    ) -> None:
        fault = rule.fault if rule else "pass"
        if fault == "drip":
            client.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            while not self._stopping.wait(rule.delay if rule else 1.0):
                client.sendall(b" ")
            return
        if fault == "huge":
            client.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b" " * (1024 * 1024)
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            for _ in range((rule.size if rule else 0) // len(chunk)):
                if self._stopping.is_set():
                    return
                client.sendall(frame)
            client.sendall(b"0\r\n\r\n")
            return
        if fault == "gzip_bomb":
            size = rule.size if rule else 0
            bomb = self._bombs.get(size) or _bomb(size)
            self._answer(
                client, method, target, head, 200, bomb, "application/json", {"Content-Encoding": "gzip"}
            )
            return
        if fault == "html":
            page = b"<html><body><h1>Welcome to the school network</h1>Please log in.</body></html>"
            self._answer(client, method, target, head, 200, page, "text/html", {})
            return
        if fault == "fake_ack":
            ack = _fake_ack(head, body)
            self._answer(client, method, target, head, 200, json.dumps(ack).encode(), "application/json", {})
            return
        status, headers, answer = self._forward(head, body)
        if fault == "rewrite" and rule is not None and rule.transform is not None:
            answer = json.dumps(rule.transform(json.loads(answer))).encode()
            headers = {
                k: v
                for k, v in headers.items()
                if k.lower() not in {"signature", "signature-input", "content-digest"}
            }
        self._answer(
            client,
            method,
            target,
            head,
            status,
            answer,
            headers.pop("Content-Type", "application/json"),
            headers,
            forwarded=fault == "pass",
        )

    def _answer(
        self,
        client: socket.socket,
        method: str,
        target: str,
        head: bytes,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        *,
        forwarded: bool = False,
    ) -> None:
        fields = {
            k: v
            for k, v in headers.items()
            if k.lower() not in {"content-length", "transfer-encoding", "connection"}
        }
        fields["Content-Type"] = content_type
        if (self.impostor == "all" or (self.impostor and not forwarded)) and target.startswith("/v1/"):
            request_headers = _headers(head)
            url = f"http://{request_headers.get('host', '127.0.0.1')}{target}"
            signed = SignedRequest.build(method, url, list(request_headers.items()), b"")
            self.impostor_key.sign(signed, status, fields, body, time.time())
        lines = [
            f"HTTP/1.1 {status} X",
            *(f"{k}: {v}" for k, v in fields.items()),
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _forward(self, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            upstream.sendall(b"\r\n".join([*lines[:-2], b"Connection: close", b"", b""]) + body)
            data = b""
            while chunk := upstream.recv(65536):
                data += chunk
        raw_head, _, answer = data.partition(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines)
        return int(status_line.split(" ")[1]), headers, answer


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines if ": " in line)}


def _fake_ack(head: bytes, body: bytes) -> dict[str, Any]:
    if _headers(head).get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    batch = json.loads(body)
    results = [{"index": i, "status": "applied"} for i in range(len(batch["operations"]))]
    return {
        "batch_id": batch["batch_id"],
        "applied": len(results),
        "unchanged": 0,
        "refused": 0,
        "results": results,
    }


def _read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("closed before the request's headers")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(_headers(head + b"\r\n\r\n").get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n", rest[:length]

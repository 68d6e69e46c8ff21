"""One HTTP exchange with a deadline for the whole of it, a stop event, and a cap on the reply's size.

``requests``' timeouts are per socket operation: a reply that drips a byte every few seconds never trips
them, and neither does ``urllib3.Timeout(total=...)`` for a streamed body. So every exchange here has a
watchdog: a thread that waits for the deadline or the stop event (SIGTERM, a service stop) and then shuts
the exchange's sockets down, which ends a blocked ``recv`` at once (headers or body alike). The body is
read with ``stream=True`` in chunks, checking the deadline and the byte cap on every chunk, without
``requests`` decompressing it (``raw.read(decode_content=False)``); a gzip body is inflated here, in
bounded steps, up to the same cap.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from hwb_client.errors import Phrase
from hwb_client.i18n import N_

CHUNK_BYTES: Final = 65536
_WATCH_TICK_SECONDS: Final = 0.1


class ExchangeCut(Exception):
    """The exchange was cut: ``reason`` is ``deadline``, ``stopped`` or ``too_large``."""

    def __init__(self, reason: str, detail: Phrase) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Reply:
    """A complete reply: status, headers, the body as sent (``wire``) and decoded (``body``)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    wire: bytes
    body: bytes


class _Exchange:
    """The sockets one exchange uses, so that a watchdog can shut them down."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.cut: str | None = None
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self.sockets.append(sock)
            if self.cut is not None:
                _shut(sock)

    def shut_down(self, reason: str) -> None:
        with self._lock:
            self.cut = reason
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown() acts on the connection, not the descriptor: a blocked recv() in another thread returns.
    with contextlib.suppress(OSError, ValueError):
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


def _watch_current(sock: socket.socket | None) -> None:
    exchange: _Exchange | None = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch_current(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch_current(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _watch_current(conn.sock)  # a connection reused from the pool: connect() is not called again
        return super()._make_request(conn, *args, **kwargs)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _watch_current(conn.sock)
        return super()._make_request(conn, *args, **kwargs)


class WatchedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections report their sockets to the exchange in progress."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager


def watched_session() -> requests.Session:
    session = requests.Session()
    adapter = WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextlib.contextmanager
def _watchdog(deadline: float, stop: threading.Event) -> Iterator[_Exchange]:
    exchange = _Exchange()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(_WATCH_TICK_SECONDS):
            if stop.is_set():
                exchange.shut_down("stopped")
                return
            if time.monotonic() >= deadline:
                exchange.shut_down("deadline")
                return

    thread = threading.Thread(target=watch, name="hwb-exchange-watchdog", daemon=True)
    _current.exchange = exchange
    thread.start()
    try:
        yield exchange
    finally:
        _current.exchange = None
        done.set()
        thread.join()


def exchange(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    *,
    timeout: tuple[float, float],
    deadline_seconds: float,
    max_bytes: int,
    stop: threading.Event,
) -> Reply:
    """Send ``prepared`` and read the whole reply within ``deadline_seconds`` and ``max_bytes``.

    Raises ``ExchangeCut`` when the deadline passes, ``stop`` is set or the reply is too large (before or
    after decompression); ``requests`` exceptions for a failed connection; ``ValueError`` for a body that
    does not decompress or is in an unknown coding.
    """
    deadline = time.monotonic() + deadline_seconds
    with _watchdog(deadline, stop) as running:
        try:
            response = session.send(prepared, timeout=timeout, allow_redirects=False, stream=True)
            try:
                wire = _read_capped(response, deadline, max_bytes, stop)
            finally:
                response.close()
        except ExchangeCut:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if running.cut is not None:
                raise _cut(running.cut, deadline_seconds) from exc
            if isinstance(exc, requests.RequestException):
                raise
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise requests.Timeout(str(exc)) from exc
            if isinstance(exc, urllib3.exceptions.HTTPError | OSError):  # the body's read broke off
                raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc
            raise
        if running.cut is not None:
            raise _cut(running.cut, deadline_seconds)
    body = inflate(wire, response.headers.get("Content-Encoding"), max_bytes)
    return Reply(response.status_code, response.reason or "", response.headers, wire, body)


_STOPPED: Final = Phrase(N_("stopped while waiting for the national API's reply"))


def _cut(reason: str, deadline_seconds: float) -> ExchangeCut:
    if reason == "stopped":
        return ExchangeCut("stopped", _STOPPED)
    return ExchangeCut(
        "deadline",
        Phrase(N_("the reply did not complete within {seconds} s"), seconds=f"{deadline_seconds:g}"),
    )


def _read_capped(
    response: requests.Response, deadline: float, max_bytes: int, stop: threading.Event
) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ExchangeCut(
            "too_large",
            Phrase(
                N_("the reply declares {size} bytes; the limit is {limit}"),
                size=int(declared),
                limit=max_bytes,
            ),
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        if stop.is_set():
            raise ExchangeCut("stopped", _STOPPED)
        if time.monotonic() >= deadline:
            raise ExchangeCut("deadline", Phrase(N_("the reply did not complete within its deadline")))
        chunk = response.raw.read(CHUNK_BYTES, decode_content=False)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise ExchangeCut("too_large", Phrase(N_("the reply exceeds {limit} bytes"), limit=max_bytes))
        chunks.append(chunk)


def inflate(wire: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` (one member) in bounded steps; ``ExchangeCut`` beyond ``max_bytes``."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return wire
    if coding != "gzip":
        raise ValueError(
            Phrase(N_("the reply is in content coding {coding}; only gzip is accepted"), coding=repr(coding))
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(wire, max_bytes + 1)
    except zlib.error as exc:
        raise ValueError(
            Phrase(N_("the gzip reply cannot be decompressed: {problem}"), problem=str(exc))
        ) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise ExchangeCut(
            "too_large", Phrase(N_("the reply exceeds {limit} bytes after decompression"), limit=max_bytes)
        )
    if not inflater.eof:
        raise ValueError(Phrase(N_("the gzip reply is truncated")))
    return data

"""Serving the app with waitress: bounded bodies and connections, problem documents, TLS, SIGTERM.

waitress refuses a body over ``max_request_body_size`` before the app sees it; its error page is replaced
by a problem document so that a client always gets ``application/problem+json``. SIGTERM and SIGINT stop
the server cleanly (exit status 0).

Why waitress, tuned (and not cheroot or gunicorn): waitress reads every request in its asyncore loop and
hands it to a worker thread only once it has fully arrived, so idle and half-sent connections cost a
socket, never a thread. Its defaults stop it at 100 such sockets (``connection_limit``) kept for 120 s
(``channel_timeout``); here the limit is 1,000 (polled with ``poll()``, as ``select()`` cannot watch
more than 1,024 descriptors), idle connections close after 30 s, and a request whose head and body have
not all arrived within ``request_timeout`` of its first byte is closed (a slowloris client that sends a
byte every few seconds is never idle). cheroot does TLS but hands a connection to a worker thread as soon
as its first byte arrives (a dripping client holds a thread) and does the TLS handshake in its accept
thread (an idle TLS client stalls accepting); gunicorn forks and does not run on Windows. HTTPS comes
from :mod:`hwb_sandbox.tls` in front of waitress.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from hwb_sandbox.app import MAX_BODY_BYTES, SandboxApp, log_event
from hwb_sandbox.appliers import BatchAppliers
from hwb_sandbox.i18n import negotiate
from hwb_sandbox.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_PREFIX, PROBLEMS
from hwb_sandbox.store import SandboxStore
from hwb_sandbox.tls import TlsFront, server_context

#: waitress's own refusals (before the app runs): 413 for the body size, any other 4xx is a malformed request.
_WAITRESS_SLUGS: Final = {413: "body-too-large"}


class _ProblemErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's error response (bad request line, body too large...) as a problem document, its title
    in the language of the request's ``Accept-Language`` when waitress read that far (the detail is
    waitress's own English)."""

    def execute(self) -> None:
        error = self.request.error
        slug = _WAITRESS_SLUGS.get(error.code, "body-malformed" if error.code < 500 else "internal-error")
        _status, title = PROBLEMS[slug]
        lang = negotiate(getattr(self.request, "headers", {}).get("ACCEPT_LANGUAGE"))
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_PREFIX + slug,
                "title": lang._(title),
                "status": error.code,
                "detail": str(error.body),
            }
        ).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", PROBLEM_MEDIA_TYPE))
        self.response_headers.append(("Content-Language", lang.code))
        self.response_headers.append(("Vary", "Accept-Language"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _ProblemChannel(HTTPChannel):  # type: ignore[misc]  # waitress ships no type hints
    """A channel that answers with problem documents and closes a request that takes too long to arrive."""

    error_task_class = _ProblemErrorTask
    request_timeout: float = 60.0
    _timed: object = None  # the request being timed (waitress makes a new parser object per request)
    _request_started = 0.0

    def readable(self) -> bool:
        # The server loop asks about once a second: a request still arriving (no task running for it)
        # past its deadline is closed, however steadily it drips.
        request, now = self.request, time.monotonic()
        if request is not self._timed:
            self._timed, self._request_started = request, now
        elif request is not None and not self.requests and now - self._request_started > self.request_timeout:
            log_event("request_too_slow", level=logging.WARNING, seconds=self.request_timeout)
            self.will_close = True
        return bool(super().readable())


class ServeOptionError(ValueError):
    """A ``serve`` option that cannot be used (a certificate file that does not load, a bad address)."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many connections the sandbox keeps, and how long it waits for idle and slow clients."""

    connection_limit: int = 1000
    channel_timeout: int = 30
    request_timeout: int = 60
    backlog: int = 1024

    def adjustments(self) -> dict[str, Any]:
        """waitress's settings for these limits."""
        return {
            "connection_limit": self.connection_limit,
            "channel_timeout": self.channel_timeout,
            "cleanup_interval": max(1, min(self.channel_timeout, 30) // 3),
            "backlog": self.backlog,
            "asyncore_use_poll": True,
        }


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM certificate chain and private key ``serve --tls-cert --tls-key`` uses."""

    cert: Path
    key: Path


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(
    db_path: Path,
    *,
    host: str,
    port: int,
    threads: int = 4,
    public_url: str | None = None,
    limits: ConnectionLimits | None = None,
    tls: TlsFiles | None = None,
    apply_workers: int = 1,
) -> int:
    """Serve until SIGTERM/SIGINT; print ``listening on http[s]://HOST:PORT`` once bound. Batches are
    applied in ``apply_workers`` processes (``hwb_sandbox.appliers``; 1: in the serving threads)."""
    limits = limits or ConnectionLimits()
    context = _tls_context(tls) if tls is not None else None
    store = SandboxStore(db_path)
    appliers = BatchAppliers(store, apply_workers)
    app = SandboxApp(store, public_url=public_url, appliers=appliers)
    _allow_open_files(limits.connection_limit)
    # With TLS, waitress listens on a private loopback port and the TLS front on the public address.
    server = _waitress(
        app, ("127.0.0.1", 0) if context else (host, port), threads, limits, https=bool(context)
    )
    try:
        front = _start_front(context, host, port, limits, server) if context else None
    except ServeOptionError:
        server.close()
        appliers.close()
        store.close()
        raise
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    bound_host, bound_port = (
        front.listener.getsockname()[:2] if front else (server.effective_host, server.effective_port)
    )
    url = f"{'https' if front else 'http'}://{_url_host(bound_host)}:{bound_port}"
    log_event(
        "sandbox_listening",
        url=url,
        db=db_path,
        connection_limit=limits.connection_limit,
        apply_workers=apply_workers,
    )
    print(f"listening on {url}", flush=True)  # noqa: T201 - the line tests and operators parse
    try:
        server.run()
    finally:
        if front:
            front.close()
        server.close()
        appliers.close()
        store.close()
        log_event("sandbox_stopped", url=url)
    return 0


def _waitress(
    app: SandboxApp, address: tuple[str, int], threads: int, limits: ConnectionLimits, *, https: bool
) -> Any:
    """A bound waitress server with bounded bodies, problem documents and the connection limits."""
    server = create_server(
        app,
        host=address[0],
        port=address[1],
        threads=threads,
        max_request_body_size=MAX_BODY_BYTES + 1,
        ident="hwb-sandbox",
        clear_untrusted_proxy_headers=True,
        url_scheme="https" if https else "http",
        **limits.adjustments(),
    )
    server.channel_class = type("_Channel", (_ProblemChannel,), {"request_timeout": limits.request_timeout})
    return server


def _tls_context(tls: TlsFiles) -> ssl.SSLContext:
    try:
        return server_context(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeOptionError(
            f"--tls-cert {tls.cert} / --tls-key {tls.key} cannot be used ({exc}); give a PEM certificate"
            " chain and its unencrypted PEM private key"
        ) from exc


def _start_front(
    context: ssl.SSLContext, host: str, port: int, limits: ConnectionLimits, server: Any
) -> TlsFront:
    """Bind the public HTTPS address and start piping it to waitress's private loopback port."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family, backlog=limits.backlog)
    except OSError as exc:
        raise ServeOptionError(f"cannot listen on {host}:{port}: {exc}") from exc
    front = TlsFront(
        listener,
        context,
        (server.effective_host, server.effective_port),
        handshake_timeout=float(min(limits.channel_timeout, 10)),
        first_byte_timeout=float(limits.channel_timeout),
        backlog=limits.backlog,
    )
    front.start()
    return front


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _allow_open_files(connection_limit: int) -> None:
    """Raise the soft limit on open files (POSIX) so that ``connection_limit`` sockets fit."""
    try:
        import resource  # POSIX only; Windows has no such limit to raise
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * connection_limit + 64  # a TLS connection holds three descriptors in this process
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def configure_logging(level: str = "info") -> None:
    """Plain key=value lines on stderr."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("waitress").setLevel(logging.WARNING)

"""Serving the app with waitress: bounded bodies, problem documents for waitress's own errors, SIGTERM.

waitress refuses a body over ``max_request_body_size`` before the app sees it; its error page is replaced
by a problem document so that a client always gets ``application/problem+json``. SIGTERM and SIGINT stop
the server cleanly (exit status 0).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Final

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from hwb_sandbox.app import MAX_BODY_BYTES, SandboxApp, log_event
from hwb_sandbox.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_PREFIX, PROBLEMS
from hwb_sandbox.store import SandboxStore

#: waitress's own refusals (before the app runs): 413 for the body size, any other 4xx is a malformed request.
_WAITRESS_SLUGS: Final = {413: "body-too-large"}


class _ProblemErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's error response (bad request line, body too large...) as a problem document."""

    def execute(self) -> None:
        error = self.request.error
        slug = _WAITRESS_SLUGS.get(error.code, "body-malformed" if error.code < 500 else "internal-error")
        _status, title = PROBLEMS[slug]
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_PREFIX + slug,
                "title": title,
                "status": error.code,
                "detail": str(error.body),
            }
        ).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", PROBLEM_MEDIA_TYPE))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _ProblemChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _ProblemErrorTask


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(db_path: Path, *, host: str, port: int, threads: int = 4, public_url: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print ``listening on http://HOST:PORT`` once bound."""
    store = SandboxStore(db_path)
    app = SandboxApp(store, public_url=public_url)
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": threads,
        "max_request_body_size": MAX_BODY_BYTES + 1,
        "ident": "hwb-sandbox",
        "clear_untrusted_proxy_headers": True,
    }
    server = create_server(app, **kwargs)
    server.channel_class = _ProblemChannel
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    bound_host, bound_port = server.effective_host, server.effective_port
    url = f"http://{bound_host}:{bound_port}"
    log_event("sandbox_listening", url=url, db=db_path)
    print(f"listening on {url}", flush=True)  # noqa: T201 - the line tests and operators parse
    try:
        server.run()
    finally:
        server.close()
        store.close()
        log_event("sandbox_stopped", url=url)
    return 0


def configure_logging(level: str = "info") -> None:
    """Plain key=value lines on stderr."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("waitress").setLevel(logging.WARNING)

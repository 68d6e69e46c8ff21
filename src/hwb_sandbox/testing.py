"""Running the sandbox as a real subprocess, for tests and rehearsals.

``SandboxProcess`` starts ``python -m hwb_sandbox serve --port 0 --db PATH``, reads the ``listening on``
line from its stdout, waits until ``/healthz`` answers, and on exit stops it with SIGTERM (then SIGKILL
after a grace period) and waits for it. Its log (stderr) goes to ``PATH`` + ``.log`` for post-mortems.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from hwb_sandbox.store import SandboxStore

_LISTENING: Final = re.compile(r"^listening on (https?://\S+)$")


class SandboxStartError(RuntimeError):
    """The sandbox subprocess did not start or did not become healthy in time."""


class SandboxProcess:
    """A sandbox server in a subprocess, with its own database file; use as a context manager."""

    def __init__(
        self,
        db_path: Path,
        *,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        serve_args: Sequence[str] = (),
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``serve_args`` are more ``serve`` options (``--tls-cert``...); ``tls_context`` checks HTTPS."""
        self.db_path = Path(db_path)
        self.serve_args = tuple(serve_args)
        self.tls_context = tls_context
        self.log_path = self.db_path.with_name(self.db_path.name + ".log")
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the sandbox is not running")
        return self._url

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the sandbox is not running")
        return self._process.pid

    def start(self) -> SandboxProcess:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", encoding="utf-8")
        command = [sys.executable, "-m", "hwb_sandbox", "serve", "--port", "0", "--db", str(self.db_path)]
        command += self.serve_args
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=subprocess.PIPE, stderr=self._log, text=True, encoding="utf-8"
        )
        try:
            self._url = self._read_url(self._process)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url(self, process: subprocess.Popen[str]) -> str:
        found: list[str] = []
        stdout = process.stdout
        assert stdout is not None

        def read_first_lines() -> None:
            for line in stdout:
                match = _LISTENING.match(line.strip())
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=read_first_lines, daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not found:
            raise SandboxStartError(
                f"the sandbox printed no 'listening on' line within {self.start_timeout} s;"
                f" see {self.log_path}"
            )
        return found[0]

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        health = self.url + "/healthz"
        while True:
            try:
                with urllib.request.urlopen(health, timeout=2, context=self.tls_context) as response:  # noqa: S310 - our own sandbox's http(s) URL
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SandboxStartError(f"/healthz did not answer within {self.start_timeout} s")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL if it will not stop; return the exit status."""
        process, self._process = self._process, None
        status: int | None = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            status = process.returncode
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._url = None
        return status

    def issue_code(self, dfes_number: str, name: str | None = None) -> str:
        """Register the school if new and return a one-time enrolment code (as ``hwb-sandbox issue-code``).

        Writes the shared database directly (WAL mode; the running server sees it at once).
        """
        store = SandboxStore(self.db_path)
        try:
            return store.issue_code(dfes_number, name)
        finally:
            store.close()

    def set_today(self, day: dt.date | None) -> None:
        """Set the sandbox calendar's today (as ``hwb-sandbox clock --set``); None follows the real date.

        Writes the shared database; the running server reads the clock on every request.
        """
        store = SandboxStore(self.db_path)
        try:
            store.set_today(day)
        finally:
            store.close()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

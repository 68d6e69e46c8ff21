"""Logging, configured once: structured events, JSON for services and files, console on a terminal.

Events have stable snake_case names (``run_started``, ``batch_acknowledged``, ``record_held_back``) and
key-value context (``dfes``, ``run_id``, ``batch_seq``, ``reason``); never personal data. ``redact`` is a
second line of defence: it masks anything shaped like a UPN, any value under a personal-data key and the
credentials in any URL (``http://user:password@proxy`` becomes ``http://[redacted]@proxy``).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from hwb_client.platform.filesystem import PrivateRotatingFileHandler
from hwb_client.redaction import without_credentials

_UPN_LIKE = re.compile(r"\b[A-Z][0-9]{11}[0-9A-Z]\b")
_PERSONAL_KEYS = frozenset(
    {
        "upn",
        "legal_forename",
        "legal_surname",
        "forename",
        "surname",
        "name",
        "date_of_birth",
        "dob",
        "password",
        "pwd",
        "odbc",
        "connection_string",
        "key",
        "secret",
    }
)
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return without_credentials(_UPN_LIKE.sub("[redacted-upn]", value))
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in _PERSONAL_KEYS else _scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask personal data that reached a log call by mistake (a processor; tested)."""
    for key in list(event_dict):
        if key.lower() in _PERSONAL_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _JournalPrefix(structlog.stdlib.ProcessorFormatter):
    """Each line prefixed with its journald priority (sd-daemon ``<N>``: ``journalctl -p warning`` then
    finds warnings), when journald reads stderr but its native socket is not there."""

    def format(self, record: logging.LogRecord) -> str:
        from hwb_client.platform.journal import PRIORITY

        return f"<{PRIORITY.get(record.levelno, 6)}>" + super().format(record)


def _configure_structlog() -> list[Any]:
    """structlog over the standard library; returns the processors every event goes through (also those
    of other libraries' loggers, as ``foreign_pre_chain``)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return shared


def _bare_root() -> logging.Logger:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    return root


def _quiet_noisy_loggers() -> None:
    """Libraries that talk a lot say only warnings and worse."""
    for noisy in ("urllib3", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_forwarding(handler: logging.Handler, *, level: int) -> None:
    """In a worker process: every event, redacted and timestamped as here, goes to ``handler`` (which
    hands it to the parent process, whose own handlers write it: one writer per log file)."""
    _configure_structlog()
    root = _bare_root()
    root.addHandler(handler)
    root.setLevel(level)
    _quiet_noisy_loggers()


def configure(
    *,
    fmt: str = "auto",
    level: str = "info",
    log_file: Path | None = None,
    stream: Any = None,
    quiet_console: bool = False,
    journal_socket: Path | None = None,
) -> None:
    """Set up structlog over the standard library's handlers (a rotating file when ``log_file``).

    ``quiet_console`` (an interactive run showing progress): events go to the log file only, or with
    no log file only errors reach the terminal. Under systemd (``JOURNAL_STREAM`` set) each line on
    stderr carries its journald priority."""
    stream = stream or sys.stderr
    journal = bool(os.environ.get("JOURNAL_STREAM")) and stream is sys.stderr
    from hwb_client.platform import journal as native

    socket_path = journal_socket or native.JOURNAL_SOCKET
    console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    shared = _configure_structlog()
    root = _bare_root()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if console else structlog.processors.JSONRenderer()
    )
    stream_handler: logging.Handler = logging.StreamHandler(stream)
    formatter = _JournalPrefix if journal and not console else structlog.stdlib.ProcessorFormatter
    stream_handler.setFormatter(
        formatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    if quiet_console:
        stream_handler.setLevel(logging.ERROR)
    if journal and not console and native.available(socket_path):
        # journald's native protocol: the same JSON as MESSAGE, the priority, dfes and run_id as fields
        stream_handler = native.JournalHandler(socket_path)
        stream_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                foreign_pre_chain=shared,
            )
        )
    if not (quiet_console and log_file is not None):
        root.addHandler(stream_handler)
    if log_file is not None:
        file_handler = PrivateRotatingFileHandler(  # 0600 (and a new directory 0700) whatever the umask
            log_file, maxBytes=10_000_000, backupCount=10, encoding="utf-8"
        )
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=shared,
            )
        )
        root.addHandler(file_handler)
    root.setLevel(level.upper())
    _quiet_noisy_loggers()


def reopen_log_files() -> int:
    """Close and reopen every log file by its name (after logrotate renamed it); return how many."""
    reopened = 0
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            with handler.lock or contextlib.nullcontext():
                if handler.stream:
                    handler.stream.close()
                handler.stream = handler._open()  # the handler's own way of opening its file
            reopened += 1
    return reopened

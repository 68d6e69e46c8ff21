"""Logging, configured once: structured events, JSON for services and files, console on a terminal.

Events have stable snake_case names (``run_started``, ``batch_acknowledged``, ``record_held_back``) and
key-value context (``dfes``, ``run_id``, ``batch_seq``, ``reason``); never personal data. ``redact`` is a
second line of defence: it masks anything shaped like a UPN, any value under a personal-data key and the
credentials in any URL (``http://user:password@proxy`` becomes ``http://[redacted]@proxy``).
"""

from __future__ import annotations

import logging
import logging.handlers
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


def configure(
    *, fmt: str = "auto", level: str = "info", log_file: Path | None = None, stream: Any = None
) -> None:
    """Set up structlog over the standard library's handlers (a rotating file when ``log_file``)."""
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
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
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if console else structlog.processors.JSONRenderer()
    )
    stream_handler = logging.StreamHandler(stream)
    stream_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
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
    for noisy in ("urllib3", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

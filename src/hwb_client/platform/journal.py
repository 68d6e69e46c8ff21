"""journald's native protocol: each event as a datagram of fields, at its priority, with the school and
run id as fields of their own (``journalctl HWB_DFES=6612001``, ``journalctl -p warning``).

Used only under systemd (``JOURNAL_STREAM`` set) when the journal socket exists; anything that cannot be
sent this way (a socket error, a datagram too large) goes to stderr with its ``<N>`` priority prefix.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
#: event keys that become journal fields of their own (HWB_DFES=..., HWB_RUN_ID=...)
FIELDS = ("event", "dfes", "run_id", "batch_id", "outcome", "reason", "error_type")


def encode(fields: Mapping[str, str]) -> bytes:
    """The native protocol: ``KEY=value\\n``, or ``KEY\\n`` + 64-bit little-endian length + value for
    values holding a newline."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def available(path: Path = JOURNAL_SOCKET) -> bool:
    return sys.platform != "win32" and path.exists()


class JournalHandler(logging.Handler):
    """A logging handler speaking journald's native protocol; the formatter renders MESSAGE."""

    def __init__(self, path: Path = JOURNAL_SOCKET, identifier: str = "hwb-client") -> None:
        super().__init__()
        self.path = str(path)
        self.identifier = identifier
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        fields = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(PRIORITY.get(record.levelno, 6)),
            "SYSLOG_IDENTIFIER": self.identifier,
        }
        event: Any = record.msg
        if isinstance(event, Mapping):
            for name in FIELDS:
                if event.get(name) is not None:
                    fields[f"HWB_{name.upper()}"] = str(event[name])
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = self.fields(record)
            try:
                self.socket.sendto(encode(fields), self.path)
            except OSError:
                sys.stderr.write(f"<{fields['PRIORITY']}>{fields['MESSAGE']}\n")
        except Exception:  # a handler never raises into the program
            self.handleError(record)

    def close(self) -> None:
        self.socket.close()
        super().close()

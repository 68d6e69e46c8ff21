"""journald: the native protocol (fields of their own, the priority) and the stderr prefix fallback."""

from __future__ import annotations

import logging
import socket
import struct
import sys
from pathlib import Path

import pytest
import structlog

from hwb_client import logs
from hwb_client.platform import journal


def parse(datagram: bytes) -> dict[str, str]:
    fields, rest = {}, datagram
    while rest:
        line, _, tail = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()], rest = value.decode(), tail
        else:
            (size,) = struct.unpack("<Q", tail[:8])
            fields[line.decode()], rest = tail[8 : 8 + size].decode(), tail[9 + size :]
    return fields


@pytest.fixture
def journal_socket(tmp_path: Path):
    path = tmp_path / "journal.socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    yield path, server
    server.close()
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)
        handler.close()


def test_under_systemd_events_go_natively_at_their_priority_with_school_and_run_id_fields(
    journal_socket, monkeypatch
) -> None:
    path, server = journal_socket
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    logs.configure(fmt="json", journal_socket=path)
    structlog.get_logger("t").warning("run_blocked", dfes="6612001", run_id="r-1", name="Siân Prydderch")
    fields = parse(server.recv(65536))
    assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "hwb-client"
    assert (
        fields["HWB_EVENT"] == "run_blocked"
        and fields["HWB_DFES"] == "6612001"
        and fields["HWB_RUN_ID"] == "r-1"
    )
    assert '"event": "run_blocked"' in fields["MESSAGE"] and "Siân" not in fields["MESSAGE"]  # redacted
    structlog.get_logger("t").error("run_failed", dfes="6612001", error="line one\nline two")
    fields = parse(server.recv(65536))
    assert fields["PRIORITY"] == "3" and "line one" in fields["MESSAGE"]


def test_a_value_with_a_newline_uses_the_binary_form():
    assert journal.encode({"MESSAGE": "a\nb"}) == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"


def test_without_the_socket_lines_on_stderr_carry_the_priority_prefix(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    logs.configure(fmt="json", journal_socket=tmp_path / "absent.socket", stream=sys.stderr)
    structlog.get_logger("t").info("run_started", dfes="6612001")
    structlog.get_logger("t").warning("run_blocked", dfes="6612001")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith('<6>{"dfes": "6612001"') and lines[1].startswith("<4>")

"""SIGTERM given by the kernel to a thread other than the main one still stops the daemon.

A process-directed signal may be delivered to any thread that does not block it; Python runs the
handler in the main thread only, when that thread next wakes. The daemon's main thread must therefore
wake by itself. Here the signal is sent with ``tgkill`` to each of the daemon's other threads in turn
(the APScheduler and pool threads), which is what the kernel may do with a ``kill`` under load.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwb_client.adapters.national_key import write_national_key

SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


def events(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def other_threads(pid: int) -> list[int]:
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)


@pytest.mark.skipif(sys.platform != "linux" or SYS_TGKILL is None, reason="tgkill is a Linux system call")
def test_sigterm_delivered_to_a_worker_thread_stops_the_daemon(tmp_path: Path) -> None:
    log_file = tmp_path / "hwb-client.log"
    write_national_key(tmp_path / "national-key.json", "test-key")
    config = tmp_path / "hwb-client.toml"
    config.write_text(
        f"""
[client]
state_dir = "{tmp_path / 'state'}"
national_key_file = "{tmp_path / 'national-key.json'}"
log_file = "{log_file}"
log_format = "json"

[api]
base_url = "http://127.0.0.1:9/"

[schedule]
test_interval_seconds = 86400
catch_up_on_start = false

[[schools]]
dfes_number = "6612001"
odbc = "Driver=SQLite3;Database={tmp_path / 'mis.db'}"
""",
        encoding="utf-8",
    )
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "hwb_client", "--config", str(config), "daemon"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "daemon_started" not in events(log_file):
            assert time.monotonic() < deadline, "the daemon did not start: " + stderr.read_text()
            time.sleep(0.1)
        threads = other_threads(daemon.pid)
        assert threads, "the daemon runs a scheduler thread besides its main thread"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, daemon.pid, threads[-1], signal.SIGTERM) == 0
        assert daemon.wait(timeout=30) == 0, stderr.read_text(encoding="utf-8")
        assert events(log_file)[-1] == "daemon_stopped"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

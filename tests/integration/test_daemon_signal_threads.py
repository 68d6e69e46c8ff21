"""SIGTERM given by the kernel to a thread other than the main one still stops the daemon.

A process-directed signal may be delivered to any thread that does not block it; Python runs the
handler in the main thread only, when that thread next wakes. The daemon's main thread must therefore
wake by itself. Here the signal is sent with ``tgkill`` to each of the daemon's other threads in turn
(the APScheduler and pool threads), which is what the kernel may do with a ``kill`` under load.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from idle_daemon import events, start_idle_daemon

SYS_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


def other_threads(pid: int) -> list[int]:
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)


@pytest.mark.skipif(sys.platform != "linux" or SYS_TGKILL is None, reason="tgkill is a Linux system call")
def test_sigterm_delivered_to_a_worker_thread_stops_the_daemon(tmp_path: Path) -> None:
    log_file = tmp_path / "hwb-client.log"
    daemon, stderr = start_idle_daemon(tmp_path, log_file)
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

"""SIGHUP, as logrotate's postrotate sends it: the daemon reopens its log file and keeps running.

A real daemon subprocess; its log file is renamed (as logrotate does), SIGHUP is sent, and the daemon
writes to a new file under the original name, then still stops cleanly on SIGTERM.
"""

from __future__ import annotations

import signal
from pathlib import Path

from idle_daemon import events, start_idle_daemon, wait_for


def test_sighup_reopens_the_renamed_log_file_and_nothing_else(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "hwb-client.log"
    daemon, stderr = start_idle_daemon(tmp_path, log_file)
    try:
        wait_for(lambda: bool(events(log_file)), "the daemon's first log line")
        rotated = log_file.with_name("hwb-client.log.1")
        log_file.rename(rotated)

        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "log_files_reopened" in events(log_file), "a log line in the new file")

        assert daemon.poll() is None, "SIGHUP must not stop the daemon"
        assert "log_files_reopened" not in events(rotated)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, stderr.read_text(encoding="utf-8")
        assert "stop_requested" in events(log_file)  # still writing to the new file at the end
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

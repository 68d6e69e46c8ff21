"""SIGHUP, as logrotate's postrotate sends it: the daemon reopens its log file and keeps running.

A real daemon subprocess; its log file is renamed (as logrotate does), SIGHUP is sent, and the daemon
writes to a new file under the original name, then still stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from hwb_client.adapters.national_key import write_national_key


def events(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sighup_reopens_the_renamed_log_file_and_nothing_else(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "hwb-client.log"
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

"""A real ``hwb-client daemon`` with nothing due (a day-long test interval, no catch-up), for tests of
how it handles signals: its configuration, its log file and the process."""

from __future__ import annotations

import json
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


def start_idle_daemon(tmp_path: Path, log_file: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The daemon, started and writing JSON log lines to ``log_file``; returns it and its stderr file."""
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
    return daemon, stderr

"""The daemon against the sandbox: scheduled runs for every school, a sandbox outage survived, and a
clean stop on SIGTERM in the middle of a run with no batch lost or applied twice."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hwb_demo.lab import Lab, LabSchool
from mis_builder import small_school

SCHOOLS = [("6612001", "Ysgol Gynradd Llanfair"), ("6612002", "Ysgol Gymuned Llanberis")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(db: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hwb_sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(db),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("sandbox did not start")


def start_daemon(lab: Lab, stderr: Path, started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    with stderr.open("w") as sink:
        daemon = lab.popen("daemon", stderr=sink)
    daemon.stderr_path = stderr  # type: ignore[attr-defined]
    started.append(daemon)
    return daemon


def stop_daemon(daemon: subprocess.Popen[str], lab: Lab) -> None:
    """SIGTERM, then a clean exit within systemd's default stop timeout (90 s) less a margin; if not,
    the daemon's own dump of its threads' stacks (after 20 s) and its last log events say why."""
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(60)
    except subprocess.TimeoutExpired:
        stacks = daemon.stderr_path.read_text(encoding="utf-8", errors="replace")  # type: ignore[attr-defined]
        tail = lab.log_file.read_text(encoding="utf-8").splitlines()[-15:]
        raise AssertionError("the daemon did not stop within 60 s of SIGTERM\n" + stacks + "\n".join(tail)) from None
    assert code == 0


def issue_code(db: Path, dfes: str, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "hwb_sandbox", "issue-code", "--db", str(db), "--dfes", dfes, "--name", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().split()[-1]


def runs_in_log(lab: Lab) -> list[dict]:
    if not lab.log_file.exists():
        return []
    events = [
        json.loads(line) for line in lab.log_file.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [e for e in events if e.get("event") == "run_finished"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def applied_totals(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        bodies = [json.loads(r[0]) for r in conn.execute("SELECT response_json FROM batches")]
    finally:
        conn.close()
    return sum(b["applied"] for b in bodies), sum(b["unchanged"] for b in bodies)


def test_daemon_runs_each_school_survives_an_outage_and_stops_cleanly_mid_run(tmp_path: Path) -> None:
    db, port = tmp_path / "sandbox.sqlite3", free_port()
    sandbox = start_sandbox(db, port)
    lab = Lab(
        tmp_path / "lab",
        [LabSchool(d, n, tmp_path / f"mis-{d}.sqlite3") for d, n in SCHOOLS],
        f"http://127.0.0.1:{port}",
    )
    lab.root.mkdir()
    lab.write_config(schedule="test_interval_seconds = 2\njitter_seconds = 0")
    for school in lab.schools:
        assert (
            lab.cli(
                "enrol",
                "--school",
                school.dfes_number,
                "--code",
                issue_code(db, school.dfes_number, school.name),
            ).returncode
            == 0
        )
    small_school(lab.schools[0].mis_path, "6612001", learners=20).close()
    second = small_school(lab.schools[1].mis_path, "6612002", learners=20, first=500)
    started: list[subprocess.Popen[str]] = [sandbox]
    daemon = start_daemon(lab, tmp_path / "daemon-1.stderr", started)
    try:
        # 1. scheduled runs for every school
        wait_for(
            lambda: (
                {e["dfes"] for e in runs_in_log(lab) if e["outcome"] == "success"} == {"6612001", "6612002"}
            ),
            60,
            "a successful scheduled run of each school",
        )

        # 2. a sandbox outage: runs fail, the daemon keeps going, and converges when the API is back
        sandbox.terminate()
        sandbox.wait(10)
        seen = len(runs_in_log(lab))
        wait_for(lambda: any(e["outcome"] == "failed" for e in runs_in_log(lab)[seen:]), 60, "a failed run")
        assert daemon.poll() is None
        sandbox = start_sandbox(db, port)
        seen = len(runs_in_log(lab))
        wait_for(lambda: any(e["outcome"] == "success" for e in runs_in_log(lab)[seen:]), 60, "recovery")

        # 3. SIGTERM in the middle of a run with many batches
        lab.config_path.write_text(lab.config_path.read_text() + "\n[batches]\nmax_operations = 2\n")
        stop_daemon(daemon, lab)
        for n in range(600, 700):
            second.add_learner(n)
        second.commit()
        daemon = start_daemon(lab, tmp_path / "daemon-2.stderr", started)
        before = lab.log_file.read_text(encoding="utf-8").count("batch_acknowledged")
        wait_for(
            lambda: lab.log_file.read_text(encoding="utf-8").count("batch_acknowledged") > before + 3,
            60,
            "a run in the middle of its batches",
        )
        stop_daemon(daemon, lab)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()

    # the next run finishes the job; every change was applied once and only once
    result = lab.cli("--run-now")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 changes" in lab.cli("--run-now").stdout
    applied, unchanged = applied_totals(db)
    expected = (20 + 2 + 1 + 21) * 2 + 100  # two schools' first runs, then 100 new learners
    assert (applied, unchanged) == (expected, 0)
    sandbox.terminate()
    sandbox.wait(10)

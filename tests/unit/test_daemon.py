"""The daemon (hwb_client.daemon): rounds on the schedule, catch-up, concurrency, clean stop.

The real APScheduler and real threads run here; only our run function is a recording fake (the
end-to-end tests use the real one). ``schedule.test_interval_seconds`` makes a round due every second.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hwb_client import daemon
from hwb_client.core import calendar
from hwb_client.errors import MisError, RunInProgress
from hwb_client.platform import systemd
from hwb_client.service_commands import cmd_daemon
from hwb_client.settings import SchoolSettings, Settings

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class FakeResult:
    dfes_number: str
    run_id: str
    outcome: str = "success"
    message: str = ""


class RecordingRun:
    """A stand-in for hwb_client.run.run_school that records calls and can be slowed or made to fail."""

    def __init__(self, behaviour: Callable[[SchoolSettings, threading.Event], str] | None = None) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.saw_stop: list[str] = []

    def __call__(
        self, settings: Settings, school: SchoolSettings, *, stop: threading.Event, lock_wait_seconds: float
    ) -> FakeResult:
        with self.lock:
            self.calls.append((school.dfes_number, time.monotonic()))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            outcome = self.behaviour(school, stop) if self.behaviour else "success"
            if stop.is_set():
                self.saw_stop.append(school.dfes_number)
            return FakeResult(school.dfes_number, f"run-{len(self.calls)}", outcome)
        finally:
            with self.lock:
                self.running -= 1

    def count(self, dfes: str) -> int:
        with self.lock:
            return sum(1 for d, _ in self.calls if d == dfes)


def make_settings(tmp_path: Path, schools: int = 2, **schedule: Any) -> Settings:
    schedule.setdefault("test_interval_seconds", 1)
    schedule.setdefault("jitter_seconds", 0)
    return Settings(
        client={"state_dir": tmp_path / "state"},
        schedule=schedule,
        schools=[{"dfes_number": f"66{n:05d}", "odbc": "DSN=nowhere"} for n in range(1, schools + 1)],
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass
class Running:
    stop: threading.Event
    thread: threading.Thread
    result: list[int]

    def finish(self, timeout: float = 10.0) -> int:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return self.result[0]


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def _start(settings: Settings, run: RecordingRun, **kwargs: Any) -> Running:
        stop = threading.Event()
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(daemon.run_daemon(settings, stop=stop, run_school=run, **kwargs)),
            daemon=True,
        )
        thread.start()
        running = Running(stop, thread, result)
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop.set()
        running.thread.join(10)


def read_state(settings: Settings) -> dict[str, Any]:
    return json.loads((settings.client.state_dir / "daemon-state.json").read_text(encoding="utf-8"))


# --- rounds ----------------------------------------------------------------------------------------


def test_every_enabled_school_runs_at_each_due_time(tmp_path: Path, start: Callable[..., Running]) -> None:
    base = make_settings(tmp_path, schools=3)
    disabled = base.schools[2].model_copy(update={"enabled": False})
    settings = base.model_copy(update={"schools": [*base.schools[:2], disabled]})
    run = RecordingRun()
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 2 and run.count("6600002") >= 2)
    assert daemon_run.finish() == 0
    assert run.count("6600003") == 0


def test_no_more_than_max_concurrent_schools_run_at_once(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=5, max_concurrent_schools=2)
    run = RecordingRun(lambda school, stop: (stop.wait(0.4), "success")[1])
    daemon_run = start(settings, run)
    assert wait_until(lambda: len({d for d, _ in run.calls}) == 5)
    assert daemon_run.finish() == 0
    assert run.max_running == 2


def test_a_slow_school_does_not_hold_up_the_others(tmp_path: Path, start: Callable[..., Running]) -> None:
    settings = make_settings(tmp_path, schools=2, max_concurrent_schools=2)

    def behaviour(school: SchoolSettings, stop: threading.Event) -> str:
        if school.dfes_number == "6600001":
            stop.wait(30)  # stuck until the daemon stops
        return "success"

    run = RecordingRun(behaviour)
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600002") >= 3)
    assert run.count("6600001") == 1  # still running: skipped in later rounds, not queued behind
    assert daemon_run.finish() == 0


def test_a_school_locked_by_a_run_by_hand_is_skipped_and_the_daemon_goes_on(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=2)

    def behaviour(school: SchoolSettings, stop: threading.Event) -> str:
        if school.dfes_number == "6600001":
            raise RunInProgress("school 6600001: another run is in progress")
        return "success"

    run = RecordingRun(behaviour)
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 2 and run.count("6600002") >= 2)
    assert daemon_run.finish() == 0
    assert read_state(settings)["schools"]["6600001"]["last_outcome"] == "skipped_in_progress"


def test_a_crashing_school_run_does_not_stop_the_daemon_or_other_schools(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=2)

    def behaviour(school: SchoolSettings, stop: threading.Event) -> str:
        if school.dfes_number == "6600001":
            raise RuntimeError("a bug")
        return "success"

    run = RecordingRun(behaviour)
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 2 and run.count("6600002") >= 2)
    assert daemon_run.finish() == 0
    schools = read_state(settings)["schools"]
    assert schools["6600001"]["last_outcome"] == "failed"
    assert "last_success_at" not in schools["6600001"]
    assert schools["6600002"]["last_outcome"] == "success"


def test_a_school_error_is_recorded_as_failed(tmp_path: Path, start: Callable[..., Running]) -> None:
    settings = make_settings(tmp_path, schools=1)

    def behaviour(school: SchoolSettings, stop: threading.Event) -> str:
        raise MisError("cannot connect")

    run = RecordingRun(behaviour)
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 1)
    assert daemon_run.finish() == 0
    assert read_state(settings)["schools"]["6600001"]["last_outcome"] == "failed"


def test_state_file_records_each_school_outcome_and_last_success(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=1)
    run = RecordingRun(lambda school, stop: "partial")
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 1)
    assert daemon_run.finish() == 0
    state = read_state(settings)
    assert state["version"] == 1
    assert state["last_round_rule"] == "test_interval"
    entry = state["schools"]["6600001"]
    assert entry["last_outcome"] == "partial"
    assert entry["last_success_at"] == entry["last_finished_at"]
    assert not list(settings.client.state_dir.glob(".daemon-state.json.*"))  # no temp file left behind
    assert (settings.client.state_dir / "daemon-state.json").stat().st_mode & 0o777 == 0o600


# --- stopping --------------------------------------------------------------------------------------


def test_stop_reaches_running_schools_and_the_daemon_exits_0_after_them(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=2)
    finished: list[str] = []

    def behaviour(school: SchoolSettings, stop: threading.Event) -> str:
        stop.wait(30)  # a long run, stopping "between batches" when told
        time.sleep(0.2)
        finished.append(school.dfes_number)
        return "partial"

    run = RecordingRun(behaviour)
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.running == 2)
    began = time.monotonic()
    assert daemon_run.finish() == 0
    assert time.monotonic() - began < 5
    assert sorted(finished) == ["6600001", "6600002"]  # waited for both
    assert sorted(run.saw_stop) == ["6600001", "6600002"]


def test_no_new_round_starts_after_stop(tmp_path: Path, start: Callable[..., Running]) -> None:
    settings = make_settings(tmp_path, schools=1)
    run = RecordingRun()
    daemon_run = start(settings, run)
    assert wait_until(lambda: run.count("6600001") >= 1)
    assert daemon_run.finish() == 0
    calls = len(run.calls)
    time.sleep(1.5)
    assert len(run.calls) == calls


def test_stop_ends_the_jitter_wait_without_running_anything(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=1, jitter_seconds=3600)
    run = RecordingRun()
    daemon_run = start(settings, run)
    time.sleep(1.5)  # the first round is waiting out its jitter now
    began = time.monotonic()
    assert daemon_run.finish() == 0
    assert time.monotonic() - began < 5
    assert run.calls == []


def test_sigterm_to_the_daemon_command_stops_it_cleanly_with_exit_0(tmp_path: Path) -> None:
    """A real process, a real SIGTERM: cmd_daemon turns it into a clean stop."""
    marker = tmp_path / "runs.log"
    script = textwrap.dedent(
        f"""
        import sys, threading
        from dataclasses import dataclass
        from hwb_client.settings import Settings
        from hwb_client.service_commands import cmd_daemon

        @dataclass
        class Result:
            run_id: str = "r"
            outcome: str = "success"

        def run_school(settings, school, *, stop, lock_wait_seconds):
            with open({str(marker)!r}, "a") as f:
                f.write(school.dfes_number + "\\n")
            stop.wait(60)
            with open({str(marker)!r}, "a") as f:
                f.write("stopped\\n")
            return Result()

        settings = Settings(
            client={{"state_dir": {str(tmp_path / "state")!r}}},
            schedule={{"test_interval_seconds": 1, "jitter_seconds": 0}},
            schools=[{{"dfes_number": "6600001", "odbc": "DSN=x"}}],
        )
        sys.exit(cmd_daemon(settings, run_school=run_school))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert wait_until(lambda: marker.exists() and "6600001" in marker.read_text(), timeout=15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert marker.read_text().splitlines()[-1] == "stopped"


# --- catch-up at start-up --------------------------------------------------------------------------

TERM_DAY_NOON = dt.datetime(2026, 10, 7, 11, 0, tzinfo=dt.UTC)  # Wednesday, term time (default terms)


def write_state(settings: Settings, **fields: Any) -> None:
    settings.client.state_dir.mkdir(parents=True, exist_ok=True)
    body = {"version": 1, "created_at": "2026-09-01T00:00:00+00:00", **fields}
    (settings.client.state_dir / "daemon-state.json").write_text(json.dumps(body), encoding="utf-8")


def test_runs_missed_while_off_are_made_up_by_one_round_at_start(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=2, test_interval_seconds=None)
    write_state(settings, last_round_at="2026-10-03T01:00:00+00:00")  # four nightly runs missed
    run = RecordingRun()
    daemon_run = start(settings, run, clock=lambda: TERM_DAY_NOON)
    assert wait_until(lambda: len(run.calls) == 2)
    time.sleep(1.0)
    assert daemon_run.finish() == 0
    assert sorted(d for d, _ in run.calls) == ["6600001", "6600002"]  # one round, not four
    state = read_state(settings)
    assert state["last_round_rule"] == "term_nightly"
    assert state["last_round_at"] == "2026-10-07T11:00:00+00:00"


def test_no_catch_up_when_the_last_round_was_after_the_latest_due_time(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=1, test_interval_seconds=None)
    write_state(settings, last_round_at="2026-10-07T01:01:00+00:00")  # 02:01 BST, after the 02:00 run
    run = RecordingRun()
    daemon_run = start(settings, run, clock=lambda: TERM_DAY_NOON)
    time.sleep(1.5)
    assert daemon_run.finish() == 0
    assert run.calls == []


def test_first_start_without_state_waits_for_the_schedule(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    settings = make_settings(tmp_path, schools=1, test_interval_seconds=None)
    run = RecordingRun()
    daemon_run = start(settings, run, clock=lambda: TERM_DAY_NOON)
    assert wait_until(lambda: (settings.client.state_dir / "daemon-state.json").exists())
    time.sleep(1.0)
    assert daemon_run.finish() == 0
    assert run.calls == []
    assert read_state(settings)["created_at"] == "2026-10-07T11:00:00+00:00"


def test_catch_up_can_be_switched_off(tmp_path: Path, start: Callable[..., Running]) -> None:
    settings = make_settings(tmp_path, schools=1, test_interval_seconds=None, catch_up_on_start=False)
    write_state(settings, last_round_at="2026-10-03T01:00:00+00:00")
    run = RecordingRun()
    daemon_run = start(settings, run, clock=lambda: TERM_DAY_NOON)
    time.sleep(1.5)
    assert daemon_run.finish() == 0
    assert run.calls == []


def test_an_unreadable_state_file_is_treated_as_a_first_start(tmp_path: Path) -> None:
    state = daemon.DaemonState.from_json(b"{not json", now=TERM_DAY_NOON)
    assert state.created_at == TERM_DAY_NOON
    assert state.last_round_at is None


# --- the trigger -----------------------------------------------------------------------------------


def test_policy_trigger_fires_at_the_calendar_next_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, test_interval_seconds=None)
    trigger = daemon.PolicyTrigger(settings.schedule)
    now = dt.datetime(2026, 8, 28, 12, tzinfo=dt.UTC)
    assert trigger.get_next_fire_time(None, now) == calendar.next_run(settings.schedule, now).at
    fired = calendar.next_run(settings.schedule, now).at
    assert trigger.get_next_fire_time(fired, fired) == dt.datetime(
        2026, 8, 31, 1, tzinfo=dt.UTC
    )  # 30 Aug, then the day before term


def test_policy_trigger_coalesces_missed_times_into_the_next_future_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, test_interval_seconds=None)
    trigger = daemon.PolicyTrigger(settings.schedule)
    long_ago = dt.datetime(2026, 7, 1, 1, tzinfo=dt.UTC)
    now = dt.datetime(2026, 10, 7, 11, tzinfo=dt.UTC)
    assert trigger.get_next_fire_time(long_ago, now) == dt.datetime(2026, 10, 8, 1, tzinfo=dt.UTC)


def test_missing_term_dates_fall_back_to_nightly_runs_not_to_no_runs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, test_interval_seconds=None)
    after = dt.datetime(2027, 8, 10, 12, tzinfo=dt.UTC)  # the default terms end on 2027-07-20
    run = daemon.next_scheduled_run(settings.schedule, after)
    assert run.rule == "fallback_nightly"
    assert run.at == dt.datetime(2027, 8, 11, 1, tzinfo=dt.UTC)


# --- sd_notify -------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_sd_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready("starting") is False


def test_sd_notify_sends_one_datagram_of_fields(notify_socket: socket.socket) -> None:
    assert systemd.ready("next run soon")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=next run soon"


def test_sd_notify_reaches_an_abstract_socket() -> None:
    name = f"hwb-client-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert systemd.notify("STATUS=x", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STATUS=x"


def test_sd_notify_to_a_missing_socket_does_not_raise(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_daemon_tells_systemd_it_is_ready_and_stopping(
    tmp_path: Path, start: Callable[..., Running], notify_socket: socket.socket
) -> None:
    settings = make_settings(tmp_path, schools=1, test_interval_seconds=3600)
    daemon_run = start(settings, RecordingRun())
    first = notify_socket.recv(4096).decode()
    assert first.startswith("READY=1\nSTATUS=next run ")
    assert daemon_run.finish() == 0
    messages = []
    notify_socket.settimeout(1)
    try:
        while True:
            messages.append(notify_socket.recv(4096).decode())
    except TimeoutError:
        pass
    assert any(m.startswith("STOPPING=1") for m in messages)


def test_cmd_daemon_off_the_main_thread_still_stops_on_its_event(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, schools=1, test_interval_seconds=3600)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(cmd_daemon(settings, stop=stop, run_school=RecordingRun())), daemon=True
    )
    thread.start()
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    assert result == [0]

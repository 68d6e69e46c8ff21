"""The daemon: run every enabled school at each time the academic calendar says, until told to stop.

One APScheduler 3.x job on a ``PolicyTrigger`` whose next fire time comes from the pure calendar
(``core.calendar.next_run``): no ``OrTrigger`` of ``CronTrigger``\\ s (they fire outside their date
windows in 3.x). The job is ``coalesce=True``, ``max_instances=1`` and has no misfire limit, so a run
missed while the process was busy or the machine asleep is made up once, not skipped and not repeated.

At each due time, after a random jitter (``schedule.jitter_seconds``), every enabled school is handed
to a pool of ``schedule.max_concurrent_schools`` threads, each running its school in a worker process
(``workers``; in the thread itself on Windows). A school still running from the previous round is
skipped this round, so one slow school holds up neither the others nor the next round.

Runs missed while the machine was off are coalesced into one catch-up round at start-up: the time of
the last round is kept in ``state_dir/daemon-state.json`` (written atomically).

Stopping: set ``stop`` (SIGTERM/SIGINT on Linux via ``service_commands.cmd_daemon``, the service stop
handler on Windows). No new round starts, the jitter wait ends, queued schools are cancelled, running
schools get the same event and stop between batches; then ``run_daemon`` returns 0. Under systemd
(``NOTIFY_SOCKET``) it reports ``READY=1``, ``STATUS=...`` and ``STOPPING=1``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import faulthandler
import json
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from hwb_client import i18n
from hwb_client.core import calendar
from hwb_client.errors import ConfigError, HwbClientError, RunInProgress
from hwb_client.i18n import ngettext
from hwb_client.platform import systemd
from hwb_client.platform.files import atomic_write
from hwb_client.settings import ScheduleSettings, SchoolSettings, Settings
from hwb_client.workers import close_idle, largest_first

log = structlog.get_logger("hwb_client.daemon")

STATE_FILE = "daemon-state.json"
STATE_VERSION = 1
# How soon before the calendar runs out the daemon starts warning that next year's terms are missing.
CALENDAR_WARNING_DAYS = 60
# A stop that takes longer than this dumps every thread's stack to stderr (systemd waits 90 s).
STOP_TRACEBACK_AFTER_SECONDS = 20
_MAIN_THREAD_TICK_SECONDS = 1.0


class RunResultLike(Protocol):
    """What the daemon reads from ``hwb_client.run.RunResult``."""

    @property
    def run_id(self) -> str: ...
    @property
    def outcome(self) -> str: ...


class RunSchool(Protocol):
    """``hwb_client.run.run_school``, as the daemon calls it."""

    def __call__(
        self, settings: Settings, school: SchoolSettings, *, stop: threading.Event, lock_wait_seconds: float
    ) -> RunResultLike: ...


Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The real clock (aware, UTC)."""
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _parse(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass
class DaemonState:
    """What the daemon remembers between starts (``state_dir/daemon-state.json``)."""

    created_at: dt.datetime
    last_round_at: dt.datetime | None = None
    last_round_rule: str | None = None
    schools: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "version": STATE_VERSION,
            "created_at": _iso(self.created_at),
            "last_round_at": _iso(self.last_round_at),
            "last_round_rule": self.last_round_rule,
            "schools": self.schools,
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, now: dt.datetime) -> DaemonState:
        """Parse the file; anything unreadable is treated as no memory at all (never blocks a start)."""
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return cls(created_at=now)
        if not isinstance(body, dict):
            return cls(created_at=now)
        schools = body.get("schools")
        return cls(
            created_at=_parse(body.get("created_at")) or now,
            last_round_at=_parse(body.get("last_round_at")),
            last_round_rule=body.get("last_round_rule")
            if isinstance(body.get("last_round_rule"), str)
            else None,
            schools=schools if isinstance(schools, dict) else {},
        )


def state_path(settings: Settings) -> Path:
    return settings.client.state_dir / STATE_FILE


def read_daemon_state(settings: Settings, *, now: dt.datetime | None = None) -> DaemonState | None:
    """The daemon's state file, or ``None`` if the daemon has never run here."""
    try:
        data = state_path(settings).read_bytes()
    except FileNotFoundError:
        return None
    return DaemonState.from_json(data, now=now or utc_now())


def next_scheduled_run(schedule: ScheduleSettings, after: dt.datetime) -> calendar.ScheduledRun:
    """The calendar's next run; if the calendar cannot say (term dates missing), a nightly fallback.

    The ``ConfigError`` is logged (``schedule_terms_missing``) every time: missing dates must never
    stop the client running over the summer.
    """
    try:
        return calendar.next_run(schedule, after)
    except ConfigError as exc:
        log.error("schedule_terms_missing", error=exc.english, fallback="fallback_nightly")
        return calendar.fallback_run(schedule, after)


class PolicyTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """An APScheduler trigger that asks the pure calendar policy for the next due time."""

    def __init__(self, schedule: ScheduleSettings) -> None:
        self.schedule = schedule

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        after = now if previous_fire_time is None else max(previous_fire_time, now)
        return next_scheduled_run(self.schedule, after).at

    def __str__(self) -> str:
        return "academic-calendar"

    def __repr__(self) -> str:
        return "<PolicyTrigger academic-calendar>"


class _Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event,
        run_school: RunSchool,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.schedule = settings.schedule
        self.stop = stop
        self.run_school = run_school
        self.clock = clock
        self.rng = rng
        self.state_lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.schedule.max_concurrent_schools, thread_name_prefix="hwb-school"
        )
        now = clock()
        self.state = read_daemon_state(settings, now=now) or DaemonState(created_at=now)
        self.catch_up: calendar.ScheduledRun | None = None

    # -- state ------------------------------------------------------------------------------------

    def save_state(self) -> None:
        with self.state_lock:
            data = self.state.to_json()
        try:
            atomic_write(state_path(self.settings), data, mode=0o600)
        except OSError as exc:
            log.error("daemon_state_write_failed", error=exc.strerror, path=str(state_path(self.settings)))

    def catch_up_owed(self) -> calendar.ScheduledRun | None:
        """The one run owed at start-up for rounds missed while the daemon was not running."""
        if not self.schedule.catch_up_on_start:
            return None
        reference = self.state.last_round_at or self.state.created_at
        now = self.clock()
        try:
            return calendar.missed_since(self.schedule, reference, now)
        except ConfigError as exc:
            log.error("schedule_terms_missing", error=exc.english, fallback="fallback_nightly")
            fallback = calendar.fallback_run(self.schedule, now - dt.timedelta(days=1))
            return fallback if reference < fallback.at <= now else None

    # -- one round --------------------------------------------------------------------------------

    def start_round(self) -> None:
        """The job: wait the jitter, then hand every enabled school to the pool."""
        if self.stop.is_set():
            return
        catch_up, self.catch_up = self.catch_up, None
        jitter = self.rng.uniform(0, self.schedule.jitter_seconds) if self.schedule.jitter_seconds else 0.0
        if jitter and self.stop.wait(jitter):
            return
        now = self.clock()
        if catch_up is not None:
            rule, reason = catch_up.rule, "catch_up"
        else:
            reason = "scheduled"
            try:
                rule = calendar.previous_run(self.schedule, now).rule
            except ConfigError:
                rule = "fallback_nightly"
        with self.state_lock:
            self.state.last_round_at = now
            self.state.last_round_rule = rule
        self.save_state()
        enabled = [school for school in self.settings.schools if school.enabled]
        schools = largest_first(self.settings.client.state_dir, enabled)  # the longest first
        from hwb_client.operator.alerts import check_all

        check_all(self.settings)  # a school overdue since the last round is alerted now (once)
        log.info(
            "round_started", rule=rule, reason=reason, schools=len(schools), jitter_seconds=round(jitter)
        )
        for school in schools:
            if self.stop.is_set():
                break
            with self.state_lock:
                if school.dfes_number in self.in_flight:
                    log.warning("school_run_still_in_progress", dfes=school.dfes_number)
                    continue
                self.in_flight.add(school.dfes_number)
            try:
                self.pool.submit(self.run_one, school)
            except RuntimeError:  # the pool is shutting down: we are stopping
                with self.state_lock:
                    self.in_flight.discard(school.dfes_number)
                break
        self.report_status()

    def run_one(self, school: SchoolSettings) -> None:
        dfes = school.dfes_number
        outcome: str = "failed"
        run_id: str | None = None
        try:
            if self.stop.is_set():
                outcome = "not_started"
                return
            log.info("school_run_started", dfes=dfes)
            result = self.run_school(self.settings, school, stop=self.stop, lock_wait_seconds=0.0)
            outcome, run_id = result.outcome, result.run_id
            log.info("school_run_finished", dfes=dfes, run_id=run_id, outcome=outcome)
        except RunInProgress:
            outcome = "skipped_in_progress"
            log.warning("school_run_skipped_in_progress", dfes=dfes)
        except HwbClientError as exc:
            log.error("school_run_failed", dfes=dfes, error=type(exc).__name__, exit_code=exc.exit_code)
        except Exception:  # a bug in one school's run must not stop the daemon or the other schools
            log.exception("school_run_crashed", dfes=dfes)
        finally:
            finished = self.clock()
            with self.state_lock:
                self.in_flight.discard(dfes)
                round_over = not self.in_flight
                if outcome != "not_started":
                    entry = self.state.schools.setdefault(dfes, {})
                    entry.update(last_outcome=outcome, last_finished_at=_iso(finished), last_run_id=run_id)
                    if outcome in {"success", "partial"}:
                        entry["last_success_at"] = _iso(finished)
            if outcome != "not_started":
                self.save_state()
            if round_over:  # idle worker processes give their memory back until the next round
                close_idle(self.run_school)

    # -- status -----------------------------------------------------------------------------------

    def status_line(self) -> str:
        upcoming = next_scheduled_run(self.schedule, self.clock())
        local = i18n.format_date(upcoming.at.date()) + upcoming.at.strftime(" %H:%M %Z")
        running = len(self.in_flight)
        return ngettext(
            "next run {at} ({rule}); {count} school run in progress",
            "next run {at} ({rule}); {count} school runs in progress",
            running,
        ).format(at=local, rule=upcoming.rule, count=running)

    def report_status(self) -> None:
        systemd.status(self.status_line())

    def warn_if_calendar_ends_soon(self) -> None:
        if self.schedule.test_interval_seconds is not None:
            log.warning("schedule_test_interval_in_use", seconds=self.schedule.test_interval_seconds)
            return
        try:
            cal = calendar.academic_calendar(self.schedule)
        except ConfigError as exc:
            log.error("schedule_terms_invalid", error=exc.english)
            return
        if cal.uses_defaults:
            log.warning("schedule_default_terms_in_use", calendar_ends=cal.last_day.isoformat())
        today = self.clock().astimezone(dt.UTC).date()
        if (cal.last_day - today).days < CALENDAR_WARNING_DAYS:
            log.warning(
                "schedule_terms_ending",
                calendar_ends=cal.last_day.isoformat(),
                action="add the next academic year's [[schedule.terms]]",
            )

    # -- lifetime ---------------------------------------------------------------------------------

    def serve(self) -> int:
        from hwb_client.operator import monitoring

        with monitoring.coalesced():  # the status and Prometheus files: at most every 2 s
            return self._serve()

    def _serve(self) -> int:
        owed = self.catch_up_owed()
        self.save_state()
        self.warn_if_calendar_ends_soon()
        scheduler = BackgroundScheduler(timezone=self.schedule.timezone)
        job_options: dict[str, Any] = {
            "id": "academic-calendar",
            "name": "run all schools",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": None,
            "replace_existing": True,
        }
        if owed is not None:
            # The one job's first fire is now: one catch-up round for everything missed while off.
            log.info("catch_up_owed", missed_rule=owed.rule, missed_at=_iso(owed.at))
            self.catch_up = owed
            job_options["next_run_time"] = dt.datetime.now(dt.UTC)
        scheduler.add_job(self.start_round, trigger=PolicyTrigger(self.schedule), **job_options)
        scheduler.start()
        log.info("daemon_started", schools=len(self.settings.schools), catch_up=owed is not None)
        systemd.ready(self.status_line())
        try:
            # Wake now and then: Python runs a signal's handler only in the main thread, and only when it
            # wakes; a wait with no timeout can miss a SIGTERM the kernel gave to another thread.
            while not self.stop.wait(_MAIN_THREAD_TICK_SECONDS):
                pass
        finally:
            log.info("daemon_stopping", running=len(self.in_flight))
            systemd.stopping("stopping: waiting for running schools to reach a batch boundary")
            # Still stopping after this long: write every thread's stack to stderr (the journal, the
            # service's log) so that whoever waits can see what holds it; the stop goes on.
            watching = _dump_stacks_later(STOP_TRACEBACK_AFTER_SECONDS)
            try:
                # Never pause first: a paused 3.11 scheduler can still run due jobs once during shutdown.
                scheduler.shutdown(wait=True)
                self.pool.shutdown(wait=True, cancel_futures=True)
                close_idle(self.run_school)
            finally:
                if watching:
                    faulthandler.cancel_dump_traceback_later()
            self.save_state()
            log.info("daemon_stopped")
        return 0


def _dump_stacks_later(seconds: float) -> bool:
    """Arm faulthandler's timer when there is a stderr to write to (a Windows service has none)."""
    try:
        faulthandler.dump_traceback_later(seconds, repeat=False, file=sys.stderr)
    except (AttributeError, ValueError, RuntimeError, OSError):  # no stderr, or no file number
        return False
    return True


def _default_run_school(settings: Settings) -> RunSchool:
    from hwb_client.workers import school_runner  # worker processes, where they help

    return school_runner(settings.schedule.max_concurrent_schools)


def run_daemon(
    settings: Settings,
    *,
    stop: threading.Event,
    run_school: RunSchool | None = None,
    clock: Clock = utc_now,
    rng: random.Random | None = None,
) -> int:
    """Run until ``stop`` is set; return 0 after a clean stop.

    ``run_school`` defaults to ``hwb_client.run.run_school``, each school in a worker process when
    schools run side by side (``workers``). ``clock`` dates the state file and decides
    the start-up catch-up (APScheduler itself keeps real time). ``rng`` draws the jitter.
    """
    daemon = _Daemon(
        settings,
        stop=stop,
        run_school=run_school or _default_run_school(settings),
        clock=clock,
        rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
    )
    return daemon.serve()

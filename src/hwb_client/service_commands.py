"""The ``daemon`` and ``schedule`` commands, and the schedule part of ``status``.

``cli.py`` parses the arguments and maps errors to exit codes; these functions do the work.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import structlog

from hwb_client import i18n
from hwb_client.core import calendar
from hwb_client.daemon import CALENDAR_WARNING_DAYS, Clock, RunSchool, run_daemon, utc_now
from hwb_client.errors import ConfigError
from hwb_client.i18n import _
from hwb_client.logs import reopen_log_files
from hwb_client.settings import Settings

log = structlog.get_logger("hwb_client.service")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop`` (a clean stop) instead of killing the process, and
    SIGHUP reopens the log file (after logrotate renamed it) and does nothing else.

    Only the main thread can install handlers; elsewhere (and for a Windows service, whose stop
    handler sets the event itself) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    def reopen(signum: int, _frame: FrameType | None) -> None:
        log.info("log_files_reopened", signal="SIGHUP", files=reopen_log_files())

    wanted = [signal.SIGTERM, signal.SIGINT]
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reopen)  # logrotate: reopen, nothing else
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def cmd_daemon(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    run_school: RunSchool | None = None,
    clock: Clock = utc_now,
) -> int:
    """``hwb-client daemon``: run on the schedule until SIGTERM/SIGINT; 0 after a clean stop."""
    stop = stop or threading.Event()
    if sys.platform == "win32":  # pragma: no cover - the Windows service sets `stop` from SvcStop
        return run_daemon(settings, stop=stop, run_school=run_school, clock=clock)
    with stop_on_signals(stop):
        return run_daemon(settings, stop=stop, run_school=run_school, clock=clock)


def _start_of(start: dt.datetime | dt.date | None, zone: ZoneInfo, clock: Clock) -> dt.datetime:
    if start is None:
        return clock()
    if not isinstance(start, dt.datetime):
        start = dt.datetime.combine(start, dt.time(0, 0))
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    return start - dt.timedelta(microseconds=1)  # a run exactly at the start counts


def cmd_schedule(
    settings: Settings,
    count: int,
    start: dt.datetime | dt.date | None = None,
    *,
    out: TextIO | None = None,
    clock: Clock = utc_now,
) -> int:
    """``hwb-client schedule --next N [--from DATE]``: print the coming runs, one a line.

    ``2026-08-30 02:00 Sun august_30``. A naive ``start`` is wall-clock time in
    ``schedule.timezone``. If the term dates run out first, the runs known are printed and the
    ``ConfigError`` naming ``schedule.terms`` is raised.
    """
    out = out or sys.stdout
    schedule = settings.schedule
    zone = ZoneInfo(schedule.timezone)
    after = _start_of(start, zone, clock)
    if schedule.test_interval_seconds is not None:
        rehearsal = _("test_interval_seconds = {seconds}: REHEARSAL MODE, calendar ignored")
        out.write("# " + rehearsal.format(seconds=schedule.test_interval_seconds) + "\n")
    else:
        cal = calendar.academic_calendar(schedule)
        source = (
            _("built-in Welsh defaults (replace with your LA's dates)")
            if cal.uses_defaults
            else _("configured")
        )
        terms = _("term dates: {source}, {first_day} to {last_day}; time zone {timezone}").format(
            source=source,
            first_day=i18n.format_date(cal.first_day),
            last_day=i18n.format_date(cal.last_day),
            timezone=schedule.timezone,
        )
        out.write(f"# {terms}\n")
    width = _weekday_width()
    date, time, day, rule = _("date"), _("time"), _("day"), _("rule")  # the column headings
    out.write(f"{date:<10} {time:<5} {day:<{width}} {rule}\n")
    for index, run in enumerate(calendar.iter_runs(schedule, after)):
        if index >= count:
            break
        local = run.at.astimezone(zone)
        out.write(f"{local:%Y-%m-%d} {local:%H:%M} {_weekday(local):<{width}} {run.rule}\n")
    return 0


def _weekday(moment: dt.datetime) -> str:
    """The day's short name in the active language: ``Sun`` in English, ``Sul`` in Welsh."""
    if i18n.language() == i18n.DEFAULT_LANGUAGE:
        return f"{moment:%a}"
    from babel.dates import format_date

    return str(format_date(moment.date(), "EEE", locale=i18n.language()))


def _weekday_width() -> int:
    """The widest short day name (3 in English; Welsh has ``Llun`` and ``Gwen``)."""
    monday = dt.datetime(2026, 1, 5)
    return max(len(_weekday(monday + dt.timedelta(days=n))) for n in range(7))


def schedule_health(
    settings: Settings, last_success_at: dt.datetime | None, now: dt.datetime
) -> dict[str, Any]:
    """The schedule's view of a school's health, for ``hwb-client status``.

    Keys: ``next_run`` (ISO 8601 with offset), ``next_rule``, ``overdue`` (the last success is older
    than the policy allows, or there was none), ``overdue_at`` (when the last success becomes
    overdue), ``calendar_ends``, ``uses_default_terms``, and ``warning``/``error`` when the term dates
    are missing or about to run out. Never raises for missing dates: it falls back to
    ``max_age_hours`` and says so in ``error``.
    """
    schedule = settings.schedule
    health: dict[str, Any] = {"warning": None, "error": None}
    try:
        upcoming = calendar.next_run(schedule, now)
    except ConfigError as exc:
        health["error"] = exc.message
        upcoming = calendar.fallback_run(schedule, now)
    health["next_run"] = upcoming.at.isoformat()
    health["next_rule"] = upcoming.rule
    if last_success_at is None:
        health["overdue"] = True
        health["overdue_at"] = None
    else:
        try:
            deadline = calendar.success_deadline(schedule, last_success_at)
        except ConfigError as exc:
            health["error"] = health["error"] or exc.message
            deadline = last_success_at + dt.timedelta(hours=schedule.max_age_hours)
        health["overdue"] = now > deadline
        health["overdue_at"] = deadline.isoformat()
    if schedule.test_interval_seconds is None:
        try:
            cal = calendar.academic_calendar(schedule)
        except ConfigError as exc:
            health["error"] = health["error"] or exc.message
        else:
            health["calendar_ends"] = cal.last_day.isoformat()
            health["uses_default_terms"] = cal.uses_defaults
            days_left = (cal.last_day - now.astimezone(ZoneInfo(schedule.timezone)).date()).days
            if days_left < CALENDAR_WARNING_DAYS:
                health["warning"] = _(
                    "schedule.terms end on {last_day}: add the next academic year's [[schedule.terms]]"
                ).format(last_day=i18n.format_date(cal.last_day))
    else:
        health["warning"] = _("schedule.test_interval_seconds is set: rehearsal mode, not the real calendar")
    return health

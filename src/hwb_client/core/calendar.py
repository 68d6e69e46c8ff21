"""The academic-calendar policy: when the client runs unattended. Pure: give it ``now``.

The Hwb rollover guidance asks for a run **weekly through the summer holidays**, **on 30 August**,
**before the first day of term** and **daily in the first week of term**; in term the client runs
**nightly**, and in the shorter holidays **weekly**. Each calendar day has at most one run, chosen by
the first rule that applies, in this order (the rule names are stable: logs, ``hwb-client schedule``
and the daemon's state file use them):

==================== ===================================================================================
``august_30``        the day ``schedule.end_of_year_date`` (30 August), whatever else the day is
``day_before_term``  the last day of a holiday, before a term starts (every term, not only September's)
``first_week_daily`` every day from the first day of the academic year's first term to its
                     ``first_week_days``-th school day (Monday to Friday)
``term_nightly``     a term day whose weekday is in ``schedule.in_term_weekdays``
``summer_weekly``    a summer-holiday day on ``schedule.summer_weekday``
``holiday_weekly``   a day of a shorter holiday (half-term, Christmas, Easter) on ``schedule.holiday_weekday``
==================== ===================================================================================

A run is at ``schedule.run_time`` (or ``schedule.rule_times[rule]``) in ``schedule.timezone``. On the
spring clock change a time that does not exist (01:30 in the UK) moves an hour on; on the autumn change
an ambiguous time is its first occurrence: there is still exactly one run that day.

Terms come from ``[[schedule.terms]]``: each entry is one block of teaching between two holidays (six a
year in Wales). Days between two terms are holidays; the holiday before the academic year's first term
(the one that contains August) is the summer. Without any terms the built-in ``DEFAULT_WELSH_TERMS``
are used: typical Welsh dates for 2025/26 and 2026/27 that an LA should replace with its own. Asking
about a day after the last configured term raises ``ConfigError`` naming ``schedule.terms`` and the
academic year to add.

``schedule.test_interval_seconds`` (for rehearsals and tests only) replaces all of this with a run
every N seconds (rule ``test_interval``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from hwb_client.errors import ConfigError, Phrase
from hwb_client.i18n import N_


class TermLike(Protocol):
    @property
    def start(self) -> dt.date: ...
    @property
    def end(self) -> dt.date: ...


class ScheduleSettings(Protocol):
    """What the calendar reads of the schedule (``settings.ScheduleSettings`` is one): core takes the
    values, not the settings."""

    @property
    def timezone(self) -> str: ...
    @property
    def run_time(self) -> dt.time: ...
    @property
    def rule_times(self) -> Mapping[Any, dt.time]: ...  # keyed by rule name (a Literal in settings)
    @property
    def summer_weekday(self) -> str: ...
    @property
    def first_week_days(self) -> int: ...
    @property
    def in_term_weekdays(self) -> Sequence[str]: ...
    @property
    def holiday_weekday(self) -> str: ...
    @property
    def end_of_year_date(self) -> str: ...
    @property
    def jitter_seconds(self) -> int: ...
    @property
    def max_age_hours(self) -> float: ...
    @property
    def overdue_grace_hours(self) -> float: ...
    @property
    def terms(self) -> Sequence[TermLike]: ...
    @property
    def test_interval_seconds(self) -> int | None: ...


AUGUST_30 = "august_30"
DAY_BEFORE_TERM = "day_before_term"
FIRST_WEEK_DAILY = "first_week_daily"
TERM_NIGHTLY = "term_nightly"
SUMMER_WEEKLY = "summer_weekly"
HOLIDAY_WEEKLY = "holiday_weekly"
TEST_INTERVAL = "test_interval"
RULES = (AUGUST_30, DAY_BEFORE_TERM, FIRST_WEEK_DAILY, TERM_NIGHTLY, SUMMER_WEEKLY, HOLIDAY_WEEKLY)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_DAY = dt.timedelta(days=1)
_TINY = dt.timedelta(microseconds=1)
# The longest holiday a real calendar has; a longer gap between two terms means a year is missing.
MAX_HOLIDAY_DAYS = 70
# Walking this many days without finding a run means the calendar cannot answer (never with valid terms).
_MAX_WALK_DAYS = 800


@dataclass(frozen=True, slots=True)
class TermDates:
    """One block of teaching: first and last day, inclusive (the shape of ``settings.Term``)."""

    start: dt.date
    end: dt.date


def _t(start: str, end: str) -> TermDates:
    return TermDates(dt.date.fromisoformat(start), dt.date.fromisoformat(end))


# DEFAULTS ONLY: typical Welsh term dates (six half-terms a year). Every LA sets its own dates and
# should list them in [[schedule.terms]]; these are used only when the configuration has none.
DEFAULT_WELSH_TERMS: tuple[TermDates, ...] = (
    # 2025/26
    _t("2025-09-01", "2025-10-24"),
    _t("2025-11-03", "2025-12-19"),
    _t("2026-01-05", "2026-02-13"),
    _t("2026-02-23", "2026-03-27"),
    _t("2026-04-13", "2026-05-22"),
    _t("2026-06-01", "2026-07-20"),
    # 2026/27
    _t("2026-09-01", "2026-10-23"),
    _t("2026-11-02", "2026-12-18"),
    _t("2027-01-04", "2027-02-12"),
    _t("2027-02-22", "2027-03-19"),
    _t("2027-04-05", "2027-05-28"),
    _t("2027-06-07", "2027-07-20"),
)


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """One unattended run: when (an aware datetime in the schedule's time zone) and which rule."""

    at: dt.datetime
    rule: str


@dataclass(frozen=True, slots=True)
class AcademicCalendar:
    """The checked terms the policy works from, in date order."""

    terms: tuple[TermDates, ...]
    uses_defaults: bool
    year_starts: frozenset[int]
    first_week_ends: dict[int, dt.date]

    @property
    def first_day(self) -> dt.date:
        return self.terms[0].start

    @property
    def last_day(self) -> dt.date:
        """The last day the calendar knows: the end of the last configured term."""
        return self.terms[-1].end


def _is_school_day(day: dt.date) -> bool:
    return day.weekday() < 5  # Monday..Friday


def _academic_year(day: dt.date) -> str:
    year = day.year if day.month >= 8 else day.year - 1  # August starts the year
    return f"{year}/{str(year + 1)[-2:]}"


def academic_calendar(schedule: ScheduleSettings) -> AcademicCalendar:
    """The terms the policy uses (configured, else the defaults); ``ConfigError`` if a year is missing."""
    terms = tuple(TermDates(term.start, term.end) for term in sorted(schedule.terms, key=lambda t: t.start))
    uses_defaults = not terms
    if uses_defaults:
        terms = DEFAULT_WELSH_TERMS
    for before, after in itertools.pairwise(terms):
        missing_year = _academic_year(before.end + dt.timedelta(days=60))
        if (after.start - before.end).days - 1 > MAX_HOLIDAY_DAYS:
            raise ConfigError(
                N_(
                    "schedule.terms: no term between {end} and {start} ({days} days); a whole academic "
                    "year's dates seem to be missing: add the [[schedule.terms]] of the {year} academic "
                    "year (start and end of each half-term)"
                ),
                end=before.end,
                start=after.start,
                days=(after.start - before.end).days - 1,
                year=missing_year,
            )
    year_starts: set[int] = set()
    first_week_ends: dict[int, dt.date] = {}
    for index, term in enumerate(terms):
        august_1 = dt.date(term.start.year, 8, 1)
        starts_year = term.start.month in (8, 9) and (index == 0 or terms[index - 1].end < august_1)
        if not starts_year:
            continue
        year_starts.add(index)
        school_days = 0
        day = term.start
        last = term.start
        while day <= term.end and school_days < schedule.first_week_days:
            if _is_school_day(day):
                school_days += 1
                last = day
            day += _ONE_DAY
        first_week_ends[index] = last
    return AcademicCalendar(terms, uses_defaults, frozenset(year_starts), first_week_ends)


def _missing_year_error(calendar: AcademicCalendar, day: dt.date) -> ConfigError:
    source = Phrase(
        N_("the built-in default Welsh terms (2025/26 and 2026/27 only; replace them with your LA's dates)")
        if calendar.uses_defaults
        else N_("the configured [[schedule.terms]]")
    )
    if day > calendar.last_day:
        year = _academic_year(max(day, calendar.last_day + _ONE_DAY + dt.timedelta(days=31)))
        return ConfigError(
            N_(
                "schedule.terms: {source} end on {last_day}, so the schedule for {day} is unknown; "
                "add the {year} academic year to the configuration, one [[schedule.terms]] entry per "
                "half-term with its first and last day of teaching, e.g.\n"
                "  [[schedule.terms]]\n  start = 2027-09-01\n  end = 2027-10-22"
            ),
            source=source,
            last_day=calendar.last_day,
            day=day,
            year=year,
        )
    return ConfigError(
        N_(
            "schedule.terms: {source} start on {first_day}, so the schedule for {day} is unknown; "
            "add the [[schedule.terms]] of the {year} academic year"
        ),
        source=source,
        first_day=calendar.first_day,
        day=day,
        year=_academic_year(day),
    )


def rule_for_day(
    schedule: ScheduleSettings, day: dt.date, calendar: AcademicCalendar | None = None
) -> str | None:
    """The rule that runs the client on ``day``, or ``None`` for a day without a run."""
    cal = calendar or academic_calendar(schedule)
    month, day_of_month = (int(part) for part in schedule.end_of_year_date.split("-"))
    if (day.month, day.day) == (month, day_of_month) and cal.first_day - dt.timedelta(
        days=MAX_HOLIDAY_DAYS
    ) <= day <= cal.last_day:
        return AUGUST_30
    starts = [term.start for term in cal.terms]
    index = bisect.bisect_right(starts, day) - 1  # the last term starting on or before `day`
    weekday = _WEEKDAYS[day.weekday()]
    if index >= 0 and day <= cal.terms[index].end:  # a term day
        if index in cal.year_starts and day <= cal.first_week_ends[index]:
            return FIRST_WEEK_DAILY
        return TERM_NIGHTLY if weekday in schedule.in_term_weekdays else None
    if index == len(cal.terms) - 1:
        raise _missing_year_error(cal, day)
    following = index + 1  # a holiday day, before the term `following`
    if following == 0 and (following not in cal.year_starts or (cal.first_day - day).days > MAX_HOLIDAY_DAYS):
        raise _missing_year_error(cal, day)
    if day + _ONE_DAY == cal.terms[following].start:
        return DAY_BEFORE_TERM
    if following in cal.year_starts:
        return SUMMER_WEEKLY if weekday == schedule.summer_weekday else None
    return HOLIDAY_WEEKLY if weekday == schedule.holiday_weekday else None


def _run_at(schedule: ScheduleSettings, day: dt.date, rule: str) -> dt.datetime:
    zone = ZoneInfo(schedule.timezone)
    times = {str(name): at for name, at in schedule.rule_times.items()}
    wall_time = times.get(rule, schedule.run_time).replace(tzinfo=None, fold=0)
    wall = dt.datetime.combine(day, wall_time, tzinfo=zone)
    # Round-trip through UTC: a time skipped by the clock change moves on; an ambiguous one is the first.
    return wall.astimezone(dt.UTC).astimezone(zone)


def run_on(
    schedule: ScheduleSettings, day: dt.date, calendar: AcademicCalendar | None = None
) -> ScheduledRun | None:
    """The run on ``day`` (calendar mode), or ``None``."""
    rule = rule_for_day(schedule, day, calendar)
    return None if rule is None else ScheduledRun(_run_at(schedule, day, rule), rule)


def _require_aware(moment: dt.datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), got {moment!r}")


def _interval_run(schedule: ScheduleSettings, seconds: float) -> ScheduledRun:
    return ScheduledRun(
        dt.datetime.fromtimestamp(seconds, tz=dt.UTC).astimezone(ZoneInfo(schedule.timezone)), TEST_INTERVAL
    )


def iter_runs(schedule: ScheduleSettings, after: dt.datetime) -> Iterator[ScheduledRun]:
    """Scheduled runs strictly after ``after``, in order, without end (until the calendar runs out).

    Raises ``ConfigError`` (lazily, when the walk reaches it) on a day the calendar does not cover.
    """
    _require_aware(after, "after")
    interval = schedule.test_interval_seconds
    if interval is not None:
        slot = int(after.timestamp() // interval)
        while True:
            slot += 1
            yield _interval_run(schedule, slot * interval)
    calendar = academic_calendar(schedule)
    day = after.astimezone(ZoneInfo(schedule.timezone)).date()
    empty_days = 0
    while True:
        run = run_on(schedule, day, calendar)
        if run is not None and run.at > after:
            empty_days = 0
            yield run
        else:
            empty_days += 1
            if empty_days > _MAX_WALK_DAYS:  # pragma: no cover - impossible with validated settings
                raise ConfigError(
                    N_("schedule: the policy yields no run at all; check schedule.in_term_weekdays")
                )
        day += _ONE_DAY


def next_runs(schedule: ScheduleSettings, after: dt.datetime, count: int) -> list[ScheduledRun]:
    """The next ``count`` runs strictly after ``after``; ``ConfigError`` if the calendar runs out first."""
    runs: list[ScheduledRun] = []
    if count <= 0:
        return runs
    for run in iter_runs(schedule, after):
        runs.append(run)
        if len(runs) == count:
            break
    return runs


def next_run(schedule: ScheduleSettings, after: dt.datetime) -> ScheduledRun:
    """The first run strictly after ``after``."""
    return next_runs(schedule, after, 1)[0]


def previous_run(schedule: ScheduleSettings, at_or_before: dt.datetime) -> ScheduledRun:
    """The latest run at or before ``at_or_before``."""
    _require_aware(at_or_before, "at_or_before")
    interval = schedule.test_interval_seconds
    if interval is not None:
        return _interval_run(schedule, (at_or_before.timestamp() // interval) * interval)
    calendar = academic_calendar(schedule)
    day = at_or_before.astimezone(ZoneInfo(schedule.timezone)).date()
    for _ in range(_MAX_WALK_DAYS):
        run = run_on(schedule, day, calendar)
        if run is not None and run.at <= at_or_before:
            return run
        day -= _ONE_DAY
    raise ConfigError(  # pragma: no cover - impossible with validated settings
        N_("schedule: the policy yields no run at all; check schedule.in_term_weekdays")
    )


def missed_since(
    schedule: ScheduleSettings, last_run_at: dt.datetime | None, now: dt.datetime
) -> ScheduledRun | None:
    """The run owed at ``now``: the latest scheduled run in ``(last_run_at, now]``, or ``None``.

    Runs missed while the machine was off are coalesced: however many there were, this is one run
    (the latest). With no previous run (``None``) nothing is owed: a new install waits for its first
    scheduled run or a run by hand.
    """
    _require_aware(now, "now")
    if last_run_at is None:
        return None
    _require_aware(last_run_at, "last_run_at")
    if last_run_at >= now:
        return None
    latest = previous_run(schedule, now)
    return latest if latest.at > last_run_at else None


def is_due(schedule: ScheduleSettings, last_run_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a scheduled run has come round since ``last_run_at`` (see ``missed_since``)."""
    return missed_since(schedule, last_run_at, now) is not None


def _grace(schedule: ScheduleSettings) -> dt.timedelta:
    if schedule.test_interval_seconds is not None:
        return dt.timedelta(seconds=2 * schedule.test_interval_seconds)
    return dt.timedelta(hours=schedule.overdue_grace_hours, seconds=schedule.jitter_seconds)


def success_deadline(schedule: ScheduleSettings, last_success_at: dt.datetime) -> dt.datetime:
    """When the last successful run becomes overdue.

    The next scheduled run after it, plus a grace (``overdue_grace_hours`` and the jitter; twice the
    interval in test-interval mode) for that run to start and finish, and never later than
    ``max_age_hours`` after it. So the age allowed is the gap to the next scheduled run plus the grace:
    a week and a few hours in the holidays, a day and a few hours in term.
    """
    _require_aware(last_success_at, "last_success_at")
    cap = last_success_at + dt.timedelta(hours=schedule.max_age_hours)
    following = next_run(schedule, last_success_at)
    return min(following.at + _grace(schedule), cap)


def allowed_age(schedule: ScheduleSettings, last_success_at: dt.datetime) -> dt.timedelta:
    """How old a successful run at ``last_success_at`` may get before it is overdue."""
    return success_deadline(schedule, last_success_at) - last_success_at


def overdue(last_success_at: dt.datetime | None, now: dt.datetime, schedule: ScheduleSettings) -> bool:
    """Whether the last successful run is older than the policy allows (never succeeded: overdue).

    True once a scheduled run has come and gone (with its grace) without a success since, or
    ``max_age_hours`` have passed. ``ConfigError`` if the calendar cannot say when the next run was.
    """
    _require_aware(now, "now")
    if last_success_at is None:
        return True
    return now > success_deadline(schedule, last_success_at)


def fallback_run(schedule: ScheduleSettings, after: dt.datetime) -> ScheduledRun:
    """A nightly run at ``run_time`` for when the calendar cannot answer (rule ``fallback_nightly``).

    The daemon uses it so that missing term dates never stop the client running; it logs the
    ``ConfigError`` each time.
    """
    _require_aware(after, "after")
    zone = ZoneInfo(schedule.timezone)
    day = after.astimezone(zone).date()
    while True:
        at = _run_at(schedule, day, "fallback_nightly")
        if at > after:
            return ScheduledRun(at, "fallback_nightly")
        day += _ONE_DAY


def calendar_ends(schedule: ScheduleSettings) -> dt.date:
    """The last day the configured (or default) calendar covers."""
    return academic_calendar(schedule).last_day

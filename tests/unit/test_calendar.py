"""The academic-calendar policy (hwb_client.core.calendar): when the client runs unattended."""

from __future__ import annotations

import ast
import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hwb_client.core import calendar as cal
from hwb_client.errors import ConfigError
from hwb_client.settings import ScheduleSettings, Term

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def at(text: str) -> dt.datetime:
    """A London wall-clock time, e.g. at('2026-08-30 01:00')."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=LONDON)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def runs_between(schedule: ScheduleSettings, start: str, end: str) -> list[cal.ScheduledRun]:
    """Every run from the start of day ``start`` to the end of day ``end`` (London)."""
    stop = at(end + " 23:59:59")
    found = []
    for run in cal.iter_runs(schedule, at(start + " 00:00") - dt.timedelta(microseconds=1)):
        if run.at > stop:
            break
        found.append(run)
    return found


def by_day(runs: list[cal.ScheduledRun]) -> dict[dt.date, str]:
    return {run.at.date(): run.rule for run in runs}


DEFAULT = ScheduleSettings()


# --- the default calendar -------------------------------------------------------------------------


def test_default_calendar_is_used_when_no_terms_are_configured() -> None:
    calendar = cal.academic_calendar(DEFAULT)
    assert calendar.uses_defaults
    assert calendar.first_day == day("2025-09-01")
    assert calendar.last_day == day("2027-07-20")


def test_default_calendar_has_six_terms_a_year_starting_in_september() -> None:
    starts = [term.start for term in cal.DEFAULT_WELSH_TERMS]
    assert len(starts) == 12
    assert day("2025-09-01") in starts
    assert day("2026-09-01") in starts
    assert all(term.start <= term.end for term in cal.DEFAULT_WELSH_TERMS)


def test_configured_terms_replace_the_defaults() -> None:
    schedule = ScheduleSettings(terms=[Term(start=day("2030-09-02"), end=day("2030-10-25"))])
    calendar = cal.academic_calendar(schedule)
    assert not calendar.uses_defaults
    assert calendar.first_day == day("2030-09-02")


def test_terms_are_sorted_whatever_order_they_are_written_in() -> None:
    schedule = ScheduleSettings(
        terms=[
            Term(start=day("2026-11-02"), end=day("2026-12-18")),
            Term(start=day("2026-09-01"), end=day("2026-10-23")),
        ]
    )
    assert [t.start for t in cal.academic_calendar(schedule).terms] == [day("2026-09-01"), day("2026-11-02")]


# --- the rules, on the 2026 rollover ----------------------------------------------------------------


def test_summer_holiday_has_weekly_runs_on_the_summer_weekday() -> None:
    runs = by_day(runs_between(DEFAULT, "2026-07-21", "2026-08-29"))
    assert runs == {
        day("2026-07-27"): "summer_weekly",
        day("2026-08-03"): "summer_weekly",
        day("2026-08-10"): "summer_weekly",
        day("2026-08-17"): "summer_weekly",
        day("2026-08-24"): "summer_weekly",
    }


def test_summer_weekday_setting_moves_the_weekly_summer_run() -> None:
    runs = by_day(runs_between(ScheduleSettings(summer_weekday="wed"), "2026-07-21", "2026-08-28"))
    assert {d.strftime("%a") for d in runs} == {"Wed"}
    assert len(runs) == 6


def test_there_is_a_run_on_30_august() -> None:
    assert cal.rule_for_day(DEFAULT, day("2026-08-30")) == "august_30"
    assert cal.rule_for_day(DEFAULT, day("2025-08-30")) == "august_30"


def test_end_of_year_date_setting_moves_the_august_run() -> None:
    schedule = ScheduleSettings(end_of_year_date="08-28")
    assert cal.rule_for_day(schedule, day("2026-08-28")) == "august_30"
    assert cal.rule_for_day(schedule, day("2026-08-30")) is None


def test_there_is_a_run_the_day_before_the_first_day_of_term() -> None:
    assert cal.rule_for_day(DEFAULT, day("2026-08-31")) == "day_before_term"


def test_there_is_a_run_the_day_before_every_term_after_a_holiday() -> None:
    assert cal.rule_for_day(DEFAULT, day("2026-11-01")) == "day_before_term"  # after half-term
    assert cal.rule_for_day(DEFAULT, day("2027-01-03")) == "day_before_term"  # after Christmas


def test_first_week_of_term_is_daily_for_five_school_days() -> None:
    runs = by_day(runs_between(DEFAULT, "2026-09-01", "2026-09-08"))
    # Tuesday 1 September to Monday 7 September is five school days; the weekend between runs too.
    assert [runs[day(f"2026-09-0{n}")] for n in range(1, 8)] == ["first_week_daily"] * 7
    assert runs[day("2026-09-08")] == "term_nightly"


def test_first_week_days_setting_lengthens_the_daily_runs() -> None:
    schedule = ScheduleSettings(first_week_days=7, in_term_weekdays=["mon", "wed"])
    runs = by_day(runs_between(schedule, "2026-09-01", "2026-09-16"))
    assert all(runs[day("2026-09-01") + dt.timedelta(days=n)] == "first_week_daily" for n in range(9))
    assert day("2026-09-10") not in runs  # Thursday, nightly only on Monday and Wednesday now
    assert runs[day("2026-09-14")] == "term_nightly"


def test_later_terms_have_no_daily_first_week() -> None:
    assert cal.rule_for_day(DEFAULT, day("2026-11-02")) == "term_nightly"
    assert cal.rule_for_day(DEFAULT, day("2027-01-04")) == "term_nightly"


def test_term_time_is_nightly_by_default() -> None:
    runs = by_day(runs_between(DEFAULT, "2026-10-01", "2026-10-21"))
    assert len(runs) == 21
    assert set(runs.values()) == {"term_nightly"}


def test_in_term_weekdays_limits_the_nightly_runs() -> None:
    schedule = ScheduleSettings(in_term_weekdays=["mon", "tue", "wed", "thu", "fri"])
    runs = by_day(runs_between(schedule, "2026-10-03", "2026-10-11"))
    assert sorted(d.strftime("%a") for d in runs) == sorted(["Mon", "Tue", "Wed", "Thu", "Fri"])


def test_half_term_holiday_is_weekly_on_the_holiday_weekday() -> None:
    runs = by_day(runs_between(DEFAULT, "2026-10-24", "2026-11-01"))
    assert runs == {day("2026-10-26"): "holiday_weekly", day("2026-11-01"): "day_before_term"}


def test_christmas_holiday_is_weekly() -> None:
    runs = by_day(runs_between(ScheduleSettings(holiday_weekday="thu"), "2026-12-19", "2027-01-03"))
    assert runs == {
        day("2026-12-24"): "holiday_weekly",
        day("2026-12-31"): "holiday_weekly",
        day("2027-01-03"): "day_before_term",
    }


def test_runs_are_at_run_time_in_the_schedule_time_zone() -> None:
    run = cal.next_run(ScheduleSettings(run_time=dt.time(3, 15)), at("2026-10-05 12:00"))
    assert run.at == at("2026-10-06 03:15")
    assert run.at.tzinfo == LONDON


def test_rule_times_override_run_time_for_one_rule() -> None:
    schedule = ScheduleSettings(rule_times={"day_before_term": dt.time(18, 0)})
    runs = cal.next_runs(schedule, at("2026-08-30 12:00"), 2)
    assert [(r.at, r.rule) for r in runs] == [
        (at("2026-08-31 18:00"), "day_before_term"),
        (at("2026-09-01 02:00"), "first_week_daily"),
    ]


def test_other_time_zone_is_honoured() -> None:
    run = cal.next_run(ScheduleSettings(timezone="UTC"), dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC))
    assert run.at == dt.datetime(2026, 10, 6, 2, tzinfo=dt.UTC)


def test_next_runs_is_strictly_after_the_given_time() -> None:
    runs = cal.next_runs(DEFAULT, at("2026-10-06 02:00"), 2)
    assert [r.at for r in runs] == [at("2026-10-07 02:00"), at("2026-10-08 02:00")]


def test_next_runs_with_count_zero_is_empty() -> None:
    assert cal.next_runs(DEFAULT, at("2026-10-06 02:00"), 0) == []


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        cal.next_runs(DEFAULT, dt.datetime(2026, 1, 1), 1)


# --- missing or wrong dates ------------------------------------------------------------------------


def test_missing_next_academic_year_is_a_config_error_naming_schedule_terms() -> None:
    with pytest.raises(ConfigError) as caught:
        cal.next_runs(DEFAULT, at("2027-07-19 12:00"), 5)
    message = str(caught.value)
    assert "schedule.terms" in message
    assert "2027/28" in message
    assert "[[schedule.terms]]" in message
    assert "default" in message


def test_missing_year_error_for_configured_terms_does_not_blame_defaults() -> None:
    schedule = ScheduleSettings(terms=[Term(start=day("2026-09-01"), end=day("2026-10-23"))])
    with pytest.raises(ConfigError, match=r"configured \[\[schedule.terms\]\] end on 2026-10-23"):
        cal.rule_for_day(schedule, day("2026-10-24"))


def test_runs_before_the_calendar_end_are_still_given_when_the_next_year_is_missing() -> None:
    runs = cal.next_runs(DEFAULT, at("2027-07-10 12:00"), 10)
    assert runs[-1].at == at("2027-07-20 02:00")


def test_summer_before_the_first_configured_term_is_a_summer_holiday() -> None:
    assert cal.rule_for_day(DEFAULT, day("2025-08-25")) == "summer_weekly"
    assert cal.rule_for_day(DEFAULT, day("2025-08-30")) == "august_30"
    assert cal.rule_for_day(DEFAULT, day("2025-08-31")) == "day_before_term"


def test_dates_long_before_the_first_configured_term_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.terms"):
        cal.rule_for_day(DEFAULT, day("2025-03-01"))


def test_a_missing_academic_year_between_terms_is_a_config_error() -> None:
    schedule = ScheduleSettings(
        terms=[
            Term(start=day("2025-09-01"), end=day("2026-07-20")),
            Term(start=day("2027-09-01"), end=day("2027-12-17")),
        ]
    )
    with pytest.raises(
        ConfigError, match=r"schedule.terms: no term between 2026-07-20 and 2027-09-01.*2026/27"
    ):
        cal.academic_calendar(schedule)


def test_overlapping_terms_are_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        ScheduleSettings(
            terms=[
                Term(start=day("2026-09-01"), end=day("2026-10-23")),
                Term(start=day("2026-10-20"), end=day("2026-12-18")),
            ]
        )


def test_term_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="before it starts"):
        Term(start=day("2026-10-23"), end=day("2026-09-01"))


@pytest.mark.parametrize("value", ["8-30", "08/30", "13-01", "02-30", "august"])
def test_end_of_year_date_must_be_a_month_day(value: str) -> None:
    with pytest.raises(ValidationError, match="MM-DD"):
        ScheduleSettings(end_of_year_date=value)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ScheduleSettings(timezone="Europe/Cardiff")


def test_empty_in_term_weekdays_is_refused() -> None:
    with pytest.raises(ValidationError):
        ScheduleSettings(in_term_weekdays=[])


# --- clock changes ---------------------------------------------------------------------------------


def test_spring_clock_change_keeps_one_run_at_two_in_the_morning() -> None:
    schedule = ScheduleSettings(holiday_weekday="sun")  # 28 March 2027 is an Easter-holiday Sunday
    run = cal.run_on(schedule, day("2027-03-28"))
    assert run is not None
    assert (run.at.hour, run.at.minute, run.at.utcoffset()) == (2, 0, dt.timedelta(hours=1))


def test_time_skipped_by_the_spring_clock_change_moves_an_hour_on() -> None:
    schedule = ScheduleSettings(holiday_weekday="sun", run_time=dt.time(1, 30))
    run = cal.run_on(schedule, day("2027-03-28"))
    assert run is not None
    assert run.at.astimezone(dt.UTC) == dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC)
    assert (run.at.hour, run.at.minute) == (2, 30)


def test_time_repeated_by_the_autumn_clock_change_runs_once_at_its_first_occurrence() -> None:
    schedule = ScheduleSettings(holiday_weekday="sun", run_time=dt.time(1, 30))
    runs = runs_between(schedule, "2026-10-25", "2026-10-25")  # half-term Sunday, clocks go back
    assert len(runs) == 1
    assert runs[0].at.astimezone(dt.UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)


def test_nightly_runs_across_a_clock_change_are_23_or_25_hours_apart() -> None:
    schedule = ScheduleSettings(
        terms=[Term(start=day("2026-09-01"), end=day("2026-12-18"))], first_week_days=1
    )
    runs = runs_between(schedule, "2026-10-24", "2026-10-26")
    gaps = [b.at.astimezone(dt.UTC) - a.at.astimezone(dt.UTC) for a, b in itertools.pairwise(runs)]
    assert gaps == [dt.timedelta(hours=25), dt.timedelta(hours=24)]


# --- catch-up and due ------------------------------------------------------------------------------


def test_runs_missed_while_off_are_coalesced_into_the_latest_one() -> None:
    owed = cal.missed_since(DEFAULT, at("2026-08-10 02:05"), at("2026-09-03 09:00"))
    assert owed == cal.ScheduledRun(at("2026-09-03 02:00"), "first_week_daily")


def test_nothing_is_missed_when_the_last_run_was_after_the_latest_scheduled_one() -> None:
    assert cal.missed_since(DEFAULT, at("2026-09-03 02:00"), at("2026-09-03 09:00")) is None
    assert not cal.is_due(DEFAULT, at("2026-09-03 02:07"), at("2026-09-03 09:00"))


def test_run_is_due_once_its_time_has_come() -> None:
    assert not cal.is_due(DEFAULT, at("2026-09-02 02:00"), at("2026-09-03 01:59"))
    assert cal.is_due(DEFAULT, at("2026-09-02 02:00"), at("2026-09-03 02:00"))


def test_nothing_is_missed_without_a_previous_run() -> None:
    assert cal.missed_since(DEFAULT, None, at("2026-09-03 09:00")) is None


def test_previous_run_finds_the_last_summer_run() -> None:
    assert cal.previous_run(DEFAULT, at("2026-08-29 12:00")) == cal.ScheduledRun(
        at("2026-08-24 02:00"), "summer_weekly"
    )


# --- overdue ---------------------------------------------------------------------------------------


def test_never_having_succeeded_is_overdue() -> None:
    assert cal.overdue(None, at("2026-10-07 12:00"), DEFAULT)


def test_last_night_success_is_not_overdue_in_term() -> None:
    assert not cal.overdue(at("2026-10-07 02:10"), at("2026-10-07 23:00"), DEFAULT)


def test_one_missed_night_is_overdue_once_its_grace_is_over() -> None:
    last = at("2026-10-06 02:10")
    assert not cal.overdue(last, at("2026-10-07 07:00"), DEFAULT)  # within 6 h + jitter of 02:00
    assert cal.overdue(last, at("2026-10-07 09:00"), DEFAULT)


def test_six_days_without_a_run_is_not_overdue_in_the_summer() -> None:
    assert not cal.overdue(at("2026-08-03 02:10"), at("2026-08-09 23:00"), DEFAULT)


def test_a_missed_summer_week_is_overdue() -> None:
    assert cal.overdue(at("2026-08-03 02:10"), at("2026-08-10 12:00"), DEFAULT)


def test_max_age_hours_caps_the_allowed_age() -> None:
    schedule = ScheduleSettings(max_age_hours=48)
    assert cal.overdue(at("2026-08-03 02:10"), at("2026-08-06 12:00"), schedule)
    assert cal.allowed_age(schedule, at("2026-08-03 02:10")) == dt.timedelta(hours=48)


def test_allowed_age_in_term_is_to_the_next_night_plus_grace() -> None:
    allowed = cal.allowed_age(DEFAULT, at("2026-10-07 02:00"))
    assert allowed == dt.timedelta(hours=30, seconds=300)


def test_a_success_just_before_a_failed_scheduled_run_is_overdue_after_its_grace() -> None:
    manual = at("2026-10-06 23:00")  # a run by hand; the 02:00 run then fails
    assert not cal.overdue(manual, at("2026-10-07 08:00"), DEFAULT)
    assert cal.overdue(manual, at("2026-10-07 08:06"), DEFAULT)


def test_a_success_in_term_with_a_quiet_weekend_is_not_overdue() -> None:
    schedule = ScheduleSettings(in_term_weekdays=["mon", "tue", "wed", "thu", "fri"])
    assert not cal.overdue(at("2026-10-09 02:05"), at("2026-10-11 20:00"), schedule)


# --- test-interval mode ----------------------------------------------------------------------------


def test_test_interval_runs_every_n_seconds_on_a_fixed_grid() -> None:
    schedule = ScheduleSettings(test_interval_seconds=5)
    start = dt.datetime(2026, 1, 1, 12, 0, 2, tzinfo=dt.UTC)
    runs = cal.next_runs(schedule, start, 3)
    assert [r.at.astimezone(dt.UTC).second for r in runs] == [5, 10, 15]
    assert {r.rule for r in runs} == {"test_interval"}


def test_test_interval_ignores_missing_term_dates() -> None:
    schedule = ScheduleSettings(test_interval_seconds=60)
    assert cal.next_run(schedule, dt.datetime(2040, 1, 1, tzinfo=dt.UTC)).rule == "test_interval"


def test_test_interval_catch_up_is_one_run() -> None:
    schedule = ScheduleSettings(test_interval_seconds=2)
    start = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    owed = cal.missed_since(schedule, start, start + dt.timedelta(seconds=9))
    assert owed is not None
    assert owed.at == start + dt.timedelta(seconds=8)


def test_test_interval_overdue_after_three_intervals() -> None:
    schedule = ScheduleSettings(test_interval_seconds=10)
    last = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert not cal.overdue(last, last + dt.timedelta(seconds=25), schedule)
    assert cal.overdue(last, last + dt.timedelta(seconds=45), schedule)


def test_fallback_run_is_nightly_whatever_the_calendar() -> None:
    run = cal.fallback_run(DEFAULT, at("2031-05-05 12:00"))
    assert run == cal.ScheduledRun(at("2031-05-06 02:00"), "fallback_nightly")


def test_calendar_ends_on_the_last_term_day() -> None:
    assert cal.calendar_ends(DEFAULT) == day("2027-07-20")


# --- properties ------------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=dt.datetime(2025, 8, 1), max_value=dt.datetime(2027, 3, 1), timezones=st.just(LONDON)
)
schedules = st.builds(
    ScheduleSettings,
    run_time=st.times(),
    summer_weekday=st.sampled_from(WEEKDAYS),
    holiday_weekday=st.sampled_from(WEEKDAYS),
    first_week_days=st.integers(1, 10),
    in_term_weekdays=st.lists(st.sampled_from(WEEKDAYS), min_size=1, unique=True),
)


@settings(max_examples=60, deadline=None)
@given(schedule=schedules, after=moments)
def test_runs_are_increasing_and_never_two_on_the_same_day(
    schedule: ScheduleSettings, after: dt.datetime
) -> None:
    runs = cal.next_runs(schedule, after, 15)
    assert len(runs) == 15
    assert all(run.at > after for run in runs)
    assert all(a.at < b.at for a, b in itertools.pairwise(runs))
    dates = [run.at.astimezone(LONDON).date() for run in runs]
    assert len(set(dates)) == len(dates)
    assert all(run.rule in cal.RULES for run in runs)


@settings(max_examples=40, deadline=None)
@given(schedule=schedules, start=st.dates(dt.date(2026, 7, 21), dt.date(2026, 8, 25)))
def test_every_week_of_the_summer_has_a_run(schedule: ScheduleSettings, start: dt.date) -> None:
    window = {start + dt.timedelta(days=n) for n in range(7)}
    assert any(cal.rule_for_day(schedule, d) is not None for d in window)


@settings(max_examples=40, deadline=None)
@given(
    schedule=schedules,
    weekend=st.lists(st.sampled_from(["sat", "sun"]), unique=True),
    after=moments,
)
def test_no_gap_between_runs_is_longer_than_a_week_when_every_school_night_runs(
    schedule: ScheduleSettings, weekend: list[str], after: dt.datetime
) -> None:
    schedule = schedule.model_copy(update={"in_term_weekdays": ["mon", "tue", "wed", "thu", "fri", *weekend]})
    runs = [run.at.astimezone(dt.UTC) for run in cal.next_runs(schedule, after, 20)]
    assert all(b - a <= dt.timedelta(days=7, hours=1) for a, b in itertools.pairwise(runs))


@settings(max_examples=40, deadline=None)
@given(schedule=schedules)
def test_first_week_of_each_academic_year_is_daily(schedule: ScheduleSettings) -> None:
    for first in (day("2025-09-01"), day("2026-09-01")):
        school_days, current = 0, first
        while school_days < schedule.first_week_days:
            assert cal.rule_for_day(schedule, current) == "first_week_daily"
            school_days += current.weekday() < 5
            current += dt.timedelta(days=1)


@settings(max_examples=40, deadline=None)
@given(schedule=schedules)
def test_30_august_and_the_day_before_term_are_always_runs(schedule: ScheduleSettings) -> None:
    for year in (2025, 2026):
        assert cal.rule_for_day(schedule, dt.date(year, 8, 30)) == "august_30"
        assert cal.rule_for_day(schedule, dt.date(year, 8, 31)) == "day_before_term"


@settings(max_examples=40, deadline=None)
@given(
    run_time=st.times(),
    clock_change=st.sampled_from([day("2026-03-29"), day("2026-10-25"), day("2027-03-28")]),
)
def test_a_clock_change_day_still_has_exactly_one_run(run_time: dt.time, clock_change: dt.date) -> None:
    schedule = ScheduleSettings(run_time=run_time, holiday_weekday="sun")
    runs = runs_between(schedule, clock_change.isoformat(), clock_change.isoformat())
    assert len(runs) == 1
    local = runs[0].at.astimezone(LONDON)
    assert local.date() == clock_change
    shifted = (dt.datetime.combine(clock_change, run_time) + dt.timedelta(hours=1)).time()
    assert local.time().replace(tzinfo=None) in (run_time, shifted)


@settings(max_examples=60, deadline=None)
@given(schedule=schedules, last=moments, hours=st.integers(0, 24 * 40))
def test_catch_up_is_at_most_one_run_and_is_the_latest_missed(
    schedule: ScheduleSettings, last: dt.datetime, hours: int
) -> None:
    now = last + dt.timedelta(hours=hours, minutes=1)
    owed = cal.missed_since(schedule, last, now)
    upcoming = cal.next_run(schedule, last)
    if upcoming.at > now:
        assert owed is None
    else:
        assert owed is not None
        assert last < owed.at <= now
        assert cal.next_run(schedule, owed.at).at > now


@settings(max_examples=60, deadline=None)
@given(schedule=schedules, now=moments)
def test_a_success_at_the_latest_scheduled_run_is_overdue_only_past_the_max_age(
    schedule: ScheduleSettings, now: dt.datetime
) -> None:
    """Only ``max_age_hours`` can make it overdue, when the schedule itself leaves a longer gap."""
    latest = cal.previous_run(schedule, now)
    if now - latest.at <= dt.timedelta(hours=schedule.max_age_hours):
        assert not cal.overdue(latest.at, now, schedule)


# --- purity ----------------------------------------------------------------------------------------


def test_calendar_module_is_pure() -> None:
    """core/calendar.py imports nothing that touches the OS, the clock, a database or the network."""
    source = Path(cal.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"os", "time", "sqlite3", "pyodbc", "requests", "subprocess", "socket", "pathlib"}

"""The national calendar as pure rules (``hwb_sandbox.calendar``): both sides of every boundary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwb_sandbox import calendar
from hwb_sandbox.calendar import RecordState

D = dt.date.fromisoformat
YEARS = st.integers(min_value=2000, max_value=2090)
DAYS = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 12, 31))


def learner(year_group: str | None = "6", leaving_date: str | None = None) -> dict[str, Any]:
    return {"upn_hash": "k:00", "year_group": year_group, "leaving_date": leaving_date}


def staff(start_date: str = "2020-09-01", leaving_date: str | None = None) -> dict[str, Any]:
    return {"staff_code": "T1", "start_date": start_date, "leaving_date": leaving_date}


def released(kind: str, record: dict[str, Any], received_on: str = "2027-01-10") -> dt.date:
    return calendar.released_from(kind, record, received_on=D(received_on))


# -- the academic year ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "end"),
    [("2026-08-31", "2026-08-31"), ("2026-09-01", "2027-08-31"), ("2027-06-01", "2027-08-31")],
)
def test_academic_year_runs_from_1_september_to_31_august(day: str, end: str) -> None:
    assert calendar.academic_year_end(D(day)) == D(end)
    assert calendar.academic_year_start(D(end)) == D(end).replace(year=D(end).year - 1, month=9, day=1)


@given(DAYS)
def test_every_day_lies_in_its_academic_year(day: dt.date) -> None:
    assert calendar.academic_year_start(day) <= day <= calendar.academic_year_end(day)
    assert (calendar.academic_year_end(day) - calendar.academic_year_start(day)).days in (364, 365)


# -- leaving: the day after the leaving date, held by the calendar for summer leavers ------------------------


def test_a_leaver_is_released_the_day_after_the_leaving_date() -> None:
    assert released("learner", learner("3", "2027-03-12")) == D("2027-03-13")
    assert released("staff", staff(leaving_date="2027-07-22")) == D("2027-07-23")


def test_a_leave_without_a_leaving_date_releases_on_the_day_it_arrives() -> None:
    assert released("learner", learner("4", None), received_on="2027-02-03") == D("2027-02-03")


@pytest.mark.parametrize("leaving", ["2027-06-02", "2027-07-01", "2027-07-22", "2027-08-29"])
def test_year_6_summer_leavers_are_released_from_31_august_not_before(leaving: str) -> None:
    assert released("learner", learner("6", leaving)) == D("2027-08-31")


def test_year_6_leaver_on_31_august_is_released_the_day_after() -> None:
    assert released("learner", learner("6", "2027-08-30")) == D("2027-08-31")
    assert released("learner", learner("6", "2027-08-31")) == D("2027-09-01")


def test_year_6_leaver_on_or_before_1_june_is_released_the_day_after() -> None:
    assert released("learner", learner("6", "2027-06-01")) == D("2027-06-02")
    assert released("learner", learner("6", "2027-05-31")) == D("2027-06-01")
    assert released("learner", learner("6", "2026-11-20")) == D("2026-11-21")


@pytest.mark.parametrize("year_group", ["11", "12", "13"])
def test_years_11_to_13_leavers_after_1_june_are_kept_until_29_august(year_group: str) -> None:
    assert released("learner", learner(year_group, "2027-06-02")) == D("2027-08-30")
    assert released("learner", learner(year_group, "2027-06-01")) == D("2027-06-02")
    assert released("learner", learner(year_group, "2027-08-29")) == D("2027-08-30")
    assert released("learner", learner(year_group, "2027-08-30")) == D("2027-08-31")


@pytest.mark.parametrize("year_group", ["5", "7", "10", "14", None])
def test_other_year_groups_leave_the_day_after_even_in_summer(year_group: str | None) -> None:
    assert released("learner", learner(year_group, "2027-07-22")) == D("2027-07-23")


def test_staff_are_never_held_by_the_learner_calendar() -> None:
    teacher = dict(staff(leaving_date="2027-07-22"), year_group="6")
    assert released("staff", teacher) == D("2027-07-23")


@given(DAYS, st.sampled_from(["N1", "R", "1", "6", "7", "11", "12", "13", "14", None]))
def test_release_is_never_before_the_day_after_leaving_nor_after_the_next_year(
    leaving: dt.date, year_group: str | None
) -> None:
    release = released("learner", learner(year_group, leaving.isoformat()))
    assert release >= leaving + calendar.ONE_DAY
    assert release <= max(leaving + calendar.ONE_DAY, calendar.academic_year_end(leaving))


# -- a record's state on a day --------------------------------------------------------------------------------


def state(
    kind: str, sent_as: str, record: dict[str, Any], released_on: str | None, today: str
) -> calendar.SchoolRecordState:
    return calendar.record_state(
        kind, sent_as, record, None if released_on is None else D(released_on), D(today)
    )


def test_an_upsert_with_a_future_leaving_date_is_on_roll_leaving_on_that_day() -> None:
    before = state("learner", "active", learner("6", "2027-07-22"), None, "2027-07-22")
    after = state("learner", "active", learner("6", "2027-07-22"), None, "2027-07-23")

    assert before == calendar.SchoolRecordState(RecordState.LEAVING, on_roll_until=D("2027-07-22"))
    assert before.on_roll
    assert after.state is RecordState.ACTIVE  # still on roll until the leave arrives


def test_an_early_leave_is_on_roll_until_its_release_then_left() -> None:
    record = learner("6", "2027-07-22")
    release = "2027-08-31"

    assert state("learner", "left", record, release, "2027-08-30").state is RecordState.LEAVING
    assert state("learner", "left", record, release, "2027-08-30").on_roll_until == D("2027-08-30")
    assert state("learner", "left", record, release, "2027-08-31").state is RecordState.LEFT
    assert not state("learner", "left", record, release, "2027-08-31").on_roll


def test_a_staff_start_date_in_the_future_is_starting_then_active() -> None:
    assert state("staff", "active", staff("2027-09-01"), None, "2027-08-31") == calendar.SchoolRecordState(
        RecordState.STARTING, starts_on=D("2027-09-01")
    )
    assert state("staff", "active", staff("2027-09-01"), None, "2027-09-01").state is RecordState.ACTIVE


def test_a_removed_record_is_off_roll() -> None:
    removed = state("learner", "removed", learner(), "2027-03-01", "2027-03-01")
    assert removed.state is RecordState.REMOVED and not removed.on_roll


@given(st.sampled_from(["active", "left", "removed"]), st.one_of(st.none(), DAYS), DAYS)
def test_on_roll_agrees_with_record_state(sent_as: str, released_on: dt.date | None, today: dt.date) -> None:
    if sent_as == "left" and released_on is None:
        released_on = today
    if sent_as == "active":
        released_on = None
    found = calendar.record_state("learner", sent_as, learner("8"), released_on, today)
    assert found.on_roll == calendar.on_roll(sent_as, released_on, today)


# -- classes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changed_on", "today", "passed_on"),
    [
        ("2027-06-01", "2027-06-01", True),
        ("2027-06-02", "2027-06-02", False),
        ("2027-08-31", "2027-08-31", False),
        ("2027-06-02", "2027-08-31", False),
        ("2027-06-02", "2027-09-01", True),  # a new academic year: the new classes are passed on
        ("2027-09-01", "2027-09-01", True),
        ("2027-05-20", "2027-07-01", True),  # changed before 2 June: passed on then
    ],
)
def test_class_changes_from_2_june_to_31_august_are_not_passed_on(
    changed_on: str, today: str, passed_on: bool
) -> None:
    assert calendar.class_change_passed_on(D(changed_on), D(today)) is passed_on


def test_a_class_record_never_changed_under_the_calendar_is_passed_on() -> None:
    assert calendar.class_change_passed_on(None, D("2027-07-01")) is True


# -- purge -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        ("2027-08-31", 12, "2028-08-31"),
        ("2028-02-29", 12, "2029-02-28"),
        ("2027-01-31", 1, "2027-02-28"),
        ("2027-12-15", 1, "2028-01-15"),
        ("2028-01-15", -1, "2027-12-15"),
        ("2029-02-28", -12, "2028-02-28"),
    ],
)
def test_add_months_keeps_the_day_or_the_month_end(day: str, months: int, expected: str) -> None:
    assert calendar.add_months(D(day), months) == D(expected)


def test_an_account_is_purged_12_months_after_it_became_inactive_not_a_day_before() -> None:
    inactive_since = D("2027-08-31")

    assert not calendar.is_purged(inactive_since, D("2028-08-30"))
    assert calendar.is_purged(inactive_since, D("2028-08-31"))
    assert calendar.is_purged(inactive_since, D("2028-09-01"))


@given(DAYS)
def test_purge_cutoff_is_exactly_the_last_purged_day(today: dt.date) -> None:
    cutoff = calendar.purge_cutoff(today)
    assert calendar.is_purged(cutoff, today)
    assert not calendar.is_purged(cutoff + calendar.ONE_DAY, today)


def test_purge_cutoff_on_a_leap_day_anniversary() -> None:
    assert calendar.purge_cutoff(D("2029-02-28")) == D("2028-02-29")


@given(YEARS)
def test_summer_dates_are_in_the_academic_year_they_close(year: int) -> None:
    day = dt.date(year, 7, 1)
    assert calendar.classes_frozen_from(day) == dt.date(year, 6, 2)
    assert calendar.senior_release_day(day) == dt.date(year, 8, 30)
    assert calendar.year_6_release_day(day) == dt.date(year, 8, 31)

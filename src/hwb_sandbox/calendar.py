"""The national calendar: what a school record and its account are on a given day. Pure (no I/O, no clock).

Everything here takes the record, its dates and ``today`` and returns dates or states; the store and the
ledger call it and keep the answers. The rules, generalised from the 2025/26 rollover article to every
academic year (1 September to 31 August):

- a leaving date is the last day on roll: a ``leave`` releases the record from the day after it;
- Year 6 leavers whose leaving date is after 1 June are released from 31 August, not before;
- Years 11-13 leavers whose leaving date is after 1 June are kept active until 29 August (released from
  30 August);
- from 2 June to 31 August, class changes (groups and memberships) are recorded but not passed on to
  Teams, Google Classroom or Apple Classroom;
- an account inactive for 12 months is purged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

ONE_DAY: Final = dt.timedelta(days=1)
PURGE_AFTER_MONTHS: Final = 12
SENIOR_LEAVING_YEARS: Final = frozenset({"11", "12", "13"})


class RecordState(StrEnum):
    """A learner or staff record's state at its school on a day (the manifest's and portal's words)."""

    ACTIVE = "active"  # on roll
    STARTING = "starting"  # staff with a start date in the future: the account is ready for the first day
    LEAVING = "leaving"  # on roll until a known last day (a future leaving date, or held by the calendar)
    LEFT = "left"  # released from the school
    REMOVED = "removed"  # removed by the school (not listed in the manifest)


@dataclass(frozen=True, slots=True)
class SchoolRecordState:
    """What a record is at its school today, and the dates that explain it."""

    state: RecordState
    on_roll_until: dt.date | None = None  # last day on roll, when known
    starts_on: dt.date | None = None  # a staff start date still in the future

    @property
    def on_roll(self) -> bool:
        return self.state in (RecordState.ACTIVE, RecordState.STARTING, RecordState.LEAVING)


# -- the academic year ---------------------------------------------------------------------------------------


def academic_year_end(day: dt.date) -> dt.date:
    """31 August closing the academic year (1 September - 31 August) that contains ``day``."""
    return dt.date(day.year + 1 if day.month >= 9 else day.year, 8, 31)


def academic_year_start(day: dt.date) -> dt.date:
    """1 September opening the academic year that contains ``day``."""
    return dt.date(academic_year_end(day).year - 1, 9, 1)


def summer_cutoff(day: dt.date) -> dt.date:
    """1 June of the academic year containing ``day``: leavers after it are summer leavers."""
    return dt.date(academic_year_end(day).year, 6, 1)


def classes_frozen_from(day: dt.date) -> dt.date:
    """2 June of the academic year containing ``day``: class changes from then are not passed on."""
    return dt.date(academic_year_end(day).year, 6, 2)


def year_6_release_day(day: dt.date) -> dt.date:
    """31 August of the academic year containing ``day``: Year 6 leavers are released from then."""
    return academic_year_end(day)


def senior_release_day(day: dt.date) -> dt.date:
    """30 August of the academic year containing ``day``: Years 11-13 leavers are active until the 29th."""
    return academic_year_end(day) - ONE_DAY


# -- leaving ---------------------------------------------------------------------------------------------------


def is_summer_leaver(leaving_date: dt.date) -> bool:
    """A leaving date after 1 June (and by 31 August) of its academic year."""
    return leaving_date > summer_cutoff(leaving_date)


def released_from(kind: str, record: Mapping[str, Any], *, received_on: dt.date) -> dt.date:
    """The first day a record sent as ``leave`` is no longer on roll at the school.

    The day after the leaving date, held later by the calendar for summer leavers in Year 6 (31 August)
    and Years 11-13 (30 August). A leave without a leaving date releases on the day it is received.
    """
    leaving = parse_date(record.get("leaving_date"))
    if leaving is None:
        return received_on
    release = leaving + ONE_DAY
    if kind != "learner" or not is_summer_leaver(leaving):
        return release
    year_group = record.get("year_group")
    if year_group == "6":
        return max(release, year_6_release_day(leaving))
    if year_group in SENIOR_LEAVING_YEARS:
        return max(release, senior_release_day(leaving))
    return release


def record_state(
    kind: str, sent_as: str, record: Mapping[str, Any], released_on: dt.date | None, today: dt.date
) -> SchoolRecordState:
    """A learner or staff record's state today.

    ``sent_as`` is the stored status: ``active`` (last sent as ``upsert``), ``left`` (``leave``) or
    ``removed``; ``released_on`` is the first day off roll (from ``released_from``, or the day of removal).
    """
    if sent_as == "removed":
        return SchoolRecordState(RecordState.REMOVED, on_roll_until=_day_before(released_on))
    if sent_as == "left":
        if released_on is not None and today < released_on:
            return SchoolRecordState(RecordState.LEAVING, on_roll_until=released_on - ONE_DAY)
        return SchoolRecordState(RecordState.LEFT, on_roll_until=_day_before(released_on))
    start = parse_date(record.get("start_date")) if kind == "staff" else None
    leaving = parse_date(record.get("leaving_date"))
    if start is not None and today < start:
        return SchoolRecordState(RecordState.STARTING, on_roll_until=leaving, starts_on=start)
    if leaving is not None and today <= leaving:
        return SchoolRecordState(RecordState.LEAVING, on_roll_until=leaving)
    return SchoolRecordState(RecordState.ACTIVE)


def on_roll(sent_as: str, released_on: dt.date | None, today: dt.date) -> bool:
    """Whether the record holds its account active today (the same rule as ``record_state``)."""
    if sent_as == "removed":
        return False
    return released_on is None or today < released_on


# -- classes ---------------------------------------------------------------------------------------------------


def class_change_passed_on(changed_on: dt.date | None, today: dt.date) -> bool:
    """False for a group or membership change recorded from 2 June to 31 August of today's academic year.

    Such a change is kept (the manifest lists it) but not passed on to Teams, Google Classroom or Apple
    Classroom; from 1 September the new year's classes are passed on again.
    """
    if changed_on is None:
        return True
    same_year = academic_year_end(changed_on) == academic_year_end(today)
    return not (same_year and changed_on >= classes_frozen_from(changed_on))


# -- purge -----------------------------------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months; a day past the month's end becomes its last day."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    next_month = dt.date(year + (month == 12), month % 12 + 1, 1)
    return dt.date(year, month, min(day.day, (next_month - ONE_DAY).day))


def purged_from(inactive_since: dt.date) -> dt.date:
    """The first day an account inactive since ``inactive_since`` is purged: 12 months later."""
    return add_months(inactive_since, PURGE_AFTER_MONTHS)


def is_purged(inactive_since: dt.date, today: dt.date) -> bool:
    return today >= purged_from(inactive_since)


def purge_cutoff(today: dt.date) -> dt.date:
    """The latest ``inactive_since`` that is purged by ``today`` (``is_purged`` is monotonic in it)."""
    cutoff = add_months(today, -PURGE_AFTER_MONTHS)
    while is_purged(cutoff + ONE_DAY, today):
        cutoff += ONE_DAY
    while not is_purged(cutoff, today):
        cutoff -= ONE_DAY
    return cutoff


# -- helpers ---------------------------------------------------------------------------------------------------


def parse_date(value: object) -> dt.date | None:
    """A protocol date string (already validated) as a date; None for null."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _day_before(day: dt.date | None) -> dt.date | None:
    return None if day is None else day - ONE_DAY

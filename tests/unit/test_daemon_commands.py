"""The ``schedule`` command and the schedule part of ``status`` (hwb_client.service_commands)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from hwb_client.errors import ConfigError
from hwb_client.service_commands import cmd_schedule, schedule_health
from hwb_client.settings import Settings


def make_settings(tmp_path: Path, **schedule: object) -> Settings:
    return Settings(
        client={"state_dir": tmp_path},
        schedule=schedule,
        schools=[{"dfes_number": "6600001", "odbc": "DSN=x"}],
    )


def test_schedule_prints_date_time_weekday_and_rule(tmp_path: Path) -> None:
    out = io.StringIO()
    assert cmd_schedule(make_settings(tmp_path), 4, dt.date(2026, 8, 25), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("# term dates: built-in Welsh defaults")
    assert lines[1].split() == ["date", "time", "day", "rule"]
    assert lines[2:] == [
        "2026-08-30 02:00 Sun august_30",
        "2026-08-31 02:00 Mon day_before_term",
        "2026-09-01 02:00 Tue first_week_daily",
        "2026-09-02 02:00 Wed first_week_daily",
    ]


def test_schedule_from_a_date_includes_a_run_at_midnight_that_day(tmp_path: Path) -> None:
    out = io.StringIO()
    cmd_schedule(make_settings(tmp_path, run_time="00:00"), 1, dt.date(2026, 8, 30), out=out)
    assert out.getvalue().splitlines()[-1] == "2026-08-30 00:00 Sun august_30"


def test_schedule_without_from_starts_now(tmp_path: Path) -> None:
    out = io.StringIO()
    cmd_schedule(
        make_settings(tmp_path), 1, out=out, clock=lambda: dt.datetime(2026, 10, 7, 12, tzinfo=dt.UTC)
    )
    assert out.getvalue().splitlines()[-1] == "2026-10-08 02:00 Thu term_nightly"


def test_schedule_prints_what_it_knows_then_names_the_missing_terms(tmp_path: Path) -> None:
    out = io.StringIO()
    with pytest.raises(ConfigError, match=r"schedule\.terms.*2027/28"):
        cmd_schedule(make_settings(tmp_path), 5, dt.date(2027, 7, 19), out=out)
    assert out.getvalue().splitlines()[-1] == "2027-07-20 02:00 Tue term_nightly"


def test_schedule_in_rehearsal_mode_says_so(tmp_path: Path) -> None:
    out = io.StringIO()
    cmd_schedule(
        make_settings(tmp_path, test_interval_seconds=30), 2, dt.datetime(2026, 1, 1, 12, 0, 1), out=out
    )
    lines = out.getvalue().splitlines()
    assert "REHEARSAL" in lines[0]
    assert lines[2:] == ["2026-01-01 12:00 Thu test_interval", "2026-01-01 12:01 Thu test_interval"]


NOW = dt.datetime(2026, 10, 7, 11, 0, tzinfo=dt.UTC)


def test_health_gives_next_run_and_not_overdue_after_last_night(tmp_path: Path) -> None:
    health = schedule_health(make_settings(tmp_path), dt.datetime(2026, 10, 7, 1, 10, tzinfo=dt.UTC), NOW)
    assert health["next_run"] == "2026-10-08T02:00:00+01:00"
    assert health["next_rule"] == "term_nightly"
    assert health["overdue"] is False
    assert health["overdue_at"] == "2026-10-08T08:05:00+01:00"
    assert health["uses_default_terms"] is True
    assert health["calendar_ends"] == "2027-07-20"
    assert health["error"] is None
    assert health["warning"] is None


def test_health_is_overdue_when_a_night_was_missed(tmp_path: Path) -> None:
    health = schedule_health(make_settings(tmp_path), dt.datetime(2026, 10, 5, 1, 10, tzinfo=dt.UTC), NOW)
    assert health["overdue"] is True


def test_health_is_overdue_when_never_succeeded(tmp_path: Path) -> None:
    assert schedule_health(make_settings(tmp_path), None, NOW)["overdue"] is True


def test_health_warns_when_the_term_dates_are_about_to_run_out(tmp_path: Path) -> None:
    now = dt.datetime(2027, 6, 10, 12, tzinfo=dt.UTC)
    health = schedule_health(make_settings(tmp_path), now - dt.timedelta(hours=10), now)
    assert "schedule.terms end on 2027-07-20" in health["warning"]
    assert health["overdue"] is False


def test_health_with_missing_term_dates_reports_the_error_and_uses_max_age(tmp_path: Path) -> None:
    now = dt.datetime(2027, 8, 20, 12, tzinfo=dt.UTC)
    settings = make_settings(tmp_path, max_age_hours=48)
    health = schedule_health(settings, now - dt.timedelta(hours=30), now)
    assert "schedule.terms" in health["error"]
    assert health["next_rule"] == "fallback_nightly"
    assert health["overdue"] is False
    assert schedule_health(settings, now - dt.timedelta(hours=49), now)["overdue"] is True

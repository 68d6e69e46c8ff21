"""``check-config`` means ready to run: through the real CLI, one line per problem, exit 3 if any."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hwb_demo.lab import Lab
from mis_builder import small_school


def terms_around_today() -> str:
    today = dt.date.today()
    start, end = today - dt.timedelta(days=30), today + dt.timedelta(days=300)
    return f"[[schedule.terms]]\nstart = {start}\nend = {end}\n"


@pytest.fixture
def ready_lab(make_lab: Callable[..., Lab]) -> Lab:
    lab = make_lab([("6612001", "Ysgol Gynradd Llanfair")], schedule=terms_around_today())
    small_school(lab.schools[0].mis_path, "6612001").close()
    return lab


def problems(result) -> list[str]:
    """The problem lines (the notes that follow them say what is fine: the key ids, the term dates)."""
    lines = result.stdout.strip().splitlines()
    assert "NOT READY" in lines[-1], result.stdout + result.stderr
    count = int(re.search(r"NOT READY \((\d+) problem", lines[-1])[1])
    return lines[:count]


def test_a_ready_configuration_passes_with_and_without_connecting(ready_lab: Lab) -> None:
    result = ready_lab.cli("check-config")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(": READY (1 school)")
    assert "term dates until " in result.stdout and "national UPN key: " in result.stdout
    connected = ready_lab.cli("check-config", "--connect")
    assert connected.returncode == 0, connected.stdout + connected.stderr


def test_a_missing_national_key_is_one_line(ready_lab: Lab) -> None:
    ready_lab.national_key_file.unlink()
    result = ready_lab.cli("check-config")
    assert result.returncode == 3
    [line] = problems(result)
    assert line.startswith("client.national_key_file: ")
    assert str(ready_lab.national_key_file) in line and "install the national UPN hashing key" in line


def test_an_unenrolled_school_is_one_line_naming_the_enrol_command(
    make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    lab = make_lab([("6612001", "Ysgol Gynradd Llanfair")], enrol=False, schedule=terms_around_today())
    small_school(lab.schools[0].mis_path, "6612001").close()
    result = lab.cli("check-config")
    assert result.returncode == 3
    [line] = problems(result)
    assert line.startswith("schools[6612001].signing_key_file: school 6612001 is not enrolled")
    assert "hwb-client enrol --school 6612001 --code CODE" in line


def test_a_dsn_that_does_not_exist_is_one_line(ready_lab: Lab) -> None:
    config = ready_lab.config_path.read_text(encoding="utf-8")
    odbc = ready_lab.schools[0].odbc
    ready_lab.config_path.write_text(config.replace(odbc, "DSN=NO_SUCH_MIS_6612001"), encoding="utf-8")
    result = ready_lab.cli("check-config")
    assert result.returncode == 3
    [line] = problems(result)
    assert line.startswith("schools[6612001].odbc: the ODBC data source 'NO_SUCH_MIS_6612001' does not exist")
    assert "/etc/odbc.ini" in line


def test_connect_reports_a_broken_profile_query_and_an_api_that_is_down(ready_lab: Lab, tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(ready_lab.schools[0].mis_path)
    db.execute("DROP TABLE mis_staff")
    db.commit()
    db.close()
    config = ready_lab.config_path.read_text(encoding="utf-8")
    ready_lab.config_path.write_text(
        config.replace(ready_lab.sandbox_url.rstrip("/"), "http://127.0.0.1:9"), encoding="utf-8"
    )
    assert ready_lab.cli("check-config").returncode == 0  # without --connect neither is looked at
    lines = problems(ready_lab.cli("check-config", "--connect"))
    assert any(line.startswith("schools[6612001].profile: the staff query fails") for line in lines), lines
    assert any(line.startswith("api.base_url: cannot reach http://127.0.0.1:9/healthz") for line in lines), lines


def test_a_national_key_every_user_may_read_is_reported_and_left_as_it_is(ready_lab: Lab) -> None:
    ready_lab.national_key_file.chmod(0o644)
    result = ready_lab.cli("check-config")
    assert result.returncode == 3
    [line] = problems(result)
    assert line.startswith("client.national_key_file: ") and "readable by every user" in line
    assert ready_lab.national_key_file.stat().st_mode & 0o777 == 0o644  # check-config changes nothing

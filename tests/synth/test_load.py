"""Synthetic data written to SQLite, PostgreSQL and MariaDB reads back through the real ODBC drivers.

All three drivers return DATE columns as ``datetime.date`` (SQLite: the ISO text in a column declared
DATE is converted by the SQLite3 ODBC driver). Welsh diacritics and control characters survive the trip.
"""

import datetime as dt
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pyodbc
import pytest

from hwb_synth.dbservers import ServerDatabase
from hwb_synth.generate import MisData, generate
from hwb_synth.load import load_sqlite, odbc_connection_string, replace_school_data_sqlite
from hwb_synth.mutate import summer_rollover, upns_at
from hwb_synth.scales import demo_schools, small_schools

PROFILE = tomllib.loads(
    (resources.files("hwb_client.profiles") / "reference.toml").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def data() -> MisData:
    return generate(5, small_schools(), broken=True)


def read_back(connection: Any, data: MisData) -> None:
    """The database holds exactly ``data``: counts, names (diacritics, control characters), dates as dates."""
    cursor = connection.cursor()
    for table, expected in (
        ("mis_pupil", data.learners),
        ("mis_staff", data.staff),
        ("mis_group", data.groups),
        ("mis_group_member", data.members),
    ):
        assert cursor.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == len(expected)
    rows = cursor.execute(
        "SELECT pupil_id, upn, legal_forename, legal_surname, date_of_birth, admission_date, leaving_date,"
        " home_address FROM mis_pupil ORDER BY pupil_id"
    ).fetchall()
    wanted = [
        (
            lr.pupil_id,
            lr.upn,
            lr.legal_forename,
            lr.legal_surname,
            lr.date_of_birth,
            lr.admission_date,
            lr.leaving_date,
            lr.home_address,
        )
        for lr in sorted(data.learners, key=lambda lr: lr.pupil_id)
    ]
    assert [tuple(row) for row in rows] == wanted
    assert any("ŷ" in str(row.legal_forename) or "ï" in str(row.legal_forename) for row in rows)
    assert all(isinstance(row.date_of_birth, dt.date) for row in rows if row.date_of_birth is not None)
    staff = cursor.execute(
        "SELECT staff_id, staff_code, start_date, leaving_date FROM mis_staff ORDER BY staff_id"
    )
    assert [tuple(row) for row in staff.fetchall()] == [
        (st.staff_id, st.staff_code, st.start_date, st.leaving_date)
        for st in sorted(data.staff, key=lambda s: s.staff_id)
    ]


def profile_counts(connection: Any, dfes_number: str) -> dict[str, int]:
    """Run the reference profile's four queries for one school, as the client does."""
    cursor = connection.cursor()
    counts = {}
    for section in ("learners", "staff", "groups", "memberships"):
        params = [dfes_number for _ in PROFILE[section]["params"]]
        counts[section] = len(cursor.execute(PROFILE[section]["sql"], params).fetchall())
    return counts


def expected_profile_counts(data: MisData, dfes_number: str) -> dict[str, int]:
    return {
        "learners": len(data.learners_at(dfes_number)),
        "staff": len(data.staff_at(dfes_number)),
        "groups": len(data.groups_at(dfes_number)),
        "memberships": sum(1 for m in data.members if m.dfes_number == dfes_number),
    }


def test_odbc_drivers_are_registered() -> None:
    drivers = set(pyodbc.drivers())
    assert {"SQLite3", "PostgreSQL Unicode", "MariaDB Unicode"} <= drivers


def test_sqlite_reads_back_over_odbc(data: MisData, sqlite_mis_path: Path) -> None:
    report = load_sqlite(data, sqlite_mis_path)
    assert report.rows["mis_group_member"] == len(data.members)
    connection = pyodbc.connect(odbc_connection_string("sqlite", database=sqlite_mis_path))
    try:
        read_back(connection, data)
        assert profile_counts(connection, "6614001") == expected_profile_counts(data, "6614001")
    finally:
        connection.close()


def test_sqlite_stores_dates_as_iso_text(data: MisData, sqlite_mis_path: Path) -> None:
    import sqlite3

    load_sqlite(data, sqlite_mis_path)
    with sqlite3.connect(sqlite_mis_path) as db:
        value, kind = db.execute(
            "SELECT date_of_birth, typeof(date_of_birth) FROM mis_pupil WHERE date_of_birth IS NOT NULL"
        ).fetchone()
    db.close()
    assert kind == "text" and dt.date.fromisoformat(value)


def test_sqlite_rollover_replaces_only_the_rolled_schools(tmp_path: Path) -> None:
    before = generate(2, [*demo_schools(), small_schools()[3]])
    path = tmp_path / "mis.sqlite"
    load_sqlite(before, path)
    rolled = summer_rollover(before, "6612001", "6614001", seed=2)
    replace_school_data_sqlite(rolled.data, path, ["6612001", "6614001"])
    connection = pyodbc.connect(odbc_connection_string("sqlite", database=path))
    try:
        cursor = connection.cursor()
        year7 = {
            row.upn
            for row in cursor.execute(
                "SELECT upn FROM mis_pupil WHERE dfes_number = ? AND year_group = ?", "6614001", "7"
            )
        }
        assert set(rolled.summary.y6_movers) <= year7 == upns_at(rolled.data, "6614001", year_group="7")
        untouched = cursor.execute(
            "SELECT COUNT(*) FROM mis_group WHERE dfes_number = ?", "6694001"
        ).fetchone()[0]
        assert untouched == len(before.groups_at("6694001"))
    finally:
        connection.close()


def check_server(database: ServerDatabase, data: MisData) -> None:
    report = database.load(data)
    assert report.rows == {
        "mis_pupil": len(data.learners),
        "mis_staff": len(data.staff),
        "mis_group": len(data.groups),
        "mis_group_member": len(data.members),
    }
    connection = database.connect()
    try:
        read_back(connection, data)
        assert profile_counts(connection, "6612002") == expected_profile_counts(data, "6612002")
    finally:
        connection.close()
    # Loading again replaces the content rather than adding to it.
    smaller = generate(6, small_schools()[:2])
    database.load(smaller)
    connection = database.connect()
    try:
        read_back(connection, smaller)
    finally:
        connection.close()


def check_server_replace_and_odbc_fallback(database: ServerDatabase) -> None:
    before = generate(3, demo_schools())
    database.load(before, method="odbc")
    rolled = summer_rollover(before, "6612001", "6614001", seed=3)
    database.replace_school_data(rolled.data, ["6614001"])
    connection = database.connect()
    try:
        cursor = connection.cursor()
        year7 = {
            row.upn
            for row in cursor.execute(
                "SELECT upn FROM mis_pupil WHERE dfes_number = ? AND year_group = '7'", "6614001"
            )
        }
        assert set(rolled.summary.y6_movers) <= year7
        primary_y6 = cursor.execute(
            "SELECT COUNT(*) FROM mis_pupil WHERE dfes_number = '6612001' AND leaving_date IS NOT NULL"
        ).fetchone()[0]
        assert primary_y6 == 0  # the primary was not replaced
    finally:
        connection.close()


def test_postgres_reads_back_over_odbc(data: MisData, postgres_database: ServerDatabase) -> None:
    check_server(postgres_database, data)


def test_postgres_replace_school_data_and_odbc_loader(postgres_database: ServerDatabase) -> None:
    check_server_replace_and_odbc_fallback(postgres_database)


def test_mariadb_reads_back_over_odbc(data: MisData, mariadb_database: ServerDatabase) -> None:
    check_server(mariadb_database, data)


def test_mariadb_replace_school_data_and_odbc_loader(mariadb_database: ServerDatabase) -> None:
    check_server_replace_and_odbc_fallback(mariadb_database)

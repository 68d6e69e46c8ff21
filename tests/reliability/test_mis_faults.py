"""MIS faults: the database down, the connection lost mid-read, a failing query, a profile that maps a
column the query does not return, an empty result.

A bad read looks exactly like "everyone left". In every case nothing may be sent as removed: the run
fails (exit 4) or is blocked (exit 6) with a reason that names the problem, the national side keeps
what it had, and the run after the MIS is back sends nothing new.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from pathlib import Path

import pyodbc
from reliability_support import RLab, ledger, run_reports, said

from hwb_synth.dbservers import ServerDatabase
from hwb_synth.generate import SchoolSpec, generate
from mis_builder import Mis, small_school

AREA = "MIS faults: nothing is sent as removed"

REFERENCE = (resources.files("hwb_client.profiles") / "reference.toml").read_text(encoding="utf-8")


def _use_profile(lab: RLab, text: str) -> Path:
    path = lab.root / "profile.toml"
    path.write_text(text, encoding="utf-8")
    config = lab.lab.config_path
    config.write_text(config.read_text().replace('profile = "reference"', f'profile = "{path}"'))
    return path


def _nothing_removed(lab: RLab, before_manifest: dict, before_batches: int) -> None:
    assert lab.manifest() == before_manifest  # every record as it was: nothing removed, nothing left
    assert len(ledger(lab.sandbox, lab.dfes)) == before_batches
    assert run_reports(lab.sandbox, lab.dfes)[-1]["outcome"] in {"failed", "blocked"}


def _provisioned_sqlite_school(rlab) -> tuple[RLab, dict, int]:
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=30).close()
    assert lab.run_now().returncode == 0
    return lab, lab.manifest(), len(ledger(lab.sandbox, lab.dfes))


# -- PostgreSQL: the server itself misbehaves ------------------------------------------------------------


def _pg_school(rlab, database: ServerDatabase, learners: int = 30) -> RLab:
    connection = database.connection_string.replace("Fetch=2000", "Fetch=100")
    assert "UseDeclareFetch=1" in connection and "Fetch=100" in connection
    lab = rlab(connections=[connection])
    data = generate(7, [SchoolSpec(lab.dfes, "Ysgol Prawf", "primary", learners, 4)])
    database.load(data)
    lab.secrets |= {str(x) for p in data.learners for x in (p.upn, p.date_of_birth, p.home_address) if x}
    lab.secrets |= {str(x) for p in data.learners for x in (p.legal_forename, p.legal_surname) if x}
    return lab


def _admin(database: ServerDatabase) -> pyodbc.Connection:
    return pyodbc.connect(
        database.connection_string.replace(f"Database={database.name}", "Database=postgres"),
        autocommit=True,
        timeout=5,
    )


def test_mis_database_down_before_the_run_fails_it_with_exit_4_and_removes_nothing(
    rlab, postgres_database, scenario
):
    """PostgreSQL refuses connections to the MIS database: exit 4 naming the connection, nothing removed;
    when it is back the run sends nothing new."""
    lab = _pg_school(rlab, postgres_database)
    first = lab.run_now()
    assert first.returncode in {0, 1}, first.stdout + first.stderr
    before, batches = lab.manifest(), len(ledger(lab.sandbox, lab.dfes))
    admin = _admin(postgres_database)
    try:
        admin.execute(f'ALTER DATABASE "{postgres_database.name}" ALLOW_CONNECTIONS false')
        down = lab.run_now()
    finally:
        admin.execute(f'ALTER DATABASE "{postgres_database.name}" ALLOW_CONNECTIONS true')
        admin.close()
    assert down.returncode == 4, down.stdout + down.stderr
    assert "cannot connect to the MIS over ODBC" in down.stdout and "Traceback" not in down.stderr
    _nothing_removed(lab, before, batches)
    assert lab.cli("status").returncode == 2  # CRITICAL
    back = lab.run_now()
    assert back.returncode in {0, 1} and "0 changes sent" in back.stdout
    lab.assert_sandbox_matches_mis()
    scenario.figures.update({"records kept": len(before), "message": said(down)})


def test_connection_lost_mid_fetch_fails_the_run_with_exit_4_and_removes_nothing(
    rlab, postgres_database, scenario
):
    """The backend is terminated (pg_terminate_backend) while the client streams a 60,000-row learner
    query 100 rows per round trip: exit 4 naming the lost connection, nothing sent, nothing removed."""
    lab = _pg_school(rlab, postgres_database)
    assert lab.run_now().returncode in {0, 1}
    before, batches = lab.manifest(), len(ledger(lab.sandbox, lab.dfes))
    padding = 60_000
    db = postgres_database.connect(autocommit=True)
    try:  # rows that make the read span many round trips
        db.execute(
            "INSERT INTO mis_pupil (pupil_id, dfes_number, upn, legal_forename, legal_surname, year_group) "
            "SELECT g, ?, NULL, 'Llenwi', 'Rhes', '5' FROM generate_series(900000, ?) AS g",
            lab.dfes,
            900000 + padding - 1,
        )
    finally:
        db.close()
    killed: list[str] = []

    def terminate_when_fetching() -> None:
        admin = _admin(postgres_database)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not killed:
                rows = admin.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid() "
                    "AND query ILIKE 'fetch%'",
                    postgres_database.name,
                ).fetchall()
                for pid, query in rows:
                    time.sleep(0.15)  # well into the fetchmany loop, past the first FETCH of execute()
                    admin.execute("SELECT pg_terminate_backend(?)", pid)
                    killed.append(query)
                time.sleep(0.005)
        finally:
            admin.close()

    watcher = threading.Thread(target=terminate_when_fetching, daemon=True)
    watcher.start()
    lost = lab.run_now()
    watcher.join(65)
    assert killed, "the client's FETCH was never seen in pg_stat_activity"
    assert lost.returncode == 4, lost.stdout + lost.stderr
    assert "the connection to the MIS failed while reading" in lost.stdout
    assert "nothing was sent" in lost.stdout and "Traceback" not in lost.stderr
    _nothing_removed(lab, before, batches)
    db = postgres_database.connect(autocommit=True)
    try:
        db.execute("DELETE FROM mis_pupil WHERE pupil_id >= 900000")
    finally:
        db.close()
    back = lab.run_now()
    assert back.returncode in {0, 1} and "0 changes sent" in back.stdout
    lab.assert_sandbox_matches_mis()
    scenario.figures.update(
        {
            "rows in the query": padding + 30,
            "terminated during": killed[0].split()[0].upper() + " " + killed[0].split()[1],
            "message": said(lost),
            "records kept": len(before),
        }
    )


# -- SQLite: the query profile or the data is wrong ------------------------------------------------------


def test_a_query_that_errors_fails_the_run_with_exit_4_naming_the_query(rlab, scenario):
    """The learners read fine, then the staff query fails: the run stops before any diff, nothing is
    removed (not even the staff the failed query did not return)."""
    lab, before, batches = _provisioned_sqlite_school(rlab)
    _use_profile(lab, REFERENCE.replace("FROM mis_staff WHERE", "FROM mis_staff_archive WHERE"))
    failed = lab.run_now()
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "the staff query failed" in failed.stdout and "mis_staff_archive" in failed.stdout
    assert "Traceback" not in failed.stderr
    _nothing_removed(lab, before, batches)
    scenario.figures["message"] = said(failed)


def test_a_profile_mapping_a_column_the_query_does_not_return_fails_with_exit_4_naming_it(rlab, scenario):
    """The learners query no longer returns date_of_birth: exit 4 naming the column and the field."""
    lab, before, batches = _provisioned_sqlite_school(rlab)
    _use_profile(
        lab,
        REFERENCE.replace(
            "SELECT pupil_id, upn, legal_forename, legal_surname, date_of_birth,",
            "SELECT pupil_id, upn, legal_forename, legal_surname,",
        ),
    )
    failed = lab.run_now()
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "the learners query returned no column 'date_of_birth'" in failed.stdout
    assert "Traceback" not in failed.stderr
    _nothing_removed(lab, before, batches)
    scenario.figures["message"] = said(failed)


def test_a_profile_not_mapping_a_required_field_stops_with_exit_3_before_reading(rlab, scenario):
    """A profile that does not map legal_surname is a configuration error: exit 3, nothing read or sent."""
    lab, before, batches = _provisioned_sqlite_school(rlab)
    _use_profile(lab, REFERENCE.replace('legal_surname = "legal_surname"\n', "", 1))
    failed = lab.run_now()
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "[learners.columns] must map legal_surname" in failed.stdout + failed.stderr
    assert lab.cli("check-config").returncode == 3
    assert lab.manifest() == before and len(ledger(lab.sandbox, lab.dfes)) == batches
    scenario.figures["message"] = "query profile PATH: [learners.columns] must map legal_surname"


def test_an_empty_learner_result_is_blocked_with_exit_6_and_removes_nothing(rlab, scenario):
    """The learners query returns no rows (end-of-year procedures half done): blocked, nothing removed."""
    lab, before, batches = _provisioned_sqlite_school(rlab)
    _use_profile(
        lab,
        REFERENCE.replace(
            "FROM mis_pupil WHERE dfes_number = ?", "FROM mis_pupil WHERE dfes_number = ? AND 1 = 0"
        ),
    )
    blocked = lab.run_now()
    assert blocked.returncode == 6, blocked.stdout + blocked.stderr
    assert "the learner query returned no rows, but 30 learner accounts are active" in blocked.stdout
    _nothing_removed(lab, before, batches)
    scenario.figures["guard"] = "learner query returned no rows; 30 accounts kept"


def test_an_empty_mis_is_blocked_with_exit_6_and_removes_nothing(rlab, scenario):
    """Every table empty: blocked (the MIS returned no rows at all), nothing removed."""
    lab, before, batches = _provisioned_sqlite_school(rlab)
    mis = Mis(lab.schools[0].mis_path, lab.dfes)
    for table in ("mis_group_member", "mis_group", "mis_staff", "mis_pupil"):
        mis.execute(f"DELETE FROM {table}")
    mis.commit()
    mis.close()
    blocked = lab.run_now()
    assert blocked.returncode == 6, blocked.stdout + blocked.stderr
    assert "the MIS returned no rows at all" in blocked.stdout
    _nothing_removed(lab, before, batches)
    scenario.figures["records kept"] = len(before)

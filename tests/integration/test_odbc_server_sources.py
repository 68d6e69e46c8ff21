"""The same MIS read through three real ODBC drivers gives the same snapshot, byte for byte.

SQLite3 (libsqliteodbc), PostgreSQL Unicode (psqlODBC) and MariaDB Unicode, against the local servers.
Without a server the test says so and skips; under CI it fails instead (the synth plugin decides).
"""

from __future__ import annotations

import datetime as dt

import pytest

from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.core.model import Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import build_snapshot
from hwb_synth.generate import generate
from hwb_synth.load import load_sqlite
from hwb_synth.scales import small_schools

HASHER = UpnHasher("nat-test", b"n" * 32)
TODAY = dt.date(2026, 9, 7)
DATA = generate(7, small_schools()[:2], broken=True)
SCHOOL = small_schools()[1].dfes_number


def read(connection_string: str):
    source = MisSource.connect(connection_string, SCHOOL, load_profile("reference"))
    try:
        return build_snapshot(
            source.source_rows(),
            HASHER,
            TODAY,
        )
    finally:
        source.close()


def fingerprint(snapshot):
    return (
        {kind: {key: entry.digest for key, entry in snapshot.entries[kind].items()} for kind in Kind},
        sorted((h.kind.value, h.reason.value) for h in snapshot.held_back),
    )


@pytest.fixture(scope="module")
def sqlite_snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("mis") / "mis.sqlite3"
    load_sqlite(DATA, path)
    return fingerprint(read(f"Driver=SQLite3;Database={path}"))


def test_sqlite_read_holds_back_the_broken_records_and_keeps_the_rest(sqlite_snapshot):
    entries, held = sqlite_snapshot
    assert len(entries[Kind.LEARNER]) > 100 and len(entries[Kind.MEMBERSHIP]) > 100
    assert held  # the generator broke records on purpose


def test_postgresql_over_psqlodbc_reads_the_same_snapshot(postgres_database, sqlite_snapshot):
    postgres_database.load(DATA)
    assert fingerprint(read(postgres_database.connection_string)) == sqlite_snapshot


def test_mariadb_over_its_odbc_driver_reads_the_same_snapshot(mariadb_database, sqlite_snapshot):
    mariadb_database.load(DATA)
    assert fingerprint(read(mariadb_database.connection_string)) == sqlite_snapshot

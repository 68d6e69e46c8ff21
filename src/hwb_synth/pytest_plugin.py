"""pytest fixtures for real MIS databases: a temp SQLite file, fresh PostgreSQL and MariaDB databases.

Load with ``pytest_plugins = ["hwb_synth.pytest_plugin"]`` in the top-level ``conftest.py``.

- ``sqlite_mis_path``: a ``Path`` to a new SQLite file with the (empty) reference schema.
- ``postgres_database`` / ``mariadb_database``: a ``ServerDatabase`` (``.connection_string``,
  ``.load(data)``, ``.replace_school_data(data, dfes_numbers)``, ``.connect()``) on a database created for
  the test and dropped after it; ``postgres_module_database`` / ``mariadb_module_database`` do the same
  once per test module.

When a server is not reachable the test is skipped with the reason
(``PostgreSQL not reachable on 127.0.0.1:5432: ...``), except when the ``CI`` environment variable is set:
then it fails, so a CI run cannot pass by skipping. Tests using a server fixture get the ``postgres`` or
``mariadb`` marker automatically, so ``-m "not postgres"`` deselects them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_synth.dbservers import (
    ServerDatabase,
    ServerKind,
    ServerSettings,
    create_database,
    drop_database,
    probe,
)
from hwb_synth.load import schema_sql

_MARKERS = {
    "postgres": "postgres: needs the PostgreSQL server on 127.0.0.1:5432 (skipped without it, fails under CI)",
    "mariadb": "mariadb: needs the MariaDB server on 127.0.0.1:3306 (skipped without it, fails under CI)",
}
_FIXTURE_MARKS = {
    "postgres_database": "postgres",
    "postgres_module_database": "postgres",
    "mariadb_database": "mariadb",
    "mariadb_module_database": "mariadb",
}
_probed: dict[ServerKind, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``postgres`` and ``mariadb`` markers unless the project already declares them."""
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, line in _MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a server fixture with that server's marker."""
    for item in items:
        for fixture, marker in _FIXTURE_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, marker))


def _require(kind: ServerKind) -> ServerSettings:
    """The server's settings; skip (or fail under ``CI``) when it is not reachable."""
    settings = ServerSettings.from_env(kind)
    if kind not in _probed:
        _probed[kind] = probe(settings)
    why = _probed[kind]
    if why is not None:
        message = f"{settings.label.replace(' on ', ' not reachable on ')}: {why}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return settings


def _database(kind: ServerKind) -> Iterator[ServerDatabase]:
    settings = _require(kind)
    target = create_database(settings)
    try:
        yield ServerDatabase(settings, target)
    finally:
        drop_database(settings, target.database)


@pytest.fixture
def sqlite_mis_path(tmp_path: Path) -> Path:
    """A new SQLite file (``mis.sqlite`` in the test's temp dir) holding the empty reference schema."""
    path = tmp_path / "mis.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(schema_sql())
    db.close()
    return path


@pytest.fixture
def postgres_database() -> Iterator[ServerDatabase]:
    """A fresh database on the local PostgreSQL server, dropped after the test."""
    yield from _database("postgres")


@pytest.fixture(scope="module")
def postgres_module_database() -> Iterator[ServerDatabase]:
    """A fresh database on the local PostgreSQL server, shared by a test module."""
    yield from _database("postgres")


@pytest.fixture
def mariadb_database() -> Iterator[ServerDatabase]:
    """A fresh database on the local MariaDB server, dropped after the test."""
    yield from _database("mariadb")


@pytest.fixture(scope="module")
def mariadb_module_database() -> Iterator[ServerDatabase]:
    """A fresh database on the local MariaDB server, shared by a test module."""
    yield from _database("mariadb")

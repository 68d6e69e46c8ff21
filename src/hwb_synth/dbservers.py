"""Fresh, uniquely named databases on the local PostgreSQL and MariaDB servers, for tests and benchmarks.

Defaults match the development machine: PostgreSQL with trust authentication on 127.0.0.1:5432 (user
``postgres``), MariaDB on 127.0.0.1:3306 (user ``root``, empty password). Override with the environment
variables ``HWB_TEST_PG_HOST/PORT/USER/PASSWORD`` and ``HWB_TEST_MARIADB_HOST/PORT/USER/PASSWORD``.

Databases are created and dropped through pyodbc (the same drivers the client uses); the names are
``hwb_test_<12 hex digits>`` so concurrent runs never collide, and only names with that prefix are dropped.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from hwb_synth.generate import MisData
from hwb_synth.load import LoadMethod, LoadReport, ServerTarget, load_server, replace_school_data_server

ServerKind = Literal["postgres", "mariadb"]
TEST_PREFIX = "hwb_test_"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DEFAULT_PORT = {"postgres": 5432, "mariadb": 3306}
_DEFAULT_USER = {"postgres": "postgres", "mariadb": "root"}
_ADMIN_DATABASE = {"postgres": "postgres", "mariadb": "mysql"}
_LABEL = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}
_ENV = {"postgres": "HWB_TEST_PG", "mariadb": "HWB_TEST_MARIADB"}


class ServerUnavailable(Exception):
    """The database server cannot be reached or refused us; the message says where and why."""


@dataclass(frozen=True)
class ServerSettings:
    """Where a local test server listens, and who we are on it."""

    kind: ServerKind
    host: str = "127.0.0.1"
    port: int = 0
    user: str = ""
    password: str = ""

    @classmethod
    def from_env(cls, kind: ServerKind) -> ServerSettings:
        """The defaults for ``kind``, overridden by ``HWB_TEST_PG_*`` / ``HWB_TEST_MARIADB_*``."""
        prefix = _ENV[kind]
        return cls(
            kind=kind,
            host=os.environ.get(f"{prefix}_HOST", "127.0.0.1"),
            port=int(os.environ.get(f"{prefix}_PORT", _DEFAULT_PORT[kind])),
            user=os.environ.get(f"{prefix}_USER", _DEFAULT_USER[kind]),
            password=os.environ.get(f"{prefix}_PASSWORD", ""),
        )

    @property
    def label(self) -> str:
        """``PostgreSQL on 127.0.0.1:5432``: for messages."""
        return f"{_LABEL[self.kind]} on {self.host}:{self.port}"

    def target(self, database: str) -> ServerTarget:
        return ServerTarget(self.kind, database, self.host, self.port, self.user, self.password)


def _connect_admin(settings: ServerSettings) -> Any:
    import pyodbc

    connection_string = settings.target(_ADMIN_DATABASE[settings.kind]).connection_string
    return pyodbc.connect(connection_string, autocommit=True, timeout=5)


def probe(settings: ServerSettings) -> str | None:
    """``None`` if the server accepts us, otherwise why not (one line, for a skip or fail message)."""
    try:
        with socket.create_connection((settings.host, settings.port), timeout=3):
            pass
    except OSError as error:
        return f"cannot connect: {error.strerror or error}"
    try:
        connection = _connect_admin(settings)
    except Exception as error:  # pyodbc.Error, or the driver missing
        return f"ODBC connection failed: {str(error).splitlines()[0][:300]}"
    connection.close()
    return None


def unique_name(prefix: str = TEST_PREFIX) -> str:
    """A fresh database name: ``hwb_test_`` + 12 random hex digits."""
    return f"{prefix}{secrets.token_hex(6)}"


def _quoted(settings: ServerSettings, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    return f'"{name}"' if settings.kind == "postgres" else f"`{name}`"


def create_database(settings: ServerSettings, name: str | None = None) -> ServerTarget:
    """Create an empty database (UTF-8 / utf8mb4) and return where it is; raise ``ServerUnavailable``."""
    name = name or unique_name()
    quoted = _quoted(settings, name)
    try:
        connection = _connect_admin(settings)
    except Exception as error:
        raise ServerUnavailable(f"{settings.label} not reachable: {error}") from error
    try:
        if settings.kind == "postgres":
            connection.execute(f"CREATE DATABASE {quoted} ENCODING 'UTF8' TEMPLATE template0")
        else:
            connection.execute(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        connection.close()
    return settings.target(name)


def drop_database(settings: ServerSettings, name: str) -> None:
    """Drop a database created by ``create_database`` (only ``hwb_test_*`` names; open sessions are
    ended on PostgreSQL)."""
    if not name.startswith(TEST_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: only {TEST_PREFIX}* databases are dropped")
    quoted = _quoted(settings, name)
    connection = _connect_admin(settings)
    try:
        if settings.kind == "postgres":
            connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        else:
            connection.execute(f"DROP DATABASE IF EXISTS {quoted}")
    finally:
        connection.close()


@dataclass(frozen=True)
class ServerDatabase:
    """A fresh database on a test server: its ODBC connection string, and ways to fill and read it."""

    settings: ServerSettings
    target: ServerTarget

    @property
    def name(self) -> str:
        return self.target.database

    @property
    def kind(self) -> ServerKind:
        return self.settings.kind

    @property
    def connection_string(self) -> str:
        """What the client's ``[mis] connection_string`` would be for this database."""
        return self.target.connection_string

    def load(self, data: MisData, *, method: LoadMethod = "auto") -> LoadReport:
        """Replace the whole content by ``data`` (creating the reference schema)."""
        return load_server(data, self.target, method=method)

    def replace_school_data(
        self, data: MisData, dfes_numbers: Iterable[str], *, method: LoadMethod = "auto"
    ) -> LoadReport:
        """Replace only the given schools' rows by those in ``data``."""
        return replace_school_data_server(data, self.target, dfes_numbers, method=method)

    def connect(self, **kwargs: Any) -> Any:
        """A pyodbc connection to this database (the caller closes it)."""
        import pyodbc

        return pyodbc.connect(self.connection_string, **kwargs)


@contextmanager
def fresh_database(kind: ServerKind, settings: ServerSettings | None = None) -> Iterator[ServerDatabase]:
    """A new, uniquely named database on the local ``kind`` server, dropped on exit.

    Raises ``ServerUnavailable`` (with where and why) when the server cannot be reached."""
    settings = settings or ServerSettings.from_env(kind)
    why = probe(settings)
    if why is not None:
        raise ServerUnavailable(f"{settings.label} not reachable: {why}")
    target = create_database(settings)
    try:
        yield ServerDatabase(settings, target)
    finally:
        drop_database(settings, target.database)


def ensure_database(settings: ServerSettings, name: str) -> ServerTarget:
    """The database ``name``, created (UTF-8 / utf8mb4) if it does not exist yet."""
    quoted = _quoted(settings, name)
    try:
        connection = _connect_admin(settings)
    except Exception as error:
        raise ServerUnavailable(f"{settings.label} not reachable: {error}") from error
    try:
        if settings.kind == "postgres":
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = ?", name).fetchone()
            if not exists:
                connection.execute(f"CREATE DATABASE {quoted} ENCODING 'UTF8' TEMPLATE template0")
        else:
            connection.execute(
                f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        connection.close()
    return settings.target(name)

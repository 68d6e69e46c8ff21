"""Write synthetic MIS data into a real database with the reference schema: SQLite, PostgreSQL, MariaDB.

- SQLite: the file is created with ``profiles/reference.sql`` and filled with the ``sqlite3`` module in one
  transaction; DATE columns hold ``YYYY-MM-DD`` text (what the SQLite3 ODBC driver reads back as dates).
- PostgreSQL: ``COPY ... FROM STDIN`` through the ``psql`` client (one transaction).
- MariaDB: ``LOAD DATA LOCAL INFILE`` through the ``mariadb`` client (one transaction).
- Without those clients on the PATH (or with ``method="odbc"``), multi-row ``INSERT`` through pyodbc.

``load`` replaces the whole content (creating the schema when missing); ``replace_school_data`` replaces
only some schools' rows (for a rollover of part of an LA extract). ``odbc_connection_string`` gives what
the client (and tests) use to read the data back.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from hwb_synth.generate import TABLES, MisData

DbKind = Literal["sqlite", "postgres", "mariadb"]
LoadMethod = Literal["auto", "client", "odbc"]

#: Tables in load order (members last); deletes run in the reverse order.
TABLE_ORDER: Final = ("mis_pupil", "mis_staff", "mis_group", "mis_group_member")
_DATE_COLUMNS: Final = frozenset({"date_of_birth", "admission_date", "leaving_date", "start_date"})


def schema_sql(*, if_not_exists: bool = True) -> str:
    """The reference schema (``hwb_client/profiles/reference.sql``), optionally made idempotent."""
    text = (resources.files("hwb_client.profiles") / "reference.sql").read_text(encoding="utf-8")
    if if_not_exists:
        text = text.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ").replace(
            "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS "
        )
    return text


def schema_statements(*, if_not_exists: bool = True) -> list[str]:
    """The schema as separate statements (comments removed), for drivers that run one at a time."""
    lines = [
        line for line in schema_sql(if_not_exists=if_not_exists).splitlines() if not line.startswith("--")
    ]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def odbc_connection_string(
    kind: DbKind,
    *,
    database: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int | None = None,
    user: str | None = None,
    password: str = "",
) -> str:
    """The ODBC connection string for a reference MIS database.

    - ``sqlite``: ``Driver=SQLite3;Database=PATH`` (``database`` is the file);
    - ``postgres``: the ``PostgreSQL Unicode`` driver, user ``postgres`` by default, with
      ``UseDeclareFetch=1;Fetch=2000`` so big results are streamed, not buffered;
    - ``mariadb``: the ``MariaDB Unicode`` driver, user ``root`` by default, utf8mb4."""
    if kind == "sqlite":
        return f"Driver=SQLite3;Database={os.fspath(database)}"
    if kind == "postgres":
        return (
            f"Driver={{PostgreSQL Unicode}};Server={host};Port={port or 5432};Database={database};"
            f"Uid={user or 'postgres'};Pwd={password};UseDeclareFetch=1;Fetch=2000"
        )
    if kind == "mariadb":
        return (
            f"Driver={{MariaDB Unicode}};Server={host};Port={port or 3306};Database={database};"
            f"Uid={user or 'root'};Pwd={password};CharSet=utf8mb4"
        )
    raise ValueError(f"unknown database kind {kind!r}")


@dataclass(frozen=True)
class LoadReport:
    """Rows written per table, how, and how long it took (seconds)."""

    rows: dict[str, int]
    method: str
    seconds: float


def _sql_value(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def _rows(data: MisData, table: str, dfes_numbers: Iterable[str] | None) -> Iterator[tuple[object, ...]]:
    """Rows as tuples, dates as ISO text."""
    columns = TABLES[table][1]
    date_positions = [i for i, c in enumerate(columns) if c in _DATE_COLUMNS]
    rows = data.tuples(table, dfes_numbers)
    if not date_positions:
        return rows
    return (tuple(v.isoformat() if isinstance(v, dt.date) else v for v in row) for row in rows)


def _insert_sql(table: str, rows: int = 1, placeholder: str = "?") -> str:
    columns = TABLES[table][1]
    one = "(" + ", ".join([placeholder] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)


def _in_list(dfes_numbers: Sequence[str]) -> str:
    for dfes in dfes_numbers:
        if not dfes.isdigit():
            raise ValueError(f"not a DfES number: {dfes!r}")
    return ", ".join(f"'{dfes}'" for dfes in dfes_numbers)


def _timed(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _now() -> float:
    return time.perf_counter()


# ---------------------------------------------------------------------------------------------- SQLite


def load_sqlite(data: MisData, path: str | os.PathLike[str]) -> LoadReport:
    """Replace the content of the SQLite file at ``path`` (created with the schema if missing) by ``data``."""
    return _write_sqlite(data, Path(path), None)


def replace_school_data_sqlite(
    data: MisData, path: str | os.PathLike[str], dfes_numbers: Iterable[str]
) -> LoadReport:
    """Replace only the rows of ``dfes_numbers`` in the SQLite file by those in ``data``."""
    return _write_sqlite(data, Path(path), list(dfes_numbers))


def _write_sqlite(data: MisData, path: Path, dfes_numbers: list[str] | None) -> LoadReport:
    start = _now()
    counts: dict[str, int] = {}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(schema_sql())
        db.execute("BEGIN IMMEDIATE")
        for table in reversed(TABLE_ORDER):
            if dfes_numbers is None:
                db.execute(f"DELETE FROM {table}")
            else:
                db.execute(f"DELETE FROM {table} WHERE dfes_number IN ({_in_list(dfes_numbers)})")
        for table in TABLE_ORDER:
            cursor = db.executemany(_insert_sql(table), _rows(data, table, dfes_numbers))
            counts[table] = cursor.rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return LoadReport(counts, "sqlite3", _timed(start))


# ---------------------------------------------------------------------------------------------- text format


def _text_field(value: object) -> str:
    """A field in PostgreSQL ``COPY`` text format, which is also ``LOAD DATA``'s default format."""
    if value is None:
        return "\\N"
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _text_lines(data: MisData, table: str, dfes_numbers: Iterable[str] | None) -> Iterator[str]:
    for row in data.tuples(table, dfes_numbers):
        yield "\t".join(map(_text_field, row)) + "\n"


# ---------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ServerTarget:
    """A database on a PostgreSQL or MariaDB server."""

    kind: Literal["postgres", "mariadb"]
    database: str
    host: str = "127.0.0.1"
    port: int | None = None
    user: str | None = None
    password: str = ""

    @property
    def connection_string(self) -> str:
        return odbc_connection_string(
            self.kind,
            database=self.database,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
        )

    @property
    def client(self) -> str:
        return "psql" if self.kind == "postgres" else "mariadb"

    def client_command(self, *extra: str) -> list[str]:
        """The command line of the server's own client, connected to this database."""
        if self.kind == "postgres":
            return [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port or 5432),
                "-U",
                self.user or "postgres",
                "-d",
                self.database,
                *extra,
            ]
        return [
            "mariadb",
            "--local-infile=1",
            "--default-character-set=utf8mb4",
            "-h",
            self.host,
            "-P",
            str(self.port or 3306),
            "-u",
            self.user or "root",
            *extra,
            self.database,
        ]

    def client_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD" if self.kind == "postgres" else "MYSQL_PWD"] = self.password
        return env


def load_server(data: MisData, target: ServerTarget, *, method: LoadMethod = "auto") -> LoadReport:
    """Replace the whole content of a PostgreSQL or MariaDB database (schema created when missing)."""
    return _write_server(data, target, None, method)


def replace_school_data_server(
    data: MisData, target: ServerTarget, dfes_numbers: Iterable[str], *, method: LoadMethod = "auto"
) -> LoadReport:
    """Replace only the rows of ``dfes_numbers`` in a PostgreSQL or MariaDB database."""
    return _write_server(data, target, list(dfes_numbers), method)


def _write_server(
    data: MisData, target: ServerTarget, dfes_numbers: list[str] | None, method: LoadMethod
) -> LoadReport:
    if method == "auto":
        method = "client" if shutil.which(target.client) else "odbc"
    if method == "client":
        if target.kind == "postgres":
            return _write_postgres_copy(data, target, dfes_numbers)
        return _write_mariadb_load_data(data, target, dfes_numbers)
    return _write_odbc(data, target, dfes_numbers)


def _deletes(dfes_numbers: list[str] | None, *, truncate: str) -> list[str]:
    if dfes_numbers is None:
        return [truncate.format(table=table) for table in reversed(TABLE_ORDER)]
    where = f"WHERE dfes_number IN ({_in_list(dfes_numbers)})"
    return [f"DELETE FROM {table} {where}" for table in reversed(TABLE_ORDER)]


def _run_client(target: ServerTarget, script: Iterable[str], *extra: str) -> None:
    """Feed ``script`` to the server's client on stdin; raise with its message if it fails."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # noqa: S603 (fixed client, arguments are not a shell line)
            target.client_command(*extra),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=target.client_env(),
        )
        assert process.stdin is not None
        try:
            buffer: list[str] = []
            size = 0
            for piece in script:
                buffer.append(piece)
                size += len(piece)
                if size > 1 << 20:
                    process.stdin.write("".join(buffer).encode("utf-8"))
                    buffer, size = [], 0
            process.stdin.write("".join(buffer).encode("utf-8"))
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise RuntimeError(
                f"{target.client} failed on database {target.database} (exit {code}): {message}"
            )


def _write_postgres_copy(data: MisData, target: ServerTarget, dfes_numbers: list[str] | None) -> LoadReport:
    start = _now()
    counts = {table: 0 for table in TABLE_ORDER}

    def script() -> Iterator[str]:
        yield "SET client_min_messages = warning;\n"
        yield schema_sql() + "\n"
        yield "BEGIN;\n"
        for statement in _deletes(dfes_numbers, truncate="TRUNCATE {table}"):
            yield statement + ";\n"
        for table in TABLE_ORDER:
            yield f"COPY {table} ({', '.join(TABLES[table][1])}) FROM STDIN;\n"
            for line in _text_lines(data, table, dfes_numbers):
                counts[table] += 1
                yield line
            yield "\\.\n"
        yield "COMMIT;\n"

    _run_client(target, script())
    return LoadReport(counts, "psql COPY", _timed(start))


def _write_mariadb_load_data(
    data: MisData, target: ServerTarget, dfes_numbers: list[str] | None
) -> LoadReport:
    start = _now()
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="hwb-synth-") as tmp:
        statements = ["SET NAMES utf8mb4", schema_sql().strip().rstrip(";"), "SET autocommit = 0"]
        statements += _deletes(dfes_numbers, truncate="DELETE FROM {table}")
        for table in TABLE_ORDER:
            path = Path(tmp) / f"{table}.tsv"
            with path.open("w", encoding="utf-8", newline="\n") as out:
                counts[table] = 0
                for line in _text_lines(data, table, dfes_numbers):
                    out.write(line)
                    counts[table] += 1
            statements.append(
                f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                f"({', '.join(TABLES[table][1])})"
            )
        statements.append("COMMIT")
        _run_client(target, [";\n".join(statements) + ";\n"])
    return LoadReport(counts, "mariadb LOAD DATA", _timed(start))


def _write_odbc(
    data: MisData, target: ServerTarget, dfes_numbers: list[str] | None, *, batch: int = 500
) -> LoadReport:
    """Multi-row INSERTs through pyodbc (no client binaries needed; slower)."""
    import pyodbc

    start = _now()
    counts: dict[str, int] = {}
    connection = pyodbc.connect(target.connection_string, autocommit=False)
    try:
        cursor = connection.cursor()
        for statement in schema_statements():
            cursor.execute(statement)
        connection.commit()
        for statement in _deletes(dfes_numbers, truncate="DELETE FROM {table}"):
            cursor.execute(statement)
        for table in TABLE_ORDER:
            counts[table] = 0
            pending: list[object] = []
            width = len(TABLES[table][1])
            full = _insert_sql(table, batch)
            for row in data.tuples(table, dfes_numbers):
                pending.extend(map(_sql_value, row))
                if len(pending) == batch * width:
                    cursor.execute(full, pending)
                    counts[table] += batch
                    pending = []
            if pending:
                cursor.execute(_insert_sql(table, len(pending) // width), pending)
                counts[table] += len(pending) // width
        connection.commit()
    finally:
        connection.close()
    return LoadReport(counts, "pyodbc INSERT", _timed(start))

"""Reading the MIS over ODBC (pyodbc), through a query profile.

A profile (TOML) holds one SELECT per kind and maps the record model's fields onto the result's
columns. Rows are streamed with ``fetchmany``: a school's MIS is never loaded whole by this module (and
for PostgreSQL, ``UseDeclareFetch=1;Fetch=N`` in the connection string keeps the driver from buffering
the whole result). A profile problem is a ``ConfigError`` when it can be seen before connecting, and a
``ProfileError`` (the run fails, nothing is sent) when the MIS answers with other columns than mapped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import pyodbc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwb_client import errors
from hwb_client.core.snapshot import RowChunks, SourceRows
from hwb_client.errors import ConfigError, Joined, MisError, Phrase, ProfileError
from hwb_client.i18n import N_

KindName = Literal["learners", "staff", "groups", "memberships"]
KINDS: Final[tuple[KindName, ...]] = ("learners", "staff", "groups", "memberships")

#: Fields a profile may map, per kind; the first group must be mapped, the rest are optional.
REQUIRED_FIELDS: Final[Mapping[KindName, frozenset[str]]] = {
    "learners": frozenset({"upn", "legal_forename", "legal_surname", "date_of_birth", "year_group"}),
    "staff": frozenset({"staff_code", "legal_forename", "legal_surname", "start_date"}),
    "groups": frozenset({"group_id", "group_type"}),
    "memberships": frozenset({"group_id", "member_kind"}),
}
OPTIONAL_FIELDS: Final[Mapping[KindName, frozenset[str]]] = {
    "learners": frozenset({"registration_group", "start_date", "leaving_date", "mis_id"}),
    "staff": frozenset({"leaving_date", "mis_id"}),
    "groups": frozenset({"name", "year_group"}),
    "memberships": frozenset({"upn", "staff_code"}),
}
FETCH_ROWS: Final = 1000


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str = Field(min_length=1)
    params: list[Literal["dfes_number"]] = Field(default_factory=list)
    columns: dict[str, str]

    @field_validator("sql")
    @classmethod
    def _select_only(cls, sql: str) -> str:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head not in {"SELECT", "WITH", "{CALL", "EXEC", "EXECUTE"}:
            raise ValueError("must be a SELECT (or WITH ... SELECT, or a stored procedure call)")
        return sql


class ProfileInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: ProfileInfo
    learners: Query
    staff: Query
    groups: Query
    memberships: Query

    def query(self, kind: KindName) -> Query:
        query: Query = getattr(self, kind)
        return query


_PROFILE_PROBLEMS: Final = N_("query profile {origin}:\n  {problems}")


def _check_mapping(profile: Profile, origin: str) -> None:
    problems: list[Phrase] = []
    for kind in KINDS:
        query = profile.query(kind)
        mapped = set(query.columns)
        missing = REQUIRED_FIELDS[kind] - mapped
        unknown = mapped - REQUIRED_FIELDS[kind] - OPTIONAL_FIELDS[kind]
        if missing:
            problems.append(
                Phrase(N_("[{kind}.columns] must map {fields}"), kind=kind, fields=", ".join(sorted(missing)))
            )
        if unknown:
            allowed = ", ".join(sorted(REQUIRED_FIELDS[kind] | OPTIONAL_FIELDS[kind]))
            problems.append(
                Phrase(
                    N_(
                        "[{kind}.columns] maps {fields}, which the record model does not have "
                        "(allowed: {allowed})"
                    ),
                    kind=kind,
                    fields=", ".join(sorted(unknown)),
                    allowed=allowed,
                )
            )
        if query.sql.count("?") != len(query.params):
            placeholders = query.sql.count("?")
            problems.append(
                Phrase(
                    errors.ngettext(
                        "[{kind}] has {placeholders} '?' placeholder but params lists {params}",
                        "[{kind}] has {placeholders} '?' placeholders but params lists {params}",
                        placeholders,
                    ),
                    kind=kind,
                    placeholders=placeholders,
                    params=len(query.params),
                )
            )
    if problems:
        raise ConfigError(_PROFILE_PROBLEMS, origin=origin, problems=Joined("\n  ", problems))


def load_profile(name_or_path: str, *, base_dir: Path | None = None) -> Profile:
    """A built-in profile by name (``reference``) or a TOML file by path (relative to ``base_dir``)."""
    if "/" not in name_or_path and "\\" not in name_or_path and not name_or_path.endswith(".toml"):
        resource = resources.files("hwb_client.profiles") / f"{name_or_path}.toml"
        if not resource.is_file():
            raise ConfigError(
                N_(
                    "profile = {name}: no built-in profile of that name (built in: reference); "
                    "give a path to your own profile file instead"
                ),
                name=repr(name_or_path),
            )
        text = resource.read_text(encoding="utf-8")
        origin: str = Phrase(N_("'{name}' (built in)"), name=name_or_path)
    else:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                N_("profile = {name}: cannot read {path} ({reason})"),
                name=repr(name_or_path),
                path=path,
                reason=exc.strerror,
            ) from exc
        origin = str(path)
    try:
        raw = tomllib.loads(text)
        profile = Profile(**raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            N_("query profile {origin} is not valid TOML: {problem}"), origin=origin, problem=exc
        ) from exc
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(_PROFILE_PROBLEMS, origin=origin, problems="\n  ".join(lines)) from None
    _check_mapping(profile, origin)
    return profile


#: SQLSTATE classes and driver phrases that mean the connection, not the query, failed.
_CONNECTION_STATES = ("08", "HYT")
_CONNECTION_PHRASES = ("server closed the connection", "connection", "terminating connection", "gone away")


_SQLITE_DATE = re.compile(r"\s*(\d+)[-/](\d+)[-/](\d+)")


def _sqlite_date(raw: bytes | None) -> object:
    """A SQLite DATE value as the driver reads it (its leading ``Y-M-D``, with ``-`` or ``/``; ``None``
    when that is no date), except that a date of year 0, which the driver hands on and Python cannot
    make, is kept as its text for validation to hold back."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    match = _SQLITE_DATE.match(text)
    if match is None:
        return None
    year, month, day = (int(part) for part in match.groups())
    if year == 0 and 1 <= month <= 12 and 1 <= day <= 31:
        return text
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _connection_lost(exc: pyodbc.Error) -> bool:
    state = str(exc.args[0]) if exc.args else ""
    text = " ".join(str(a) for a in exc.args).lower()
    return (
        state.startswith(_CONNECTION_STATES)
        or (isinstance(exc, pyodbc.OperationalError) and any(p in text for p in _CONNECTION_PHRASES))
        or "server closed the connection" in text
        or "terminating connection" in text
    )


def _driver_message(exc: pyodbc.Error) -> str:
    # pyodbc errors carry (sqlstate, message); the message names the driver and the problem, never a
    # row value. Connection strings are never part of it.
    args = [str(a) for a in exc.args]
    return " ".join(args)[:500]


@dataclass
class MisSource:
    """One open ODBC connection to one school's MIS, read through a profile."""

    dfes_number: str
    profile: Profile
    connection: Any
    fetch_rows: int = FETCH_ROWS

    @classmethod
    def connect(
        cls,
        connection_string: str,
        dfes_number: str,
        profile: Profile,
        *,
        login_timeout: int = 30,
        query_timeout: int = 600,
    ) -> MisSource:
        try:
            try:
                connection = pyodbc.connect(connection_string, autocommit=True, timeout=login_timeout)
            except pyodbc.Error as exc:
                # psqlODBC refuses the login-timeout attribute (SQL_ATTR_LOGIN_TIMEOUT, 113): connect without
                # it there, and let the driver's own connect timeout apply.
                if "attribute 113" not in str(exc):
                    raise
                connection = pyodbc.connect(connection_string, autocommit=True)
            with contextlib.suppress(pyodbc.Error):
                connection.timeout = query_timeout  # not every driver supports a query timeout
        except pyodbc.Error as exc:
            raise MisError(
                N_(
                    "school {dfes}: cannot connect to the MIS over ODBC: {driver_message}; check the "
                    "school's `odbc` setting, the driver (odbcinst -q -d) and that the database is up"
                ),
                dfes=dfes_number,
                driver_message=_driver_message(exc),
            ) from None
        # Narrow-character data from any driver is decoded as UTF-8 (wide data stays UTF-16).
        connection.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
        if "sqlite" in str(connection.getinfo(pyodbc.SQL_DRIVER_NAME)).lower():
            # The SQLite driver hands a DATE column's text to pyodbc, which fails the whole fetch on a
            # date it cannot make ("0000-01-01": year 0). Read as text, such a value reaches validation
            # and only its record is held back; a real date is still a date.
            connection.add_output_converter(pyodbc.SQL_TYPE_DATE, _sqlite_date)
        return cls(dfes_number, profile, connection)

    def rows(self, kind: KindName) -> RowChunks:
        """One kind's rows, streamed ``fetch_rows`` at a time: chunks of values in the order of the
        profile's fields (iterated: ``{field: value}`` dicts). The query runs when the first is read."""
        query = self.profile.query(kind)
        return RowChunks(tuple(query.columns), self._chunks(kind, query))

    def _chunks(self, kind: KindName, query: Query) -> Iterator[Sequence[Sequence[object]]]:
        params = [self.dfes_number for _ in query.params]
        cursor = self.connection.cursor()
        try:
            try:
                cursor.execute(query.sql, *params)
            except pyodbc.Error as exc:
                if _connection_lost(exc):
                    raise MisError(
                        N_(
                            "school {dfes}: the connection to the MIS failed while running the {kind} "
                            "query: {driver_message}; nothing was sent, run again when the MIS is back"
                        ),
                        dfes=self.dfes_number,
                        kind=kind,
                        driver_message=_driver_message(exc),
                    ) from None
                raise ProfileError(
                    N_(
                        "school {dfes}: the {kind} query failed: {driver_message}; "
                        "check [{kind}].sql in the query profile '{profile}'"
                    ),
                    dfes=self.dfes_number,
                    kind=kind,
                    driver_message=_driver_message(exc),
                    profile=self.profile.profile.name,
                ) from None
            columns = [str(d[0]).lower() for d in cursor.description or ()]
            index = {name: i for i, name in enumerate(columns)}
            mapping: list[tuple[str, int]] = []
            for field, column in query.columns.items():
                position = index.get(column.lower())
                if position is None:
                    raise ProfileError(
                        N_(
                            "school {dfes}: the {kind} query returned no column '{column}' (for field "
                            "'{field}'); it returned: {columns}. Fix [{kind}.columns] "
                            "or the SQL in the query profile '{profile}'"
                        ),
                        dfes=self.dfes_number,
                        kind=kind,
                        column=column,
                        field=field,
                        columns=", ".join(columns) or Phrase(N_("no columns")),
                        profile=self.profile.profile.name,
                    )
                mapping.append((field, position))
            positions = [position for _field, position in mapping]
            in_order = positions == list(range(len(columns)))
            pick = _picker(positions)
            while True:
                try:
                    chunk = cursor.fetchmany(self.fetch_rows)
                except pyodbc.Error as exc:
                    raise MisError(
                        N_(
                            "school {dfes}: the connection to the MIS failed while reading {kind}: "
                            "{driver_message}; nothing was sent, run again when the MIS is back"
                        ),
                        dfes=self.dfes_number,
                        kind=kind,
                        driver_message=_driver_message(exc),
                    ) from None
                if not chunk:
                    return
                # pyodbc's rows as they are when the query's columns are the fields, in order (a row's
                # repr is a tuple's); else each row's values picked out in the order of the fields
                yield chunk if in_order else [pick(row) for row in chunk]
        finally:
            with contextlib.suppress(pyodbc.Error):
                cursor.close()

    def source_rows(self) -> SourceRows:
        """The school's four row streams, in the order ``core.snapshot.build_snapshot`` reads them."""
        return SourceRows(
            self.rows("learners"), self.rows("staff"), self.rows("groups"), self.rows("memberships")
        )

    def close(self) -> None:
        with contextlib.suppress(pyodbc.Error):
            self.connection.close()


def _picker(positions: list[int]) -> Callable[[Any], tuple[object, ...]]:
    """The values at ``positions`` of a row, as a tuple (also for one position)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*positions)

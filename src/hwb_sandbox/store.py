"""The sandbox's state: one SQLite database in WAL mode, one connection per thread.

Writers take ``BEGIN IMMEDIATE`` so that two requests for the same batch are serialised: the second sees
the first's idempotency record. Schema changes are recorded in ``schema_migrations`` in the same
transaction as the change.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hwb_sandbox import calendar
from hwb_sandbox.i18n import N_

ENROLMENT_CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DEFAULT_CODE_VALID_DAYS: Final = 7
NONCE_WINDOW_SECONDS: Final = 600

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE schools (
        dfes_number TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE enrolment_codes (
        code_sha256 TEXT PRIMARY KEY,
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL,
        used_at TEXT,
        used_by_key_id TEXT
    );
    CREATE TABLE signing_keys (
        key_id TEXT PRIMARY KEY,
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        public_key BLOB NOT NULL,
        enrolled_at TEXT NOT NULL,
        retired_at TEXT
    );
    CREATE TABLE nonces (
        nonce TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    CREATE INDEX nonces_by_expiry ON nonces(expires_at);
    CREATE TABLE learner_accounts (
        account_id TEXT PRIMARY KEY,
        upn_hash TEXT NOT NULL UNIQUE,
        active INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE staff_accounts (
        account_id TEXT PRIMARY KEY,
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        staff_code TEXT NOT NULL,
        active INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (dfes_number, staff_code)
    );
    CREATE TABLE school_records (
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        kind TEXT NOT NULL,
        record_key TEXT NOT NULL,
        record_json TEXT,
        digest TEXT,
        status TEXT NOT NULL CHECK (status IN ('active', 'left', 'removed')),
        account_id TEXT,
        leaving_date TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (dfes_number, kind, record_key)
    );
    CREATE INDEX school_records_by_account ON school_records(account_id, status);
    CREATE TABLE batches (
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        batch_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        body_sha256 TEXT NOT NULL,
        response_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (dfes_number, batch_id)
    );
    CREATE TABLE run_reports (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        dfes_number TEXT NOT NULL REFERENCES schools(dfes_number),
        run_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        report_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (dfes_number, run_id)
    );
    """,
    # 2: the national calendar. ``released_on`` is the first day a record is off roll at its school (a
    # leave's calendar release, or the day of a removal); ``changed_on`` the sandbox day of the record's
    # last applied change. Rows released before this migration keep their release day (the day they were
    # last written), so nothing is reactivated or deactivated by the upgrade. From here on the accounts'
    # ``active`` columns hold the state as of their last write; every read computes it for today instead
    # (``ON_ROLL_SQL``), since a release or a purge happens when the clock passes its day.
    """
    ALTER TABLE school_records ADD COLUMN released_on TEXT;
    ALTER TABLE school_records ADD COLUMN changed_on TEXT;
    UPDATE school_records SET released_on = substr(updated_at, 1, 10), changed_on = substr(updated_at, 1, 10)
        WHERE status IN ('left', 'removed');
    CREATE TABLE sandbox_clock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        today TEXT NOT NULL,
        set_at TEXT NOT NULL
    );
    """,
    # 3: national UPN key rotation: every pseudonym a learner account is known by (old and new keys)
    """
    CREATE TABLE learner_pseudonyms (
        upn_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES learner_accounts(account_id)
    ) WITHOUT ROWID;
    INSERT INTO learner_pseudonyms SELECT upn_hash, account_id FROM learner_accounts;
    """,
)


#: A school record (aliased ``r``) that holds its account active on the day given as the one parameter:
#: not removed, and not yet released (``calendar.on_roll`` is the same rule in Python).
def on_roll_sql(alias: str) -> str:
    return f"{alias}.status != 'removed' AND ({alias}.released_on IS NULL OR {alias}.released_on > ?)"


ON_ROLL_SQL: Final = on_roll_sql("r")


def utc_timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC timestamp with second precision, e.g. ``2026-08-30T02:00:00Z``."""
    moment = dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def real_date(epoch_seconds: float) -> dt.date:
    """The date in Wales (Europe/London) at ``epoch_seconds``; UTC where no time zone data is installed."""
    try:
        zone: dt.tzinfo = ZoneInfo("Europe/London")
    except ZoneInfoNotFoundError:
        zone = dt.UTC
    return dt.datetime.fromtimestamp(epoch_seconds, tz=zone).date()


def thumbprint_key_id(dfes_number: str, public_key_raw: bytes) -> str:
    """The protocol's key id: ``DFES:`` + the first 16 hex digits of SHA-256 of the raw public key."""
    return f"{dfes_number}:{hashlib.sha256(public_key_raw).hexdigest()[:16]}"


def normalise_code(code: str) -> str:
    """Enrolment codes compare upper-case, without spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def _code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode("utf-8")).hexdigest()


def new_enrolment_code() -> str:
    """A random code like ``K7QM-3XPA-9HDT`` (60 bits, no look-alike characters)."""
    chars = "".join(secrets.choice(ENROLMENT_CODE_ALPHABET) for _ in range(12))
    return "-".join(chars[i : i + 4] for i in range(0, 12, 4))


@dataclass(frozen=True, slots=True)
class School:
    dfes_number: str
    name: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    dfes_number: str
    public_key_raw: bytes
    retired: bool


class EnrolmentRefused(Exception):
    """The code is wrong, used or expired, or the key was retired; the message says which.

    ``template`` is the sentence marked for translation (the app's problem detail translates it).
    """

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template


class SandboxStore:
    """The sandbox database. Safe to share between threads: each thread gets its own connection."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._settled_on: dt.date | None = None
        self._migrate()

    # -- connections and transactions ------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any exception."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def now(self) -> str:
        return utc_timestamp(self.clock())

    # -- the sandbox clock (the calendar's today; signatures, nonces and timestamps use real time) ---------

    def clock_setting(self) -> dt.date | None:
        """The date the clock is set to, or None when the sandbox follows the real date."""
        row = self.connection().execute("SELECT today FROM sandbox_clock WHERE id = 1").fetchone()
        return None if row is None else dt.date.fromisoformat(row["today"])

    def today(self) -> dt.date:
        """The sandbox's today: the date set with ``serve --today`` or ``clock --set``, else the real date."""
        setting = self.clock_setting()
        return real_date(self.clock()) if setting is None else setting

    def set_today(self, day: dt.date | None) -> None:
        """Fix the sandbox's today at ``day`` (it stays there until set again); None follows the real date."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM sandbox_clock")
            if day is not None:
                conn.execute("INSERT INTO sandbox_clock VALUES (1, ?, ?)", (day.isoformat(), self.now()))

    def settle(self, today: dt.date) -> int:
        """Purge the accounts inactive for 12 months by ``today``; return how many (once per day)."""
        if self._settled_on == today:
            return 0
        with self.transaction() as conn:
            purged = _purge_learners(conn, today) + _purge_staff(conn, today)
        self._settled_on = today
        return purged

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, self.now()))

    # -- schools and enrolment -------------------------------------------------------------------------------

    def school(self, dfes_number: str) -> School | None:
        row = (
            self.connection()
            .execute("SELECT * FROM schools WHERE dfes_number = ?", (dfes_number,))
            .fetchone()
        )
        return None if row is None else School(row["dfes_number"], row["name"])

    def schools(self) -> list[School]:
        rows = self.connection().execute("SELECT * FROM schools ORDER BY dfes_number").fetchall()
        return [School(row["dfes_number"], row["name"]) for row in rows]

    def issue_code(
        self, dfes_number: str, name: str | None = None, *, valid_days: float = DEFAULT_CODE_VALID_DAYS
    ) -> str:
        """Register the school if new (renaming it when ``name`` is given); return a one-time code."""
        code = new_enrolment_code()
        with self.transaction() as conn:
            existing = conn.execute(
                "SELECT name FROM schools WHERE dfes_number = ?", (dfes_number,)
            ).fetchone()
            if existing is None:
                conn.execute(
                    "INSERT INTO schools VALUES (?, ?, ?)",
                    (dfes_number, name or f"School {dfes_number}", self.now()),
                )
            elif name:
                conn.execute("UPDATE schools SET name = ? WHERE dfes_number = ?", (name, dfes_number))
            conn.execute(
                "INSERT INTO enrolment_codes (code_sha256, dfes_number, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (_code_hash(code), dfes_number, self.now(), self.clock() + valid_days * 86400),
            )
        return code

    def enrol(self, dfes_number: str, code: str, public_key_raw: bytes) -> tuple[School, str]:
        """Spend a one-time code to enrol a key; return school and key id, or raise EnrolmentRefused."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM enrolment_codes WHERE code_sha256 = ? AND dfes_number = ?",
                (_code_hash(code), dfes_number),
            ).fetchone()
            if row is None:
                raise EnrolmentRefused(N_("the enrolment code is not valid for this school"))
            if row["used_at"] is not None:
                raise EnrolmentRefused(N_("the enrolment code was already used; ask for a new one"))
            if row["expires_at"] < self.clock():
                raise EnrolmentRefused(N_("the enrolment code has expired; ask for a new one"))
            key_id = thumbprint_key_id(dfes_number, public_key_raw)
            self._insert_key(conn, dfes_number, key_id, public_key_raw)
            conn.execute(
                "UPDATE enrolment_codes SET used_at = ?, used_by_key_id = ? WHERE code_sha256 = ?",
                (self.now(), key_id, row["code_sha256"]),
            )
            school = conn.execute("SELECT * FROM schools WHERE dfes_number = ?", (dfes_number,)).fetchone()
        return School(school["dfes_number"], school["name"]), key_id

    def _insert_key(
        self, conn: sqlite3.Connection, dfes_number: str, key_id: str, public_key_raw: bytes
    ) -> None:
        existing = conn.execute("SELECT retired_at FROM signing_keys WHERE key_id = ?", (key_id,)).fetchone()
        if existing is None:
            conn.execute(
                "INSERT INTO signing_keys (key_id, dfes_number, public_key, enrolled_at) VALUES (?, ?, ?, ?)",
                (key_id, dfes_number, public_key_raw, self.now()),
            )
        elif existing["retired_at"] is not None:
            raise EnrolmentRefused(
                N_("this key was retired and cannot be enrolled again; generate a new key")
            )

    def add_key(self, dfes_number: str, public_key_raw: bytes) -> str:
        """Add a key for a school (rotation); raise EnrolmentRefused for a retired key."""
        key_id = thumbprint_key_id(dfes_number, public_key_raw)
        with self.transaction() as conn:
            self._insert_key(conn, dfes_number, key_id, public_key_raw)
        return key_id

    def key(self, key_id: str) -> SigningKey | None:
        row = self.connection().execute("SELECT * FROM signing_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        return SigningKey(
            row["key_id"], row["dfes_number"], bytes(row["public_key"]), row["retired_at"] is not None
        )

    def active_keys(self, dfes_number: str) -> list[str]:
        rows = self.connection().execute(
            "SELECT key_id FROM signing_keys WHERE dfes_number = ? AND retired_at IS NULL"
            " ORDER BY enrolled_at",
            (dfes_number,),
        )
        return [row[0] for row in rows]

    def retire_key(self, key_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE key_id = ? AND retired_at IS NULL",
                (self.now(), key_id),
            )

    # -- nonces ----------------------------------------------------------------------------------------------

    def remember_nonce(self, nonce: str) -> bool:
        """Record a nonce for the replay window; False when it was already seen within the window."""
        now = self.clock()
        with self.transaction() as conn:
            conn.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
            try:
                conn.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, now + NONCE_WINDOW_SECONDS))
            except sqlite3.IntegrityError:
                return False
        return True

    # -- run reports -----------------------------------------------------------------------------------------

    def record_run_report(self, dfes_number: str, report: dict[str, Any]) -> tuple[bool, str]:
        """Store a run report once per run_id; return (newly stored, received_at of the stored copy)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT received_at FROM run_reports WHERE dfes_number = ? AND run_id = ?",
                (dfes_number, report["run_id"]),
            ).fetchone()
            if row is not None:
                return False, str(row["received_at"])
            received_at = self.now()
            conn.execute(
                "INSERT INTO run_reports"
                " (dfes_number, run_id, outcome, finished_at, report_json, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    dfes_number,
                    report["run_id"],
                    report["outcome"],
                    report["finished_at"],
                    json.dumps(report, ensure_ascii=False),
                    received_at,
                ),
            )
        return True, received_at

    def last_run(self, dfes_number: str) -> dict[str, Any] | None:
        row = (
            self.connection()
            .execute(
                "SELECT report_json, received_at FROM run_reports WHERE dfes_number = ?"
                " ORDER BY seq DESC LIMIT 1",
                (dfes_number,),
            )
            .fetchone()
        )
        if row is None:
            return None
        report: dict[str, Any] = json.loads(row["report_json"])
        report["received_at"] = row["received_at"]
        return report

    def last_success_at(self, dfes_number: str) -> str | None:
        """``finished_at`` of the latest run that reached the national side (``success`` or ``partial``)."""
        row = (
            self.connection()
            .execute(
                "SELECT finished_at FROM run_reports"
                " WHERE dfes_number = ? AND outcome IN ('success', 'partial')"
                " ORDER BY seq DESC LIMIT 1",
                (dfes_number,),
            )
            .fetchone()
        )
        return None if row is None else str(row["finished_at"])

    # -- read models for the CLI and portal (as of the sandbox's today, after any purge due) ---------------

    def _calendar_rows(self, dfes_number: str, kinds: tuple[str, ...]) -> tuple[dt.date, list[CalendarRow]]:
        today = self.today()
        self.settle(today)
        marks = ", ".join("?" * len(kinds))
        rows = self.connection().execute(
            "SELECT r.*, r.kind IN ('learner', 'staff') AND EXISTS (SELECT 1 FROM school_records o"
            f" WHERE o.kind = r.kind AND o.account_id = r.account_id AND {on_roll_sql('o')}) AS account_active"
            f" FROM school_records r WHERE r.dfes_number = ? AND r.kind IN ({marks})"
            " ORDER BY r.kind, r.record_key",
            (today.isoformat(), dfes_number, *kinds),
        )
        return today, [CalendarRow.from_row(row, today) for row in rows]

    def record_counts(self, dfes_number: str) -> dict[str, dict[str, int]]:
        """Records held for the school today: ``{kind: {state: n}}`` (removed records excluded).

        Learners and staff count by their calendar state (``active``, ``starting``, ``leaving``, ``left``).
        """
        _today, rows = self._calendar_rows(dfes_number, ("learner", "staff", "group", "membership"))
        counts: dict[str, dict[str, int]] = {}
        for row in rows:
            if row.state != "removed":
                by_state = counts.setdefault(row.kind, {})
                by_state[row.state] = by_state.get(row.state, 0) + 1
        return counts

    def class_changes_not_passed_on(self, dfes_number: str) -> int:
        """Group and membership changes (removals included) recorded but not passed on to classrooms."""
        _today, rows = self._calendar_rows(dfes_number, ("group", "membership"))
        return sum(row.passed_on_to_classrooms is False for row in rows)

    def accounts(self, dfes_number: str) -> list[dict[str, Any]]:
        """Learner and staff accounts linked (or once linked) to the school: keys and status, no names."""
        _today, rows = self._calendar_rows(dfes_number, ("learner", "staff"))
        return [
            {
                "kind": row.kind,
                "key": row.key,
                "status_at_school": row.status,
                "state": row.state,
                "on_roll_until": row.on_roll_until,
                "starts_on": row.starts_on,
                "account_id": row.account_id,
                "account_active": row.account_active,
                "leaving_date": row.leaving_date,
                "updated_at": row.updated_at,
            }
            for row in rows
        ]

    def lookup(self, dfes_number: str, kind: str, key: str) -> dict[str, Any]:
        """One of the school's own learner or staff records, its national account, and for a learner
        whether the hashed UPN is on roll at another school (never which one)."""
        conn = self.connection()
        row = conn.execute(
            "SELECT status, account_id, updated_at, leaving_date FROM school_records"
            " WHERE dfes_number = ? AND kind = ? AND record_key = ?",
            (dfes_number, kind, key),
        ).fetchone()
        answer: dict[str, Any] = {
            "kind": kind,
            "key": key,
            "status_at_school": row["status"] if row else None,
            "account_id": row["account_id"] if row else None,
            "account_active": None,
            "updated_at": row["updated_at"] if row else None,
            "leaving_date": row["leaving_date"] if row else None,
            "on_roll_elsewhere": None,
        }
        today = self.today().isoformat()
        if kind == "learner":
            # on roll at another school today, by the national calendar (never which school)
            elsewhere = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM school_records r WHERE r.kind = 'learner' AND r.record_key = ?"
                f" AND r.dfes_number != ? AND {ON_ROLL_SQL})",
                (key, dfes_number, today),
            ).fetchone()[0]
            answer["on_roll_elsewhere"] = bool(elsewhere)
        if row is not None and row["account_id"]:
            # an account is active while any school holds it on roll today (``ON_ROLL_SQL``)
            active = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM school_records r WHERE r.kind = ? AND r.account_id = ?"
                f" AND {ON_ROLL_SQL})",
                (kind, row["account_id"], today),
            ).fetchone()[0]
            answer["account_active"] = bool(active)
        return answer

    def manifest(self, dfes_number: str, *, protocol: int = 1) -> list[dict[str, Any]]:
        """What the school holds. Protocol 2 adds the calendar: state, dates and the classroom flag."""
        _today, rows = self._calendar_rows(dfes_number, ("learner", "staff", "group", "membership"))
        records = []
        for row in rows:
            if row.status not in ("active", "left"):
                continue
            entry: dict[str, Any] = {
                "kind": row.kind,
                "key": row.key,
                "digest": row.digest,
                "status": row.status,
                "account_id": row.account_id,
            }
            if protocol >= 2:
                entry.update(
                    state=row.state,
                    on_roll_until=row.on_roll_until,
                    starts_on=row.starts_on,
                    passed_on_to_classrooms=row.passed_on_to_classrooms,
                )
            records.append(entry)
        return records


@dataclass(frozen=True, slots=True)
class CalendarRow:
    """A school record as the calendar sees it today (no names: keys, states and dates only)."""

    kind: str
    key: str
    digest: str | None
    status: str
    state: str
    account_id: str | None
    account_active: bool
    leaving_date: str | None
    on_roll_until: str | None
    starts_on: str | None
    passed_on_to_classrooms: bool | None
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row, today: dt.date) -> CalendarRow:
        kind: str = row["kind"]
        state, until, starts, passed_on = row["status"], None, None, None
        if kind in ("learner", "staff"):
            record = json.loads(row["record_json"] or "{}")
            found = calendar.record_state(
                kind, row["status"], record, calendar.parse_date(row["released_on"]), today
            )
            state, until, starts = found.state.value, _iso(found.on_roll_until), _iso(found.starts_on)
        else:
            passed_on = calendar.class_change_passed_on(calendar.parse_date(row["changed_on"]), today)
        return cls(
            kind=kind,
            key=row["record_key"],
            digest=row["digest"],
            status=row["status"],
            state=state,
            account_id=row["account_id"],
            account_active=bool(row["account_active"]),
            leaving_date=row["leaving_date"],
            on_roll_until=until,
            starts_on=starts,
            passed_on_to_classrooms=passed_on,
            updated_at=row["updated_at"],
        )


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _accounts_to_purge(table: str, kind: str) -> str:
    """Accounts with no record on roll (day: first parameter) released by the cutoff (second)."""
    return (
        f"SELECT a.* FROM {table} a"  # table and kind: this module's constants
        f" WHERE NOT EXISTS (SELECT 1 FROM school_records r WHERE r.kind = '{kind}'"
        f" AND r.account_id = a.account_id AND {ON_ROLL_SQL})"
        f" AND (SELECT max(r.released_on) FROM school_records r WHERE r.kind = '{kind}'"
        " AND r.account_id = a.account_id) <= ?"
    )


def _purge_learners(conn: sqlite3.Connection, today: dt.date) -> int:
    """Delete learner accounts inactive for 12 months, their records and memberships at every school."""
    sql = _accounts_to_purge("learner_accounts", "learner")
    due = conn.execute(sql, (today.isoformat(), calendar.purge_cutoff(today).isoformat())).fetchall()
    for account in due:
        suffix = "/learner/" + account["upn_hash"]
        conn.execute(
            "DELETE FROM school_records WHERE kind = 'membership' AND substr(record_key, -?) = ?",
            (len(suffix), suffix),
        )
        conn.execute("DELETE FROM school_records WHERE kind = 'learner' AND account_id = ?", (account[0],))
        # every pseudonym the account was known by (national key rotation) goes with it
        conn.execute("DELETE FROM learner_pseudonyms WHERE account_id = ?", (account[0],))
        conn.execute("DELETE FROM learner_accounts WHERE account_id = ?", (account[0],))
    return len(due)


def _purge_staff(conn: sqlite3.Connection, today: dt.date) -> int:
    """Delete staff accounts inactive for 12 months, their record and memberships at their school."""
    sql = _accounts_to_purge("staff_accounts", "staff")
    due = conn.execute(sql, (today.isoformat(), calendar.purge_cutoff(today).isoformat())).fetchall()
    for account in due:
        suffix = "/staff/" + account["staff_code"]
        conn.execute(
            "DELETE FROM school_records WHERE dfes_number = ? AND kind = 'membership'"
            " AND substr(record_key, -?) = ?",
            (account["dfes_number"], len(suffix), suffix),
        )
        conn.execute("DELETE FROM school_records WHERE kind = 'staff' AND account_id = ?", (account[0],))
        conn.execute("DELETE FROM staff_accounts WHERE account_id = ?", (account[0],))
    return len(due)


def public_key_from_b64(value: str) -> bytes:
    """Decode the protocol's base64 public key (raw 32 bytes); ValueError when it is not one."""
    raw = base64.b64decode(value, validate=True)
    if len(raw) != 32:
        raise ValueError("public_key must be the base64 of 32 raw bytes")
    return raw

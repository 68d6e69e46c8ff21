"""Local state per school, in SQLite (WAL): what was acknowledged, the run history, and the outbox.

Durability follows the backup tools: a batch (id, sequence, exact body bytes) is committed to the outbox
*before* it is sent; the acknowledged digests advance only after a 2xx, in the same transaction that
clears the batch from the outbox. A crash at any line leaves a state the next run recovers by itself:
pending batches are re-sent byte-identical first, and the server applies each once.

No personal data is stored in clear: records are kept as digests; a pending batch body (which holds
names and dates of birth) is encrypted with AES-GCM under a per-school key file beside the database
(mode 0600), and deleted as soon as the batch is acknowledged. Schema changes are migrations recorded in
``schema_migrations`` within the same transaction as the change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import operator
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hwb_client.adapters.replies import OperationResult
from hwb_client.core.anti_entropy import keyed_digest
from hwb_client.core.diff import ACTIVE, LEFT, Acknowledged
from hwb_client.core.hmac256 import HmacSha256
from hwb_client.core.model import Kind, Op
from hwb_client.core.snapshot import Known, Settled, Snapshot
from hwb_client.errors import StateError, StateStorageError, UnsafeFileError
from hwb_client.i18n import N_
from hwb_client.platform.filesystem import (
    create_private,
    ensure_private_dir,
    read_private,
    secure_existing,
    storage_problem,
    write_secret_file,
)

log = structlog.get_logger("hwb_client.state")

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE acknowledged (
        kind TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, status TEXT NOT NULL,
        year_group TEXT, account_id TEXT, updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)) WITHOUT ROWID;
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT,
        message TEXT, report TEXT, reported INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE outbox (
        batch_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, sequence INTEGER NOT NULL,
        content_encoding TEXT, body BLOB NOT NULL, created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE outbox_ops (
        batch_id TEXT NOT NULL REFERENCES outbox(batch_id) ON DELETE CASCADE, idx INTEGER NOT NULL,
        op TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, digest TEXT, year_group TEXT,
        PRIMARY KEY (batch_id, idx)) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: row fingerprints (keyed BLAKE2b of the raw MIS row an acknowledged record was built from)
    """
    ALTER TABLE acknowledged ADD COLUMN fingerprint BLOB;
    """,
    # 3 (0.2.0): records in time. A keyed digest of each record without its rollover fields (the
    # mass-update rule), carried by pending operations too. Fingerprints are forgotten once: 0.1.0 bound
    # them to records with leaving dates (whose state changes with the day) and knew no stable digest;
    # the next run takes the full path once and binds them again. Nothing is re-sent: digests stay.
    """
    ALTER TABLE acknowledged ADD COLUMN stable TEXT;
    ALTER TABLE outbox_ops ADD COLUMN stable TEXT;
    UPDATE acknowledged SET fingerprint = NULL;
    """,
    # 4 (0.2.0): operator's console (issue 11): the national answer to the last operation sent for each record
    # (which run and batch, when, applied/unchanged/refused and the refusal reason), and the reason each
    # held-back record was last logged under (``ref`` is a keyed hash: no personal data)
    """
    CREATE TABLE record_results (
        kind TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        run_id TEXT NOT NULL, batch_id TEXT NOT NULL, answered_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)) WITHOUT ROWID;
    CREATE TABLE held_back_records (
        ref TEXT PRIMARY KEY, kind TEXT NOT NULL, reason TEXT NOT NULL, since TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 5 (0.2.0): keyed record digests: HMAC-SHA256 under the per-school secret, not plain SHA-256 that a
    # name list could be checked against (``hwb_keyed_digest`` is registered on the connection by ``open``)
    """
    UPDATE acknowledged SET digest = hwb_keyed_digest(digest);
    UPDATE outbox_ops SET digest = hwb_keyed_digest(digest) WHERE digest IS NOT NULL;
    """,
    # 6 (0.2.0): settled memberships (``core.snapshot.Settled``): the token of what a clean run's
    # memberships were built from, while they stay exactly as it left them acknowledged. Any write to an
    # acknowledged record of the kind that changes what it is (its key, digest or status), by whatever
    # path (an acknowledgement, a rebuild from the manifest, anti-entropy, a re-keying), forgets the
    # token, in the same transaction: the next run reads the kind in full again. Binding a fingerprint
    # does not (it stands for the same record, and a full run binds one per record). Nothing is re-sent:
    # the table starts empty and a first run takes the full path.
    """
    CREATE TABLE settled_kinds (
        kind TEXT PRIMARY KEY, token BLOB NOT NULL, records INTEGER NOT NULL, run_id TEXT NOT NULL,
        settled_at TEXT NOT NULL) WITHOUT ROWID;
    CREATE TRIGGER acknowledged_insert_unsettles AFTER INSERT ON acknowledged
    BEGIN DELETE FROM settled_kinds WHERE kind = NEW.kind; END;
    CREATE TRIGGER acknowledged_update_unsettles AFTER UPDATE OF kind, key, digest, status ON acknowledged
    BEGIN DELETE FROM settled_kinds WHERE kind IN (OLD.kind, NEW.kind); END;
    CREATE TRIGGER acknowledged_delete_unsettles AFTER DELETE ON acknowledged
    BEGIN DELETE FROM settled_kinds WHERE kind = OLD.kind; END;
    """,
    # 7 (0.2.0): a frozen batch's operations in one value beside it (``outbox.ops``, a JSON array of
    # ``[idx, op, kind, key, digest, year_group, stable]``), not a row each: a first run freezes and
    # clears hundreds of thousands of them. An older state's pending batches move in, nothing is lost;
    # ``outbox_ops`` stays, empty (the keyed-digest migration above still names it).
    """
    ALTER TABLE outbox ADD COLUMN ops TEXT;
    UPDATE outbox SET ops = (
        SELECT json_group_array(json_array(idx, op, kind, key, digest, year_group, stable))
        FROM outbox_ops p WHERE p.batch_id = outbox.batch_id)
    WHERE EXISTS (SELECT 1 FROM outbox_ops p WHERE p.batch_id = outbox.batch_id);
    DELETE FROM outbox_ops;
    """,
    # 8 (0.2.0): memberships settled class by class (``core.snapshot.Settled``), not the school's as a
    # whole: one learner moving class un-settled every membership of the school. The same rule, kept
    # per class: any write to an acknowledged membership that changes what it is forgets its class's
    # token, in the same transaction (the group id is the key up to its first "/", which a group id
    # never holds). The school's tokens are dropped: the next run reads its memberships in full once
    # and settles them again. Nothing is re-sent.
    """
    DROP TRIGGER acknowledged_insert_unsettles;
    DROP TRIGGER acknowledged_update_unsettles;
    DROP TRIGGER acknowledged_delete_unsettles;
    DROP TABLE settled_kinds;
    CREATE TABLE settled_classes (
        group_id TEXT PRIMARY KEY, token BLOB NOT NULL, records INTEGER NOT NULL, run_id TEXT NOT NULL,
        settled_at TEXT NOT NULL) WITHOUT ROWID;
    CREATE TRIGGER acknowledged_insert_unsettles AFTER INSERT ON acknowledged
    WHEN NEW.kind = 'membership'
    BEGIN DELETE FROM settled_classes WHERE group_id = substr(NEW.key, 1, instr(NEW.key, '/') - 1); END;
    CREATE TRIGGER acknowledged_update_unsettles AFTER UPDATE OF kind, key, digest, status ON acknowledged
    WHEN OLD.kind = 'membership' OR NEW.kind = 'membership'
    BEGIN DELETE FROM settled_classes WHERE group_id IN (
        substr(OLD.key, 1, instr(OLD.key, '/') - 1), substr(NEW.key, 1, instr(NEW.key, '/') - 1)); END;
    CREATE TRIGGER acknowledged_delete_unsettles AFTER DELETE ON acknowledged
    WHEN OLD.kind = 'membership'
    BEGIN DELETE FROM settled_classes WHERE group_id = substr(OLD.key, 1, instr(OLD.key, '/') - 1); END;
    """,
)

#: The schema version from which a batch's operations are kept in ``outbox.ops``.
OUTBOX_OPS_VERSION = next(n for n, script in enumerate(MIGRATIONS, start=1) if "ADD COLUMN ops" in script)

#: The schema version that has ``settled_classes``.
SETTLED_VERSION = next(
    n for n, script in enumerate(MIGRATIONS, start=1) if "CREATE TABLE settled_classes" in script
)


#: ``meta`` name of the whole read's token kept beside the settled classes (``StateStore.settle_school``)
_SCHOOL_SETTLED = "memberships_settled_school"


def _classes_digest(classes: Mapping[str, Settled]) -> str:
    """A digest of the settled classes as they stand: each class, its token and its count."""
    digest = hashlib.blake2b(b"settled classes v1", digest_size=16)
    for gid in sorted(classes):
        settled = classes[gid]
        digest.update(f"{gid!r}\x00{settled.token.hex()}\x00{settled.records}\n".encode())
    return digest.hexdigest()


def _statements(script: str) -> Iterator[str]:
    """A migration's statements, each whole (a trigger's body holds semicolons of its own)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


#: The schema version from which record digests are stored keyed (the migration that rewrites them).
KEYED_DIGESTS_VERSION = next(
    n for n, script in enumerate(MIGRATIONS, start=1) if "hwb_keyed_digest" in script
)


_KEY = operator.itemgetter(0)
_ACKNOWLEDGED = operator.itemgetter(1, 2, 3, 4)  # Acknowledged(digest, status, year_group, stable)
_KNOWN = operator.itemgetter(0, 1, 6, 3, 4)  # Known(key, digest, leaving, year_group, stable)
_FINGERPRINT = operator.itemgetter(5)


#: ``outbox.ops``: compact JSON, one encoder for every batch
_OPS_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PendingBatch:
    batch_id: str
    run_id: str
    sequence: int
    body: bytes
    content_encoding: str | None
    ops: tuple[PendingOp, ...]


@dataclass(frozen=True, slots=True)
class PendingOp:
    """What the state needs of one sent operation to advance when it is acknowledged."""

    op: Op
    kind: Kind
    key: str
    digest: str | None
    year_group: str | None = None
    stable: str | None = None
    #: frozen in this run from a row that took the full path: its acknowledgement binds the row's
    #: ``fingerprint`` and ``stable`` to the record, as ``remember_fingerprints`` would (not kept in the
    #: outbox: a batch resent by a later run binds nothing, and that run's own rows are remembered)
    bind: bool = False
    fingerprint: bytes | None = None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    message: str | None
    report: dict[str, Any] | None
    reported: bool


class StateStore:
    """The state database of one school. Open with ``StateStore.open(state_dir, dfes)``."""

    def __init__(self, connection: sqlite3.Connection, path: Path, cipher: AESGCM | None) -> None:
        self.db = connection
        self.path = path
        self._cipher = cipher
        self.fingerprint_key: bytes | None = None
        self._digest_key: bytes | None = None
        self._stable_mac: HmacSha256 | None = None  # made from ``_digest_key`` when first used
        #: keys the record digests kept here (``core.anti_entropy.keyed_digest``); None without a secret
        self.record_digest_key: bytes | None = None
        #: per kind, the keys of records whose fingerprint an acknowledgement of this run bound
        #: (``PendingOp.bind``): sets of the keys' own strings, one slot each, for the largest school too
        self._bound: dict[Kind, set[str]] = {kind: set() for kind in Kind}

    def stored_digest(self, digest: str) -> str:
        """A record digest as this state stores and compares it (keyed; unchanged without a key)."""
        return digest if self.record_digest_key is None else keyed_digest(self.record_digest_key, digest)

    def _stored(self, digest: str | None) -> str | None:
        return None if digest is None else self.stored_digest(digest)

    # -- opening, migrations, integrity ------------------------------------------------------------

    @classmethod
    def open(
        cls, state_dir: Path, dfes_number: str, *, read_only: bool = False, check: bool = True
    ) -> StateStore:
        """``check``: SQLite's ``quick_check`` of every page first (a run's open always does it); a
        reader just after a run of the same school, which checked it, may leave it out: it reads every
        page of a large state, a fifth of a no-change run's time."""
        path = state_dir / f"{dfes_number}.sqlite3"
        key_path = state_dir / f"{dfes_number}.outbox.key"
        try:
            if read_only:
                if not path.exists():
                    connection = sqlite3.connect(":memory:", isolation_level=None)
                else:
                    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                connection = _open_private_database(state_dir, path)
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA temp_store=MEMORY")
            checked = connection.execute("PRAGMA quick_check").fetchone()[0] if check else "ok"
        except OSError as exc:
            raise storage_problem(exc, state_dir) or exc from None
        except sqlite3.DatabaseError as exc:
            problem = storage_problem(exc, state_dir)
            if problem is not None:  # full or read-only: the database is sound, never set it aside
                raise problem from None
            raise StateError(
                N_(
                    "school {dfes}: the state database {path} is damaged ({problem}); "
                    "it will be set aside and rebuilt from the national manifest on the next run"
                ),
                dfes=dfes_number,
                path=path,
                problem=exc,
            ) from None
        if checked != "ok":
            connection.close()
            raise StateError(
                N_("school {dfes}: the state database {path} failed its integrity check"),
                dfes=dfes_number,
                path=path,
            )
        store = cls(connection, path, None)
        secret: bytes | None = None
        if not read_only:
            secret = _outbox_key(key_path)
        elif key_path.exists():
            secret = read_private(key_path, fix=None)  # read-only (status, dry run): modes left as found
        if secret is not None:
            store._cipher = AESGCM(secret)
            store.fingerprint_key = hmac.new(secret, b"hwb-row-fingerprint-v1", hashlib.sha256).digest()
            store._digest_key = hmac.new(secret, b"hwb-stable-digest-v1", hashlib.sha256).digest()
            store.record_digest_key = hmac.new(secret, b"hwb-state-digest-v1", hashlib.sha256).digest()
        connection.create_function("hwb_keyed_digest", 1, store.stored_digest, deterministic=True)
        if not read_only:
            store._migrate()
        elif store.schema_version < KEYED_DIGESTS_VERSION:
            store.record_digest_key = None  # an older state that a read does not migrate: digests are plain
        return store

    def keyed(self, data: bytes) -> str:
        """A digest keyed with this school's local secret: the state database alone gives nothing to
        guess names or dates of birth against."""
        if self._digest_key is None:
            return hashlib.sha256(data).hexdigest()
        if self._stable_mac is None:
            self._stable_mac = HmacSha256(self._digest_key)
        return self._stable_mac.hexdigest(data)

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in self.db.execute("SELECT version FROM schema_migrations")}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            with self.transaction():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, _now()))

    @property
    def schema_version(self) -> int:
        try:
            row = self.db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0] or 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # a full disk may already have rolled it back
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def is_new(self) -> bool:
        """True when this school has no state at all (first run, or the database was lost)."""
        if self.schema_version == 0:
            return True
        row = self.db.execute(
            "SELECT (SELECT count(*) FROM acknowledged) + (SELECT count(*) FROM runs) "
            "+ (SELECT count(*) FROM outbox)"
        ).fetchone()
        return int(row[0]) == 0

    def needs_reconcile(self) -> bool:
        """No acknowledged records and never rebuilt from the manifest: a first run or lost state."""
        empty = self.db.execute("SELECT count(*) FROM acknowledged").fetchone()[0] == 0
        done = self.db.execute("SELECT 1 FROM meta WHERE name = 'reconciled_at'").fetchone()
        return bool(empty and not done)

    # -- acknowledged records ----------------------------------------------------------------------

    def acknowledged(self) -> dict[Kind, dict[str, Acknowledged]]:
        index: dict[Kind, dict[str, Acknowledged]] = {kind: {} for kind in Kind}
        if self.schema_version == 0:
            return index
        for kind in Kind:  # one range of the primary key per kind
            index[kind] = {
                key: Acknowledged(digest, status, year_group)
                for key, digest, status, year_group in self.db.execute(
                    "SELECT key, digest, status, year_group FROM acknowledged WHERE kind = ?", (kind.value,)
                )
            }
        return index

    def index(
        self, leave_out: frozenset[Kind] = frozenset()
    ) -> tuple[dict[Kind, dict[str, Acknowledged]], dict[bytes, Known]]:
        """The acknowledged records per kind, and fingerprint -> the record it produced (see
        ``core.snapshot``), in one pass over the table; without the kinds in ``leave_out`` (memberships
        that may be settled: ``kind_index`` loads them if they are not)."""
        if self.schema_version < 3:
            return self.acknowledged(), {}
        index: dict[Kind, dict[str, Acknowledged]] = {}
        known: dict[bytes, Known] = {}
        for kind in Kind:
            if kind not in leave_out:
                index[kind], kind_known = self.kind_index(kind)
                known.update(kind_known)
        return index, known

    def kind_index(
        self,
        kind: Kind,
        settled: frozenset[str] = frozenset(),
        read: frozenset[str] = frozenset(),
        stored: Mapping[str, Settled] | None = None,
    ) -> tuple[dict[str, Acknowledged], dict[bytes, Known]]:
        """One kind of ``index``. Loaded on every run for every record, so built without a Python
        statement per row: the rows come back as tuples in the order of the named tuples' fields and
        become ``Acknowledged`` and ``Known`` through ``map`` and ``itemgetter``, the dictionaries
        through ``zip``.

        Memberships: but those of the ``settled`` classes (settled in this read, which names the classes
        ``read``). The others are read by their classes' key ranges (the classes read and not settled,
        and those the state holds settled that this read did not settle); when those and the settled
        ones account for every acknowledged membership, no other row is looked at, else the whole kind
        is scanned for memberships of classes the state knows nothing of. ``stored``: the
        ``settled_classes()`` the caller read in the same run, if it has them."""
        # 0 key, 1 digest, 2 status, 3 year_group, 4 stable, 5 fingerprint, 6 left (0 or 1)
        columns = "SELECT key, digest, status, year_group, stable, fingerprint, status = ? FROM acknowledged "
        if not settled:
            rows = self.db.execute(columns + "WHERE kind = ?", (LEFT, kind.value)).fetchall()
        else:
            stored = self.settled_classes() if stored is None else stored
            ranges = sorted((read - settled) | (stored.keys() - settled))
            rows = []
            for gid in ranges:  # a class's memberships: one range of the primary key ("/" sorts before "0")
                rows += self.db.execute(
                    columns + "WHERE kind = ? AND key >= ? AND key < ?",
                    (LEFT, kind.value, gid + "/", gid + "0"),
                ).fetchall()
            held = sum(stored[gid].records for gid in settled if gid in stored)  # as many as acknowledged
            total = self.db.execute(
                "SELECT count(*) FROM acknowledged WHERE kind = ?", (kind.value,)
            ).fetchone()[0]
            if total != held + len(rows):
                rows = self.db.execute(
                    columns + "WHERE kind = ? AND substr(key, 1, instr(key, '/') - 1) "
                    "NOT IN (SELECT value FROM json_each(?))",
                    (LEFT, kind.value, json.dumps(sorted(settled))),
                ).fetchall()
        # tuple.__new__ straight from C (``_make`` is a Python frame per row)
        as_acknowledged = functools.partial(tuple.__new__, Acknowledged)
        as_known = functools.partial(tuple.__new__, Known)
        acknowledged = dict(zip(map(_KEY, rows), map(as_acknowledged, map(_ACKNOWLEDGED, rows)), strict=True))
        bound = [row for row in rows if row[5] is not None]  # rows never fingerprinted have none
        known = dict(zip(map(_FINGERPRINT, bound), map(as_known, map(_KNOWN, bound)), strict=True))
        return acknowledged, known

    # -- settled classes (``core.snapshot.Settled``) ---------------------------------------------------

    def settled_classes(self) -> dict[str, Settled]:
        """What the last clean runs left of each class, while nothing of its memberships was written
        since."""
        if self.schema_version < SETTLED_VERSION or self.fingerprint_key is None:
            return {}
        return {
            gid: Settled(bytes(token), int(records))
            for gid, token, records in self.db.execute("SELECT group_id, token, records FROM settled_classes")
        }

    def settle_classes(self, classes: Mapping[str, Settled], run_id: str) -> list[str]:
        """Keep each class's token when what is acknowledged of it is what the run decided: its
        ``records`` memberships, all active, and nothing waiting in the outbox. The caller vouches that
        every operation of the run was applied and none of these classes' rows was held back: the
        acknowledged memberships are then exactly the run's, and the count tells whether one was left
        unsent. Returns the classes kept."""
        if self.schema_version < SETTLED_VERSION or self.fingerprint_key is None:
            return []
        with self.transaction():
            if self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]:
                return []
            now, kept = _now(), []
            for gid, settled in classes.items():
                total, active = self.db.execute(
                    # a class's memberships: one range of the primary key ("/" sorts just before "0")
                    "SELECT count(*), coalesce(sum(status = ?), 0) FROM acknowledged "
                    "WHERE kind = ? AND key >= ? AND key < ?",
                    (ACTIVE, Kind.MEMBERSHIP.value, gid + "/", gid + "0"),
                ).fetchone()
                if total == active == settled.records:
                    kept.append((gid, settled.token, settled.records, run_id, now))
            self.db.executemany(
                "INSERT OR REPLACE INTO settled_classes (group_id, token, records, run_id, settled_at) "
                "VALUES (?, ?, ?, ?, ?)",
                kept,
            )
        return [row[0] for row in kept]

    def settled_school(self, classes: Mapping[str, Settled]) -> bytes | None:
        """The token of a whole read (``snapshot.SchoolToken``) kept when one run had every class
        settled, while the settled classes are still exactly those it saw: any write that forgot or
        replaced one of them changes their digest, and the token is then worth nothing."""
        if not classes or self.schema_version < SETTLED_VERSION or self.fingerprint_key is None:
            return None
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (_SCHOOL_SETTLED,)).fetchone()
        if row is None:
            return None
        token, _, digest = str(row[0]).partition(" ")
        return bytes.fromhex(token) if hmac.compare_digest(digest, _classes_digest(classes)) else None

    def settle_school(self, token: bytes, classes: frozenset[str]) -> bool:
        """Keep ``token`` (a read's, naming ``classes``) beside the settled classes if they are now
        exactly the classes it names; else forget any kept before. Returns whether it is kept."""
        if self.schema_version < SETTLED_VERSION or self.fingerprint_key is None:
            return False
        with self.transaction():
            settled = self.settled_classes()
            if classes and set(settled) == classes:
                value = f"{token.hex()} {_classes_digest(settled)}"
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_SCHOOL_SETTLED, value))
                return True
            self.db.execute("DELETE FROM meta WHERE name = ?", (_SCHOOL_SETTLED,))
            return False

    def acknowledged_for(self, keys: Iterable[tuple[Kind, str]]) -> dict[Kind, dict[str, Acknowledged]]:
        """Only these records of the acknowledged index (a run's held-back keys: usually a few), not the
        whole index loaded again."""
        index: dict[Kind, dict[str, Acknowledged]] = {kind: {} for kind in Kind}
        if self.schema_version == 0:
            return index
        for kind, key in keys:
            row = self.db.execute(
                "SELECT digest, status, year_group FROM acknowledged WHERE kind = ? AND key = ?",
                (kind.value, key),
            ).fetchone()
            if row is not None:
                index[kind][key] = Acknowledged(*row)
        return index

    def remember_fingerprints(self, snapshot: Snapshot) -> int:
        """Bind each fully checked row's fingerprint (and stable digest) to its acknowledged record, when
        the record is exactly what was acknowledged (same digest); returns how many rows it changed, with
        those an acknowledgement of this run bound already (``PendingOp.bind``: not written again)."""
        bound = sum(map(len, self._bound.values()))
        rows = [
            (entry.fingerprint, entry.stable, kind.value, key, self.stored_digest(entry.digest))
            for kind in Kind
            for key, entry in snapshot.entries[kind].items()
            if entry.record is not None and key not in self._bound[kind]
        ]
        if not rows:
            return bound
        with self.transaction():
            # only rows that change: a record read the long way every run (one with a leaving date) is
            # bound to no fingerprint run after run, and rewriting it would dirty its page every night
            cursor = self.db.executemany(
                "UPDATE acknowledged SET fingerprint = ?1, stable = ?2 WHERE kind = ?3 AND key = ?4 AND digest = ?5 "
                "AND (fingerprint IS NOT ?1 OR stable IS NOT ?2)",
                rows,
            )
            return cursor.rowcount + bound

    def rekey(self, moves: Iterable[tuple[Kind, str, str]]) -> None:
        """Move acknowledged records to new keys (a national key changeover), in one transaction."""
        with self.transaction():
            self.db.executemany(
                "UPDATE acknowledged SET key = ? WHERE kind = ? AND key = ?",
                ((new, kind.value, old) for kind, old, new in moves),
            )

    def account_ids(self, kind: Kind) -> dict[str, str]:
        return {
            key: account
            for key, account in self.db.execute(
                "SELECT key, account_id FROM acknowledged WHERE kind = ? AND account_id IS NOT NULL", (kind,)
            )
        }

    def replace_acknowledged(self, records: Iterable[tuple[Kind, str, str, str, str | None]]) -> int:
        """Rebuild the acknowledged table (from the national manifest); returns the count."""
        now = _now()
        with self.transaction():
            self.db.execute("DELETE FROM acknowledged")
            cursor = self.db.executemany(
                "INSERT INTO acknowledged (kind, key, digest, status, account_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (kind.value, key, self.stored_digest(digest), status, account, now)
                    for kind, key, digest, status, account in records
                ),
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('reconciled_at', ?)", (now,))
            return cursor.rowcount

    def held_before(self) -> dict[Kind, int] | None:
        """Per kind, the previously sent records held back at the last completed run (the guard's
        ``mass_hold_back`` rule), or None when never recorded (a new state, or one made by 0.1.0)."""
        if self.schema_version < 3:
            return None
        row = self.db.execute("SELECT value FROM meta WHERE name = 'held_back_sent'").fetchone()
        return {Kind(k): int(n) for k, n in json.loads(row[0]).items()} if row else None

    def remember_held_before(self, counts: Mapping[Kind, int]) -> None:
        value = json.dumps({kind.value: n for kind, n in counts.items()}, sort_keys=True)
        self.db.execute(  # unchanged (nearly every night): nothing written
            "INSERT INTO meta VALUES ('held_back_sent', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE value IS NOT excluded.value",
            (value,),
        )

    # -- outbox ------------------------------------------------------------------------------------

    def _seal(self, batch_id: str, body: bytes) -> bytes:
        assert self._cipher is not None
        nonce = os.urandom(12)
        return nonce + self._cipher.encrypt(nonce, body, batch_id.encode())

    def _open(self, batch_id: str, sealed: bytes) -> bytes:
        if self._cipher is None:
            raise StateError(
                N_("the outbox key for {file} is missing; pending batches cannot be read"),
                file=self.path.name,
            )
        try:
            return self._cipher.decrypt(sealed[:12], sealed[12:], batch_id.encode())
        except InvalidTag:
            raise StateError(
                N_("a pending batch in {file} cannot be decrypted (outbox key replaced?)"),
                file=self.path.name,
            ) from None

    def add_to_outbox(self, batches: Iterable[PendingBatch]) -> None:
        """Freeze batches before any is sent: one transaction for all of them."""
        now = _now()
        with self.transaction():
            for batch in batches:
                ops = [
                    [i, o.op._value_, o.kind._value_, o.key, self._stored(o.digest), o.year_group, o.stable]
                    for i, o in enumerate(batch.ops)
                ]
                self.db.execute(
                    "INSERT INTO outbox (batch_id, run_id, sequence, content_encoding, body, created_at, ops) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch.batch_id,
                        batch.run_id,
                        batch.sequence,
                        batch.content_encoding,
                        self._seal(batch.batch_id, batch.body),
                        now,
                        _OPS_ENCODER.encode(ops),
                    ),
                )

    def pending_batches(self) -> list[PendingBatch]:
        batches = []
        for batch_id, run_id, sequence, encoding, sealed, frozen in self.db.execute(
            "SELECT batch_id, run_id, sequence, content_encoding, body, ops FROM outbox "
            "ORDER BY created_at, sequence"
        ).fetchall():
            ops = tuple(
                PendingOp(Op(op), Kind(kind), key, digest, year_group, stable)
                for _idx, op, kind, key, digest, year_group, stable in sorted(json.loads(frozen or "[]"))
            )
            batches.append(
                PendingBatch(batch_id, run_id, sequence, self._open(batch_id, sealed), encoding, ops)
            )
        return batches

    def count_pending(self) -> int:
        if self.schema_version == 0:
            return 0
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def discard(self, batch_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))

    def note_attempt(self, batch_id: str) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE batch_id = ?", (batch_id,))

    def acknowledge(self, batch: PendingBatch, results: Iterable[OperationResult]) -> Mapping[str, int]:
        """Advance state for what the server applied or found unchanged, and clear the batch: one
        transaction. Refused operations leave state as it was (they are tried again next run).
        Returns the count per result status and refusal reason."""
        results = tuple(results)  # read twice: to advance the state and to remember the answers
        now = _now()
        tally: dict[str, int] = {}
        removed: list[tuple[str, str]] = []
        kept: list[tuple[Any, ...]] = []
        bound: list[PendingOp] = []
        for pending, result in zip(batch.ops, results, strict=True):
            op, kind, key = pending.op, pending.kind, pending.key
            status = result.status
            tally[status] = tally.get(status, 0) + 1
            if status == "refused":
                reason = f"refused:{result.reason or 'unknown'}"
                tally[reason] = tally.get(reason, 0) + 1
                continue
            if op is Op.REMOVE:
                removed.append((kind._value_, key))  # per operation: the plain attribute (``model``)
                continue
            status_after = LEFT if op is Op.LEAVE else ACTIVE
            if pending.bind:
                bound.append(pending)
            kept.append(
                (
                    kind._value_,
                    key,
                    self._stored(pending.digest),
                    status_after,
                    pending.year_group,
                    pending.stable,
                    result.account_id,
                    now,
                    pending.fingerprint if pending.bind else None,
                    pending.bind,
                )
            )
        with self.transaction():
            # Statements per batch, not per operation (a first run acknowledges thousands at a time).
            self.db.executemany("DELETE FROM acknowledged WHERE kind = ? AND key = ?", removed)
            self.db.executemany(
                "INSERT INTO acknowledged (kind, key, digest, status, year_group, stable, account_id, "
                "updated_at, fingerprint) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                "ON CONFLICT (kind, key) DO UPDATE SET "
                "digest = excluded.digest, "
                # bound (``PendingOp.bind``): the row just read and checked stands for the new digest.
                # Else a fingerprint stands for the row that produced the old digest: a new digest unbinds
                # it (else, killed before remember_fingerprints, that old row would later pass as unchanged)
                "fingerprint = CASE WHEN ?10 THEN excluded.fingerprint "
                "WHEN acknowledged.digest = excluded.digest THEN acknowledged.fingerprint END, "
                "status = excluded.status, year_group = excluded.year_group, "
                "stable = CASE WHEN ?10 THEN excluded.stable "
                "ELSE coalesce(excluded.stable, acknowledged.stable) END, "
                "account_id = coalesce(excluded.account_id, acknowledged.account_id), "
                "updated_at = excluded.updated_at",
                kept,
            )
            self.db.execute("DELETE FROM outbox WHERE batch_id = ?", (batch.batch_id,))
            self._remember_results(batch, results, now)
        for pending in bound:  # once committed
            self._bound[pending.kind].add(pending.key)
        return tally

    def has_table(self, name: str) -> bool:
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return row.fetchone() is not None

    def _remember_results(self, batch: PendingBatch, results: Sequence[OperationResult], now: str) -> None:
        """The national answer per record (for ``hwb-client why``), when the table exists."""
        if not self.has_table("record_results"):
            return
        self.db.executemany(
            "INSERT OR REPLACE INTO record_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    pending.kind._value_,
                    pending.key,
                    pending.op._value_,
                    r.status,
                    r.reason,
                    batch.run_id,
                    batch.batch_id,
                    now,
                )
                for pending, r in zip(batch.ops, results, strict=True)
            ),
        )

    # -- runs --------------------------------------------------------------------------------------

    def start_run(self, run_id: str, started_at: str) -> None:
        self.db.execute("INSERT INTO runs (run_id, started_at) VALUES (?, ?)", (run_id, started_at))

    def finish_run(self, run_id: str, report: Mapping[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, outcome = ?, message = ?, report = ? WHERE run_id = ?",
            (report["finished_at"], report["outcome"], report.get("message"), json.dumps(report), run_id),
        )

    def mark_reported(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET reported = 1 WHERE run_id = ?", (run_id,))

    def unreported_runs(self) -> list[RunRow]:
        return [r for r in self._runs("WHERE reported = 0 AND report IS NOT NULL ORDER BY rowid")]

    def last_run(self) -> RunRow | None:
        runs = self._runs("WHERE finished_at IS NOT NULL ORDER BY rowid DESC LIMIT 1")
        return runs[0] if runs else None

    def runs(self, last: int | None = None) -> list[RunRow]:
        """Every run, newest first (the ``last`` ones when given)."""
        limit = f" LIMIT {int(last)}" if last is not None else ""
        return self._runs("ORDER BY rowid DESC" + limit)

    def last_success_at(self) -> str | None:
        if self.schema_version == 0:
            return None
        row = self.db.execute(
            "SELECT max(finished_at) FROM runs WHERE outcome IN ('success', 'partial')"
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def _runs(self, clause: str) -> list[RunRow]:
        if self.schema_version == 0:
            return []
        rows = self.db.execute(
            f"SELECT run_id, started_at, finished_at, outcome, message, report, reported FROM runs {clause}"
        ).fetchall()
        return [
            RunRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]) if r[5] else None, bool(r[6])) for r in rows
        ]

    def interrupted_runs(self) -> list[str]:
        """Runs that started and never finished (the process died): closed as failed on the next start."""
        if self.schema_version == 0:
            return []
        return [r[0] for r in self.db.execute("SELECT run_id FROM runs WHERE finished_at IS NULL")]


class _StateConnection(sqlite3.Connection):
    """A connection whose full-disk and read-only failures are ``StateStorageError``s naming the
    directory (SQLite reports them as ``OperationalError`` text at whichever statement meets them)."""

    state_dir: Path

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise storage_problem(exc, self.state_dir) or exc from None

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise storage_problem(exc, self.state_dir) or exc from None


def _open_private_database(state_dir: Path, path: Path) -> sqlite3.Connection:
    """The state database, created 0600 before SQLite opens it (its ``-wal`` and ``-shm`` take the
    database's mode); files left 0644 by 0.1.0 are tightened; a symbolic link is refused."""
    ensure_private_dir(state_dir)
    create_private(path)
    for side in ("-wal", "-shm"):
        secure_existing(path.with_name(path.name + side))
    connection = sqlite3.connect(path, isolation_level=None, timeout=30, factory=_StateConnection)
    connection.state_dir = state_dir
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def _outbox_key(path: Path) -> bytes:
    """The outbox key (also the root of the row-fingerprint key): read without following a link; a
    missing or short one is replaced (pending batches sealed under it then cannot be read)."""
    try:
        key = read_private(path)
    except FileNotFoundError:
        key = b""
    except OSError as exc:
        raise storage_problem(exc, path.parent) or exc from None
    if key == bytes(len(key)) and key:
        raise UnsafeFileError(
            N_(
                "the outbox key {path} is all zeros (not a key this client made); move it away and run "
                "again (pending batches sealed under it are rebuilt by the next run's diff)"
            ),
            path=path,
        )
    if len(key) == 32:
        return key
    key = AESGCM.generate_key(bit_length=256)
    try:
        write_secret_file(path, key)
    except OSError as exc:
        raise storage_problem(exc, path.parent) or exc from None
    return key


def set_aside(state_dir: Path, dfes_number: str) -> Path | None:
    """Move a damaged state database out of the way (kept for inspection); return where it went."""
    path = state_dir / f"{dfes_number}.sqlite3"
    if not path.exists():
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    path.replace(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    return target


@contextlib.contextmanager
def open_state(state_dir: Path, dfes_number: str, *, read_only: bool) -> Iterator[StateStore]:
    """The school's state, closed on exit. A damaged database is set aside (kept for inspection) and a
    new one started, which the run rebuilds from the national manifest; read-only, it is an error."""
    try:
        store = StateStore.open(state_dir, dfes_number, read_only=read_only)
    except (StateStorageError, UnsafeFileError):
        raise  # the database is sound: a person frees space, fixes permissions or removes a link
    except StateError:
        if read_only:
            raise
        moved = set_aside(state_dir, dfes_number)
        log.error("state_damaged_set_aside", dfes=dfes_number, moved_to=str(moved))
        store = StateStore.open(state_dir, dfes_number)
    try:
        yield store
    finally:
        store.close()

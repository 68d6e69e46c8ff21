"""National accounts: how the sandbox applies a school's batch, exactly once.

A learner is one account nationally, found by any of its pseudonyms (``upn_hash``, and during a national
key changeover ``upn_hash_previous``, which maps the new pseudonym to the same account and re-keys the
school's record); a school's upsert links it, a leave or remove
unlinks it, and an account linked to no school is inactive until an upsert anywhere reactivates it with
the same ``account_id`` (the Year 6 -> Year 7 move). A staff account belongs to one school and staff code.
A leave takes effect on the national calendar (``hwb_sandbox.calendar``): the record stays on roll until
its ``released_on`` day, so an account is active exactly while some school record is on roll on the
sandbox's today. The batch and its idempotency record are written in one transaction (``apply_batch``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hwb_sandbox import calendar, names
from hwb_sandbox.schemas import Batch
from hwb_sandbox.store import ON_ROLL_SQL, SandboxStore

_KEY_FIELD: Final[Mapping[str, str]] = {"learner": "upn_hash", "staff": "staff_code", "group": "group_id"}


def canonical_json(value: object) -> bytes:
    """The protocol's canonical JSON: sorted keys, ``,``/``:`` separators, UTF-8 (no ``\\u`` escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_digest(record: Mapping[str, object]) -> str:
    """``sha-256:`` + hex SHA-256 of the record's canonical JSON, as the client computes it."""
    return "sha-256:" + hashlib.sha256(canonical_json(record)).hexdigest()


def record_key(kind: str, record: Mapping[str, Any]) -> str | None:
    """The key the protocol derives from a record, or None when its key field is null."""
    if kind == "membership":
        return f"{record['group_id']}/{record['member_kind']}/{record['member_key']}"
    value = record[_KEY_FIELD[kind]]
    return None if value is None else str(value)


def protocol_version(header: str | None) -> int:
    """The version in a request's ``Hwb-Protocol`` header: absent (or not a number) means 1."""
    value = (header or "1").strip()
    return int(value) if value.isdigit() and len(value) < 4 else 1


def new_account_id() -> str:
    return "acc-" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one operation, before it is numbered."""

    status: str
    account_id: str | None = None
    reason: str | None = None

    def to_wire(self, index: int) -> dict[str, object]:
        body: dict[str, object] = {"index": index, "status": self.status}
        if self.account_id is not None:
            body["account_id"] = self.account_id
        if self.reason is not None:
            body["reason"] = self.reason
        return body


def _refused(reason: str) -> Outcome:
    return Outcome("refused", reason=reason)


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """What a batch post answers: the stored JSON body and whether it is a replay."""

    body: bytes
    replayed: bool


class IdempotencyKeyReused(Exception):
    """The batch id was used before with a different body."""


def apply_batch(store: SandboxStore, dfes_number: str, batch: Batch, body_fingerprint: str) -> BatchAnswer:
    """Apply ``batch`` for the school once; the same batch again returns the stored first answer.

    ``body_fingerprint`` identifies the body (SHA-256 of its canonical JSON): the same ``batch_id`` with a
    different fingerprint raises ``IdempotencyKeyReused`` and changes nothing.
    """
    today = store.today()
    store.settle(today)
    # What needs no database is worked out before the write lock is taken: with apply workers, other
    # batches are applied meanwhile (``hwb_sandbox.appliers``).
    operations = [_wire_operation(op.model_dump(mode="json")) for op in batch.operations]
    stored = {
        id(record): (record_digest(record), json.dumps(record, ensure_ascii=False))
        for record in (op.get("record") for op in operations)
        if isinstance(record, dict)
    }
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT body_sha256, response_json FROM batches WHERE dfes_number = ? AND batch_id = ?",
            (dfes_number, batch.batch_id),
        ).fetchone()
        if row is not None:
            if row["body_sha256"] != body_fingerprint:
                raise IdempotencyKeyReused(batch.batch_id)
            return BatchAnswer(row["response_json"].encode("utf-8"), replayed=True)
        school = _SchoolLedger(conn, dfes_number, store.now(), batch.upn_key_id, today, stored)
        outcomes = [school.apply(op) for op in operations]
        response = {
            "batch_id": batch.batch_id,
            "applied": sum(o.status == "applied" for o in outcomes),
            "unchanged": sum(o.status == "unchanged" for o in outcomes),
            "refused": sum(o.status == "refused" for o in outcomes),
            "results": [o.to_wire(i) for i, o in enumerate(outcomes)],
        }
        text = json.dumps(response, ensure_ascii=False)
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dfes_number, batch.batch_id, batch.run_id, batch.sequence, body_fingerprint, text, store.now()),
        )
    return BatchAnswer(text.encode("utf-8"), replayed=False)


def _wire_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation as the client sent it: an absent ``upn_hash_previous`` stays absent (the record's
    digest is over what was sent)."""
    record = operation.get("record")
    if isinstance(record, dict) and "upn_hash_previous" in record and record["upn_hash_previous"] is None:
        del record["upn_hash_previous"]
    return operation


class _SchoolLedger:
    """Applies operations for one school inside an open transaction."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        dfes_number: str,
        now: str,
        upn_key_id: str,
        today: dt.date,
        stored: Mapping[int, tuple[str, str]] | None = None,
    ) -> None:
        self.conn = conn
        #: each record of the batch (by ``id``): its digest and the JSON text it is stored as
        self.stored = stored or {}
        self.dfes_number = dfes_number
        self.now = now
        self.upn_key_id = upn_key_id
        self.today = today

    def apply(self, operation: dict[str, Any]) -> Outcome:
        kind: str = operation["kind"]
        op: str = operation["op"]
        key: str = operation["key"]
        record: dict[str, Any] | None = operation.get("record")
        if op != "remove" and record is not None:
            if kind == "staff" and record["staff_code"] is None:
                return _refused("staff_code_missing")
            if record_key(kind, record) != key:
                return _refused("key_mismatch")
            if kind == "learner" and key.split(":", 1)[0] != self.upn_key_id:
                return _refused("upn_key_unknown")
            if names.refused_name(record):
                return _refused(names.REASON)
            previous = record.get("upn_hash_previous") if kind == "learner" else None
            if previous is not None and previous.split(":", 1)[0] == self.upn_key_id:
                return _refused("upn_key_unknown")
            if previous is not None:
                self._follow_key_rotation(key, previous)
        if op == "remove":
            return self._remove(kind, key)
        assert record is not None  # enforced by the schema
        if kind == "learner":
            return self._learner(op, key, record)
        if kind == "staff":
            return self._staff(op, key, record)
        if kind == "membership":
            return self._membership(key, record)
        return self._upsert_record("group", key, record, status="active", account_id=None)

    # -- generic record rows ---------------------------------------------------------------------------------

    def _row(self, kind: str, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM school_records WHERE dfes_number = ? AND kind = ? AND record_key = ?",
            (self.dfes_number, kind, key),
        ).fetchone()
        return row

    def _upsert_record(
        self,
        kind: str,
        key: str,
        record: dict[str, Any],
        *,
        status: str,
        account_id: str | None,
        released_on: dt.date | None = None,
    ) -> Outcome:
        """Store the record as sent; ``released_on`` is the first day off roll for a ``leave``."""
        digest, text = self.stored.get(id(record)) or (
            record_digest(record),
            json.dumps(record, ensure_ascii=False),
        )
        row = self._row(kind, key)
        if row is not None and row["status"] == status and row["digest"] == digest:
            return Outcome("unchanged", account_id=account_id)
        self.conn.execute(
            "INSERT INTO school_records (dfes_number, kind, record_key, record_json, digest, status,"
            " account_id, leaving_date, updated_at, released_on, changed_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (dfes_number, kind, record_key) DO UPDATE SET record_json = excluded.record_json,"
            " digest = excluded.digest, status = excluded.status, account_id = excluded.account_id,"
            " leaving_date = excluded.leaving_date, updated_at = excluded.updated_at,"
            " released_on = excluded.released_on, changed_on = excluded.changed_on",
            (
                self.dfes_number,
                kind,
                key,
                text,
                digest,
                status,
                account_id,
                record.get("leaving_date"),
                self.now,
                None if released_on is None else released_on.isoformat(),
                self.today.isoformat(),
            ),
        )
        return Outcome("applied", account_id=account_id)

    def _remove(self, kind: str, key: str) -> Outcome:
        row = self._row(kind, key)
        if row is None:
            return _refused("not_found")
        account_id = row["account_id"]
        if row["status"] == "removed":
            return Outcome("unchanged", account_id=account_id)
        self.conn.execute(
            "UPDATE school_records SET status = 'removed', updated_at = ?, released_on = ?, changed_on = ?"
            " WHERE dfes_number = ? AND kind = ? AND record_key = ?",
            (self.now, self.today.isoformat(), self.today.isoformat(), self.dfes_number, kind, key),
        )
        if kind == "learner":
            self._refresh_learner_account(account_id)
        elif kind == "staff":
            self._refresh_staff_account(account_id)
        elif kind == "group":
            self.conn.execute(
                "UPDATE school_records SET status = 'removed', updated_at = ?, released_on = ?,"
                " changed_on = ? WHERE dfes_number = ? AND kind = 'membership'"
                " AND record_key LIKE ? ESCAPE '\\' AND status != 'removed'",
                (
                    self.now,
                    self.today.isoformat(),
                    self.today.isoformat(),
                    self.dfes_number,
                    _like_prefix(key + "/"),
                ),
            )
        return Outcome("applied", account_id=account_id)

    def _released_on(self, kind: str, record: dict[str, Any]) -> dt.date:
        """When a ``leave`` takes the record off roll: the calendar's day, and never before it arrived."""
        return max(calendar.released_from(kind, record, received_on=self.today), self.today)

    # -- learners --------------------------------------------------------------------------------------------

    def _learner(self, op: str, upn_hash: str, record: dict[str, Any]) -> Outcome:
        if op == "leave":
            row = self._row("learner", upn_hash)
            if row is None or row["status"] == "removed":
                return _refused("not_found")
            outcome = self._upsert_record(
                "learner",
                upn_hash,
                record,
                status="left",
                account_id=row["account_id"],
                released_on=self._released_on("learner", record),
            )
            self._remember_pseudonyms(row["account_id"], upn_hash, record.get("upn_hash_previous"))
            self._refresh_learner_account(row["account_id"])
            return outcome
        account_id = self._learner_account(upn_hash) or self._learner_account(record.get("upn_hash_previous"))
        if account_id is None:
            account_id = new_account_id()
            self.conn.execute(
                "INSERT INTO learner_accounts VALUES (?, ?, 1, ?, ?)",
                (account_id, upn_hash, self.now, self.now),
            )
        self._remember_pseudonyms(account_id, upn_hash, record.get("upn_hash_previous"))
        outcome = self._upsert_record("learner", upn_hash, record, status="active", account_id=account_id)
        self._refresh_learner_account(account_id)
        return outcome

    # -- national key rotation ------------------------------------------------------------------------------

    def _learner_account(self, upn_hash: str | None) -> str | None:
        """The account a pseudonym (under any national key, current or previous) belongs to."""
        if upn_hash is None:
            return None
        row = self.conn.execute(
            "SELECT account_id FROM learner_pseudonyms WHERE upn_hash = ?", (upn_hash,)
        ).fetchone()
        return None if row is None else str(row["account_id"])

    def _remember_pseudonyms(self, account_id: str, *pseudonyms: str | None) -> None:
        """Map each pseudonym to the account (the first mapping of a pseudonym stands)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO learner_pseudonyms VALUES (?, ?)",
            [(p, account_id) for p in pseudonyms if p is not None],
        )

    def _follow_key_rotation(self, upn_hash: str, previous: str) -> None:
        """The school's learner (and its memberships) held under the previous pseudonym move to the new
        one: the same record, re-keyed, so the school holds the learner once."""
        if self._row("learner", upn_hash) is not None or self._row("learner", previous) is None:
            return
        self.conn.execute(
            "UPDATE school_records SET record_key = ? WHERE dfes_number = ? AND kind = 'learner'"
            " AND record_key = ?",
            (upn_hash, self.dfes_number, previous),
        )
        suffix = "/learner/" + previous
        self.conn.execute(
            "UPDATE school_records SET record_key = substr(record_key, 1, length(record_key) - ?) || ?"
            " WHERE dfes_number = ? AND kind = 'membership' AND record_key LIKE ? ESCAPE '\\'",
            (len(previous), upn_hash, self.dfes_number, "%" + _like_prefix(suffix)[:-1]),
        )

    def _refresh_learner_account(self, account_id: str) -> None:
        """Active exactly when some school holds the learner on roll today (see ``store.ON_ROLL_SQL``)."""
        self.conn.execute(
            "UPDATE learner_accounts SET active = EXISTS (SELECT 1 FROM school_records r"
            f" WHERE r.kind = 'learner' AND r.account_id = ? AND {ON_ROLL_SQL}), updated_at = ?"
            " WHERE account_id = ?",
            (account_id, self.today.isoformat(), self.now, account_id),
        )

    # -- staff -----------------------------------------------------------------------------------------------

    def _staff(self, op: str, staff_code: str, record: dict[str, Any]) -> Outcome:
        if record["start_date"] is None:
            return _refused("staff_start_date_missing")
        account = self.conn.execute(
            "SELECT account_id FROM staff_accounts WHERE dfes_number = ? AND staff_code = ?",
            (self.dfes_number, staff_code),
        ).fetchone()
        if op == "leave":
            row = self._row("staff", staff_code)
            if account is None or row is None or row["status"] == "removed":
                return _refused("not_found")
            outcome = self._upsert_record(
                "staff",
                staff_code,
                record,
                status="left",
                account_id=account["account_id"],
                released_on=self._released_on("staff", record),
            )
            self._refresh_staff_account(account["account_id"])
            return outcome
        if account is None:
            account_id = new_account_id()
            self.conn.execute(
                "INSERT INTO staff_accounts VALUES (?, ?, ?, 1, ?, ?)",
                (account_id, self.dfes_number, staff_code, self.now, self.now),
            )
        else:
            account_id = account["account_id"]
        outcome = self._upsert_record("staff", staff_code, record, status="active", account_id=account_id)
        self._refresh_staff_account(account_id)
        return outcome

    def _refresh_staff_account(self, account_id: str) -> None:
        self.conn.execute(
            "UPDATE staff_accounts SET active = EXISTS (SELECT 1 FROM school_records r"
            f" WHERE r.kind = 'staff' AND r.account_id = ? AND {ON_ROLL_SQL}), updated_at = ?"
            " WHERE account_id = ?",
            (account_id, self.today.isoformat(), self.now, account_id),
        )

    # -- memberships -----------------------------------------------------------------------------------------

    def _membership(self, key: str, record: dict[str, Any]) -> Outcome:
        group = self._row("group", record["group_id"])
        if group is None or group["status"] != "active":
            return _refused("unknown_group")
        member = self._row(record["member_kind"], record["member_key"])
        if member is None or not calendar.on_roll(
            member["status"], calendar.parse_date(member["released_on"]), self.today
        ):
            return _refused("unknown_member")
        return self._upsert_record("membership", key, record, status="active", account_id=None)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

"""Local state (outbox, acknowledgement, integrity) and the log redaction step."""

import io
import json
import logging
import sqlite3
from pathlib import Path

import pytest
import structlog

from hwb_client import logs
from hwb_client.adapters.replies import OperationResult
from hwb_client.adapters.state import (
    MIGRATIONS,
    OUTBOX_OPS_VERSION,
    SETTLED_VERSION,
    PendingBatch,
    PendingOp,
    StateStore,
    set_aside,
)
from hwb_client.core.diff import ACTIVE
from hwb_client.core.model import Kind, Op
from hwb_client.core.snapshot import Settled
from hwb_client.errors import StateError

BODY = "Siân Prydderch 2015-03-04".encode()


def batch(batch_id: str = "b1") -> PendingBatch:
    ops = (
        PendingOp(Op.UPSERT, Kind.LEARNER, "k:1", "sha-256:aa", "6"),
        PendingOp(Op.REMOVE, Kind.STAFF, "T9", None),
    )
    return PendingBatch(batch_id, "run1", 1, BODY, None, ops)


def test_outbox_body_is_stored_encrypted_and_read_back_byte_identical(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, "6612001")
    store.add_to_outbox([batch()])
    assert store.pending_batches()[0].body == BODY
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("6612001.sqlite3*"))
    assert "Siân".encode() not in raw and b"Prydderch" not in raw
    assert oct((tmp_path / "6612001.outbox.key").stat().st_mode & 0o777) == "0o600"


def test_acknowledging_advances_state_for_applied_operations_and_clears_the_batch(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, "6612001")
    store.add_to_outbox([batch()])
    tally = store.acknowledge(
        store.pending_batches()[0],
        [OperationResult("applied", account_id="acc-1"), OperationResult("refused", reason="not_found")],
    )
    assert tally == {"applied": 1, "refused": 1, "refused:not_found": 1}
    assert store.count_pending() == 0
    assert store.acknowledged()[Kind.LEARNER]["k:1"].digest == store.stored_digest(
        "sha-256:aa"
    )  # keyed, not plain
    assert store.account_ids(Kind.LEARNER) == {"k:1": "acc-1"}


def test_a_pending_batch_of_a_state_with_an_operation_row_each_migrates_whole_and_in_order(
    tmp_path: Path,
) -> None:
    """0.1.0 kept a row per frozen operation; the migration moves them into the batch, in their order,
    and ``why`` finds a record in the outbox before (read-only, not migrated) and after it."""
    from hwb_client.operator.why import local_state

    store = StateStore.open(tmp_path, "6612001")
    _before_settled_classes(store)
    store.db.execute("ALTER TABLE outbox DROP COLUMN ops")
    store.db.execute("DELETE FROM schema_migrations WHERE version = ?", (OUTBOX_OPS_VERSION,))
    store.db.execute(
        "INSERT INTO outbox (batch_id, run_id, sequence, body, created_at) VALUES ('b1', 'run1', 1, ?, 'now')",
        (store._seal("b1", BODY),),
    )
    old = [  # stored out of order: the index gives the order
        (2, "remove", "staff", "T9", None, None, None),
        (0, "upsert", "learner", "k:1", "hmac-sha-256:aa", "6", "s:1"),
        (1, "leave", "learner", "k:2", "hmac-sha-256:bb", "7", None),
    ]
    store.db.executemany(
        "INSERT INTO outbox_ops (batch_id, idx, op, kind, key, digest, year_group, stable) "
        "VALUES ('b1', ?, ?, ?, ?, ?, ?, ?)",
        old,
    )
    store.close()
    reader = StateStore.open(tmp_path, "6612001", read_only=True)
    assert local_state(reader, "learner", "k:2")["outbox"]["op"] == "leave"
    reader.close()
    again = StateStore.open(tmp_path, "6612001")
    assert again.schema_version == len(MIGRATIONS)
    assert again.db.execute("SELECT count(*) FROM outbox_ops").fetchone()[0] == 0
    (pending,) = again.pending_batches()
    assert pending.body == BODY
    assert [(o.op, o.kind, o.key, o.digest, o.year_group, o.stable) for o in pending.ops] == [
        (Op.UPSERT, Kind.LEARNER, "k:1", "hmac-sha-256:aa", "6", "s:1"),
        (Op.LEAVE, Kind.LEARNER, "k:2", "hmac-sha-256:bb", "7", None),
        (Op.REMOVE, Kind.STAFF, "T9", None, None, None),
    ]
    assert local_state(again, "learner", "k:2")["outbox"]["op"] == "leave"
    assert "outbox" not in local_state(again, "learner", "k:3")
    again.acknowledge(pending, [OperationResult("applied")] * 3)
    assert "outbox" not in local_state(again, "learner", "k:2")
    again.close()


def test_a_pending_batch_survives_reopening(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, "6612001")
    store.add_to_outbox([batch("b1"), batch("b2")])
    store.close()
    again = StateStore.open(tmp_path, "6612001")
    assert [b.batch_id for b in again.pending_batches()] == ["b1", "b2"]
    assert again.schema_version == len(MIGRATIONS)


def test_a_damaged_database_is_detected_and_can_be_set_aside(tmp_path: Path) -> None:
    StateStore.open(tmp_path, "6612001").close()
    (tmp_path / "6612001.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="damaged"):
        StateStore.open(tmp_path, "6612001")
    moved = set_aside(tmp_path, "6612001")
    assert moved is not None and moved.exists()
    assert StateStore.open(tmp_path, "6612001").is_new()


def test_read_only_open_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, "6612001", read_only=True)
    assert store.last_run() is None and store.count_pending() == 0
    assert not (tmp_path / "6612001.sqlite3").exists()


def test_redaction_masks_upn_shaped_values_and_personal_keys() -> None:
    stream = io.StringIO()
    logs.configure(fmt="json", stream=stream)
    structlog.get_logger("t").info(
        "record_held_back",
        upn="J681234525017",
        legal_surname="Jones",
        detail="learner J681234525017 failed",
        reason="upn_duplicate",
    )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["upn"] == "[redacted]" and line["legal_surname"] == "[redacted]"
    assert "J681234525017" not in stream.getvalue()
    assert line["reason"] == "upn_duplicate" and line["event"] == "record_held_back"
    logging.getLogger().handlers.clear()


def test_state_database_schema_has_no_column_for_names_or_dates_of_birth(tmp_path: Path) -> None:
    StateStore.open(tmp_path, "6612001").close()
    db = sqlite3.connect(tmp_path / "6612001.sqlite3")
    columns = {
        row[1]
        for table in ("acknowledged", "runs", "outbox", "outbox_ops", "meta")
        for row in db.execute(f"PRAGMA table_info({table})")
    }
    db.close()
    assert not columns & {"upn", "legal_forename", "legal_surname", "date_of_birth", "forename", "surname"}


def test_a_new_acknowledged_digest_unbinds_the_old_rows_fingerprint(tmp_path: Path) -> None:
    """Killed between acknowledging a change and remembering the new row's fingerprint, the old row's
    fingerprint must not keep standing for the changed record (the old row coming back would be skipped)."""
    store = StateStore.open(tmp_path, "6612001")
    upsert = PendingBatch(
        "b1", "run1", 1, BODY, None, (PendingOp(Op.UPSERT, Kind.STAFF, "SJE", "sha-256:present"),)
    )
    store.add_to_outbox([upsert])
    store.acknowledge(store.pending_batches()[0], [OperationResult("applied")])
    store.db.execute("UPDATE acknowledged SET fingerprint = x'01' WHERE key = 'SJE'")
    same = PendingBatch(
        "b2", "run2", 1, BODY, None, (PendingOp(Op.UPSERT, Kind.STAFF, "SJE", "sha-256:present"),)
    )
    store.add_to_outbox([same])
    store.acknowledge(store.pending_batches()[0], [OperationResult("unchanged")])
    assert b"\x01" in store.index()[1]  # the same digest keeps its fingerprint
    leave = PendingBatch(
        "b3", "run3", 1, BODY, None, (PendingOp(Op.LEAVE, Kind.STAFF, "SJE", "sha-256:left"),)
    )
    store.add_to_outbox([leave])
    store.acknowledge(store.pending_batches()[0], [OperationResult("applied")])
    assert store.index()[1] == {}


def test_an_operation_frozen_from_a_row_just_read_binds_its_fingerprint_when_acknowledged(
    tmp_path: Path,
) -> None:
    """A record sent by this run is written once: its acknowledgement binds the row's fingerprint and
    stable digest, and remembering the fingerprints afterwards rewrites nothing. A refused one binds
    nothing, and the outbox does not keep the binding: a batch resent by a later run binds nothing."""
    from hwb_client.core.snapshot import Entry, Snapshot

    store = StateStore.open(tmp_path, "6612001")
    sent = PendingOp(Op.UPSERT, Kind.LEARNER, "k:1", "sha-256:1", "6", "stable:1", True, b"\x07")
    refused = PendingOp(Op.UPSERT, Kind.LEARNER, "k:2", "sha-256:2", "6", "stable:2", True, b"\x08")
    frozen = PendingBatch("b1", "run1", 1, BODY, None, (sent, refused))
    store.add_to_outbox([frozen])
    assert [op.bind for op in store.pending_batches()[0].ops] == [False, False]  # not kept in the outbox
    store.acknowledge(frozen, [OperationResult("applied"), OperationResult("refused", reason="invalid")])
    known = store.index()[1]
    assert list(known) == [b"\x07"]  # the refused record has no row, so no fingerprint
    assert (known[b"\x07"].key, known[b"\x07"].stable) == ("k:1", "stable:1")
    snapshot = Snapshot()
    snapshot.entries[Kind.LEARNER]["k:1"] = Entry(
        Kind.LEARNER, "k:1", {"upn_hash": "k:1"}, "sha-256:1", False, "6", b"\x07", None, None, "stable:1"
    )
    changes = store.db.total_changes
    assert store.remember_fingerprints(snapshot) == 1  # bound already: counted, not written again
    assert store.db.total_changes == changes
    store.close()


def test_the_index_and_a_few_records_of_it_say_the_same_as_the_whole_table(tmp_path: Path) -> None:
    """``index()`` (built in bulk) and ``acknowledged_for`` (a run's held-back keys only) agree with the
    row-by-row ``acknowledged()`` of 0.1.0, and a left record's fingerprint says it left."""
    store = StateStore.open(tmp_path, "6612001")
    ops = (
        PendingOp(Op.UPSERT, Kind.STAFF, "SJE", "sha-256:present"),
        PendingOp(Op.UPSERT, Kind.STAFF, "ABC", "sha-256:abc"),
        PendingOp(Op.LEAVE, Kind.STAFF, "OLD", "sha-256:old"),
    )
    store.add_to_outbox([PendingBatch("b1", "run1", 1, BODY, None, ops)])
    store.acknowledge(store.pending_batches()[0], [OperationResult("applied")] * 3)
    store.db.execute("UPDATE acknowledged SET fingerprint = x'02' WHERE key = 'OLD'")
    index, known = store.index()
    whole = store.acknowledged()
    assert {kind: {k: (a.digest, a.status) for k, a in v.items()} for kind, v in index.items()} == {
        kind: {k: (a.digest, a.status) for k, a in v.items()} for kind, v in whole.items()
    }
    assert set(index[Kind.STAFF]) == {"SJE", "ABC", "OLD"}
    assert list(known) == [b"\x02"] and known[b"\x02"].key == "OLD" and known[b"\x02"].leaving
    few = store.acknowledged_for([(Kind.STAFF, "ABC"), (Kind.STAFF, "GONE")])
    assert few[Kind.STAFF] == {"ABC": whole[Kind.STAFF]["ABC"]} and few[Kind.LEARNER] == {}


def _memberships(store: StateStore, batch_id: str, *ops: PendingOp, answer: str = "applied") -> None:
    store.add_to_outbox([PendingBatch(batch_id, "run1", 1, BODY, None, ops)])
    store.acknowledge(store.pending_batches()[0], [OperationResult(answer)] * len(ops))


def _before_settled_classes(store: StateStore) -> None:
    """Back to the schema before memberships were settled per class: one token per school."""
    store.db.executescript(
        "DROP TRIGGER acknowledged_insert_unsettles; DROP TRIGGER acknowledged_update_unsettles;"
        "DROP TRIGGER acknowledged_delete_unsettles; DROP TABLE settled_classes;"
        + next(m for m in MIGRATIONS if "CREATE TABLE settled_kinds" in m)
        + f"DELETE FROM schema_migrations WHERE version >= {SETTLED_VERSION};"
    )


def _member(n: int, op: Op = Op.UPSERT, group: str = "6A") -> PendingOp:
    return PendingOp(
        op, Kind.MEMBERSHIP, f"{group}/learner/k:{n}", None if op is Op.REMOVE else f"sha-256:{n}"
    )


T = Settled(b"t" * 16, 2)


def test_settled_classes_are_kept_only_as_acknowledged_and_forgotten_at_any_write_to_their_memberships(
    tmp_path: Path,
) -> None:
    """A class's token is kept only when its acknowledged memberships are as many as the run decided,
    all active, with nothing waiting to be sent; whatever writes one of its acknowledged memberships
    afterwards (an acknowledgement, anti-entropy forgetting one, a rebuild from the manifest, a
    re-keying) forgets it, and a write to another class or another kind does not."""
    store = StateStore.open(tmp_path, "6612001")
    store.fingerprint_key = b"f" * 32  # as a state with its local secret has
    _memberships(store, "b1", _member(1), _member(2), _member(1, group="6AB"), _member(2, group="6"))
    # one decided was not acknowledged
    assert store.settle_classes({"6A": Settled(b"t" * 16, 3)}, "run1") == []
    store.add_to_outbox([batch("waiting")])
    assert store.settle_classes({"6A": T}, "run1") == []  # something still waits to be sent
    store.discard("waiting")
    # each class counted by its own memberships: "6AB" and "6" are not "6A"
    three = {"6A": T, "6AB": Settled(b"u" * 16, 1), "6": Settled(b"v" * 16, 1)}
    assert store.settle_classes(three, "run1") == ["6A", "6AB", "6"]
    assert store.settled_classes() == {"6A": T, "6AB": (b"u" * 16, 1), "6": (b"v" * 16, 1)}
    assert store.index(leave_out=frozenset({Kind.MEMBERSHIP}))[0].get(Kind.MEMBERSHIP) is None
    assert set(store.kind_index(Kind.MEMBERSHIP, frozenset({"6A", "6"}))[0]) == {"6AB/learner/k:1"}
    # a class neither read nor settled (acknowledged, then gone from the MIS) is found all the same
    _memberships(store, "b0", _member(5, group="7Z"))
    loaded = store.kind_index(Kind.MEMBERSHIP, frozenset({"6A", "6"}), frozenset({"6A", "6"}))[0]
    assert set(loaded) == {"6AB/learner/k:1", "7Z/learner/k:5"}
    assert set(store.kind_index(Kind.MEMBERSHIP, frozenset({"6A", "6"}), frozenset({"7Z"}))[0]) == set(loaded)
    store.db.execute("DELETE FROM acknowledged WHERE key = '7Z/learner/k:5'")

    _memberships(store, "b2", PendingOp(Op.UPSERT, Kind.LEARNER, "k:9", "sha-256:9"))
    assert store.settled_classes().keys() == {"6A", "6AB", "6"}  # a learner written: the classes stand
    store.db.execute("UPDATE acknowledged SET fingerprint = x'01' WHERE kind = 'membership'")
    assert store.settled_classes().keys() == {"6A", "6AB", "6"}  # a fingerprint bound: the same records
    writes = {
        "acknowledged": lambda: _memberships(store, "b3", _member(3)),
        "removed": lambda: _memberships(store, "b4", _member(1, Op.REMOVE)),
        "re-keyed": lambda: store.rekey([(Kind.MEMBERSHIP, "6A/learner/k:2", "6A/learner/k2:2")]),
        "status changed": lambda: store.db.execute(
            "UPDATE acknowledged SET status = 'left' WHERE key LIKE '6A/%'"
        ),
        "forgotten": lambda: store.db.execute("DELETE FROM acknowledged WHERE key = '6A/learner/k:3'"),
        "rebuilt": lambda: store.replace_acknowledged(
            [(Kind.MEMBERSHIP, "6AB/learner/k:1", "d", ACTIVE, None)]
        ),
    }
    for name, write in writes.items():
        assert store.kind_index(Kind.MEMBERSHIP)[0], name  # there is still a membership to write to
        store.db.execute("INSERT OR REPLACE INTO settled_classes VALUES ('6A', x'00', 0, 'run1', 'now')")
        write()
        assert "6A" not in store.settled_classes(), name
        if name != "rebuilt":  # a rebuild rewrites every membership: the other classes go too
            assert store.settled_classes().keys() == {"6AB", "6"}, name
    store.close()


def test_the_whole_reads_token_stands_only_while_the_settled_classes_are_those_it_was_kept_with(
    tmp_path: Path,
) -> None:
    """The token of a whole read is kept only when the settled classes are exactly the classes it
    names; any write that forgets or replaces one of them makes it worth nothing, as does a class
    settled since (it is then kept again by the run that settled it)."""
    store = StateStore.open(tmp_path, "6612001")
    store.fingerprint_key = b"f" * 32
    _memberships(store, "b1", _member(1), _member(2), _member(1, group="6B"))
    assert store.settle_classes({"6A": T}, "run1") == ["6A"]
    both = frozenset({"6A", "6B"})
    assert not store.settle_school(b"w" * 16, both)  # 6B is not settled: nothing kept
    assert store.settled_school(store.settled_classes()) is None
    assert store.settle_classes({"6B": Settled(b"u" * 16, 1)}, "run1") == ["6B"]
    assert store.settle_school(b"w" * 16, both)
    assert store.settled_school(store.settled_classes()) == b"w" * 16
    store.close()
    again = StateStore.open(tmp_path, "6612001")  # kept in the state, with nothing personal in it
    again.fingerprint_key = b"f" * 32
    assert again.settled_school(again.settled_classes()) == b"w" * 16
    _memberships(again, "b2", _member(3, group="6B"))  # 6B written: its token goes, and the whole's
    assert again.settled_classes().keys() == {"6A"} and again.settled_school(again.settled_classes()) is None
    assert again.settle_classes({"6B": Settled(b"v" * 16, 2)}, "run2") == ["6B"]
    assert again.settled_school(again.settled_classes()) is None  # 6B's token is not the one it was kept with
    again.close()


def test_a_state_with_the_school_wide_token_migrates_to_settled_classes_with_none_settled(
    tmp_path: Path,
) -> None:
    """A state whose memberships were settled as a whole (schema 7) gets the per-class table and its
    triggers by migration; the school's token goes, and the first run after it reads every class."""
    store = StateStore.open(tmp_path, "6612001")
    store.fingerprint_key = b"f" * 32
    _memberships(store, "b1", _member(1), _member(2))
    _before_settled_classes(store)
    store.db.execute("INSERT INTO settled_kinds VALUES ('membership', x'00', 2, 'run1', 'now')")
    store.close()
    again = StateStore.open(tmp_path, "6612001")
    again.fingerprint_key = b"f" * 32
    assert again.schema_version == len(MIGRATIONS)
    assert again.settled_classes() == {} and not again.has_table("settled_kinds")
    assert set(again.kind_index(Kind.MEMBERSHIP)[0]) == {"6A/learner/k:1", "6A/learner/k:2"}  # nothing lost
    assert again.settle_classes({"6A": T}, "run2") == ["6A"]
    _memberships(again, "b2", _member(3))
    assert again.settled_classes() == {}  # the new triggers forget the class
    again.close()


def test_a_record_read_the_long_way_every_night_is_not_rewritten_when_nothing_changed(tmp_path: Path) -> None:
    """A learner with a leaving date to come takes the full path every run and is bound to no
    fingerprint: remembering it again must change nothing, or every nightly run rewrites its page."""
    from hwb_client.core.snapshot import Entry, Snapshot

    store = StateStore.open(tmp_path, "6612001")
    upsert = PendingOp(Op.UPSERT, Kind.LEARNER, "k:1", "sha-256:1", "6", "stable:1")
    store.add_to_outbox([PendingBatch("b1", "run1", 1, BODY, None, (upsert,))])
    store.acknowledge(store.pending_batches()[0], [OperationResult("applied")])
    snapshot = Snapshot()
    entry = Entry(
        Kind.LEARNER, "k:1", {"upn_hash": "k:1"}, "sha-256:1", False, "6", None, None, None, "stable:2"
    )
    snapshot.entries[Kind.LEARNER]["k:1"] = entry
    assert store.remember_fingerprints(snapshot) == 1  # its stable digest is new
    changes = store.db.total_changes
    assert store.remember_fingerprints(snapshot) == 0
    assert store.db.total_changes == changes
    snapshot.entries[Kind.LEARNER]["k:1"] = entry._replace(fingerprint=b"\x05")
    assert store.remember_fingerprints(snapshot) == 1 and b"\x05" in store.index()[1]
    store.close()

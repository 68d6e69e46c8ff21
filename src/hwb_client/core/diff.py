"""The diff: what changed since the last acknowledged run, as operations in the order they are sent.

Pure. ``acknowledged`` is what the national side confirmed (digest and status per record); the result
holds an upsert for a new or changed record on roll, a leave for a record whose leaving date has passed
(the day after its last day on roll) and that the national side still holds as active or with another
digest, a remove for a record that vanished from the MIS, and nothing for an unchanged one. A record's
state is the snapshot's, taken on the day of the run: the same MIS row is on roll on its leaving date and
left the day after, so a leave is sent then although the row did not change. Held-back records are never
removed: they still exist in the MIS, they are just not sendable now. A settled class
(``Snapshot.settled_classes``: everything its memberships are built from is as at a run that left them
exactly as acknowledged) gives no operation at all: its memberships have no entries, and must not be
removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from hwb_client.core.model import SEND_ORDER, Kind, Op, Operation
from hwb_client.core.snapshot import Snapshot

ACTIVE = "active"
LEFT = "left"


class Acknowledged(NamedTuple):
    """What the national side holds for one record, as far as this client knows (a named tuple: the
    state loads one per acknowledged record on every run, built in C from the rows)."""

    digest: str
    status: str  # ACTIVE or LEFT
    year_group: str | None = None
    #: keyed digest of the record without its rollover fields (``model.stable_form``); None before 0.2.0
    stable: str | None = None


AckIndex = Mapping[Kind, Mapping[str, Acknowledged]]


def _same(digest: str) -> str:
    return digest


def diff(snapshot: Snapshot, acknowledged: AckIndex, keyed: Callable[[str], str] = _same) -> list[Operation]:
    """Upserts and leaves for kinds in send order (members before groups before memberships), then
    removes in the reverse order (memberships before the groups and people they point at).

    ``keyed`` turns a record digest into the form ``acknowledged`` holds (the state keeps keyed digests,
    ``core.anti_entropy.keyed_digest``); it must leave an already keyed digest as it is."""
    changes: list[Operation] = []
    never_sent_leavers: set[tuple[str, str]] = set()
    for kind in SEND_ORDER:
        known = acknowledged.get(kind, {})
        for key, entry in snapshot.entries[kind].items():
            previous = known.get(key)
            if previous is not None:  # keyed only to be compared: a first run keys no digest here
                wanted = LEFT if entry.left else ACTIVE
                # a row known by its fingerprint carries the digest as acknowledged: already in stored form
                digest = entry.digest if entry.record is None else keyed(entry.digest)
                if previous.digest == digest and previous.status == wanted:
                    continue
            if entry.left and previous is None:
                # A leaver the national side never held (left before this client first ran, or joined and
                # left between two runs) has no account to release: nothing to send, for them or their classes.
                never_sent_leavers.add((kind.value, key))
                continue
            record = entry.record
            # a row recognised by its fingerprint is exactly what was acknowledged, so it never gets here
            assert record is not None
            member = (str(record.get("member_kind")), str(record.get("member_key")))
            if kind is Kind.MEMBERSHIP and member in never_sent_leavers:
                continue
            op = Op.LEAVE if entry.left else Op.UPSERT
            # the entry's own digest string, shared: the outbox and the acknowledgement key it as they
            # write it (a keyed copy held per operation would be a large school's peak memory)
            changes.append(Operation(op, kind, key, record, entry.digest))
    removals: list[Operation] = []
    settled = snapshot.settled_classes
    for kind in reversed(SEND_ORDER):
        current = snapshot.entries[kind]
        for key in acknowledged.get(kind, {}):
            if key not in current and (kind, key) not in snapshot.held_keys:
                if settled and kind is Kind.MEMBERSHIP and key.partition("/")[0] in settled:
                    continue  # as acknowledged: nothing of a settled class vanished
                removals.append(Operation(Op.REMOVE, kind, key, None, None))
    return changes + removals

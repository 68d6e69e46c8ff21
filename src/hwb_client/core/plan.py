"""The plan: from one school's MIS rows to what a run sends, in one pure function.

rows -> snapshot (validate, pseudonymise, minimise) -> diff against the acknowledged index -> guard ->
batches. Everything the decision depends on is a parameter: the day (``today``: a rehearsal passes
another), the acknowledged index and fingerprints read from the state, the policies, the flags a person
gave. Nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hwb_client.core import guard, key_rotation
from hwb_client.core.batches import Batch, build_batches
from hwb_client.core.diff import AckIndex, Acknowledged, diff
from hwb_client.core.model import Kind, Operation
from hwb_client.core.snapshot import (
    RowFingerprints,
    Settled,
    SettledClasses,
    Snapshot,
    SourceRows,
    build_snapshot,
)

#: Kinds that are people (accounts); the others are classes and their memberships.
PEOPLE = (Kind.LEARNER, Kind.STAFF)


@dataclass(frozen=True)
class BatchPolicy:
    max_operations: int = 2000
    max_bytes: int = 4_000_000
    gzip_level: int = 6


@dataclass(frozen=True)
class Upcoming:
    """Records whose state will change on a coming day, counted (never named)."""

    date: dt.date
    kind: Kind
    event: str  # "starts" or "leaves" (the day after the last day on roll)
    count: int


@dataclass(frozen=True)
class Plan:
    snapshot: Snapshot
    operations: list[Operation]
    decision: guard.GuardDecision
    #: holds that the flags given do not allow: the run must not send
    holds: tuple[guard.Hold, ...]
    #: holds a person allowed with a flag: recorded in the run report and status
    overridden: tuple[guard.Hold, ...]
    batches: list[Batch] = field(default_factory=list)
    #: acknowledged records re-keyed for a national key changeover (kind, old key, new key): the state
    #: database must follow before anything is sent
    rekeyed: key_rotation.Moves = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.holds)

    @property
    def settles_classes(self) -> dict[str, Settled]:
        """The classes the state may keep as settled if this run ends with every operation applied:
        each class this read decided with none of its rows held back, its token and how many
        memberships it has (once applied, exactly what is acknowledged of it; the state checks the
        count). The classes settled already keep their tokens."""
        tokens = self.snapshot.class_tokens
        if not tokens:
            return {}
        records = Counter(key.partition("/")[0] for key in self.snapshot.entries[Kind.MEMBERSHIP])
        return {gid: Settled(token, records[gid]) for gid, token in tokens.items() if records[gid]}

    def counts(self) -> dict[str, dict[str, int]]:
        """Planned operations per kind and operation."""
        return count_operations(self.operations)

    def held_back_by_kind(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for held in self.snapshot.held_back:
            counts.setdefault(held.kind.value, Counter())[held.reason.value] += 1
        return {kind: dict(reasons) for kind, reasons in counts.items()}

    def upcoming(self, today: dt.date) -> list[Upcoming]:
        tally: Counter[tuple[dt.date, Kind, str]] = Counter()
        for kind in PEOPLE:
            for entry in self.snapshot.entries[kind].values():
                if entry.start_date is not None and entry.start_date > today:
                    tally[(entry.start_date, kind, "starts")] += 1
                if entry.leaving_date is not None and entry.leaving_date >= today:
                    tally[(entry.leaving_date + dt.timedelta(days=1), kind, "leaves")] += 1
        return [Upcoming(d, k, e, n) for (d, k, e), n in sorted(tally.items())]


def count_operations(operations: list[Operation] | tuple[Operation, ...]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for operation in operations:
        per_kind = counts.setdefault(operation.kind._value_, {})  # per operation: see ``model``
        op = operation.op._value_
        per_kind[op] = per_kind.get(op, 0) + 1
    return counts


@dataclass(frozen=True)
class BatchIds:
    """What a batch needs besides its operations: the run, the UPN key id, a source of fresh ids."""

    run_id: str
    upn_key_id: str
    new_id: Callable[[], str]


def _unsettled(
    acknowledged: AckIndex,
    snapshot: Snapshot,
    later: Callable[[frozenset[str], frozenset[str]], Mapping[str, Acknowledged]] | None,
) -> AckIndex:
    """The acknowledged index with only the memberships of the classes this read did not settle."""
    same = snapshot.settled_classes
    if later is not None:
        return {**acknowledged, Kind.MEMBERSHIP: later(same, snapshot.classes_read)}
    if not same:
        return acknowledged
    memberships = acknowledged.get(Kind.MEMBERSHIP, {})
    unsettled = {k: a for k, a in memberships.items() if k.partition("/")[0] not in same}
    return {**acknowledged, Kind.MEMBERSHIP: unsettled}


def plan(
    rows: SourceRows,
    *,
    hasher: Callable[[str], str],
    acknowledged: AckIndex,
    today: dt.date,
    guard_policy: guard.GuardPolicy,
    batch_policy: BatchPolicy,
    ids: BatchIds | None,
    fingerprints: RowFingerprints | None = None,
    keyed: Callable[[bytes], str] | None = None,
    stored_digest: Callable[[str], str] | None = None,
    allowed_flags: frozenset[str] = frozenset(),
    held_before: Mapping[Kind, int] | None = None,
    previous_hasher: Callable[[str], str] | None = None,
    settled: SettledClasses | None = None,
    settled_school: bytes | None = None,
    later_memberships: Callable[[frozenset[str], frozenset[str]], Mapping[str, Acknowledged]] | None = None,
) -> Plan:
    """Decide one school's run. ``ids`` is None for a dry run (no batches are cut). In a national key
    changeover (``previous_hasher``), acknowledged learners are re-keyed to their new pseudonyms first.

    ``settled``: what the last clean run left of each class (``snapshot.Settled``), and
    ``settled_school`` the whole read's token kept with them. The state may then leave the acknowledged
    memberships out of ``acknowledged``; ``later_memberships`` gives them, but those of the classes this
    read settles (given them, and the classes the read names). Past this point the acknowledged
    memberships are the unsettled classes': the diff and the guard count the settled ones as acknowledged."""
    snapshot = build_snapshot(
        rows, hasher, today, fingerprints, keyed, previous_hasher, settled, settled_school
    )
    acknowledged = _unsettled(acknowledged, snapshot, later_memberships)
    learners = {k: e.record for k, e in snapshot.entries[Kind.LEARNER].items() if e.record is not None}
    moves = key_rotation.rekey_moves(learners, acknowledged)
    if moves:
        acknowledged = key_rotation.apply_moves(acknowledged, moves)
    # ``stored_digest``: record digests in the form the state keeps them (keyed; ``StateStore.stored_digest``)
    operations = (
        diff(snapshot, acknowledged, stored_digest) if stored_digest else diff(snapshot, acknowledged)
    )
    decision = guard.check(
        snapshot, operations, acknowledged, policy=guard_policy, today=today, held_before=held_before
    )
    holds = decision.remaining(allowed_flags)
    overridden = tuple(hold for hold in decision.holds if hold not in holds)
    batches: list[Batch] = []
    if ids is not None and not holds:
        batches = build_batches(
            operations,
            run_id=ids.run_id,
            upn_key_id=ids.upn_key_id,
            today=today,
            new_id=ids.new_id,
            max_operations=batch_policy.max_operations,
            max_bytes=batch_policy.max_bytes,
            gzip_level=batch_policy.gzip_level,
        )
    return Plan(snapshot, operations, decision, holds, overridden, batches, moves)

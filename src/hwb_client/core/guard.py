"""The safety guard: a run that looks like "everyone left" is blocked until a person allows it.

An empty or half-finished MIS read (end-of-year procedures mid-way, a changed query, a lost connection)
looks exactly like a mass departure. The guard blocks a run when:

- a source returned no rows at all, or the learners or staff query returned none while the national side
  holds active records of that kind; or
- the *unexpected* removals of learners or staff exceed ``max(min_removals, max_removal_share * active)``.

Expected departures do not count: records sent with a leaving date (``leave``), records already left,
and, from June to September, learners whose last acknowledged year group is a leaving year (6, 11, 13,
14) - the end-of-year churn that trips fixed thresholds in comparable agents. Groups and memberships are
not accounts (removing one deactivates nobody), so only the empty-source rule applies to them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hwb_client.core.diff import ACTIVE, LEFT, AckIndex
from hwb_client.core.model import Kind, Op, Operation
from hwb_client.core.snapshot import Snapshot

LEAVING_YEAR_GROUPS = frozenset({"6", "11", "13", "14"})
GUARDED_KINDS = (Kind.LEARNER, Kind.STAFF)


@dataclass(frozen=True)
class GuardDecision:
    blocked: bool
    reasons: list[str] = field(default_factory=list)
    unexpected_removals: Counter[Kind] = field(default_factory=Counter)
    expected_removals: Counter[Kind] = field(default_factory=Counter)


def _summer(today: dt.date) -> bool:
    return 6 <= today.month <= 9


def check(
    snapshot: Snapshot,
    operations: Sequence[Operation],
    acknowledged: AckIndex,
    *,
    max_removal_share: float,
    min_removals: int,
    today: dt.date,
) -> GuardDecision:
    """Decide whether this run may go ahead; the reasons name the kind, the numbers and the limit."""
    reasons: list[str] = []
    active = {
        kind: sum(1 for a in acknowledged.get(kind, {}).values() if a.status == ACTIVE) for kind in Kind
    }
    if sum(snapshot.rows_read.values()) == 0:
        reasons.append(
            "the MIS returned no rows at all: check the connection, the query profile and "
            "whether end-of-year procedures are under way"
        )
    else:
        for kind in GUARDED_KINDS:
            if snapshot.rows_read[kind] == 0 and active[kind] > 0:
                reasons.append(
                    f"the {kind.value} query returned no rows, but {active[kind]} {kind.value} "
                    "accounts are active: check the query profile and the MIS"
                )

    unexpected: Counter[Kind] = Counter()
    expected: Counter[Kind] = Counter()
    for operation in operations:
        if operation.op is not Op.REMOVE or operation.kind not in GUARDED_KINDS:
            continue
        previous = acknowledged.get(operation.kind, {}).get(operation.key)
        if (
            previous is None
            or previous.status == LEFT
            or (
                operation.kind is Kind.LEARNER
                and _summer(today)
                and previous.year_group in LEAVING_YEAR_GROUPS
            )
        ):
            expected[operation.kind] += 1
        else:
            unexpected[operation.kind] += 1
    for kind in GUARDED_KINDS:
        limit = max(min_removals, int(max_removal_share * active[kind]))
        if unexpected[kind] > limit:
            reasons.append(
                f"{unexpected[kind]} of {active[kind]} active {kind.value} records vanished from the MIS "
                f"without a leaving date (limit {limit}); if right, run once with --allow-mass-removal"
            )
    return GuardDecision(bool(reasons), reasons, unexpected, expected)

"""The safety guard: a run that looks like a broken read is held until a person allows it.

An empty or half-finished MIS read (end-of-year procedures mid-way, a changed query, a lost connection)
looks exactly like a mass departure; a changed mapping looks like everyone was renamed. The guard holds a
run, naming the rule, the numbers, the limit and the flag that allows it, when:

- ``empty_source``: a source returned no rows at all, or the learners or staff query returned none while
  the national side holds active records of that kind;
- ``mass_removal``: the *unexpected* removals of learners or staff exceed the removal limit;
- ``mass_hold_back``: more previously sent learners or staff fail validation than at the last completed
  run, by more than the removal limit (a broken column looks like this);
- ``mass_update``: more of a kind's active records changed than the update limit, not counting the
  expected summer rollover.

The removal limit scales with the school: ``max(min_removals, ceil(max_removal_share * active))``, per
kind (with the defaults, 4 of a 40-learner primary, 150 of a 1,500-learner secondary). Expected
departures never count: records sent with a leaving date (``leave``), records already left, and from
June to September learners whose last acknowledged year group is a leaving year (6, 11, 13, 14). The
expected rollover is, from June to September, a record whose fields other than its year group,
registration group or class name are unchanged, and whose year group stayed or went up by one.
Groups and memberships are not accounts (removing one deactivates nobody): only the empty-source and
mass-update rules look at groups.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hwb_client.core.diff import ACTIVE, LEFT, AckIndex, Acknowledged
from hwb_client.core.model import NEXT_YEAR_GROUP, Kind, Op, Operation
from hwb_client.core.snapshot import Entry, Snapshot

LEAVING_YEAR_GROUPS: Final = frozenset({"6", "11", "13", "14"})
GUARDED_KINDS: Final = (Kind.LEARNER, Kind.STAFF)
UPDATE_KINDS: Final = (Kind.LEARNER, Kind.STAFF, Kind.GROUP)


class Rule(enum.StrEnum):
    """Why a run was held. Stable codes (run reports, status, monitoring read them)."""

    EMPTY_SOURCE = "empty_source"
    MASS_REMOVAL = "mass_removal"
    MASS_HOLD_BACK = "mass_hold_back"
    MASS_UPDATE = "mass_update"


#: The command-line flag that lets one run past each rule, after a person has checked the MIS.
OVERRIDE_FLAG: Final[Mapping[Rule, str]] = {
    Rule.EMPTY_SOURCE: "--allow-mass-removal",
    Rule.MASS_REMOVAL: "--allow-mass-removal",
    Rule.MASS_HOLD_BACK: "--allow-mass-removal",
    Rule.MASS_UPDATE: "--allow-mass-update",
}


@dataclass(frozen=True)
class GuardPolicy:
    max_removal_share: float = 0.10
    min_removals: int = 3
    max_update_share: float = 0.75
    min_updates: int = 5

    def removal_limit(self, active: int) -> int:
        return max(self.min_removals, math.ceil(self.max_removal_share * active))

    def update_limit(self, active: int) -> int:
        return max(self.min_updates, math.ceil(self.max_update_share * active))


@dataclass(frozen=True)
class Hold:
    """One rule a run broke: the numbers, the limit, and what a person should do."""

    rule: Rule
    kind: Kind | None
    count: int
    limit: int
    active: int
    message: str

    @property
    def flag(self) -> str:
        return OVERRIDE_FLAG[self.rule]

    def to_report(self) -> dict[str, Any]:
        return {
            "rule": self.rule.value,
            "kind": self.kind.value if self.kind else None,
            "count": self.count,
            "limit": self.limit,
            "active": self.active,
            "flag": self.flag,
            "message": self.message,
        }


@dataclass(frozen=True)
class GuardDecision:
    holds: tuple[Hold, ...] = ()
    unexpected_removals: Counter[Kind] = field(default_factory=Counter)
    expected_removals: Counter[Kind] = field(default_factory=Counter)

    @property
    def blocked(self) -> bool:
        return bool(self.holds)

    @property
    def reasons(self) -> list[str]:
        return [hold.message for hold in self.holds]

    def remaining(self, allowed_flags: frozenset[str]) -> tuple[Hold, ...]:
        """The holds that the flags a person gave do not allow."""
        return tuple(hold for hold in self.holds if hold.flag not in allowed_flags)


def rollover_window(today: dt.date) -> bool:
    """June to September: leaving years leave, year groups go up, registration groups change."""
    return 6 <= today.month <= 9


def _active(acknowledged: AckIndex) -> dict[Kind, int]:
    return {
        kind: operator.countOf(map(_STATUS, acknowledged.get(kind, {}).values()), ACTIVE) for kind in Kind
    }


_STATUS = operator.attrgetter("status")


def _empty_source(snapshot: Snapshot, active: Mapping[Kind, int]) -> list[Hold]:
    if sum(snapshot.rows_read.values()) == 0:
        return [Hold(Rule.EMPTY_SOURCE, None, 0, 0, sum(active.values()), _EMPTY_MIS)]
    return [
        Hold(Rule.EMPTY_SOURCE, kind, 0, 0, active[kind], _EMPTY_QUERY[kind].format(active=active[kind]))
        for kind in GUARDED_KINDS
        if snapshot.rows_read[kind] == 0 and active[kind] > 0
    ]


def _expected_removal(kind: Kind, previous: Acknowledged | None, today: dt.date) -> bool:
    if previous is None or previous.status == LEFT:
        return True
    return kind is Kind.LEARNER and rollover_window(today) and previous.year_group in LEAVING_YEAR_GROUPS


def _removals(
    operations: Sequence[Operation], acknowledged: AckIndex, today: dt.date
) -> tuple[Counter[Kind], Counter[Kind]]:
    unexpected: Counter[Kind] = Counter()
    expected: Counter[Kind] = Counter()
    for operation in operations:
        if operation.op is Op.REMOVE and operation.kind in GUARDED_KINDS:
            previous = acknowledged.get(operation.kind, {}).get(operation.key)
            counter = expected if _expected_removal(operation.kind, previous, today) else unexpected
            counter[operation.kind] += 1
    return unexpected, expected


def held_back_sent(snapshot: Snapshot, acknowledged: AckIndex) -> dict[Kind, int]:
    """Per kind, how many records the national side holds as active are held back in this read."""
    counts = dict.fromkeys(GUARDED_KINDS, 0)
    for kind, key in snapshot.held_keys:
        previous = acknowledged.get(kind, {}).get(key) if kind in counts else None
        if previous is not None and previous.status == ACTIVE:
            counts[kind] += 1
    return counts


def _expected_update(kind: Kind, entry: Entry, previous: Acknowledged, today: dt.date) -> bool:
    """Only pseudonyms changed (a national key changeover), or it is the summer rollover: from June to
    September, only rollover fields changed and the year group stayed or went up by one."""
    if previous.stable is None or entry.stable is None:
        return False
    content, _, rollover_free = entry.stable.partition(":")
    old_content, _, old_rollover_free = previous.stable.partition(":")
    if content == old_content:
        return True
    if not rollover_window(today) or rollover_free != old_rollover_free:
        return False
    old, new = previous.year_group, entry.year_group
    return old is None or new == old or new == NEXT_YEAR_GROUP.get(old)


def _updates(
    snapshot: Snapshot, operations: Sequence[Operation], acknowledged: AckIndex, today: dt.date
) -> Counter[Kind]:
    """Upserts of active records with another digest, other than the expected rollover."""
    unexpected: Counter[Kind] = Counter()
    for operation in operations:
        if operation.op is not Op.UPSERT or operation.kind not in UPDATE_KINDS:
            continue
        previous = acknowledged.get(operation.kind, {}).get(operation.key)
        if previous is None or previous.status != ACTIVE:
            continue
        entry = snapshot.entries[operation.kind][operation.key]
        if not _expected_update(operation.kind, entry, previous, today):
            unexpected[operation.kind] += 1
    return unexpected


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue (core imports no i18n state): translated where it is shown."""
    return message


def _same(message: str) -> str:
    return message


#: What the guard says when the MIS returned nothing (all of it, or one query of a kind with accounts).
_EMPTY_MIS: Final = N_(
    "the MIS returned no rows at all: check the connection, the query profile and whether "
    "end-of-year procedures are under way; if right, run once with --allow-mass-removal"
)
_EMPTY_QUERY: Final[Mapping[Kind, str]] = {
    Kind.LEARNER: N_(
        "the learner query returned no rows, but {active} learner accounts are active: check the query "
        "profile and the MIS; if right, run once with --allow-mass-removal"
    ),
    Kind.STAFF: N_(
        "the staff query returned no rows, but {active} staff accounts are active: check the query "
        "profile and the MIS; if right, run once with --allow-mass-removal"
    ),
}
#: The records a limit rule counts, as its message names them.
_RECORDS: Final[Mapping[Kind, str]] = {
    Kind.LEARNER: N_("learner records"),
    Kind.STAFF: N_("staff records"),
    Kind.GROUP: N_("group records"),
    Kind.MEMBERSHIP: N_("membership records"),
}
#: What each limit rule says, with the numbers filled in: the rule, the numbers, the limit and the fix.
_MESSAGES: Final[Mapping[Rule, str]] = {
    Rule.MASS_REMOVAL: N_(
        "{count} of {active} active {records} vanished from the MIS without a leaving date "
        "(limit {limit}): check the MIS and the query profile; if right, run once with {flag}"
    ),
    Rule.MASS_HOLD_BACK: N_(
        "{count} more of {active} active {records} fail validation than at the last run (limit "
        "{limit}): a column of the MIS or the query profile may be broken; check the held-back reasons; "
        "if right, run once with {flag}"
    ),
    Rule.MASS_UPDATE: N_(
        "{count} of {active} active {records} would be changed at once (limit {limit}, not counting "
        "the summer rollover): check the query profile's mapping and the MIS; if right, run once with {flag}"
    ),
}


def hold_message(
    rule: Rule,
    kind: Kind | None,
    count: int,
    limit: int,
    active: int,
    translate: Callable[[str], str] = _same,
) -> str:
    """What a hold says, in English (stored, sent upstream) or through ``translate`` (shown to people)."""
    if rule is Rule.EMPTY_SOURCE:
        if kind is None or kind not in _EMPTY_QUERY:
            return translate(_EMPTY_MIS)
        return translate(_EMPTY_QUERY[kind]).format(active=active)
    records = translate(_RECORDS[kind]) if kind is not None else ""
    return translate(_MESSAGES[rule]).format(
        count=count, active=active, records=records, limit=limit, flag=OVERRIDE_FLAG[rule]
    )


def hold_report_message(report: Mapping[str, Any], translate: Callable[[str], str] = _same) -> str:
    """A hold as a run report keeps it (``Hold.to_report``), said again through ``translate``; a report
    that lacks the numbers (or names an unknown rule or kind) keeps its stored English message."""
    try:
        kind = Kind(report["kind"]) if report.get("kind") else None
        numbers = (int(report["count"]), int(report["limit"]), int(report["active"]))
        return hold_message(Rule(report["rule"]), kind, *numbers, translate=translate)
    except (KeyError, ValueError, TypeError):
        return str(report.get("message", ""))


def _over(rule: Rule, kind: Kind, count: int, limit: int, active: int) -> list[Hold]:
    """A hold when ``count`` is over ``limit``, else none."""
    if count <= limit:
        return []
    return [Hold(rule, kind, count, limit, active, hold_message(rule, kind, count, limit, active))]


def check(
    snapshot: Snapshot,
    operations: Sequence[Operation],
    acknowledged: AckIndex,
    *,
    policy: GuardPolicy,
    today: dt.date,
    held_before: Mapping[Kind, int] | None = None,
) -> GuardDecision:
    """Decide whether this run may go ahead. ``held_before`` is ``held_back_sent`` at the last completed
    run (None: unknown, so a first run after an upgrade is not held for hold-backs it inherited)."""
    active = _active(acknowledged)  # ``acknowledged``: the unsettled classes' memberships only (``plan``)
    for kind, records in snapshot.settled.items():  # settled: all active, as acknowledged
        active[kind] = active.get(kind, 0) + records
    holds = _empty_source(snapshot, active)
    unexpected, expected = _removals(operations, acknowledged, today)
    held_now = held_back_sent(snapshot, acknowledged)
    updates = _updates(snapshot, operations, acknowledged, today)
    for kind in GUARDED_KINDS:
        limit = policy.removal_limit(active[kind])
        holds += _over(Rule.MASS_REMOVAL, kind, unexpected[kind], limit, active[kind])
        sudden = held_now[kind] - (held_before or held_now).get(kind, 0)
        holds += _over(Rule.MASS_HOLD_BACK, kind, sudden, limit, active[kind])
    for kind in UPDATE_KINDS:
        holds += _over(Rule.MASS_UPDATE, kind, updates[kind], policy.update_limit(active[kind]), active[kind])
    return GuardDecision(tuple(holds), unexpected, expected)

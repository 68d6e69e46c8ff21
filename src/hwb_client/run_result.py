"""What one run did: for the CLI, the daemon, the local history and the run report sent upstream.

Planned is kept apart from sent (a blocked run sends nothing, whatever it planned), sent counts what was
acknowledged in this run including batches left by an earlier one, and people (learners, staff) are
counted apart from classes and memberships. The report carries counts, reason codes, rule codes and the
OS user who allowed a hold: never personal data.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hwb_client import __version__
from hwb_client.core.plan import Upcoming

Outcome = Literal["success", "partial", "failed", "blocked"]
PEOPLE = ("learner", "staff")

Tally = dict[str, dict[str, int]]  # kind -> op or reason -> count


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def add(tally: Tally, kind: str, name: str, count: int = 1) -> None:
    per_kind = tally.setdefault(kind, {})
    per_kind[name] = per_kind.get(name, 0) + count


def total(tally: Mapping[str, Mapping[str, int]], kinds: tuple[str, ...] | None = None) -> int:
    return sum(sum(v.values()) for k, v in tally.items() if kinds is None or k in kinds)


def people_and_classes(tally: Mapping[str, Mapping[str, int]]) -> str:
    """``15 people, 12 class memberships``: people, classes and memberships are never added together."""
    people = total(tally, PEOPLE)
    groups = total(tally, ("group",))
    memberships = total(tally, ("membership",))
    parts = []
    if people:
        parts.append(f"{people} {'person' if people == 1 else 'people'}")
    if groups:
        parts.append(f"{groups} class{'' if groups == 1 else 'es'}")
    if memberships:
        parts.append(f"{memberships} class membership{'' if memberships == 1 else 's'}")
    return ", ".join(parts) or "nothing"


@dataclass
class RunResult:
    dfes_number: str
    run_id: str
    outcome: Outcome = "failed"
    message: str = ""
    started_at: str = field(default_factory=utcnow)
    finished_at: str = ""
    dry_run: bool = False
    as_of: dt.date | None = None
    planned: Tally = field(default_factory=dict)
    sent: Tally = field(default_factory=dict)
    held_back_by_kind: Tally = field(default_factory=dict)
    refused_by_kind: Tally = field(default_factory=dict)
    batches: int = 0
    resent_batches: int = 0
    resent_operations: int = 0
    holds: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    upcoming: list[Upcoming] = field(default_factory=list)
    #: the school's own report of held-back records (names them): shown on screen, never logged or stored
    held_back_details: list[tuple[str, str, str]] = field(default_factory=list)
    error_code: int | None = None

    @property
    def held_back(self) -> Counter[str]:
        """Held-back records per reason, all kinds together."""
        return _by_reason(self.held_back_by_kind)

    @property
    def refused(self) -> Counter[str]:
        return _by_reason(self.refused_by_kind)

    @property
    def counts(self) -> Tally:
        """What a person asks first: what was sent, or for a dry run what would be."""
        return self.planned if self.dry_run else self.sent

    def summary(self) -> str:
        """One line: what was sent, what is waiting, what was held back or refused."""
        if self.dry_run:
            text = f"dry run: {total(self.planned)} change(s) would be sent; nothing was sent or changed"
        else:
            sent = total(self.sent)
            text = f"{sent} change(s) sent in {self.batches + self.resent_batches} batch(es)"
            if self.resent_operations:
                text += f" ({self.resent_operations} from batches an earlier run left)"
        if self.held_back_by_kind:
            text += f"; held back: {people_and_classes(self.held_back_by_kind)}"
        if self.refused_by_kind:
            text += f"; refused by Hwb: {people_and_classes(self.refused_by_kind)}"
        if self.overrides:
            text += "; allowed past the guard: " + ", ".join(o["rule"] for o in self.overrides)
        return text

    def report(self) -> dict[str, Any]:
        """The run report as stored locally and sent upstream: counts and codes, no personal data."""
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "client_version": __version__,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "counts": self.sent,
            "planned": self.planned,
            "held_back": dict(self.held_back),
            "held_back_by_kind": self.held_back_by_kind,
            "refused": self.refused_by_kind,
            "batches": self.batches,
            "resent_batches": self.resent_batches,
            "resent_operations": self.resent_operations,
            "holds": self.holds,
            "overrides": self.overrides,
            "message": self.message[:500],
        }


def _by_reason(tally: Mapping[str, Mapping[str, int]]) -> Counter[str]:
    counter: Counter[str] = Counter()
    for reasons in tally.values():
        counter.update(reasons)
    return counter

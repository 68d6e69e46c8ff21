"""A live, read-only look at one school's MIS for the operator: every row, validated as a run would.

Used by ``why`` and ``report``: the rows are kept in memory (one school) so that each held-back record
can be shown with its row number, MIS id and name, on screen or in the school's own report only. Nothing
is written, logged or sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwb_client.adapters.national_key import load_national_key
from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.core.model import Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import Snapshot, SourceRows, build_snapshot
from hwb_client.core.validate import ADVICE, HeldBack
from hwb_client.i18n import _
from hwb_client.settings import SchoolSettings, Settings


@dataclass(frozen=True)
class HeldBackRow:
    """A held-back person (or class membership) with what the school's MIS administrator needs."""

    kind: str
    row: int
    mis_id: str | None
    name: str
    reason: str
    fix: str


@dataclass
class SchoolRead:
    rows: dict[Kind, list[Mapping[str, object]]]
    snapshot: Snapshot
    hasher: UpnHasher
    profile_name: str

    def held_at(self, kind: Kind, index: int) -> HeldBack | None:
        """The reason the row ``index`` (1-based) of ``kind`` was held back, if it was."""
        ref = f"{kind.value}:{index}"
        return next((h for h in self.snapshot.held_back if h.ref == ref), None)

    def held_back_rows(self) -> list[HeldBackRow]:
        out: list[HeldBackRow] = []
        for held in self.snapshot.held_back:
            index = int(held.ref.rsplit(":", 1)[1])
            row = self.rows[held.kind][index - 1] if held.kind in self.rows else {}
            out.append(
                HeldBackRow(
                    held.kind.value,
                    index,
                    held.mis_id,
                    person_name(row) or describe_membership(row),
                    held.reason.value,
                    _(ADVICE[held.reason]),
                )
            )
        return out


def person_name(row: Mapping[str, object]) -> str:
    return " ".join(str(row.get(f) or "").strip() for f in ("legal_forename", "legal_surname")).strip()


def describe_membership(row: Mapping[str, object]) -> str:
    member = row.get("staff_code") or (_("a learner") if row.get("member_kind") == "learner" else "?")
    if row.get("group_id") is None:
        return ""
    return _("{member} in {group}").format(member=member, group=row.get("group_id") or "?")


def read_school(settings: Settings, school: SchoolSettings, today: dt.date) -> SchoolRead:
    """Read every row of the school's MIS through its profile and validate it (no fingerprints: every
    row takes the full path, exactly as a first run would)."""
    base = settings.config_path.parent if settings.config_path else None
    profile = load_profile(school.profile, base_dir=base)
    hasher = load_national_key(settings.client.national_key_file)
    source = MisSource.connect(school.connection_string(), school.dfes_number, profile)
    try:
        rows: dict[Kind, list[Mapping[str, object]]] = {
            Kind.LEARNER: list(source.rows("learners")),
            Kind.STAFF: list(source.rows("staff")),
            Kind.GROUP: list(source.rows("groups")),
            Kind.MEMBERSHIP: list(source.rows("memberships")),
        }
    finally:
        source.close()
    snapshot = build_snapshot(
        SourceRows(rows[Kind.LEARNER], rows[Kind.STAFF], rows[Kind.GROUP], rows[Kind.MEMBERSHIP]),
        hasher,
        today,
    )
    return SchoolRead(rows, snapshot, hasher, profile.profile.name)


def as_text(value: Any) -> str:
    return "" if value is None else str(value).strip()

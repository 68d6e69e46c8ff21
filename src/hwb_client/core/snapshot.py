"""From MIS rows to the school's snapshot: validated, pseudonymised, minimised records, and the held back.

``build_snapshot`` is pure: it takes the rows (any iterables, streamed from ODBC by the caller), the UPN
hasher and today's date, and returns the wire records keyed per kind plus every held-back record with
its reason. Raw UPNs live only inside this function's locals; what comes out carries ``upn_hash``.

Unchanged rows take a short cut. Each acknowledged record remembers a *row fingerprint*: a keyed
BLAKE2b of the raw MIS values it was built from (key local to the school, so it reveals nothing). A row
whose fingerprint is known is the same row the national side already holds: its key and digest are
reused and it is not validated, hashed or encoded again (the guard, duplicate detection and class
membership checks still see it). Any other row takes the full path, which is the definition.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hwb_client.core import validate as v
from hwb_client.core.model import Kind, WireRecord, record_digest, record_key, wire_record
from hwb_client.core.upn import normalise as normalise_upn
from hwb_client.core.validate import HeldBack, Invalid, Reason

Row = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the snapshot, ready to diff and send.

    ``record`` is ``None`` for a row recognised by its fingerprint: it is exactly what was acknowledged,
    so it is never sent. ``fingerprint`` is set for rows that took the full path, to be remembered."""

    kind: Kind
    key: str
    record: WireRecord | None
    digest: str
    leaving: bool
    year_group: str | None = None
    fingerprint: bytes | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """What an acknowledged record's fingerprint stands for."""

    key: str
    digest: str
    leaving: bool
    year_group: str | None = None


class RowFingerprints:
    """Keyed fingerprints of raw MIS rows, and the acknowledged records they produced."""

    def __init__(self, key: bytes, context: str, known: Mapping[bytes, Known] | None = None) -> None:
        self._key = key[:64]
        self._context = context
        self._prefixes: dict[tuple[Kind, tuple[str, ...]], bytes] = {}
        self.known: Mapping[bytes, Known] = known or {}

    def __call__(self, kind: Kind, row: Row) -> bytes:
        """BLAKE2b, keyed, of the context, the kind, the field names and the raw values' ``repr``."""
        names = tuple(row)
        prefix = self._prefixes.get((kind, names))
        if prefix is None:
            prefix = self._prefixes[(kind, names)] = repr((self._context, kind.value, names)).encode()
        data = prefix + repr(tuple(row.values())).encode()
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()


@dataclass
class Snapshot:
    entries: dict[Kind, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in Kind})
    held_back: list[HeldBack] = field(default_factory=list)
    #: keys of records that exist in the MIS but were held back: never treated as vanished
    held_keys: set[tuple[Kind, str]] = field(default_factory=set)
    rows_read: Counter[Kind] = field(default_factory=Counter)
    #: local, human labels of held-back rows for the school's own report; never logged or stored
    labels: dict[int, str] = field(default_factory=dict)

    def held_back_counts(self) -> Counter[str]:
        return Counter(h.reason.value for h in self.held_back)

    def count(self, kind: Kind) -> int:
        return len(self.entries[kind])


@dataclass(frozen=True)
class SourceRows:
    """The four row streams of one school, in the order they must be read."""

    learners: Iterable[Row]
    staff: Iterable[Row]
    groups: Iterable[Row]
    memberships: Iterable[Row]


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _label(kind: Kind, index: int, row: Row) -> str:
    names = " ".join(str(row.get(f) or "").strip() for f in ("legal_forename", "legal_surname")).strip()
    code = row.get("staff_code") or row.get("group_id") or ""
    mis_id = row.get("mis_id")
    parts = [f"{kind.value} row {index}" + (f" (MIS id {mis_id})" if mis_id is not None else "")]
    if code and kind is not Kind.LEARNER:
        parts.append(str(code))
    if names:
        parts.append(names)
    return ": ".join(parts[:1]) + (" " + ", ".join(parts[1:]) if len(parts) > 1 else "")


class _Builder:
    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self._first_rows: dict[tuple[Kind, str], tuple[int, Row]] = {}
        self._duplicated: set[tuple[Kind, str]] = set()

    def hold(self, kind: Kind, index: int, row: Row, reason: Reason, key: str | None = None) -> None:
        mis_id = str(row["mis_id"]) if row.get("mis_id") is not None else None
        self.snapshot.held_back.append(HeldBack(kind, f"{kind.value}:{index}", reason, key, mis_id))
        self.snapshot.labels[len(self.snapshot.held_back) - 1] = _label(kind, index, row)
        if key is not None:
            self.snapshot.held_keys.add((kind, key))

    def add(
        self,
        kind: Kind,
        index: int,
        row: Row,
        record: WireRecord | None,
        *,
        duplicate: Reason,
        leaving: bool = False,
        year_group: str | None = None,
        fingerprint: bytes | None = None,
        known: Known | None = None,
    ) -> None:
        """Add a record (built, or ``known`` by its fingerprint); two MIS rows claiming the same
        identity are both held back."""
        key = known.key if known is not None else record_key(kind, record or {})
        entries = self.snapshot.entries[kind]
        if (kind, key) in self._duplicated or key in entries:
            if key in entries:
                del entries[key]
                first_index, first_row = self._first_rows.pop((kind, key))
                self.hold(kind, first_index, first_row, duplicate, key)
                self._duplicated.add((kind, key))
            self.hold(kind, index, row, duplicate, key)
            return
        if known is not None:
            entries[key] = Entry(kind, key, None, known.digest, known.leaving, known.year_group)
        else:
            assert record is not None
            entries[key] = Entry(kind, key, record, record_digest(record), leaving, year_group, fingerprint)
        self._first_rows[(kind, key)] = (index, row)


def build_snapshot(
    rows: SourceRows,
    hasher: Callable[[str], str],
    today: dt.date,
    fingerprints: RowFingerprints | None = None,
) -> Snapshot:
    """Validate, pseudonymise and minimise every row; hold back the broken ones with a reason."""
    b = _Builder()
    snap = b.snapshot
    fingerprint = fingerprints or (lambda _kind, _row: None)
    known = fingerprints.known if fingerprints is not None else {}
    learner_hash: dict[str, str] = {}  # normalised UPN -> upn_hash, for memberships (memory only)
    parsed_upns: dict[object, str] = {}  # MIS value -> normalised permanent UPN (memory only)

    def parse_upn(value: object) -> str:
        """``validate.parse_upn``, remembered: each learner's UPN comes back in every membership."""
        try:
            return parsed_upns[value]
        except (KeyError, TypeError):
            upn = v.parse_upn(value)  # raises Invalid for a UPN that cannot be used (not remembered)
        with contextlib.suppress(TypeError):
            parsed_upns[value] = upn
        return upn

    for index, row in enumerate(rows.learners, start=1):
        snap.rows_read[Kind.LEARNER] += 1
        fp = fingerprint(Kind.LEARNER, row)
        hit = known.get(fp) if fp is not None else None
        if hit is not None:
            learner_hash[normalise_upn(str(row.get("upn")))] = hit.key
            b.add(Kind.LEARNER, index, row, None, known=hit, duplicate=Reason.UPN_DUPLICATE)
            continue
        try:
            upn = parse_upn(row.get("upn"))
        except Invalid as exc:
            b.hold(Kind.LEARNER, index, row, exc.reason)
            continue
        upn_hash = learner_hash.get(upn) or hasher(upn)
        learner_hash[upn] = upn_hash
        try:
            valid = v.learner(row, today, upn_parser=parse_upn)
        except Invalid as exc:
            b.hold(Kind.LEARNER, index, row, exc.reason, upn_hash)
            continue
        record = wire_record(
            Kind.LEARNER,
            {
                "upn_hash": upn_hash,
                "legal_forename": valid.legal_forename,
                "legal_surname": valid.legal_surname,
                "date_of_birth": valid.date_of_birth.isoformat(),
                "year_group": valid.year_group,
                "registration_group": valid.registration_group,
                "leaving_date": _iso(valid.leaving_date),
            },
        )
        b.add(
            Kind.LEARNER,
            index,
            row,
            record,
            leaving=valid.leaving_date is not None,
            year_group=valid.year_group,
            duplicate=Reason.UPN_DUPLICATE,
            fingerprint=fp,
        )

    for index, row in enumerate(rows.staff, start=1):
        snap.rows_read[Kind.STAFF] += 1
        fp = fingerprint(Kind.STAFF, row)
        hit = known.get(fp) if fp is not None else None
        if hit is not None:
            b.add(Kind.STAFF, index, row, None, known=hit, duplicate=Reason.STAFF_CODE_DUPLICATE)
            continue
        try:
            valid_staff = v.staff(row)
        except Invalid as exc:
            code = str(row.get("staff_code") or "").strip() or None
            b.hold(Kind.STAFF, index, row, exc.reason, code)
            continue
        record = wire_record(
            Kind.STAFF,
            {
                "staff_code": valid_staff.staff_code,
                "legal_forename": valid_staff.legal_forename,
                "legal_surname": valid_staff.legal_surname,
                "start_date": valid_staff.start_date.isoformat(),
                "leaving_date": _iso(valid_staff.leaving_date),
            },
        )
        b.add(
            Kind.STAFF,
            index,
            row,
            record,
            leaving=valid_staff.leaving_date is not None,
            duplicate=Reason.STAFF_CODE_DUPLICATE,
            fingerprint=fp,
        )

    for index, row in enumerate(rows.groups, start=1):
        snap.rows_read[Kind.GROUP] += 1
        fp = fingerprint(Kind.GROUP, row)
        hit = known.get(fp) if fp is not None else None
        if hit is not None:
            b.add(Kind.GROUP, index, row, None, known=hit, duplicate=Reason.GROUP_ID_DUPLICATE)
            continue
        try:
            valid_group = v.group(row)
        except Invalid as exc:
            gid = str(row.get("group_id") or "").strip() or None
            b.hold(Kind.GROUP, index, row, exc.reason, gid)
            continue
        record = wire_record(
            Kind.GROUP,
            {
                "group_id": valid_group.group_id,
                "name": valid_group.name,
                "group_type": valid_group.group_type,
                "year_group": valid_group.year_group,
            },
        )
        b.add(Kind.GROUP, index, row, record, duplicate=Reason.GROUP_ID_DUPLICATE, fingerprint=fp)

    held_staff = {key for kind, key in snap.held_keys if kind is Kind.STAFF}
    held_groups = {key for kind, key in snap.held_keys if kind is Kind.GROUP}
    # Memberships are most of a school's rows: the per-kind tables are looked up once, not per row.
    staff_entries, group_entries = snap.entries[Kind.STAFF], snap.entries[Kind.GROUP]
    membership_entries = snap.entries[Kind.MEMBERSHIP]
    member_entries = {Kind.LEARNER: snap.entries[Kind.LEARNER], Kind.STAFF: staff_entries}
    learner, membership = Kind.LEARNER, Kind.MEMBERSHIP
    read = 0
    for index, row in enumerate(rows.memberships, start=1):
        read = index
        fp = fingerprint(membership, row)
        hit = known.get(fp) if fp is not None else None
        if hit is not None:
            group_id, member_kind_name, member_ref = hit.key.split("/", 2)
            present = member_entries[learner if member_kind_name == "learner" else Kind.STAFF]
            if member_ref in present and group_id in group_entries:
                if hit.key not in membership_entries:
                    membership_entries[hit.key] = Entry(membership, hit.key, None, hit.digest, False)
                continue
            # the member or the group is no longer sendable: the full path says why
        try:
            valid_member = v.membership(row, upn_parser=parse_upn)
        except Invalid as exc:
            reason = exc.reason
            if reason.value.startswith("upn_"):
                reason = Reason.MEMBER_HELD_BACK
            b.hold(membership, index, row, reason)
            continue
        member_kind = valid_member.member_kind
        if member_kind is learner:
            member_key = learner_hash.get(valid_member.member_ref)
        else:
            known_staff = valid_member.member_ref in staff_entries or valid_member.member_ref in held_staff
            member_key = valid_member.member_ref if known_staff else None
        if member_key is None:
            b.hold(membership, index, row, Reason.MEMBER_UNKNOWN)
            continue
        record = wire_record(
            membership,
            {
                "group_id": valid_member.group_id,
                "member_kind": "learner" if member_kind is learner else "staff",
                "member_key": member_key,
            },
        )
        key = record_key(membership, record)
        if member_key not in member_entries[member_kind]:
            b.hold(membership, index, row, Reason.MEMBER_HELD_BACK, key)
            continue
        if valid_member.group_id not in group_entries:
            reason = Reason.MEMBER_HELD_BACK if valid_member.group_id in held_groups else Reason.GROUP_UNKNOWN
            b.hold(membership, index, row, reason, key if reason is Reason.MEMBER_HELD_BACK else None)
            continue
        if key in membership_entries:
            continue  # the same membership listed twice is one membership
        membership_entries[key] = Entry(membership, key, record, record_digest(record), False, None, fp)
    snap.rows_read[membership] += read
    return snap

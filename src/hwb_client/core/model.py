"""The record model: what is read from the MIS and what may be sent to Hwb.

Data minimisation is enforced here and only here. The Hwb privacy notice allows, for staff, name and
staff code; for learners, name, a salted hashed identifier based on the UPN and date of birth; for both,
class, year and registration group. Leaving dates travel because the national service needs them to
release accounts, and a staff start date because an account is only created for a staff record with a
start date and a staff code. ``WIRE_FIELDS`` lists every field that can reach the wire, per kind;
``wire_record`` is the one function that builds what is sent, and it refuses anything else.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


class Kind(enum.StrEnum):
    LEARNER = "learner"
    STAFF = "staff"
    GROUP = "group"
    MEMBERSHIP = "membership"


class Op(enum.StrEnum):
    UPSERT = "upsert"
    LEAVE = "leave"
    REMOVE = "remove"


#: Every field that may leave the server, per kind. Nothing else is ever sent.
WIRE_FIELDS: Final[Mapping[Kind, tuple[str, ...]]] = {
    Kind.LEARNER: (
        "upn_hash",
        "legal_forename",
        "legal_surname",
        "date_of_birth",
        "year_group",
        "registration_group",
        "leaving_date",
        "upn_hash_previous",  # the pseudonym under the previous national key, in a key changeover only
    ),
    Kind.STAFF: ("staff_code", "legal_forename", "legal_surname", "start_date", "leaving_date"),
    Kind.GROUP: ("group_id", "name", "group_type", "year_group"),
    Kind.MEMBERSHIP: ("group_id", "member_kind", "member_key"),
}

#: The field of the wire record that is the record's key within its school.
KEY_FIELD: Final[Mapping[Kind, str]] = {
    Kind.LEARNER: "upn_hash",
    Kind.STAFF: "staff_code",
    Kind.GROUP: "group_id",
}

#: The order in which kinds are sent: members before the groups that hold them, groups before memberships;
#: removals run in the reverse order (memberships first).
SEND_ORDER: Final[tuple[Kind, ...]] = (Kind.LEARNER, Kind.STAFF, Kind.GROUP, Kind.MEMBERSHIP)

WireValue = str | None
WireRecord = dict[str, WireValue]


class WireFieldError(ValueError):
    """A record carried a field that is not allowed to leave the server (a programming error)."""


_ALLOWED: Final[Mapping[Kind, frozenset[str]]] = {kind: frozenset(f) for kind, f in WIRE_FIELDS.items()}

#: Fields left out of the record (not sent as null) when they have no value, so that records without them
#: keep the digests they had before the field existed.
OPTIONAL_WIRE_FIELDS: Final[frozenset[str]] = frozenset({"upn_hash_previous"})


def wire_record(kind: Kind, fields: Mapping[str, WireValue]) -> WireRecord:
    """Build the record that is sent for ``kind``: exactly ``WIRE_FIELDS[kind]``, nothing more."""
    allowed = WIRE_FIELDS[kind]
    if not _ALLOWED[kind].issuperset(fields):
        extra = set(fields) - _ALLOWED[kind]
        raise WireFieldError(f"fields not allowed on the wire for {kind}: {sorted(extra)}")
    return {
        name: fields.get(name)
        for name in allowed
        if name not in OPTIONAL_WIRE_FIELDS or fields.get(name) is not None
    }


def record_key(kind: Kind, record: Mapping[str, WireValue]) -> str:
    """The record's key within its school: hashed UPN, staff code, group id, or group/kind/member."""
    if kind is Kind.MEMBERSHIP:
        return f"{record['group_id']}/{record['member_kind']}/{record['member_key']}"
    value = record[KEY_FIELD[kind]]
    assert value is not None
    return value


#: The string escaper ``json.dumps(..., ensure_ascii=False)`` itself uses (the C one when available).
_json_string: Final = json.encoder.encode_basestring


def canonical_json(record: Mapping[str, WireValue]) -> bytes:
    """The protocol's canonical form of a record: sorted keys, no spaces, UTF-8.

    Byte for byte ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
    written out for the flat string-or-null records of the wire (it runs once per MIS row, and building
    an encoder per call cost more than the encoding); anything else goes through ``json.dumps``."""
    parts = []
    for name in sorted(record):
        value = record[name]
        if value is None:
            parts.append(f"{_json_string(name)}:null")
        elif type(value) is str and type(name) is str:
            parts.append(f"{_json_string(name)}:{_json_string(value)}")
        else:
            return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8"
            )
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def record_digest(record: Mapping[str, WireValue]) -> str:
    """The content digest both sides compute for a record (``sha-256:`` + hex of the canonical JSON)."""
    return "sha-256:" + hashlib.sha256(canonical_json(record)).hexdigest()


#: Fields the summer rollover changes in every record (a year group up by one, a new registration group
#: or class name): a change to these alone, between June and September, is expected, not a mass rewrite.
ROLLOVER_FIELDS: Final[Mapping[Kind, frozenset[str]]] = {
    Kind.LEARNER: frozenset({"year_group", "registration_group"}),
    Kind.STAFF: frozenset(),
    Kind.GROUP: frozenset({"name", "year_group"}),
    Kind.MEMBERSHIP: frozenset(),
}


#: Fields that are pseudonyms of the record's identity: a national key changeover changes them in every
#: learner, which is not a change to what the record says.
PSEUDONYM_FIELDS: Final[frozenset[str]] = frozenset({"upn_hash", "upn_hash_previous"})


def stable_forms(kind: Kind, record: Mapping[str, WireValue]) -> tuple[bytes, bytes]:
    """The canonical JSON of a record without its pseudonyms, and without its rollover fields too: kept
    only as keyed digests, they tell the guard what kind of change an update is."""
    content = {name: value for name, value in record.items() if name not in PSEUDONYM_FIELDS}
    rollover = ROLLOVER_FIELDS[kind]
    stable = {name: value for name, value in content.items() if name not in rollover}
    return canonical_json(content), canonical_json(stable)


#: The year group a learner moves up to at the summer rollover.
NEXT_YEAR_GROUP: Final[Mapping[str, str]] = {
    "N1": "N2",
    "N2": "R",
    "R": "1",
    **{str(n): str(n + 1) for n in range(1, 14)},
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a batch, as sent."""

    op: Op
    kind: Kind
    key: str
    record: WireRecord | None  # None for a remove
    digest: str | None  # digest of ``record``; None for a remove

    def to_wire(self) -> dict[str, object]:
        # ``_value_``: the member's value as a plain attribute (``.value`` is a descriptor, read per operation)
        body: dict[str, object] = {"op": self.op._value_, "kind": self.kind._value_, "key": self.key}
        if self.record is not None:
            body["record"] = self.record
        return body

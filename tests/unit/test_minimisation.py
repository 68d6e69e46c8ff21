"""Data minimisation: nothing beyond the allowed fields can reach the wire."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwb_client.core.model import OPTIONAL_WIRE_FIELDS, WIRE_FIELDS, Kind, WireFieldError, wire_record
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import SourceRows, build_snapshot
from hwb_client.core.upn import make_upn

ALLOWED = {
    Kind.LEARNER: {
        "upn_hash",
        "legal_forename",
        "legal_surname",
        "date_of_birth",
        "year_group",
        "registration_group",
        "leaving_date",
        "upn_hash_previous",  # only during a national key changeover: the pseudonym under the old key
    },
    Kind.STAFF: {"staff_code", "legal_forename", "legal_surname", "start_date", "leaving_date"},
    Kind.GROUP: {"group_id", "name", "group_type", "year_group"},
    Kind.MEMBERSHIP: {"group_id", "member_kind", "member_key"},
}


def test_the_wire_fields_are_exactly_what_the_privacy_notice_allows() -> None:
    """If a field is added to WIRE_FIELDS this test fails: changing it is a data-protection decision."""
    assert {kind: set(fields) for kind, fields in WIRE_FIELDS.items()} == ALLOWED


def test_wire_record_refuses_any_other_field() -> None:
    with pytest.raises(WireFieldError):
        wire_record(Kind.LEARNER, {"upn_hash": "k:1", "upn": "J681234525017"})


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=10), max_size=6))
def test_extra_mis_columns_never_reach_a_record(extra) -> None:
    row = {
        "upn": make_upn(661, 2001, 20, 5),
        "legal_forename": "Elen",
        "legal_surname": "Huws",
        "date_of_birth": "2012-01-01",
        "year_group": "9",
        "registration_group": "9B",
    }
    row.update({k: v for k, v in extra.items() if k not in row})
    snap = build_snapshot(SourceRows([row], [], [], []), UpnHasher("k", b"s" * 32), dt.date(2026, 1, 1))
    for entry in snap.entries[Kind.LEARNER].values():
        assert set(entry.record) == ALLOWED[Kind.LEARNER] - OPTIONAL_WIRE_FIELDS

"""Validation, pseudonymisation and minimisation of MIS rows into the snapshot."""

import datetime as dt

from hwb_client.core.model import OPTIONAL_WIRE_FIELDS, WIRE_FIELDS, Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import SourceRows, build_snapshot
from hwb_client.core.upn import make_upn

TODAY = dt.date(2026, 9, 10)
HASH = UpnHasher("nat-test", b"k" * 32)


def learner(serial: int, **changes):
    row = {
        "upn": make_upn(661, 2001, 20, serial),
        "legal_forename": "Siân",
        "legal_surname": "Prydderch",
        "date_of_birth": dt.date(2015, 3, 4),
        "year_group": "6",
        "registration_group": "6A",
        "start_date": dt.date(2019, 9, 1),
        "leaving_date": None,
        "gender": "F",
        "home_address": "1 Stryd Fawr",
    }
    row.update(changes)
    return row


def staff(code: str, **changes):
    row = {
        "staff_code": code,
        "legal_forename": "Dafydd",
        "legal_surname": "ap Gruffudd",
        "start_date": "2010-09-01",
        "leaving_date": None,
        "ni_number": "AB123456C",
    }
    row.update(changes)
    return row


def snapshot(learners=(), staff_rows=(), groups=(), memberships=()):
    return build_snapshot(
        SourceRows(list(learners), list(staff_rows), list(groups), list(memberships)), HASH, TODAY
    )


def reasons(snap):
    return sorted(h.reason.value for h in snap.held_back)


def test_valid_learner_is_sent_with_hashed_upn_and_only_allowed_fields() -> None:
    snap = snapshot([learner(1)])
    (entry,) = snap.entries[Kind.LEARNER].values()
    assert set(entry.record) == set(WIRE_FIELDS[Kind.LEARNER]) - OPTIONAL_WIRE_FIELDS
    assert entry.record["upn_hash"] == HASH(make_upn(661, 2001, 20, 1))
    assert make_upn(661, 2001, 20, 1) not in repr(entry.record)
    assert entry.record["date_of_birth"] == "2015-03-04"
    assert "home_address" not in entry.record and "gender" not in entry.record


def test_each_broken_learner_is_held_back_with_its_reason_and_the_rest_go_on() -> None:
    temp = "K68123452501A"
    rows = [
        learner(1),
        learner(2, upn=temp),
        learner(3, upn="Q207000016049"),
        learner(4, date_of_birth=None),
        learner(5, date_of_birth=dt.date(2030, 1, 1)),
        learner(6, year_group=None),
        learner(7, legal_surname="Jones\x07"),
        learner(8, legal_forename=""),
        learner(9, leaving_date=dt.date(2018, 1, 1)),
        learner(10, legal_surname="x" * 500),
        learner(11, year_group="Y99"),
        learner(12, upn=None),
    ]
    snap = snapshot(rows)
    assert list(snap.entries[Kind.LEARNER]) == [HASH(make_upn(661, 2001, 20, 1))]
    assert reasons(snap) == sorted(
        [
            "upn_temporary",
            "upn_bad_check_letter",
            "date_of_birth_missing",
            "date_of_birth_in_future",
            "year_group_missing",
            "text_control_characters",
            "legal_forename_missing",
            "leaving_before_start",
            "text_too_long",
            "year_group_invalid",
            "upn_missing",
        ]
    )


def test_duplicate_upn_holds_back_both_records() -> None:
    snap = snapshot([learner(1), learner(1, legal_forename="Ffion"), learner(2)])
    assert len(snap.entries[Kind.LEARNER]) == 1
    assert reasons(snap) == ["upn_duplicate", "upn_duplicate"]
    assert (Kind.LEARNER, HASH(make_upn(661, 2001, 20, 1))) in snap.held_keys


def test_staff_without_code_or_start_date_or_with_duplicate_code_is_held_back() -> None:
    snap = snapshot(
        staff_rows=[staff("T1"), staff(None), staff("T2", start_date=None), staff("T3"), staff("T3")]
    )
    assert list(snap.entries[Kind.STAFF]) == ["T1"]
    assert reasons(snap) == [
        "staff_code_duplicate",
        "staff_code_duplicate",
        "staff_code_missing",
        "start_date_missing",
    ]


def test_learner_with_leaving_date_is_a_leaver() -> None:
    snap = snapshot([learner(1, leaving_date="2026-07-22")])
    (entry,) = snap.entries[Kind.LEARNER].values()
    assert entry.left and entry.record["leaving_date"] == "2026-07-22"


def test_memberships_point_at_hashed_members_and_held_back_members_hold_back_their_memberships() -> None:
    groups = [{"group_id": "6A", "name": "Dosbarth 6A", "group_type": "registration", "year_group": "6"}]
    memberships = [
        {"group_id": "6A", "member_kind": "learner", "upn": make_upn(661, 2001, 20, 1), "staff_code": None},
        {"group_id": "6A", "member_kind": "learner", "upn": make_upn(661, 2001, 20, 2), "staff_code": None},
        {"group_id": "6A", "member_kind": "staff", "upn": None, "staff_code": "T1"},
        {"group_id": "NOPE", "member_kind": "staff", "upn": None, "staff_code": "T1"},
        {"group_id": "6A", "member_kind": "learner", "upn": make_upn(661, 2001, 20, 99), "staff_code": None},
    ]
    snap = snapshot([learner(1), learner(2, date_of_birth=None)], [staff("T1")], groups, memberships)
    keys = set(snap.entries[Kind.MEMBERSHIP])
    assert keys == {f"6A/learner/{HASH(make_upn(661, 2001, 20, 1))}", "6A/staff/T1"}
    assert reasons(snap) == ["date_of_birth_missing", "group_unknown", "member_held_back", "member_unknown"]


def test_dates_arrive_as_dates_datetimes_or_iso_strings() -> None:
    a = snapshot([learner(1, date_of_birth=dt.datetime(2015, 3, 4, 0, 0))]).entries[Kind.LEARNER]
    b = snapshot([learner(1, date_of_birth="2015-03-04")]).entries[Kind.LEARNER]
    assert next(iter(a.values())).digest == next(iter(b.values())).digest


def test_names_are_nfc_normalised_so_the_same_name_has_one_digest() -> None:
    composed = snapshot([learner(1, legal_forename="Si\u00e2n")]).entries[Kind.LEARNER]
    decomposed = snapshot([learner(1, legal_forename="Sia\u0302n")]).entries[Kind.LEARNER]
    assert next(iter(composed.values())).digest == next(iter(decomposed.values())).digest

"""Unchanged MIS rows take a short cut (row fingerprints), and it never changes what is decided."""

import datetime as dt

from hwb_client.core.diff import ACTIVE, LEFT, Acknowledged, diff
from hwb_client.core.model import Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import Known, RowFingerprints, SourceRows, build_snapshot
from hwb_client.core.upn import make_upn

HASH = UpnHasher("nat-test", b"k" * 32)
TODAY = dt.date(2026, 10, 5)
GROUPS = [{"group_id": "7W", "name": "7W", "group_type": "registration", "year_group": "7"}]


def learner(n, **changes):
    row = {
        "upn": make_upn(661, 2001, 20, n),
        "legal_forename": "Ffion",
        "legal_surname": "Rhys",
        "date_of_birth": "2014-05-06",
        "year_group": "7",
        "registration_group": "7W",
        "leaving_date": None,
    }
    row.update(changes)
    return row


def member(n):
    return {"group_id": "7W", "member_kind": "learner", "upn": make_upn(661, 2001, 20, n), "staff_code": None}


def rows(learners, memberships=()):
    return SourceRows(learners, [], GROUPS, list(memberships))


def remember(snapshot):
    """What the state does after a run: acknowledged digests, and fingerprints bound to them."""
    acknowledged = {
        kind: {
            k: Acknowledged(e.digest, LEFT if e.left else ACTIVE, e.year_group, e.stable)
            for k, e in snapshot.entries[kind].items()
        }
        for kind in Kind
    }
    known = {
        e.fingerprint: Known(k, e.digest, e.left, e.year_group, e.stable)
        for kind in Kind
        for k, e in snapshot.entries[kind].items()
        if e.fingerprint
    }
    return acknowledged, known


def fingerprints(known=None):
    return RowFingerprints(b"f" * 32, "nat-test|reference", known)


def test_unchanged_rows_are_recognised_and_give_the_same_decisions() -> None:
    first = build_snapshot(
        rows([learner(1), learner(2)], [member(1), member(2)]), HASH, TODAY, fingerprints()
    )
    acknowledged, known = remember(first)
    second = build_snapshot(
        rows([learner(1), learner(2)], [member(1), member(2)]), HASH, TODAY, fingerprints(known)
    )
    assert all(e.record is None for kind in Kind for e in second.entries[kind].values())
    assert {k: e.digest for k, e in second.entries[Kind.MEMBERSHIP].items()} == {
        k: e.digest for k, e in first.entries[Kind.MEMBERSHIP].items()
    }
    assert diff(second, acknowledged) == []


def test_a_changed_row_takes_the_full_path_and_is_sent() -> None:
    first = build_snapshot(rows([learner(1), learner(2)]), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    second = build_snapshot(
        rows([learner(1, legal_surname="Rhys-Jones"), learner(2)]), HASH, TODAY, fingerprints(known)
    )
    (operation,) = diff(second, acknowledged)
    assert operation.record is not None and operation.record["legal_surname"] == "Rhys-Jones"


def test_an_unchanged_membership_of_a_learner_now_held_back_is_held_back_not_kept() -> None:
    first = build_snapshot(
        rows([learner(1), learner(2)], [member(1), member(2)]), HASH, TODAY, fingerprints()
    )
    acknowledged, known = remember(first)
    second = build_snapshot(
        rows([learner(1, date_of_birth=None), learner(2)], [member(1), member(2)]),
        HASH,
        TODAY,
        fingerprints(known),
    )
    assert sorted(h.reason.value for h in second.held_back) == ["date_of_birth_missing", "member_held_back"]
    assert diff(second, acknowledged) == []  # held back, so neither sent nor removed


def test_a_second_row_with_a_known_rows_upn_still_holds_both_back() -> None:
    first = build_snapshot(rows([learner(1)]), HASH, TODAY, fingerprints())
    _, known = remember(first)
    second = build_snapshot(
        rows([learner(1), learner(1, legal_forename="Elin")]), HASH, TODAY, fingerprints(known)
    )
    assert second.entries[Kind.LEARNER] == {}
    assert [h.reason.value for h in second.held_back] == ["upn_duplicate", "upn_duplicate"]


def test_another_key_or_context_recognises_nothing() -> None:
    first = build_snapshot(rows([learner(1)]), HASH, TODAY, fingerprints())
    _, known = remember(first)
    other = RowFingerprints(b"g" * 32, "nat-test|reference", known)
    second = build_snapshot(rows([learner(1)]), HASH, TODAY, other)
    assert all(e.record is not None for e in second.entries[Kind.LEARNER].values())


def test_a_fingerprint_is_the_same_bytes_as_the_previous_releases_so_stored_ones_still_match():
    """The keyed state is now copied per row instead of hashing prefix + row in one call: the digest
    must not change, or every school's first run after an upgrade would read every row the long way."""
    import hashlib

    key, context = b"s" * 40, "6612001"
    fingerprints = RowFingerprints(key, context)
    for row in (learner(1), learner(2, leaving_date="2027-07-20"), member(3), {"a": 1, "b": None}):
        names = tuple(row)
        data = repr((context, Kind.LEARNER.value, names)).encode() + repr(tuple(row.values())).encode()
        assert fingerprints(Kind.LEARNER, row) == hashlib.blake2b(data, key=key, digest_size=16).digest()
    assert fingerprints(Kind.LEARNER, learner(1)) != fingerprints(Kind.STAFF, learner(1))

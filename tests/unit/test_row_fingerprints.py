"""Unchanged MIS rows take a short cut (row fingerprints), and it never changes what is decided."""

import datetime as dt
from collections import Counter

import pytest

from hwb_client.core.diff import ACTIVE, LEFT, Acknowledged, diff
from hwb_client.core.guard import GuardPolicy
from hwb_client.core.model import Kind
from hwb_client.core.plan import BatchPolicy, plan
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import (
    ClassTokens,
    Known,
    RowChunks,
    RowFingerprints,
    Settled,
    SourceRows,
    build_snapshot,
)
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
        e.fingerprint: Known(k, e.digest, int(e.left), e.year_group, e.stable)  # 0 or 1, as SQLite gives
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
    # the school's own report still names both rows, the known one included
    assert sorted(second.labels.values()) == ["learner row 1 Ffion Rhys", "learner row 2 Elin Rhys"]


LEARNER_FIELDS = tuple(learner(1))


def as_chunks(rows_, size):
    values = [tuple(row[f] for f in LEARNER_FIELDS) for row in rows_]
    return RowChunks(LEARNER_FIELDS, [values[i : i + size] for i in range(0, len(values), size)])


@pytest.mark.parametrize("size", [1, 5])
def test_a_fetched_rows_fingerprint_is_the_one_a_state_of_the_previous_release_holds(size) -> None:
    """The fingerprint the previous release stored for a row (``RowFingerprints.__call__`` of the row
    as a dict: the field names and the ``repr`` of its values' tuple) is the one a run now makes from
    the fetched values, so an upgraded school's unchanged rows are still known."""
    prints = fingerprints()
    first_rows = [learner(n) for n in range(1, 6)]
    snapshot = build_snapshot(rows(as_chunks(first_rows, size)), HASH, TODAY, prints)
    made = {key: entry.fingerprint for key, entry in snapshot.entries[Kind.LEARNER].items()}
    assert made == {HASH(row["upn"]): prints(Kind.LEARNER, row) for row in first_rows}


@pytest.mark.parametrize("size", [1, 2, 5])
def test_learners_fetched_in_chunks_decide_as_rows_one_by_one(size) -> None:
    """The MIS adapter gives each kind as fetched chunks of values: a known learner is found by the
    fingerprint of its values, with no dict made, and the snapshot is the one rows one by one give."""
    first_rows = [learner(n) for n in range(1, 6)]
    first = build_snapshot(rows(first_rows), HASH, TODAY, fingerprints())
    assert build_snapshot(rows(as_chunks(first_rows, size)), HASH, TODAY, fingerprints()) == first
    _, known = remember(first)
    night = [learner(1), learner(2, legal_surname="Rhys-Jones"), learner(3), learner(3), learner(5)]
    by_rows = build_snapshot(rows(night), HASH, TODAY, fingerprints(known))
    by_chunks = build_snapshot(rows(as_chunks(night, size)), HASH, TODAY, fingerprints(known))
    assert by_chunks == by_rows
    assert by_chunks.rows_read[Kind.LEARNER] == 5
    # 1 and 5 known; 2 built again (changed); both rows of 3 held back as duplicates, 4 gone
    learners = by_chunks.entries[Kind.LEARNER]
    assert {k for k, e in learners.items() if e.record is None} == {
        HASH(make_upn(661, 2001, 20, n)) for n in (1, 5)
    }
    assert [e.record["legal_surname"] for e in learners.values() if e.record is not None] == ["Rhys-Jones"]
    assert sorted(by_chunks.labels.values()) == ["learner row 3 Ffion Rhys", "learner row 4 Ffion Rhys"]


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


# -- settled classes: a class's memberships skipped when nothing they depend on changed ----------------


STAFF = [
    {"staff_code": "DAP", "legal_forename": "Dafydd", "legal_surname": "Price", "start_date": "2019-09-01"}
]


def staff_member(code="DAP", group="7W"):
    return {"group_id": group, "member_kind": "staff", "upn": None, "staff_code": code}


def school(learners=(1, 2, 3), memberships=None, staff=None, groups=None):
    people = [learner(n) for n in learners]
    members = [member(n) for n in (1, 2, 3)] + [staff_member()] if memberships is None else memberships
    return SourceRows(
        people, STAFF if staff is None else staff, GROUPS if groups is None else groups, members
    )


def settled_after(snapshot):
    """What the state keeps after a clean run of ``snapshot``: each class's token and membership count."""
    records = Counter(key.partition("/")[0] for key in snapshot.entries[Kind.MEMBERSHIP])
    return {gid: Settled(token, records[gid]) for gid, token in snapshot.class_tokens.items()}


def test_unchanged_memberships_are_settled_and_none_is_sent_or_removed() -> None:
    first = build_snapshot(school(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    second = build_snapshot(school(), HASH, TODAY, fingerprints(known), settled=settled_after(first))
    assert second.settled == {Kind.MEMBERSHIP: 4} and second.settled_classes == {"7W"}
    assert second.entries[Kind.MEMBERSHIP] == {} and second.count(Kind.MEMBERSHIP) == 4
    assert second.rows_read[Kind.MEMBERSHIP] == 4
    # the acknowledged memberships are all there, yet none of them is removed: a settled class is skipped
    assert len(acknowledged[Kind.MEMBERSHIP]) == 4 and diff(second, acknowledged) == []


def school_token(snapshot):
    """The whole read's token the state keeps once every class it names is settled."""
    assert snapshot.school_token is not None
    token, classes = snapshot.school_token
    assert classes == set(snapshot.class_tokens)
    return token


def test_a_night_with_nothing_changed_settles_every_class_by_the_whole_reads_token_alone(monkeypatch) -> None:
    first = build_snapshot(two_classes(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    settled, kept = settled_after(first), school_token(first)

    def no_class_compared(*args, **kwargs):
        raise AssertionError("a class token was worked out")

    monkeypatch.setattr(ClassTokens, "add", no_class_compared)
    second = build_snapshot(
        two_classes(), HASH, TODAY, fingerprints(known), settled=settled, settled_school=kept
    )
    assert second.school_settled and second.settled_classes == {"7W", "7X"}
    assert second.settled == {Kind.MEMBERSHIP: 6} and second.entries[Kind.MEMBERSHIP] == {}
    assert second.rows_read[Kind.MEMBERSHIP] == 6 and diff(second, acknowledged) == []
    assert second.school_token == (kept, {"7W", "7X"})


def test_the_whole_reads_token_differs_when_a_leaving_date_passes_and_the_classes_decide_again() -> None:
    rows = two_classes(learners=(1, 2, 3, 4))
    rows = SourceRows(
        [*rows.learners, learner(5, leaving_date="2026-10-04")], rows.staff, rows.groups, rows.memberships
    )
    first = build_snapshot(rows, HASH, dt.date(2026, 10, 4), fingerprints())
    _, known = remember(first)
    settled, kept = settled_after(first), school_token(first)
    same_day = build_snapshot(
        rows, HASH, dt.date(2026, 10, 4), fingerprints(known), settled=settled, settled_school=kept
    )
    assert same_day.school_settled
    today = build_snapshot(rows, HASH, TODAY, fingerprints(known), settled=settled, settled_school=kept)
    assert not today.school_settled and today.settled_classes == {"7W"}


def test_a_read_with_a_membership_held_back_keeps_no_whole_reads_token() -> None:
    held = two_classes()
    held = SourceRows(held.learners, held.staff, held.groups, [*held.memberships, staff_member("NOBODY")])
    assert build_snapshot(held, HASH, TODAY, fingerprints()).school_token is None
    assert build_snapshot(two_classes(), HASH, TODAY, fingerprints()).school_token is not None


def test_another_national_key_or_profile_never_settles_by_the_whole_reads_token() -> None:
    first = build_snapshot(school(), HASH, TODAY, fingerprints())
    _, known = remember(first)
    other = RowFingerprints(b"f" * 32, "nat-test-2|reference", known)
    again = build_snapshot(
        school(), HASH, TODAY, other, settled=settled_after(first), settled_school=school_token(first)
    )
    assert not again.school_settled and again.settled == {}


GROUPS_2 = [*GROUPS, {**GROUPS[0], "group_id": "7X", "name": "7X"}]


def two_classes(in_7x=(4, 5), learners=(1, 2, 3, 4, 5), staff=None):
    """7W: learners 1-3 and the teacher; 7X: ``in_7x``."""
    members = [member(n) for n in (1, 2, 3)] + [staff_member()]
    members += [{**member(n), "group_id": "7X"} for n in in_7x]
    return school(learners=learners, memberships=members, groups=GROUPS_2, staff=staff)


def test_a_learner_joining_one_class_leaves_the_other_class_settled_and_decides_as_without_the_short_cut() -> (
    None
):
    first = build_snapshot(two_classes(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    assert set(first.class_tokens) == {"7W", "7X"}
    changed = two_classes(in_7x=(4, 5, 6), learners=(1, 2, 3, 4, 5, 6))
    settled = build_snapshot(changed, HASH, TODAY, fingerprints(known), settled=settled_after(first))
    assert settled.settled_classes == {"7W"} and settled.settled == {Kind.MEMBERSHIP: 4}
    assert {key.partition("/")[0] for key in settled.entries[Kind.MEMBERSHIP]} == {"7X"}
    plain = build_snapshot(changed, HASH, TODAY, fingerprints(known))
    operations = diff(settled, acknowledged)
    assert operations == diff(plain, acknowledged)
    assert [(o.op.value, o.kind.value) for o in operations] == [
        ("upsert", "learner"),
        ("upsert", "membership"),
    ]
    assert set(settled.class_tokens) == {"7X"}  # 7W keeps the token it has


def test_a_learner_held_back_unsettles_only_the_classes_they_are_in() -> None:
    first = build_snapshot(two_classes(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    held = two_classes()
    held = SourceRows(
        [*held.learners[:4], learner(5, date_of_birth=None)], held.staff, held.groups, held.memberships
    )
    settled = build_snapshot(held, HASH, TODAY, fingerprints(known), settled=settled_after(first))
    plain = build_snapshot(held, HASH, TODAY, fingerprints(known))
    assert settled.settled_classes == {"7W"}
    assert diff(settled, acknowledged) == diff(plain, acknowledged)
    assert [h.reason.value for h in settled.held_back] == [h.reason.value for h in plain.held_back]
    assert "member_held_back" in [h.reason.value for h in settled.held_back]
    assert "7X" not in settled.class_tokens  # a class with a row held back is never offered to be settled


def test_a_leaving_date_passing_unsettles_the_classes_of_the_leaver() -> None:
    """The same MIS rows, another day: a learner on roll yesterday has left today."""
    rows = two_classes(learners=(1, 2, 3, 4))
    rows = SourceRows(
        [*rows.learners, learner(5, leaving_date="2026-10-04")], rows.staff, rows.groups, rows.memberships
    )
    day_before = dt.date(2026, 10, 4)
    first = build_snapshot(rows, HASH, day_before, fingerprints())
    _, known = remember(first)
    today = build_snapshot(rows, HASH, TODAY, fingerprints(known), settled=settled_after(first))
    assert today.settled_classes == {"7W"}
    assert today.entries[Kind.LEARNER][HASH(make_upn(661, 2001, 20, 5))].left


def test_the_token_is_the_same_however_the_driver_cut_the_rows_into_chunks() -> None:
    fields = ("group_id", "member_kind", "upn", "staff_code")
    values = [tuple(m[f] for f in fields) for m in [member(1), member(2), member(3), staff_member()]]
    tokens = set()
    for size in (1, 3, 4):
        chunks = [values[i : i + size] for i in range(0, len(values), size)]
        rows = SourceRows([learner(n) for n in (1, 2, 3)], STAFF, GROUPS, RowChunks(fields, chunks))
        tokens.add(build_snapshot(rows, HASH, TODAY, fingerprints()).class_tokens["7W"])
    assert len(tokens) == 1


CHANGES = {
    "a learner moved to another class": school(
        memberships=[member(1), member(2), {**member(3), "group_id": "7X"}, staff_member()],
        groups=[*GROUPS, {**GROUPS[0], "group_id": "7X", "name": "7X"}],
    ),
    "a membership added": school(
        learners=(1, 2, 3, 4), memberships=[*(member(n) for n in (1, 2, 3, 4)), staff_member()]
    ),
    "a membership gone from the MIS": school(memberships=[member(1), member(2), staff_member()]),
    "a learner gone from the MIS, their membership row still there": school(learners=(1, 2)),
    "a learner now held back": SourceRows(
        [learner(1), learner(2), learner(3, date_of_birth=None)],
        STAFF,
        GROUPS,
        [*(member(n) for n in (1, 2, 3)), staff_member()],
    ),
    "the teacher gone from the MIS": school(staff=[]),
    "the teacher's row held back": school(staff=[{**STAFF[0], "start_date": None}]),
    "the class gone from the MIS": school(groups=[]),
    "the rows in another order": school(memberships=[staff_member(), member(3), member(2), member(1)]),
}


@pytest.mark.parametrize("with_school_token", [False, True], ids=["class tokens", "and the whole read's"])
@pytest.mark.parametrize("change", CHANGES)
def test_any_change_memberships_depend_on_takes_the_full_path_and_decides_as_without_the_short_cut(
    change, with_school_token
) -> None:
    first = build_snapshot(school(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    kept = school_token(first) if with_school_token else None
    settled = build_snapshot(
        CHANGES[change], HASH, TODAY, fingerprints(known), settled=settled_after(first), settled_school=kept
    )
    plain = build_snapshot(CHANGES[change], HASH, TODAY, fingerprints(known))
    assert not settled.school_settled
    assert settled.settled == {} and settled.settled_classes == frozenset()
    assert diff(settled, acknowledged) == diff(plain, acknowledged)
    assert [h.reason for h in settled.held_back] == [h.reason for h in plain.held_back]


def test_another_national_key_or_profile_never_settles() -> None:
    first = build_snapshot(school(), HASH, TODAY, fingerprints())
    _, known = remember(first)
    other = RowFingerprints(b"f" * 32, "nat-test-2|reference", known)
    assert build_snapshot(school(), HASH, TODAY, other, settled=settled_after(first)).settled == {}


def first_plan(rows):
    """A school's first plan, with fingerprints (no batches cut)."""
    return plan(
        rows,
        hasher=HASH,
        acknowledged={},
        today=TODAY,
        guard_policy=GuardPolicy(),
        batch_policy=BatchPolicy(),
        ids=None,
        fingerprints=fingerprints(),
    )


def test_memberships_with_one_held_back_are_never_offered_to_be_settled() -> None:
    decided = first_plan(school(memberships=[member(1), member(2), member(3), staff_member("NOBODY")]))
    assert [h.reason.value for h in decided.snapshot.held_back] == ["member_unknown"]
    assert decided.settles_classes == {}
    clean = first_plan(school())
    assert clean.settles_classes == {"7W": Settled(clean.snapshot.class_tokens["7W"], 4)}


def test_a_membership_row_naming_no_class_is_held_back_and_the_other_classes_still_settle() -> None:
    """Raw group values that do not sort together (``None`` among the codes) change nothing."""
    no_class = {**member(2), "group_id": None}
    first = build_snapshot(two_classes(), HASH, TODAY, fingerprints())
    acknowledged, known = remember(first)
    rows = two_classes()
    with_broken = SourceRows(rows.learners, rows.staff, rows.groups, [no_class, *rows.memberships])
    second = build_snapshot(with_broken, HASH, TODAY, fingerprints(known), settled=settled_after(first))
    assert second.settled_classes == {"7W", "7X"}
    assert [h.reason.value for h in second.held_back] == ["group_id_missing"]
    moved = two_classes(in_7x=(4,))  # learner 5 leaves 7X: 7X is read again, 7W is not
    moved = SourceRows(moved.learners, moved.staff, moved.groups, [no_class, *moved.memberships])
    third = build_snapshot(moved, HASH, TODAY, fingerprints(known), settled=settled_after(first))
    plain = build_snapshot(moved, HASH, TODAY, fingerprints(known))
    assert third.settled_classes == {"7W"}
    assert diff(third, acknowledged) == diff(plain, acknowledged) != []

"""The diff, the safety guard and batch cutting: pure decisions."""

import datetime as dt
import gzip
import itertools
import json

from hwb_client.core import guard
from hwb_client.core.batches import academic_year, build_batches
from hwb_client.core.diff import ACTIVE, LEFT, Acknowledged, diff
from hwb_client.core.model import Kind, Op
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import SourceRows, build_snapshot
from hwb_client.core.upn import make_upn

HASH = UpnHasher("nat-test", b"k" * 32)
TODAY = dt.date(2026, 10, 5)


def learner(serial, **changes):
    row = {
        "upn": make_upn(661, 2001, 20, serial),
        "legal_forename": "Ioan",
        "legal_surname": "Evans",
        "date_of_birth": "2014-05-06",
        "year_group": "7",
        "registration_group": "7W",
        "leaving_date": None,
    }
    row.update(changes)
    return row


def snap(learners, staff=()):
    return build_snapshot(SourceRows(learners, list(staff), [], []), HASH, TODAY)


def acknowledge(snapshot, status=ACTIVE):
    return {
        kind: {
            k: Acknowledged(e.digest, LEFT if e.left else status, e.year_group, e.stable)
            for k, e in snapshot.entries[kind].items()
        }
        for kind in Kind
    }


def test_first_run_upserts_everything() -> None:
    ops = diff(snap([learner(1), learner(2)]), {})
    assert [o.op for o in ops] == [Op.UPSERT, Op.UPSERT]


def test_second_run_without_mis_change_has_no_operations() -> None:
    first = snap([learner(1), learner(2)])
    assert diff(snap([learner(1), learner(2)]), acknowledge(first)) == []


def test_changed_record_is_upserted_and_leaver_is_sent_as_leave_with_its_date() -> None:
    ack = acknowledge(snap([learner(1), learner(2)]))
    ops = diff(snap([learner(1, registration_group="7X"), learner(2, leaving_date="2026-07-22")]), ack)
    assert [(o.op, o.record["leaving_date"]) for o in ops] == [(Op.UPSERT, None), (Op.LEAVE, "2026-07-22")]


def test_vanished_record_is_removed_but_a_held_back_one_is_not() -> None:
    ack = acknowledge(snap([learner(1), learner(2), learner(3)]))
    ops = diff(snap([learner(1), learner(3, date_of_birth=None)]), ack)
    assert [(o.op, o.key) for o in ops] == [(Op.REMOVE, HASH(make_upn(661, 2001, 20, 2)))]


def test_a_leaver_the_national_side_never_held_is_not_sent_nor_their_class_memberships() -> None:
    groups = [{"group_id": "G1", "name": "G1", "group_type": "teaching", "year_group": None}]
    members = [
        {"group_id": "G1", "member_kind": "learner", "upn": make_upn(661, 2001, 20, n)} for n in (1, 2)
    ]
    now = build_snapshot(
        SourceRows([learner(1, leaving_date="2026-07-22"), learner(2)], [], groups, members), HASH, TODAY
    )
    ops = diff(now, {})
    assert [(o.op, o.kind) for o in ops] == [
        (Op.UPSERT, Kind.LEARNER),
        (Op.UPSERT, Kind.GROUP),
        (Op.UPSERT, Kind.MEMBERSHIP),
    ]
    assert ops[2].record["member_key"] == HASH(make_upn(661, 2001, 20, 2))


def test_returning_leaver_is_upserted_again() -> None:
    left = snap([learner(1, leaving_date="2026-07-22")])
    ops = diff(snap([learner(1)]), acknowledge(left))
    assert [o.op for o in ops] == [Op.UPSERT]


def test_removals_come_after_upserts_and_memberships_are_removed_before_groups() -> None:
    groups = [{"group_id": "G1", "name": "G1", "group_type": "teaching", "year_group": None}]
    members = [{"group_id": "G1", "member_kind": "learner", "upn": make_upn(661, 2001, 20, 1)}]
    before = build_snapshot(SourceRows([learner(1)], [], groups, members), HASH, TODAY)
    ops = diff(snap([learner(2)]), acknowledge(before))
    assert [(o.op, o.kind) for o in ops] == [
        (Op.UPSERT, Kind.LEARNER),
        (Op.REMOVE, Kind.MEMBERSHIP),
        (Op.REMOVE, Kind.GROUP),
        (Op.REMOVE, Kind.LEARNER),
    ]


def check(snapshot, ack, today=TODAY, share=0.10, minimum=20):
    policy = guard.GuardPolicy(max_removal_share=share, min_removals=minimum)
    return guard.check(snapshot, diff(snapshot, ack), ack, policy=policy, today=today)


def test_guard_blocks_when_most_learners_vanish_without_leaving_dates() -> None:
    everyone = [learner(n) for n in range(300)]
    ack = acknowledge(snap(everyone))
    decision = check(snap(everyone[:100]), ack)
    assert decision.blocked
    assert "200 of 300 active learner records vanished" in decision.reasons[0]


def test_guard_allows_removals_within_the_minimum_and_the_share() -> None:
    everyone = [learner(n) for n in range(300)]
    ack = acknowledge(snap(everyone))
    assert not check(snap(everyone[:275]), ack).blocked  # 25 <= max(20, 30)
    assert check(snap(everyone[:269]), ack).blocked  # 31 > 30


def test_guard_counts_leavers_with_leaving_dates_as_expected() -> None:
    everyone = [learner(n) for n in range(100)]
    ack = acknowledge(snap(everyone))
    leavers = [learner(n, leaving_date="2026-07-22") for n in range(60)] + everyone[60:]
    assert not check(snap(leavers), ack).blocked


def test_guard_expects_leaving_year_groups_to_disappear_in_summer_only() -> None:
    year6 = [learner(n, year_group="6") for n in range(60)]
    others = [learner(100 + n, year_group="4") for n in range(40)]
    ack = acknowledge(snap(year6 + others))
    assert not check(snap(others), ack, today=dt.date(2026, 9, 2)).blocked
    assert check(snap(others), ack, today=dt.date(2026, 11, 2)).blocked


def test_guard_blocks_an_empty_learner_read_when_accounts_are_active() -> None:
    ack = acknowledge(snap([learner(1)]))
    decision = check(
        snap(
            [],
            staff=[
                {"staff_code": "T1", "legal_forename": "A", "legal_surname": "B", "start_date": "2020-01-01"}
            ],
        ),
        ack,
    )
    assert decision.blocked and "learner query returned no rows" in decision.reasons[0]


def test_guard_blocks_a_read_with_no_rows_at_all() -> None:
    assert check(snap([]), {}).blocked


def test_batches_are_bounded_in_operations_and_bytes_and_carry_their_ids() -> None:
    ops = diff(snap([learner(n) for n in range(250)]), {})
    ids = (f"b{n}" for n in itertools.count())
    batches = build_batches(
        ops,
        run_id="r1",
        upn_key_id="nat-test",
        today=TODAY,
        new_id=lambda: next(ids),
        max_operations=100,
        max_bytes=1_000_000,
        gzip_level=6,
    )
    assert [len(b.operations) for b in batches] == [100, 100, 50]
    body = json.loads(gzip.decompress(batches[1].body))
    assert body["batch_id"] == "b1" and body["sequence"] == 2 and body["academic_year"] == "2026/27"
    assert body["upn_key_id"] == "nat-test" and len(body["operations"]) == 100
    small = build_batches(
        ops,
        run_id="r1",
        upn_key_id="k",
        today=TODAY,
        new_id=lambda: "x",
        max_operations=5000,
        max_bytes=20_000,
        gzip_level=0,
    )
    assert all(len(b.body) <= 20_000 for b in small) and len(small) > 1


def test_academic_year_turns_over_on_1_august() -> None:
    assert academic_year(dt.date(2026, 7, 31)) == "2025/26"
    assert academic_year(dt.date(2026, 8, 1)) == "2026/27"

"""The pure run plan: records in time, the guard for every size of school, holds and overrides.

Each case is a school's MIS rows, what the national side acknowledged, and a day; the plan says what a
run on that day sends and whether the guard holds it. Defaults are the shipped defaults.
"""

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hwb_client.core.diff import ACTIVE, LEFT, Acknowledged
from hwb_client.core.guard import GuardPolicy, Rule
from hwb_client.core.model import Kind, Op
from hwb_client.core.plan import BatchIds, BatchPolicy, plan
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import Known, RowFingerprints, SourceRows
from hwb_client.core.upn import make_upn

HASH = UpnHasher("nat-test", b"k" * 32)
NOVEMBER = dt.date(2026, 11, 3)
JULY = dt.date(2026, 7, 10)


def learner(serial: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "upn": make_upn(661, 2001 + serial // 1000, 20, serial % 1000),
        "legal_forename": "Ioan",
        "legal_surname": f"Evans{serial}",
        "date_of_birth": "2014-05-06",
        "year_group": "5",
        "registration_group": "5W",
        "start_date": "2021-09-01",
        "leaving_date": None,
    }
    row.update(changes)
    return row


def teacher(code: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "staff_code": code,
        "legal_forename": "Siân",
        "legal_surname": f"Jones{code}",
        "start_date": "2019-09-01",
        "leaving_date": None,
    }
    row.update(changes)
    return row


def decide(learners=(), ack=None, *, staff=(), today=NOVEMBER, flags=frozenset(), held_before=None, fps=None):
    rows = SourceRows(list(learners), list(staff), [], [])
    counter = itertools.count()
    return plan(
        rows,
        hasher=HASH,
        acknowledged=ack or {},
        today=today,
        guard_policy=GuardPolicy(),
        batch_policy=BatchPolicy(),
        ids=BatchIds("run-1", HASH.key_id, lambda: f"b{next(counter)}"),
        fingerprints=fps,
        allowed_flags=frozenset(flags),
        held_before=held_before,
    )


def acknowledge(decided, ack=None):
    """What the national side holds after it applied every planned operation."""
    index = {kind: dict((ack or {}).get(kind, {})) for kind in Kind}
    for op in decided.operations:
        if op.op is Op.REMOVE:
            index[op.kind].pop(op.key, None)
            continue
        entry = decided.snapshot.entries[op.kind][op.key]
        status = LEFT if op.op is Op.LEAVE else ACTIVE
        index[op.kind][op.key] = Acknowledged(op.digest, status, entry.year_group, entry.stable)
    return index


def ops(decided):
    return [(o.op, o.kind) for o in decided.operations]


# -- records in time ---------------------------------------------------------------------------------


def test_a_learner_whose_leaving_date_is_60_days_ahead_is_sent_as_active_with_the_date() -> None:
    leaving = NOVEMBER + dt.timedelta(days=60)
    decided = decide([learner(1, leaving_date=leaving.isoformat())])
    assert ops(decided) == [(Op.UPSERT, Kind.LEARNER)]
    assert decided.operations[0].record["leaving_date"] == leaving.isoformat()


def test_the_leaving_date_is_the_last_day_on_roll_and_the_leave_goes_the_day_after_with_no_mis_change() -> (
    None
):
    leaving = dt.date(2027, 1, 2)
    rows = [learner(1, leaving_date=leaving.isoformat()), learner(2)]
    ack = acknowledge(decide(rows))
    assert ops(decide(rows, ack, today=leaving - dt.timedelta(days=1))) == []
    assert ops(decide(rows, ack, today=leaving)) == []  # still on roll on the day itself
    after = decide(rows, ack, today=leaving + dt.timedelta(days=1))
    assert ops(after) == [(Op.LEAVE, Kind.LEARNER)]
    assert after.operations[0].record["leaving_date"] == leaving.isoformat()
    assert ops(decide(rows, acknowledge(after, ack), today=leaving + dt.timedelta(days=9))) == []


def test_a_leaving_date_entered_for_an_active_learner_updates_them_and_releases_nobody_early() -> None:
    ack = acknowledge(decide([learner(1)]))
    decided = decide([learner(1, leaving_date="2027-07-21")], ack)
    assert ops(decided) == [(Op.UPSERT, Kind.LEARNER)]
    assert not decided.blocked


def test_a_fingerprint_does_not_hide_a_leaving_date_passing() -> None:
    """A row with a leaving date is never short-cut: the next day still looks at its date."""
    key = b"f" * 32
    rows = [learner(1, leaving_date="2026-11-10"), learner(2)]
    first = decide(rows, fps=RowFingerprints(key, "ctx"))
    ack = acknowledge(first)
    known = {
        e.fingerprint: Known(k, e.digest, e.left, e.year_group, e.stable)
        for k, e in first.snapshot.entries[Kind.LEARNER].items()
        if e.fingerprint is not None
    }
    assert len(known) == 1  # only the learner without a leaving date is remembered
    later = decide(rows, ack, today=dt.date(2026, 11, 11), fps=RowFingerprints(key, "ctx", known))
    assert ops(later) == [(Op.LEAVE, Kind.LEARNER)]


def test_a_leaver_the_national_side_never_held_is_not_sent_but_one_leaving_tomorrow_is() -> None:
    decided = decide([learner(1, leaving_date="2026-11-02"), learner(2, leaving_date="2026-11-03")])
    assert [o.record["leaving_date"] for o in decided.operations] == ["2026-11-03"]


def test_new_staff_and_the_new_intake_starting_in_september_are_sent_now_and_shown_as_starting() -> None:
    decided = decide(
        [learner(1, start_date="2026-09-02", year_group="7")],
        staff=[teacher("NEW1", start_date="2026-09-01")],
        today=JULY,
    )
    assert ops(decided) == [(Op.UPSERT, Kind.LEARNER), (Op.UPSERT, Kind.STAFF)]
    upcoming = [(u.date, u.kind, u.event, u.count) for u in decided.upcoming(JULY)]
    assert upcoming == [
        (dt.date(2026, 9, 1), Kind.STAFF, "starts", 1),
        (dt.date(2026, 9, 2), Kind.LEARNER, "starts", 1),
    ]
    assert decided.upcoming(dt.date(2026, 9, 2)) == []


def test_leavers_to_come_are_counted_by_the_day_they_leave() -> None:
    rows = [learner(n, leaving_date="2026-07-17") for n in range(3)] + [learner(9)]
    upcoming = decide(rows, today=JULY).upcoming(JULY)
    assert [(u.date, u.event, u.count) for u in upcoming] == [(dt.date(2026, 7, 18), "leaves", 3)]


# -- the removal guard, with the defaults ------------------------------------------------------------


def school(size: int, kind: str = "learner"):
    rows = [learner(n) for n in range(size)] if kind == "learner" else [teacher(f"T{n}") for n in range(size)]
    return rows


def vanish(size: int, gone: int, kind: str = "learner"):
    rows = school(size, kind)
    if kind == "learner":
        return decide(rows[gone:], acknowledge(decide(rows)))
    return decide(staff=rows[gone:], ack=acknowledge(decide(staff=rows)))


def test_a_40_learner_primary_losing_12_without_leaving_dates_is_held() -> None:
    decided = vanish(40, 12)
    assert decided.blocked
    hold = decided.holds[0]
    assert (hold.rule, hold.kind, hold.count, hold.limit, hold.active) == (
        Rule.MASS_REMOVAL,
        Kind.LEARNER,
        12,
        4,
        40,
    )
    assert "--allow-mass-removal" in hold.message and "12 of 40" in hold.message


def test_a_40_learner_primary_losing_2_runs() -> None:
    assert not vanish(40, 2).blocked


def test_the_removal_limit_of_a_40_learner_school_is_4() -> None:
    assert not vanish(40, 4).blocked
    assert vanish(40, 5).blocked


def test_a_1500_learner_secondary_losing_60_runs_and_losing_200_is_held() -> None:
    assert not vanish(1500, 60).blocked
    assert vanish(1500, 200).blocked


def test_the_guard_holds_each_kind_on_its_own_numbers() -> None:
    decided = vanish(40, 12, kind="staff")
    assert [(h.rule, h.kind) for h in decided.holds] == [(Rule.MASS_REMOVAL, Kind.STAFF)]


def test_leavers_with_leaving_dates_never_count_against_the_limit() -> None:
    rows = school(40)
    ack = acknowledge(decide(rows))
    leavers = [learner(n, leaving_date="2026-10-20") for n in range(30)] + rows[30:]
    assert not decide(leavers, ack).blocked


def test_leaving_year_groups_may_vanish_from_june_to_september_only() -> None:
    rows = [learner(n, year_group="6") for n in range(20)] + [learner(100 + n) for n in range(20)]
    ack = acknowledge(decide(rows))
    for day, held in [
        (dt.date(2026, 5, 31), True),
        (dt.date(2026, 6, 1), False),
        (dt.date(2026, 9, 30), False),
        (dt.date(2026, 10, 1), True),
    ]:
        assert decide(rows[20:], ack, today=day).blocked is held, day


# -- mass updates --------------------------------------------------------------------------------------


def test_renaming_every_registration_group_in_term_is_held_as_a_mass_update() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows))
    decided = decide([dict(r, registration_group="5X") for r in rows], ack)
    assert [(h.rule, h.count, h.limit) for h in decided.holds] == [(Rule.MASS_UPDATE, 100, 75)]
    assert "--allow-mass-update" in decided.holds[0].message


def test_the_update_limit_is_75_percent_of_the_active_records() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows))
    changed = lambda n: [dict(r, registration_group="5X") if i < n else r for i, r in enumerate(rows)]  # noqa: E731
    assert not decide(changed(75), ack).blocked
    assert decide(changed(76), ack).blocked


def test_the_summer_rollover_is_expected_a_year_group_up_by_one_and_a_new_registration_group() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows, today=JULY))
    rolled = [dict(r, year_group="6", registration_group="6W") for r in rows]
    assert not decide(rolled, ack, today=dt.date(2026, 9, 1)).blocked
    assert decide(rolled, ack, today=dt.date(2026, 10, 1)).blocked  # after the window it is a rewrite


def test_a_summer_rewrite_of_names_is_not_the_rollover() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows, today=JULY))
    renamed = [dict(r, year_group="6", legal_forename="X") for r in rows]
    assert decide(renamed, ack, today=dt.date(2026, 8, 20)).holds[0].rule is Rule.MASS_UPDATE


def test_a_year_group_that_jumps_by_two_is_not_the_rollover() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows, today=JULY))
    assert decide([dict(r, year_group="7") for r in rows], ack, today=dt.date(2026, 8, 20)).blocked


# -- mass hold-backs -----------------------------------------------------------------------------------


def test_a_broken_column_that_holds_back_most_sent_learners_is_held_like_a_mass_removal() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows))
    broken = [dict(r, date_of_birth=None) for r in rows[:80]] + rows[80:]
    decided = decide(broken, ack, held_before={Kind.LEARNER: 0, Kind.STAFF: 0})
    assert [(h.rule, h.count, h.limit) for h in decided.holds] == [(Rule.MASS_HOLD_BACK, 80, 10)]


def test_records_held_back_run_after_run_do_not_hold_the_school_again() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows))
    broken = [dict(r, date_of_birth=None) for r in rows[:80]] + rows[80:]
    assert not decide(broken, ack, held_before={Kind.LEARNER: 80, Kind.STAFF: 0}).blocked
    assert not decide(broken, ack, held_before=None).blocked  # never recorded: a state from 0.1.0


# -- holds and overrides -------------------------------------------------------------------------------


def test_a_held_plan_cuts_no_batches_and_an_allowed_one_records_the_override() -> None:
    held = vanish(40, 12)
    assert held.batches == [] and held.overridden == ()
    rows = school(40)
    ack = acknowledge(decide(rows))
    allowed = decide(rows[12:], ack, flags={"--allow-mass-removal"})
    assert not allowed.blocked and [h.rule for h in allowed.overridden] == [Rule.MASS_REMOVAL]
    assert sum(len(b.operations) for b in allowed.batches) == 12


def test_each_flag_allows_only_its_own_rules() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows))
    renamed = [dict(r, registration_group="5X") for r in rows]
    assert decide(renamed, ack, flags={"--allow-mass-removal"}).blocked
    assert not decide(renamed, ack, flags={"--allow-mass-update"}).blocked


def test_an_empty_read_is_held_whatever_the_size() -> None:
    ack = acknowledge(decide(school(3)))
    decided = decide([], ack, staff=[teacher("T1")])
    assert [h.rule for h in decided.holds] == [Rule.EMPTY_SOURCE]


# -- a property: an unchanged MIS sends nothing, except the leaves its dates call for --------------------


@settings(max_examples=60, deadline=None)
@given(
    leaving_offsets=st.lists(st.one_of(st.none(), st.integers(-30, 30)), min_size=1, max_size=25),
    later=st.integers(0, 40),
)
def test_an_unchanged_mis_sends_only_the_leaves_that_its_dates_call_for(leaving_offsets, later) -> None:
    day = dt.date(2026, 11, 20)
    rows = [
        learner(n, leaving_date=None if off is None else (day + dt.timedelta(days=off)).isoformat())
        for n, off in enumerate(leaving_offsets)
    ]
    ack = acknowledge(decide(rows, today=day))
    assert ops(decide(rows, ack, today=day)) == []
    then = day + dt.timedelta(days=later)
    expected = sum(
        1 for off in leaving_offsets if off is not None and day <= day + dt.timedelta(days=off) < then
    )
    decided = decide(rows, ack, today=then)
    assert [o.op for o in decided.operations] == [Op.LEAVE] * expected


def test_the_rollover_is_expected_from_1_june_and_not_on_31_may() -> None:
    rows = school(100)
    ack = acknowledge(decide(rows, today=dt.date(2026, 3, 2)))
    rolled = [dict(r, year_group="6", registration_group="6W") for r in rows]
    assert decide(rolled, ack, today=dt.date(2026, 5, 31)).blocked
    assert not decide(rolled, ack, today=dt.date(2026, 6, 1)).blocked


def test_a_leaver_is_shown_as_leaving_on_the_leaving_date_itself_and_not_the_day_after() -> None:
    rows = [learner(1, leaving_date="2026-07-17")]
    on_the_day = decide(rows, today=dt.date(2026, 7, 17)).upcoming(dt.date(2026, 7, 17))
    assert [(u.date, u.event) for u in on_the_day] == [(dt.date(2026, 7, 18), "leaves")]
    assert decide(rows, today=dt.date(2026, 7, 18)).upcoming(dt.date(2026, 7, 18)) == []


def test_a_starter_is_shown_as_starting_the_day_before_and_not_on_the_day() -> None:
    rows = [learner(1, start_date="2026-09-02")]
    assert [u.event for u in decide(rows, today=dt.date(2026, 9, 1)).upcoming(dt.date(2026, 9, 1))] == [
        "starts"
    ]
    assert decide(rows, today=dt.date(2026, 9, 2)).upcoming(dt.date(2026, 9, 2)) == []

"""Rollover and churn: pure, deterministic, and doing what the demo and the benchmark expect."""

import dataclasses
import datetime as dt
from collections import Counter

import pytest

from hwb_client.core.upn import UpnStatus, classify
from hwb_synth.generate import MisData, birth_window, generate
from hwb_synth.mutate import Rollover, churn, summer_rollover, upns_at
from hwb_synth.scales import demo_schools, small_schools

PRIMARY, SECONDARY = "6612001", "6614001"


@pytest.fixture(scope="module")
def before() -> MisData:
    return generate(21, demo_schools(), broken=4)


@pytest.fixture(scope="module")
def rollover(before: MisData) -> Rollover:
    return summer_rollover(before, PRIMARY, SECONDARY, leaving_date=dt.date(2026, 7, 22), seed=21)


def snapshot(data: MisData) -> tuple[object, ...]:
    return tuple(tuple(data.rows(t)) for t in ("mis_pupil", "mis_staff", "mis_group", "mis_group_member"))


def test_rollover_moves_year_6_upns_into_the_secondary_as_year_7(before: MisData, rollover: Rollover) -> None:
    after = rollover.data
    broken_ids = {b.row_id for b in before.broken if b.table == "mis_pupil"}
    sound_y6 = {
        str(lr.upn)
        for lr in before.learners_at(PRIMARY)
        if lr.year_group == "6" and lr.pupil_id not in broken_ids
    }
    assert sound_y6 and set(rollover.summary.y6_movers) == sound_y6
    assert sound_y6 <= upns_at(after, SECONDARY, year_group="7")
    assert not sound_y6 & upns_at(after, PRIMARY)  # no longer on roll in the primary
    old_ids = {lr.pupil_id for lr in before.learners}
    for lr in after.learners_at(SECONDARY):
        if lr.upn in sound_y6:
            assert lr.pupil_id not in old_ids
            assert lr.admission_date == dt.date(2026, 9, 1) and lr.leaving_date is None
            assert str(lr.registration_group).startswith("7")


def test_rollover_gives_year_6_and_year_13_their_leaving_date(before: MisData, rollover: Rollover) -> None:
    leavers = {lr.pupil_id for lr in before.learners if lr.year_group in {"6", "13"}}
    after = {lr.pupil_id: lr for lr in rollover.data.learners}
    assert leavers and all(after[pid].leaving_date == dt.date(2026, 7, 22) for pid in leavers)
    assert rollover.summary.y13_leavers == sum(1 for lr in before.learners if lr.year_group == "13")


def test_everyone_else_moves_up_a_year_with_a_fitting_date_of_birth(
    before: MisData, rollover: Rollover
) -> None:
    after = {lr.pupil_id: lr for lr in rollover.data.learners}
    order = ["N1", "N2", "R", *(str(n) for n in range(1, 14))]
    moved = 0
    for lr in before.learners:
        if lr.year_group in {"6", "13"} or lr.year_group not in order:
            continue
        new = after[lr.pupil_id]
        assert order.index(str(new.year_group)) == order.index(str(lr.year_group)) + 1
        if new.date_of_birth and new.date_of_birth.year < 2100:
            first, last = birth_window(str(new.year_group), 2026)
            assert first <= new.date_of_birth <= last
        moved += 1
    assert moved == rollover.summary.moved_up


def test_secondary_forms_keep_their_letter(before: MisData, rollover: Rollover) -> None:
    after = {lr.pupil_id: lr for lr in rollover.data.learners}
    kept = [
        after[lr.pupil_id].registration_group
        == f"{int(str(lr.year_group)) + 1}{str(lr.registration_group)[len(str(lr.year_group)) :]}"
        for lr in before.learners_at(SECONDARY)
        if lr.year_group in {"7", "8", "9", "10"}
    ]
    assert sum(kept) / len(kept) > 0.9


def test_rollover_builds_new_groups_and_an_intake(before: MisData, rollover: Rollover) -> None:
    after = rollover.data
    assert all(g.group_code.startswith("2627-") for g in after.groups)
    n1 = [lr for lr in after.learners_at(PRIMARY) if lr.year_group == "N1"]
    assert len(n1) == rollover.summary.intake[PRIMARY] > 0
    assert all(classify(str(lr.upn)) is UpnStatus.PERMANENT for lr in n1)
    on_roll = [lr for lr in after.learners if lr.leaving_date is None and lr.upn]
    upns = Counter((lr.dfes_number, lr.upn) for lr in on_roll)
    broken_upns = {lr.upn for lr in before.learners if lr.pupil_id in {b.row_id for b in before.broken}}
    assert all(n == 1 for (_, upn), n in upns.items() if upn not in broken_upns)
    members = {m.pupil_id for m in after.members if m.pupil_id is not None}
    leavers = {lr.pupil_id for lr in after.learners if lr.leaving_date is not None}
    assert not members & leavers


def test_one_teacher_moves_and_one_learner_joins(rollover: Rollover) -> None:
    summary = rollover.summary
    after = rollover.data
    old = [st for st in after.staff_at(PRIMARY) if st.staff_code == summary.teacher_leaving_code]
    new = [st for st in after.staff_at(SECONDARY) if st.staff_code == summary.teacher_joining_code]
    assert len(old) == 1 and old[0].leaving_date == dt.date(2026, 7, 22)
    assert len(new) == 1 and new[0].start_date == dt.date(2026, 9, 1) and new[0].leaving_date is None
    assert (old[0].legal_forename, old[0].legal_surname) == (new[0].legal_forename, new[0].legal_surname)
    assert any(m.staff_id == new[0].staff_id for m in after.members)
    assert summary.joiner_upn in upns_at(after, SECONDARY, year_group="9")
    assert classify(summary.joiner_upn) is UpnStatus.PERMANENT


def test_rollover_is_pure_and_deterministic(before: MisData, rollover: Rollover) -> None:
    copy = snapshot(before)
    again = summer_rollover(before, PRIMARY, SECONDARY, leaving_date=dt.date(2026, 7, 22), seed=21)
    assert snapshot(before) == copy
    assert again == rollover


def test_rollover_needs_a_primary_and_a_secondary(before: MisData) -> None:
    with pytest.raises(ValueError, match="primary and a secondary"):
        summer_rollover(before, SECONDARY, PRIMARY, seed=1)


def test_churn_changes_about_the_share_asked_and_is_pure() -> None:
    data = generate(8, small_schools())
    copy = snapshot(data)
    result = churn(data, 0.05, seed=8, today=dt.date(2025, 11, 20))
    assert snapshot(data) == copy
    assert result == churn(data, 0.05, seed=8, today=dt.date(2025, 11, 20))
    summary = result.summary
    assert 0.8 * 0.05 * len(data.learners) <= summary.learner_changes <= 1.1 * 0.05 * len(data.learners)
    assert summary.leavers and summary.joiners and summary.surname_changes and summary.set_moves
    after = result.data
    leavers = {lr.pupil_id for lr in after.learners if lr.leaving_date is not None}
    assert len(leavers) == summary.leavers
    assert all(lr.leaving_date <= dt.date(2025, 11, 20) for lr in after.learners if lr.leaving_date)
    assert not leavers & {m.pupil_id for m in after.members}
    upns = [lr.upn for lr in after.learners]
    assert len(set(upns)) == len(upns)
    joiners = {lr.pupil_id for lr in after.learners if lr.upn in summary.joiner_upns}
    assert len(joiners) == summary.joiners and joiners <= {m.pupil_id for m in after.members}
    changed = sum(
        1
        for a, b in zip(data.learners, after.learners, strict=False)
        if dataclasses.astuple(a) != dataclasses.astuple(b)
    )
    assert changed == summary.surname_changes + summary.registration_moves + summary.leavers

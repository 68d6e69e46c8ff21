"""Synthetic MIS data: deterministic, realistic, valid, and broken only where it says so."""

import datetime as dt
from collections import Counter, defaultdict

import pytest

from hwb_client.core import validate
from hwb_client.core.upn import UpnStatus, classify
from hwb_synth.generate import (
    BROKEN_KINDS,
    YEAR_OFFSET,
    Learner,
    MisData,
    SchoolSpec,
    Staff,
    birth_window,
    generate,
)
from hwb_synth.scales import la_schools, small_schools


@pytest.fixture(scope="module")
def clean() -> MisData:
    return generate(7, small_schools())


@pytest.fixture(scope="module")
def broken() -> MisData:
    return generate(7, small_schools(), broken=True)


def learner_row(lr: Learner) -> dict[str, object]:
    """The row as the reference profile maps it for the client."""
    return {
        "upn": lr.upn,
        "legal_forename": lr.legal_forename,
        "legal_surname": lr.legal_surname,
        "date_of_birth": lr.date_of_birth,
        "year_group": lr.year_group,
        "registration_group": lr.registration_group,
        "start_date": lr.admission_date,
        "leaving_date": lr.leaving_date,
    }


def staff_row(st: Staff) -> dict[str, object]:
    return {
        "staff_code": st.staff_code,
        "legal_forename": st.legal_forename,
        "legal_surname": st.legal_surname,
        "start_date": st.start_date,
        "leaving_date": st.leaving_date,
    }


def test_same_seed_gives_identical_data_and_another_seed_does_not() -> None:
    first = generate(3, small_schools(), broken=4)
    again = generate(3, small_schools(), broken=4)
    other = generate(4, small_schools(), broken=4)
    assert first == again
    assert first.learners != other.learners


def test_counts_follow_the_school_specs(clean: MisData) -> None:
    for school in small_schools():
        assert len(clean.learners_at(school.dfes_number)) == school.learners
        assert len(clean.staff_at(school.dfes_number)) == school.staff


def test_upns_are_valid_permanent_unique_and_from_the_schools_la(clean: MisData) -> None:
    upns = [lr.upn for lr in clean.learners]
    assert all(upn is not None and classify(upn) is UpnStatus.PERMANENT for upn in upns)
    assert len(set(upns)) == len(upns)
    assert all(str(lr.upn)[1:4] == lr.dfes_number[:3] for lr in clean.learners)


def test_dates_of_birth_fit_the_year_group(clean: MisData) -> None:
    for lr in clean.learners:
        first, last = birth_window(str(lr.year_group), clean.academic_year)
        assert lr.date_of_birth is not None and first <= lr.date_of_birth <= last


def test_year_groups_match_the_phase(clean: MisData) -> None:
    phases = {s.dfes_number: s.phase for s in clean.schools}
    for lr in clean.learners:
        offset = YEAR_OFFSET[str(lr.year_group)]
        assert (offset <= 6) if phases[lr.dfes_number] == "primary" else (offset >= 7)


def test_every_learner_and_staff_row_passes_the_clients_validation(clean: MisData) -> None:
    today = dt.date.today()
    for lr in clean.learners:
        validate.learner(learner_row(lr), today)
    for st in clean.staff:
        validate.staff(staff_row(st))
    for g in clean.groups:
        validate.group(
            {"group_id": g.group_code, "name": g.name, "group_type": g.group_type, "year_group": g.year_group}
        )


def test_staff_codes_are_unique_per_school_and_everyone_has_a_start_date(clean: MisData) -> None:
    for school in clean.schools:
        codes = [st.staff_code for st in clean.staff_at(school.dfes_number)]
        assert len(set(codes)) == len(codes)
    assert all(st.start_date is not None and st.leaving_date is None for st in clean.staff)


def test_every_group_has_exactly_one_teacher_or_a_teacher_and_an_assistant(clean: MisData) -> None:
    staff_per_group = Counter(m.group_pk for m in clean.members if m.staff_id is not None)
    learners_per_group = Counter(m.group_pk for m in clean.members if m.pupil_id is not None)
    for g in clean.groups:
        assert 1 <= staff_per_group[g.group_pk] <= 2
        assert learners_per_group[g.group_pk] >= 1
    assert all((m.pupil_id is None) != (m.staff_id is None) for m in clean.members)


def test_secondary_learners_are_in_about_a_dozen_groups_and_primary_learners_in_a_class(
    clean: MisData,
) -> None:
    groups_of: dict[int, int] = Counter(m.pupil_id for m in clean.members if m.pupil_id is not None)
    registration = {g.group_pk for g in clean.groups if g.group_type == "registration"}
    in_class = {m.pupil_id for m in clean.members if m.group_pk in registration}
    phases = {s.dfes_number: s.phase for s in clean.schools}
    for lr in clean.learners:
        assert lr.pupil_id in in_class
        if phases[lr.dfes_number] == "secondary":
            assert 5 <= groups_of[lr.pupil_id] <= 17
        else:
            assert 1 <= groups_of[lr.pupil_id] <= 4


def test_registration_groups_are_named_per_year(clean: MisData) -> None:
    secondary = [lr for lr in clean.learners if lr.dfes_number == "6614001"]
    assert all(str(lr.registration_group).startswith(str(lr.year_group)) for lr in secondary)
    small_primary = {lr.registration_group for lr in clean.learners if lr.dfes_number == "6612001"}
    assert small_primary  # mixed-age classes named after trees
    assert all(not str(name)[0].isdigit() for name in small_primary)


def test_never_sent_columns_are_filled(clean: MisData) -> None:
    assert all(
        lr.gender in {"F", "M"} and lr.home_address and lr.sen_status and lr.ethnicity
        for lr in clean.learners
    )
    assert all(st.ni_number and st.home_address and st.title for st in clean.staff)


def test_names_are_welsh_with_diacritics_and_apostrophes() -> None:
    data = generate(11, la_schools(11)[:12])
    forenames = {lr.legal_forename for lr in data.learners}
    surnames = {lr.legal_surname for lr in data.learners}
    assert {"Siân", "Gwenllïan", "Llŷr", "Dafydd", "Ffion"} <= forenames
    assert {"Jones", "Williams", "ap Gruffudd", "Prydderch"} <= surnames
    assert any("'" in str(s) for s in surnames)


def test_a_bad_dfes_number_is_refused() -> None:
    with pytest.raises(ValueError, match="Welsh DfES"):
        SchoolSpec("8231234", "Not in Wales", "primary", 10, 2)


def test_broken_true_damages_one_record_of_each_kind(broken: MisData) -> None:
    declared = Counter(b.expected_reason for b in broken.broken)
    for _table, reason in BROKEN_KINDS:
        assert declared[reason] == (2 if reason.endswith("_duplicate") else 1)


def test_broken_records_are_held_back_by_the_client_for_the_declared_reason(broken: MisData) -> None:
    today = dt.date.today()
    expected = {(b.table, b.row_id): b.expected_reason for b in broken.broken}
    for lr in broken.learners:
        reason = expected.get(("mis_pupil", lr.pupil_id))
        if reason in (None, "upn_duplicate"):
            validate.learner(learner_row(lr), today)  # valid on its own
            continue
        with pytest.raises(validate.Invalid) as raised:
            validate.learner(learner_row(lr), today)
        assert raised.value.reason.value == reason
    for st in broken.staff:
        reason = expected.get(("mis_staff", st.staff_id))
        if reason in (None, "staff_code_duplicate"):
            validate.staff(staff_row(st))
            continue
        with pytest.raises(validate.Invalid) as raised:
            validate.staff(staff_row(st))
        assert raised.value.reason.value == reason


def test_declared_duplicates_really_share_their_value_within_one_school(broken: MisData) -> None:
    upns: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for lr in broken.learners:
        upns[(lr.dfes_number, lr.upn)].append(lr.pupil_id)
    shared = {pid for ids in upns.values() if len(ids) > 1 for pid in ids}
    assert shared == {b.row_id for b in broken.broken if b.expected_reason == "upn_duplicate"}
    codes: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for st in broken.staff:
        if st.staff_code:
            codes[(st.dfes_number, st.staff_code)].append(st.staff_id)
    shared = {sid for ids in codes.values() if len(ids) > 1 for sid in ids}
    assert shared == {b.row_id for b in broken.broken if b.expected_reason == "staff_code_duplicate"}


def test_a_count_of_broken_records_cycles_through_the_kinds() -> None:
    data = generate(5, small_schools(), broken=3)
    assert [b.expected_reason for b in data.broken] == [
        "upn_temporary",
        "start_date_missing",
        "upn_bad_check_letter",
    ]

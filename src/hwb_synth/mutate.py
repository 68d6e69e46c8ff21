"""Changes to synthetic MIS data over time: the summer rollover and the benchmark's nightly churn.

Both are pure: they take a ``MisData`` and return a new one (with a summary of what changed) and never
change the lists of the one they were given. Both are deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace

from hwb_synth.generate import _SURNAME as _surname_picker
from hwb_synth.generate import (
    YEAR_OFFSET,
    GroupMember,
    Ids,
    Learner,
    MisData,
    SchoolSpec,
    UpnAllocator,
    academic_year_label,
    assign_roles,
    build_groups,
    first_day,
    new_learner,
    new_staff,
    next_year_group,
    registration_plan,
    staff_code_for,
    teachers_for,
    year_groups,
)


@dataclass(frozen=True)
class RolloverSummary:
    """What a summer rollover changed (counts and identifiers a demo may print: no names)."""

    academic_year: int  #: the new academic year (2026 for 2026/27)
    leaving_date: dt.date
    y6_movers: tuple[str, ...]  #: UPNs of the primary's Year 6, now Year 7 in the secondary
    y6_leavers: int  #: Year 6 learners of all primaries given a leaving date (movers included)
    y13_leavers: int
    moved_up: int  #: learners who stayed in their school and moved up a year group
    intake: dict[str, int]  #: new learners per school (nursery N1 in primaries, Year 7 elsewhere)
    joiner_upn: str  #: the one brand-new learner
    joiner_dfes: str
    teacher_leaving_code: str  #: the teacher who moves: staff code in the primary (given a leaving date)
    teacher_joining_code: str  #: and the new record's staff code in the secondary (with a start date)
    groups_before: int
    groups_after: int
    memberships_before: int
    memberships_after: int


@dataclass(frozen=True)
class Rollover:
    data: MisData
    summary: RolloverSummary


@dataclass(frozen=True)
class ChurnSummary:
    """What one night's churn changed."""

    today: dt.date
    surname_changes: int = 0
    registration_moves: int = 0
    leavers: int = 0
    joiners: int = 0
    set_moves: int = 0
    staff_surname_changes: int = 0
    staff_leavers: int = 0
    staff_joiners: int = 0
    joiner_upns: tuple[str, ...] = field(default=())

    @property
    def learner_changes(self) -> int:
        return self.surname_changes + self.registration_moves + self.leavers + self.joiners + self.set_moves


@dataclass(frozen=True)
class Churn:
    data: MisData
    summary: ChurnSummary


def _broken_ids(data: MisData, table: str) -> set[int]:
    return {b.row_id for b in data.broken if b.table == table}


def _registration_letter(registration_group: str | None, year_group: str) -> str | None:
    """``7W`` in year 7 -> ``W``; ``None`` for a class that is not named after its year."""
    if registration_group and registration_group.startswith(year_group):
        return registration_group[len(year_group) :] or None
    return None


def _assign_registration(
    rng: random.Random, school: SchoolSpec, learners: list[Learner], keep_letters: bool
) -> list[Learner]:
    """Give ``learners`` (all on roll in one school) registration groups for their (new) year groups.

    With ``keep_letters`` a learner whose old form was ``7W`` goes to ``8W`` when the school has one;
    everyone else is spread round-robin (classes in a primary are rebuilt each year)."""
    counts: dict[str, int] = defaultdict(int)
    for lr in learners:
        counts[str(lr.year_group)] += 1
    plan = registration_plan(school, counts)
    turn: dict[str, int] = defaultdict(int)
    result: list[Learner] = []
    order = sorted(range(len(learners)), key=lambda i: (rng.random(), i))
    assigned: dict[int, str | None] = {}
    for i in order:
        lr = learners[i]
        names = plan.get(str(lr.year_group), [])
        choice: str | None = None
        if keep_letters and lr.registration_group and lr.registration_group.startswith("~"):
            wanted = f"{lr.year_group}{lr.registration_group[1:]}"
            choice = wanted if wanted in names else None
        if choice is None and names:
            choice = names[turn[str(lr.year_group)] % len(names)]
            turn[str(lr.year_group)] += 1
        assigned[i] = choice
    for i, lr in enumerate(learners):
        result.append(replace(lr, registration_group=assigned[i]))
    return result


def summer_rollover(
    data: MisData,
    primary_dfes: str,
    secondary_dfes: str,
    *,
    leaving_date: dt.date | None = None,
    seed: int,
) -> Rollover:
    """The MIS after the end-of-year procedures, as the client reads it in September.

    - Year 6 of every primary gets ``leaving_date`` (default 22 July of the summer term); those of
      ``primary_dfes`` are admitted to ``secondary_dfes`` as Year 7 (same UPN, new ``pupil_id``, admitted on
      1 September, new registration and teaching groups).
    - Year 13 get ``leaving_date``; everyone else on roll moves up a year group (a secondary form keeps its
      letter, ``7W`` -> ``8W``; primary classes are rebuilt) and gets the new year's groups.
    - Every primary gets a new N1 intake the size of its old one; a secondary other than
      ``secondary_dfes`` gets a Year 7 intake the size of its old one (from feeders outside the data set).
    - One teacher of the primary gets ``leaving_date`` and a new record (start date 1 September, a new staff
      code) in the secondary; one brand-new learner joins the secondary's Year 9.
    - Every school's groups are rebuilt for the new year (new group codes); old groups disappear.

    Learners declared broken stay in their school (a broken Year 6 learner only leaves), so the ``broken``
    declarations stay true. Learners who had already left are kept unchanged."""
    primary = data.school(primary_dfes)
    secondary = data.school(secondary_dfes)
    if primary.phase != "primary" or secondary.phase != "secondary":
        raise ValueError("summer_rollover needs a primary and a secondary school")
    rng = random.Random(f"rollover-{seed}")  # noqa: S311 (synthetic data)
    new_year = data.academic_year + 1
    leaving = leaving_date or dt.date(new_year, 7, 22)
    start = first_day(new_year)
    ids = Ids.after(data)
    upns = UpnAllocator(lr.upn for lr in data.learners)
    broken_learners = _broken_ids(data, "mis_pupil")
    broken_staff = _broken_ids(data, "mis_staff")

    kept: list[Learner] = []  # leavers and untouchable rows, unchanged apart from a leaving date
    on_roll: dict[str, list[Learner]] = defaultdict(list)  # per school, with new year groups
    movers: list[str] = []
    y6_leavers = y13_leavers = moved_up = 0
    old_counts: dict[tuple[str, str], int] = defaultdict(int)
    phase = {s.dfes_number: s.phase for s in data.schools}
    for lr in data.learners:
        if lr.leaving_date is not None or lr.year_group not in YEAR_OFFSET:
            kept.append(lr)
            continue
        yg = str(lr.year_group)
        old_counts[(lr.dfes_number, yg)] += 1
        if (yg == "6" and phase[lr.dfes_number] == "primary") or yg == "13":
            kept.append(replace(lr, leaving_date=leaving))
            if yg == "13":
                y13_leavers += 1
                continue
            y6_leavers += 1
            if lr.dfes_number == primary_dfes and lr.pupil_id not in broken_learners:
                movers.append(str(lr.upn))
                on_roll[secondary_dfes].append(
                    replace(
                        lr,
                        pupil_id=ids.next_pupil(),
                        dfes_number=secondary_dfes,
                        year_group="7",
                        registration_group=None,
                        admission_date=start,
                        leaving_date=None,
                    )
                )
            continue
        new_yg = next_year_group(yg)
        letter = _registration_letter(lr.registration_group, yg)
        on_roll[lr.dfes_number].append(
            replace(lr, year_group=new_yg, registration_group=f"~{letter}" if letter else None)
        )
        moved_up += 1

    intake: dict[str, int] = {}
    primaries_by_la: dict[int, list[int]] = defaultdict(list)
    for school in data.schools:
        if school.phase == "primary":
            primaries_by_la[school.la_number].append(school.establishment)
    for school in data.schools:
        entry = year_groups(school.phase)[0]
        if school.dfes_number == secondary_dfes:
            continue
        size = old_counts[(school.dfes_number, entry)]
        feeders = primaries_by_la[school.la_number] or [school.establishment]
        for _ in range(size):
            establishment = school.establishment if school.phase == "primary" else rng.choice(feeders)
            allocation_year = new_year if school.phase == "primary" else new_year - 7 - rng.choice((0, 1, 2))
            on_roll[school.dfes_number].append(
                new_learner(
                    rng,
                    school,
                    pupil_id=ids.next_pupil(),
                    upn=upns.allocate(school.la_number, establishment, allocation_year),
                    year_group=entry,
                    registration_group=None,
                    academic_year=new_year,
                    admission_date=start,
                )
            )
        intake[school.dfes_number] = size

    joiner = new_learner(
        rng,
        secondary,
        pupil_id=ids.next_pupil(),
        upn=upns.allocate(secondary.la_number, secondary.establishment, new_year),
        year_group="9",
        registration_group=None,
        academic_year=new_year,
        admission_date=start,
    )
    on_roll[secondary_dfes].append(joiner)

    # The teacher who moves from the primary to the secondary.
    roles = dict(data.staff_roles)
    staff = list(data.staff)
    candidates = [
        i
        for i, st in enumerate(staff)
        if st.dfes_number == primary_dfes
        and st.leaving_date is None
        and st.staff_id not in broken_staff
        and roles.get(st.staff_id, "").startswith("teacher")
    ]
    if not candidates:
        raise ValueError(f"school {primary_dfes} has no teacher who could move")
    teacher_index = rng.choice(candidates)
    teacher = staff[teacher_index]
    staff[teacher_index] = replace(teacher, leaving_date=leaving)
    taken = {str(st.staff_code) for st in staff if st.dfes_number == secondary_dfes and st.staff_code}
    moved_teacher = replace(
        teacher,
        staff_id=ids.next_staff(),
        dfes_number=secondary_dfes,
        staff_code=staff_code_for(str(teacher.legal_forename), str(teacher.legal_surname), taken),
        start_date=start,
        leaving_date=None,
    )
    staff.append(moved_teacher)
    roles[moved_teacher.staff_id] = "teacher:Cy"

    # Registration groups and the new year's groups, school by school.
    learners = list(kept)
    groups = []
    members = []
    for school in data.schools:
        school_learners = _assign_registration(
            rng, school, on_roll[school.dfes_number], keep_letters=school.phase == "secondary"
        )
        current_staff = [
            st.staff_id for st in staff if st.dfes_number == school.dfes_number and st.leaving_date is None
        ]
        if not any(roles.get(sid, "").startswith("teacher") for sid in current_staff):
            roles.update(assign_roles(rng, school, current_staff))
        teachers = teachers_for(roles, current_staff)
        school_groups, school_members = build_groups(rng, school, new_year, school_learners, teachers, ids)
        learners.extend(school_learners)
        groups.extend(school_groups)
        members.extend(school_members)
    learners.sort(key=lambda lr: lr.pupil_id)

    new_data = replace(
        data,
        academic_year=new_year,
        learners=learners,
        staff=staff,
        groups=groups,
        members=members,
        broken=list(data.broken),
        staff_roles=roles,
    )
    summary = RolloverSummary(
        academic_year=new_year,
        leaving_date=leaving,
        y6_movers=tuple(movers),
        y6_leavers=y6_leavers,
        y13_leavers=y13_leavers,
        moved_up=moved_up,
        intake=intake,
        joiner_upn=str(joiner.upn),
        joiner_dfes=secondary_dfes,
        teacher_leaving_code=str(teacher.staff_code),
        teacher_joining_code=str(moved_teacher.staff_code),
        groups_before=len(data.groups),
        groups_after=len(groups),
        memberships_before=len(data.members),
        memberships_after=len(members),
    )
    return Rollover(new_data, summary)


# ---------------------------------------------------------------------------------------------- churn


def churn(data: MisData, share: float = 0.01, *, seed: int, today: dt.date | None = None) -> Churn:
    """One night's worth of ordinary MIS changes, touching about ``share`` of the learners and staff.

    Of the learners changed: 20 % change surname, 20 % move to another registration group of their year
    (with their form-based teaching groups), 20 % leave (leaving date ``today`` or a few days before, group
    memberships removed), 20 % join (new UPN, into the same groups as a classmate), 20 % move to another
    set of the same subject. Of the staff changed: half change surname, a quarter leave (their groups go to
    a colleague), a quarter join (with a start date and staff code, no groups yet). Broken and already-left
    records are never touched. ``today`` defaults to 15 November of the data's academic year."""
    rng = random.Random(f"churn-{seed}")  # noqa: S311 (synthetic data)
    today = today or dt.date(data.academic_year, 11, 15)
    label = academic_year_label(data.academic_year)
    ids = Ids.after(data)
    upns = UpnAllocator(lr.upn for lr in data.learners)
    broken_learners = _broken_ids(data, "mis_pupil")
    broken_staff = _broken_ids(data, "mis_staff")
    learners = list(data.learners)
    staff = list(data.staff)
    roles = dict(data.staff_roles)

    sound = [
        i
        for i, lr in enumerate(learners)
        if lr.leaving_date is None and lr.pupil_id not in broken_learners and lr.year_group in YEAR_OFFSET
    ]
    n = min(len(sound), max(1, round(share * len(sound)))) if sound else 0
    per_kind = [n // 5 + (1 if k < n % 5 else 0) for k in range(5)]
    picked = rng.sample(sound, sum(per_kind[:3]) + per_kind[4]) if n else []
    surname_idx = picked[: per_kind[0]]
    reg_idx = picked[per_kind[0] : per_kind[0] + per_kind[1]]
    leaver_idx = picked[per_kind[0] + per_kind[1] : sum(per_kind[:3])]
    set_idx = picked[sum(per_kind[:3]) :]

    group_by_pk = {g.group_pk: g for g in data.groups}
    group_by_code = {(g.dfes_number, g.group_code): g for g in data.groups}
    memberships: dict[int, list[GroupMember]] = defaultdict(list)
    for m in data.members:
        if m.pupil_id is not None:
            memberships[m.pupil_id].append(m)
    dropped: set[int] = set()  # member_pk
    added: list[GroupMember] = []

    for i in surname_idx:
        current = learners[i].legal_surname
        new_surname = current
        while new_surname == current:
            new_surname = str(_surname_picker(rng))
        learners[i] = replace(learners[i], legal_surname=new_surname)

    registration_moves = 0
    by_year_regs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for lr in learners:
        if lr.leaving_date is None and lr.registration_group and lr.year_group:
            by_year_regs[(lr.dfes_number, lr.year_group)].add(lr.registration_group)
    for i in reg_idx:
        lr = learners[i]
        others = sorted(by_year_regs[(lr.dfes_number, str(lr.year_group))] - {str(lr.registration_group)})
        if not others:
            continue
        new_reg = rng.choice(others)
        old_prefix = f"{label}-{lr.registration_group}"
        for m in memberships[lr.pupil_id]:
            code = group_by_pk[m.group_pk].group_code
            if code == old_prefix or code.startswith(old_prefix + "-"):
                target = group_by_code.get((lr.dfes_number, f"{label}-{new_reg}{code[len(old_prefix) :]}"))
                if target is not None:
                    dropped.add(m.member_pk)
                    added.append(replace(m, member_pk=ids.next_member(), group_pk=target.group_pk))
        learners[i] = replace(lr, registration_group=new_reg)
        registration_moves += 1

    for i in leaver_idx:
        lr = learners[i]
        learners[i] = replace(lr, leaving_date=today - dt.timedelta(days=rng.randrange(5)))
        dropped.update(m.member_pk for m in memberships[lr.pupil_id])

    set_moves = 0
    siblings: dict[tuple[str, str], list[int]] = defaultdict(list)  # (dfes, code without set number) -> pks
    for g in data.groups:
        stem = g.group_code.rstrip("0123456789")
        if g.group_type == "teaching" and stem != g.group_code:
            siblings[(g.dfes_number, stem)].append(g.group_pk)
    for i in set_idx:
        lr = learners[i]
        options = []
        for m in memberships[lr.pupil_id]:
            g = group_by_pk[m.group_pk]
            other_sets = [
                pk
                for pk in siblings.get((g.dfes_number, g.group_code.rstrip("0123456789")), [])
                if pk != g.group_pk
            ]
            if other_sets and m.member_pk not in dropped:
                options.append((m, other_sets))
        if not options:
            continue
        m, other_sets = options[rng.randrange(len(options))]
        dropped.add(m.member_pk)
        added.append(replace(m, member_pk=ids.next_member(), group_pk=rng.choice(other_sets)))
        set_moves += 1

    schools = {s.dfes_number: s for s in data.schools}
    joiner_upns: list[str] = []
    remaining = [i for i in sound if learners[i].leaving_date is None]
    for _ in range(per_kind[3]):
        if not remaining:
            break
        classmate = learners[rng.choice(remaining)]
        school = schools[classmate.dfes_number]
        joiner = new_learner(
            rng,
            school,
            pupil_id=ids.next_pupil(),
            upn=upns.allocate(school.la_number, school.establishment, data.academic_year),
            year_group=str(classmate.year_group),
            registration_group=classmate.registration_group,
            academic_year=data.academic_year,
            admission_date=today,
        )
        learners.append(joiner)
        joiner_upns.append(str(joiner.upn))
        for m in memberships[classmate.pupil_id]:
            if m.member_pk not in dropped:
                added.append(replace(m, member_pk=ids.next_member(), pupil_id=joiner.pupil_id))

    # Staff.
    sound_staff = [
        i for i, st in enumerate(staff) if st.leaving_date is None and st.staff_id not in broken_staff
    ]
    n_staff = min(len(sound_staff), max(1, round(share * len(sound_staff)))) if sound_staff else 0
    n_staff_leavers = n_staff // 4
    n_staff_joiners = n_staff // 4
    staff_picked = rng.sample(sound_staff, n_staff - n_staff_joiners)
    staff_leaver_idx = staff_picked[:n_staff_leavers]
    staff_surname_idx = staff_picked[n_staff_leavers:]
    for i in staff_surname_idx:
        st = staff[i]
        new_surname = st.legal_surname
        while new_surname == st.legal_surname:
            new_surname = str(_surname_picker(rng))
        staff[i] = replace(st, legal_surname=new_surname)
    leaving_staff_ids = set()
    for i in staff_leaver_idx:
        staff[i] = replace(staff[i], leaving_date=today)
        leaving_staff_ids.add(staff[i].staff_id)
    staying: dict[str, list[int]] = defaultdict(list)
    for st in staff:
        if st.leaving_date is None and roles.get(st.staff_id, "").startswith("teacher"):
            staying[st.dfes_number].append(st.staff_id)
    for m in data.members:
        if m.staff_id in leaving_staff_ids and m.member_pk not in dropped:
            dropped.add(m.member_pk)
            colleagues = staying.get(m.dfes_number)
            if colleagues:
                added.append(replace(m, member_pk=ids.next_member(), staff_id=rng.choice(colleagues)))
    school_list = sorted(schools)
    for _ in range(n_staff_joiners):
        school = schools[rng.choice(school_list)]
        taken = {str(st.staff_code) for st in staff if st.dfes_number == school.dfes_number and st.staff_code}
        joiner_staff = new_staff(rng, school, staff_id=ids.next_staff(), taken_codes=taken, start_date=today)
        staff.append(joiner_staff)
        roles[joiner_staff.staff_id] = "office"

    members = [m for m in data.members if m.member_pk not in dropped]
    members.extend(added)
    new_data = replace(data, learners=learners, staff=staff, members=members, staff_roles=roles)
    summary = ChurnSummary(
        today=today,
        surname_changes=len(surname_idx),
        registration_moves=registration_moves,
        leavers=len(leaver_idx),
        joiners=len(joiner_upns),
        set_moves=set_moves,
        staff_surname_changes=len(staff_surname_idx),
        staff_leavers=len(staff_leaver_idx),
        staff_joiners=n_staff_joiners,
        joiner_upns=tuple(joiner_upns),
    )
    return Churn(new_data, summary)


def upns_at(
    data: MisData, dfes_number: str, *, year_group: str | None = None, on_roll: bool = True
) -> set[str]:
    """The UPNs of a school's learners (optionally one year group; by default only those without a
    leaving date): handy for checking a rollover's outcome."""
    return {
        str(lr.upn)
        for lr in data.learners
        if lr.dfes_number == dfes_number
        and (year_group is None or lr.year_group == year_group)
        and (not on_roll or lr.leaving_date is None)
        and lr.upn
    }

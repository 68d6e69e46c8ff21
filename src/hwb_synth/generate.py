"""Synthetic MIS data for the reference schema (``profiles/reference.sql``), reproducible from a seed.

``generate(seed, schools)`` builds the rows of the four reference tables for the academic year that starts
in September of ``academic_year`` (2025 means 2025/26):

- learners (``mis_pupil``) with Welsh names (diacritics, hyphens, apostrophes, ``ap`` particles), a valid
  permanent UPN unique across the whole data set (LA number from the school's DfES number), a date of birth
  consistent with the year group, a registration group, an admission date and the never-sent columns
  (gender, home address, SEN status, ethnicity) filled;
- staff (``mis_staff``) with a staff code unique in the school, a title, a start date and an NI number;
- groups (``mis_group``): registration groups (``7W``, ``6A``, or a tree name for a small primary's
  mixed-age class) and teaching groups (secondary: ability sets, form-based subjects, key stage 4 options,
  sixth-form A levels; primary: ability groups in years 1-6), each with one teacher;
- memberships (``mis_group_member``): about 15 per secondary learner, 1-4 per primary learner.

Group codes carry the academic year (``2526-7W-Ha``) because an MIS builds a new year's groups at the end
of the summer term; they never contain ``/`` (the client refuses it in a group id).

Everything is drawn from one ``random.Random(seed)``: the same seed and school list give identical data.
On request (``broken=True`` or a count) some records are damaged in a declared way
(``MisData.broken``, with the client's held-back reason codes) so tests can check each is held back.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Final, Generic, Literal, TypeVar

from hwb_client.core.upn import CHECK_LETTERS, check_letter, make_upn
from hwb_synth import names

Phase = Literal["primary", "secondary"]
T = TypeVar("T")

PRIMARY_YEAR_GROUPS: Final = ("N1", "N2", "R", "1", "2", "3", "4", "5", "6")
SECONDARY_YEAR_GROUPS: Final = ("7", "8", "9", "10", "11", "12", "13")
#: School years after Reception: N1 is -2, N2 -1, R 0, then 1..13.
YEAR_OFFSET: Final[dict[str, int]] = {"N1": -2, "N2": -1, "R": 0, **{str(n): n for n in range(1, 14)}}
#: Relative cohort sizes: part-time nursery and sixth form are smaller.
_YEAR_WEIGHT: Final[dict[str, float]] = {"N1": 0.5, "N2": 0.9, "12": 0.45, "13": 0.4}
DEFAULT_ACADEMIC_YEAR: Final = 2025
_DFES = re.compile(r"^(6[67][0-9]|68[01])[0-9]{4}$")

ReasonCode = Literal[
    "upn_missing",
    "upn_bad_format",
    "upn_bad_check_letter",
    "upn_temporary",
    "upn_duplicate",
    "legal_forename_missing",
    "legal_surname_missing",
    "date_of_birth_missing",
    "date_of_birth_invalid",
    "date_of_birth_in_future",
    "year_group_missing",
    "year_group_invalid",
    "leaving_before_start",
    "text_too_long",
    "text_control_characters",
    "staff_code_missing",
    "staff_code_duplicate",
    "start_date_missing",
]


def year_groups(phase: Phase) -> tuple[str, ...]:
    """The year group codes a school of this phase teaches."""
    return PRIMARY_YEAR_GROUPS if phase == "primary" else SECONDARY_YEAR_GROUPS


def next_year_group(year_group: str) -> str | None:
    """The year group a learner moves up to in September (``"6"`` -> ``"7"``); ``None`` after Year 13."""
    order = PRIMARY_YEAR_GROUPS + SECONDARY_YEAR_GROUPS
    index = order.index(year_group)
    return order[index + 1] if index + 1 < len(order) else None


def birth_window(year_group: str, academic_year: int) -> tuple[dt.date, dt.date]:
    """First and last date of birth for a year group in the academic year starting in ``academic_year``.

    Year 1 in 2025/26 was born 1 September 2019 - 31 August 2020 (England and Wales cut-off)."""
    offset = YEAR_OFFSET[year_group]
    return dt.date(academic_year - 5 - offset, 9, 1), dt.date(academic_year - 4 - offset, 8, 31)


def academic_year_label(academic_year: int) -> str:
    """``2025`` -> ``"2526"``: the prefix of group codes built for that year."""
    return f"{academic_year % 100:02d}{(academic_year + 1) % 100:02d}"


def first_day(academic_year: int) -> dt.date:
    """The day learners admitted for the start of an academic year are recorded as admitted."""
    return dt.date(academic_year, 9, 1)


# ---------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class SchoolSpec:
    """A school to generate: DfES number (Welsh LA 660-681 + 4 digits), name, phase and head counts."""

    dfes_number: str
    name: str
    phase: Phase
    learners: int
    staff: int

    def __post_init__(self) -> None:
        if not _DFES.match(self.dfes_number):
            raise ValueError(f"not a Welsh DfES number (LA 660-681 + 4 digits): {self.dfes_number!r}")
        if self.phase not in ("primary", "secondary"):
            raise ValueError(f"phase must be 'primary' or 'secondary', not {self.phase!r}")
        if self.learners < 0 or self.staff < 0:
            raise ValueError("learner and staff counts cannot be negative")

    @property
    def la_number(self) -> int:
        return int(self.dfes_number[:3])

    @property
    def establishment(self) -> int:
        return int(self.dfes_number[3:])


@dataclass(frozen=True, slots=True)
class Learner:
    """A row of ``mis_pupil`` (the fields in column order)."""

    pupil_id: int
    dfes_number: str
    upn: str | None
    legal_forename: str | None
    legal_surname: str | None
    preferred_forename: str | None
    date_of_birth: dt.date | None
    gender: str | None
    year_group: str | None
    registration_group: str | None
    admission_date: dt.date | None
    leaving_date: dt.date | None
    home_address: str | None
    sen_status: str | None
    ethnicity: str | None


@dataclass(frozen=True, slots=True)
class Staff:
    """A row of ``mis_staff``."""

    staff_id: int
    dfes_number: str
    staff_code: str | None
    title: str | None
    legal_forename: str | None
    legal_surname: str | None
    start_date: dt.date | None
    leaving_date: dt.date | None
    home_address: str | None
    ni_number: str | None


@dataclass(frozen=True, slots=True)
class Group:
    """A row of ``mis_group``; ``group_type`` is ``registration`` or ``teaching``."""

    group_pk: int
    dfes_number: str
    group_code: str
    name: str | None
    group_type: str
    year_group: str | None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A row of ``mis_group_member``: exactly one of ``pupil_id`` and ``staff_id`` is set."""

    member_pk: int
    dfes_number: str
    group_pk: int
    pupil_id: int | None
    staff_id: int | None


@dataclass(frozen=True, slots=True)
class BrokenRecord:
    """A record damaged on purpose: the client must hold it back with ``expected_reason``.

    ``table`` is ``mis_pupil`` or ``mis_staff``; ``row_id`` is the ``pupil_id`` or ``staff_id``. A duplicate
    (UPN or staff code) is declared on both rows that share the value."""

    table: str
    row_id: int
    dfes_number: str
    expected_reason: ReasonCode
    detail: str


#: Table name -> (row class, column names in schema order).
TABLES: Final[dict[str, tuple[type, tuple[str, ...]]]] = {
    "mis_pupil": (Learner, tuple(f.name for f in fields(Learner))),
    "mis_staff": (Staff, tuple(f.name for f in fields(Staff))),
    "mis_group": (Group, tuple(f.name for f in fields(Group))),
    "mis_group_member": (GroupMember, tuple(f.name for f in fields(GroupMember))),
}


@dataclass(frozen=True)
class MisData:
    """The content of a reference MIS database (one LA extract: many schools).

    Treat it as immutable: ``mutate`` functions return a new ``MisData`` and never change the lists of the
    one they are given. ``broken`` declares the records damaged on purpose."""

    academic_year: int
    schools: tuple[SchoolSpec, ...]
    learners: list[Learner]
    staff: list[Staff]
    groups: list[Group]
    members: list[GroupMember]
    broken: list[BrokenRecord] = field(default_factory=list)
    #: What each staff member does (``teacher``, ``teacher:<subject>``, ``assistant``, ``office``): not an
    #: MIS column, kept so that a rollover can regroup a school.
    staff_roles: dict[int, str] = field(default_factory=dict)

    def rows(self, table: str) -> Sequence[Learner | Staff | Group | GroupMember]:
        """The rows of one reference table."""
        tables: dict[str, Sequence[Learner | Staff | Group | GroupMember]] = {
            "mis_pupil": self.learners,
            "mis_staff": self.staff,
            "mis_group": self.groups,
            "mis_group_member": self.members,
        }
        return tables[table]

    def tuples(self, table: str, dfes_numbers: Iterable[str] | None = None) -> Iterator[tuple[object, ...]]:
        """The rows of ``table`` as tuples in column order, optionally only for some schools."""
        getter = attrgetter(*TABLES[table][1])
        rows: Iterable[object] = self.rows(table)
        if dfes_numbers is not None:
            wanted = set(dfes_numbers)
            rows = (row for row in rows if row.dfes_number in wanted)  # type: ignore[attr-defined]
        return map(getter, rows)

    def counts(self) -> dict[str, int]:
        """Row counts per kind, for printing and checks (no personal data)."""
        return {
            "schools": len(self.schools),
            "learners": len(self.learners),
            "staff": len(self.staff),
            "groups": len(self.groups),
            "memberships": len(self.members),
            "broken": len(self.broken),
        }

    def school(self, dfes_number: str) -> SchoolSpec:
        for school in self.schools:
            if school.dfes_number == dfes_number:
                return school
        raise KeyError(dfes_number)

    def learners_at(self, dfes_number: str) -> list[Learner]:
        return [row for row in self.learners if row.dfes_number == dfes_number]

    def staff_at(self, dfes_number: str) -> list[Staff]:
        return [row for row in self.staff if row.dfes_number == dfes_number]

    def groups_at(self, dfes_number: str) -> list[Group]:
        return [row for row in self.groups if row.dfes_number == dfes_number]


# ---------------------------------------------------------------------------------------------- helpers


class _Picker(Generic[T]):
    """Weighted choice by bisecting cumulative weights (one ``rng.random()`` per pick)."""

    def __init__(self, values: Sequence[T], weights: Sequence[float]) -> None:
        self.values = list(values)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        return self.values[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


_SURNAME = _Picker([s for s, _ in names.SURNAMES], [w for _, w in names.SURNAMES])
_GIRL = _Picker(names.GIRLS, [w for _, w, _ in names.GIRLS])
_BOY = _Picker(names.BOYS, [w for _, w, _ in names.BOYS])
_ETHNICITY = _Picker([c for c, _ in names.ETHNICITIES], [w for _, w in names.ETHNICITIES])
_SEN = _Picker([c for c, _ in names.SEN_STATUSES], [w for _, w in names.SEN_STATUSES])
_NI_LETTERS = "ABCEGHJKLMNPRSTWXYZ"


def ascii_letters(text: str) -> str:
    """Upper-case ASCII letters of a name (``Llŷr ap Siôn`` -> ``LLYRAPSION``), for staff codes."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalpha()).upper()


def place_of(school_name: str) -> str:
    """The place in a school's name (``Ysgol Gynradd Llanfair`` -> ``Llanfair``), for home addresses."""
    for style in names.SECONDARY_STYLES + names.PRIMARY_STYLES:
        prefix, _, suffix = style.partition("{}")
        if school_name.startswith(prefix) and school_name.endswith(suffix):
            return school_name[len(prefix) : len(school_name) - len(suffix)] or school_name
    return school_name


def home_address(rng: random.Random, school: SchoolSpec) -> str:
    """A plausible Welsh home address near the school (never sent; it must stay in the MIS)."""
    area = names.POSTCODE_AREA.get(school.la_number, "CF")
    street = f"{rng.choice(names.STREET_STYLES)} {rng.choice(names.STREET_NAMES)}"
    postcode = (
        f"{area}{rng.randint(1, 99)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    )
    return f"{rng.randint(1, 120)} {street}, {place_of(school.name)}, {postcode}"


def _random_date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _split_counts(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder; deterministic)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class UpnAllocator:
    """Hands out permanent UPNs that are unique in the data set (and never one in ``used``)."""

    def __init__(self, used: Iterable[str | None] = ()) -> None:
        self._used = {upn for upn in used if upn}
        self._next: dict[tuple[int, int, int], int] = {}

    def allocate(self, la_number: int, establishment: int, year: int) -> str:
        """A new UPN allocated by ``establishment`` in ``year`` (the previous years if that one is full)."""
        for allocation_year in range(year, year - 30, -1):
            key = (la_number, establishment, allocation_year % 100)
            serial = self._next.get(key, 1)
            while serial < 1000:
                upn = make_upn(la_number, establishment, allocation_year, serial)
                serial += 1
                if upn not in self._used:
                    self._next[key] = serial
                    self._used.add(upn)
                    return upn
            self._next[key] = serial
        raise ValueError(f"no UPN serials left for establishment {la_number}{establishment:04d}")

    def __contains__(self, upn: str) -> bool:
        return upn in self._used


@dataclass
class Ids:
    """Next free primary keys of the four tables."""

    pupil: int = 1
    staff: int = 1
    group: int = 1
    member: int = 1

    @classmethod
    def after(cls, data: MisData) -> Ids:
        """The ids that follow the largest ones used in ``data``."""
        return cls(
            pupil=max((r.pupil_id for r in data.learners), default=0) + 1,
            staff=max((r.staff_id for r in data.staff), default=0) + 1,
            group=max((r.group_pk for r in data.groups), default=0) + 1,
            member=max((r.member_pk for r in data.members), default=0) + 1,
        )

    def next_pupil(self) -> int:
        self.pupil += 1
        return self.pupil - 1

    def next_staff(self) -> int:
        self.staff += 1
        return self.staff - 1

    def next_group(self) -> int:
        self.group += 1
        return self.group - 1

    def next_member(self) -> int:
        self.member += 1
        return self.member - 1


# ---------------------------------------------------------------------------------------------- people


def new_learner(
    rng: random.Random,
    school: SchoolSpec,
    *,
    pupil_id: int,
    upn: str,
    year_group: str,
    registration_group: str | None,
    academic_year: int,
    admission_date: dt.date,
) -> Learner:
    """A learner in ``year_group`` with a date of birth that fits it in ``academic_year``."""
    if rng.random() < 0.5:
        forename, _, nickname = _GIRL(rng)
        gender = "F"
    else:
        forename, _, nickname = _BOY(rng)
        gender = "M"
    surname = str(_SURNAME(rng))
    if rng.random() < 0.04:  # double-barrelled
        other = str(_SURNAME(rng))
        if other != surname and " " not in other and "-" not in other + surname:
            surname = f"{surname}-{other}"
    first, last = birth_window(year_group, academic_year)
    preferred = nickname if nickname is not None and rng.random() < 0.4 else forename
    return Learner(
        pupil_id=pupil_id,
        dfes_number=school.dfes_number,
        upn=upn,
        legal_forename=forename,
        legal_surname=surname,
        preferred_forename=preferred,
        date_of_birth=_random_date(rng, first, last),
        gender=gender,
        year_group=year_group,
        registration_group=registration_group,
        admission_date=admission_date,
        leaving_date=None,
        home_address=home_address(rng, school),
        sen_status=str(_SEN(rng)),
        ethnicity=str(_ETHNICITY(rng)),
    )


def staff_code_for(forename: str, surname: str, taken: set[str]) -> str:
    """A SIMS-style staff code (``DJO`` for Dafydd Jones), numbered when taken; adds it to ``taken``."""
    letters = ascii_letters(forename)[:1] + ascii_letters(surname.removeprefix("ap "))[:2]
    base = letters or "STF"
    code = base
    for n in itertools.count(2):
        if code not in taken:
            break
        code = f"{base}{n}"
    taken.add(code)
    return code


def new_staff(
    rng: random.Random,
    school: SchoolSpec,
    *,
    staff_id: int,
    taken_codes: set[str],
    start_date: dt.date,
) -> Staff:
    """A staff member with a staff code unique among ``taken_codes`` and the given start date."""
    if rng.random() < 0.7:
        forename = rng.choice(names.ADULT_WOMEN)
        title = rng.choice(("Mrs", "Mrs", "Miss", "Ms", "Dr"))
    else:
        forename = rng.choice(names.ADULT_MEN)
        title = rng.choice(("Mr", "Mr", "Mr", "Dr"))
    if rng.random() < 0.01:
        title = "Mx"
    surname = str(_SURNAME(rng))
    prefix = rng.choice(_NI_LETTERS) + rng.choice(_NI_LETTERS)
    ni_number = f"{prefix}{rng.randrange(1_000_000):06d}{rng.choice('ABCD')}"
    return Staff(
        staff_id=staff_id,
        dfes_number=school.dfes_number,
        staff_code=staff_code_for(forename, surname, taken_codes),
        title=title,
        legal_forename=forename,
        legal_surname=surname,
        start_date=start_date,
        leaving_date=None,
        home_address=home_address(rng, school),
        ni_number=ni_number,
    )


def _staff_start_date(rng: random.Random, academic_year: int) -> dt.date:
    years_ago = min(int(rng.expovariate(1 / 7)), 30)
    if rng.random() < 0.8:
        return dt.date(academic_year - years_ago, 9, 1)
    return _random_date(
        rng, dt.date(academic_year - years_ago - 1, 9, 2), dt.date(academic_year - years_ago, 8, 31)
    )


#: Relative number of secondary teachers per subject.
_SUBJECT_STAFF_WEIGHT: Final[dict[str, int]] = {"Cy": 4, "Sa": 4, "Ma": 4, "Gw": 5, "AC": 2, "AG": 1, "Bc": 1}


@dataclass
class Teachers:
    """Who can teach what in one school, and how many groups each already has (to spread the load)."""

    by_subject: dict[str, list[int]] = field(default_factory=dict)
    teachers: list[int] = field(default_factory=list)
    assistants: list[int] = field(default_factory=list)
    load: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def pick(self, subject: str | None) -> int | None:
        """The least-loaded teacher of ``subject`` (any teacher if nobody teaches it); None if no staff."""
        pool = self.by_subject.get(subject or "", []) or self.teachers
        if not pool:
            return None
        chosen = min(pool, key=lambda sid: (self.load[sid], sid))
        self.load[chosen] += 1
        return chosen

    def pick_assistant(self) -> int | None:
        if not self.assistants:
            return None
        chosen = min(self.assistants, key=lambda sid: (self.load[sid], sid))
        self.load[chosen] += 1
        return chosen


def assign_roles(rng: random.Random, school: SchoolSpec, staff_ids: Sequence[int]) -> dict[int, str]:
    """Decide what each staff member does: ``teacher`` (primary), ``teacher:<subject>`` (secondary),
    ``assistant`` (primary teaching assistant) or ``office``. About 60 % of a secondary's staff teach,
    45 % of a primary's, and 35 % of a primary's assist in classes."""
    roles: dict[int, str] = {}
    share = 0.6 if school.phase == "secondary" else 0.45
    n_teachers = max(1, round(len(staff_ids) * share)) if staff_ids else 0
    n_assistants = round(len(staff_ids) * 0.35) if school.phase == "primary" else 0
    subjects = sorted(names.SUBJECTS)
    weights = [_SUBJECT_STAFF_WEIGHT.get(s, 1) for s in subjects]
    for i, staff_id in enumerate(staff_ids):
        if i < n_teachers:
            if school.phase == "secondary":
                subject = subjects[i] if i < len(subjects) else rng.choices(subjects, weights)[0]
                roles[staff_id] = f"teacher:{subject}"
            else:
                roles[staff_id] = "teacher"
        elif i < n_teachers + n_assistants:
            roles[staff_id] = "assistant"
        else:
            roles[staff_id] = "office"
    return roles


def teachers_for(roles: dict[int, str], staff_ids: Iterable[int]) -> Teachers:
    """The ``Teachers`` of a school from the roles of its current staff (``staff_ids``)."""
    teachers = Teachers()
    for staff_id in sorted(staff_ids):
        role = roles.get(staff_id, "office")
        if role.startswith("teacher"):
            teachers.teachers.append(staff_id)
            subject = role.partition(":")[2]
            if subject:
                teachers.by_subject.setdefault(subject, []).append(staff_id)
        elif role == "assistant":
            teachers.assistants.append(staff_id)
    return teachers


# ---------------------------------------------------------------------------------------------- groups


def registration_plan(school: SchoolSpec, counts: dict[str, int]) -> dict[str, list[str]]:
    """Registration group names per year group, for the given number of learners per year group.

    A secondary has forms of about 27 (``7W``, ``7Y``: a fixed letter order per school, so a form keeps
    its letter from year to year); a primary has classes of about 28 (``6A``, ``6B``), or, when it is
    small (fewer than 15 learners a year), mixed-age classes named after trees (``Derw``)."""
    plan: dict[str, list[str]] = {}
    years = [yg for yg in year_groups(school.phase) if counts.get(yg, 0) > 0]
    if school.phase == "secondary":
        school_rng = random.Random(int(school.dfes_number))  # noqa: S311 (synthetic data)
        letters = school_rng.sample(names.FORM_LETTERS, len(names.FORM_LETTERS))
        for yg in years:
            k = min(len(letters), max(1, round(counts[yg] / 27)))
            plan[yg] = [f"{yg}{letter}" for letter in letters[:k]]
        return plan
    total = sum(counts.get(yg, 0) for yg in PRIMARY_YEAR_GROUPS)
    if total / len(PRIMARY_YEAR_GROUPS) < 15:
        school_rng = random.Random(int(school.dfes_number))  # noqa: S311 (synthetic data)
        trees = iter(school_rng.sample(names.CLASS_TREES, len(names.CLASS_TREES)))
        for bucket in (("N1", "N2"), ("R", "1"), ("2", "3"), ("4", "5", "6")):
            size = sum(counts.get(yg, 0) for yg in bucket)
            if size == 0:
                continue
            k = max(1, round(size / 28))
            bucket_names = [next(trees, f"Dosbarth {len(plan) + i + 1}") for i in range(k)]
            for yg in bucket:
                if counts.get(yg, 0):
                    plan[yg] = bucket_names
        return plan
    for yg in years:
        k = max(1, round(counts[yg] / 28))
        plan[yg] = [f"{yg}{letter}" for letter in "ABCDEFGH"[:k]]
    return plan


def _chunks(items: Sequence[Learner], size: int) -> list[Sequence[Learner]]:
    """Split into ``ceil(len/size)`` nearly equal consecutive parts."""
    if not items:
        return []
    k = max(1, math.ceil(len(items) / size))
    bounds = [round(i * len(items) / k) for i in range(k + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(k)]


class _GroupBuilder:
    """Collects one school's groups and memberships, giving each group a teacher."""

    def __init__(
        self, rng: random.Random, school: SchoolSpec, academic_year: int, teachers: Teachers, ids: Ids
    ) -> None:
        self.rng = rng
        self.school = school
        self.label = academic_year_label(academic_year)
        self.teachers = teachers
        self.ids = ids
        self.groups: list[Group] = []
        self.members: list[GroupMember] = []

    def add(
        self,
        code: str,
        name: str,
        group_type: str,
        year_group: str | None,
        who: Sequence[Learner],
        subject: str | None,
    ) -> None:
        dfes = self.school.dfes_number
        group_pk = self.ids.next_group()
        self.groups.append(Group(group_pk, dfes, f"{self.label}-{code}", name, group_type, year_group))
        next_member = self.ids.next_member
        self.members.extend(GroupMember(next_member(), dfes, group_pk, lr.pupil_id, None) for lr in who)
        teacher = self.teachers.pick(subject)
        if teacher is not None:
            self.members.append(GroupMember(next_member(), dfes, group_pk, None, teacher))
        if self.school.phase == "primary" and group_type == "registration":
            assistant = self.teachers.pick_assistant()
            if assistant is not None:
                self.members.append(GroupMember(next_member(), dfes, group_pk, None, assistant))

    def sets(self, year_group: str, cohort: Sequence[Learner], subjects: Iterable[str], size: int) -> None:
        """Ability sets across the year group (one shared ability, a little noise per subject)."""
        ability = {lr.pupil_id: self.rng.random() for lr in cohort}
        for subject in subjects:
            noise = {lr.pupil_id: self.rng.random() * 0.3 for lr in cohort}
            ranked = sorted(cohort, key=lambda lr: ability[lr.pupil_id] + noise[lr.pupil_id])
            for i, part in enumerate(_chunks(ranked, size), start=1):
                name = f"{year_group} {names.SUBJECTS[subject]} {i}"
                self.add(f"{year_group}-{subject}{i}", name, "teaching", year_group, part, subject)

    def form_subjects(self, year_group: str, cohort: Sequence[Learner], subjects: Iterable[str]) -> None:
        """Subjects taught to each registration (form) group as it is."""
        forms: dict[str, list[Learner]] = defaultdict(list)
        for lr in cohort:
            forms[lr.registration_group or year_group].append(lr)
        for form in sorted(forms):
            for subject in subjects:
                name = f"{form} {names.SUBJECTS[subject]}"
                self.add(f"{form}-{subject}", name, "teaching", year_group, forms[form], subject)

    def options(
        self, year_group: str, cohort: Sequence[Learner], choices: Sequence[str], count: int, size: int
    ) -> None:
        """Each learner chooses ``count`` of ``choices``; each subject's takers are split into groups."""
        takers: dict[str, list[Learner]] = defaultdict(list)
        for lr in cohort:
            for subject in self.rng.sample(choices, count):
                takers[subject].append(lr)
        for subject in choices:
            shuffled = takers[subject][:]
            self.rng.shuffle(shuffled)
            for i, part in enumerate(_chunks(shuffled, size), start=1):
                name = f"{year_group} {names.SUBJECTS[subject]} {i}"
                self.add(f"{year_group}-{subject}{i}", name, "teaching", year_group, part, subject)


def build_groups(
    rng: random.Random,
    school: SchoolSpec,
    academic_year: int,
    learners: Sequence[Learner],
    teachers: Teachers,
    ids: Ids,
) -> tuple[list[Group], list[GroupMember]]:
    """Registration and teaching groups for one school's current learners, with one teacher each.

    ``learners`` must already carry their year and registration groups; learners with a leaving date or
    no year group are left out. Secondary: key stage 3 sets in Welsh, English, maths and science plus
    eleven subjects by form; key stage 4 seven sets, three subjects by form and four options; sixth form
    three A levels and the Welsh Baccalaureate. Primary: the class (a registration group, with a teaching
    assistant when there is one) and, in years 1-6, three ability groups."""
    builder = _GroupBuilder(rng, school, academic_year, teachers, ids)
    on_roll = [lr for lr in learners if lr.leaving_date is None and lr.year_group in YEAR_OFFSET]
    by_registration: dict[str, list[Learner]] = defaultdict(list)
    by_year: dict[str, list[Learner]] = defaultdict(list)
    for lr in on_roll:
        by_year[str(lr.year_group)].append(lr)
        if lr.registration_group:
            by_registration[lr.registration_group].append(lr)

    def registration_order(reg: str) -> tuple[int, str]:
        return min(YEAR_OFFSET[str(lr.year_group)] for lr in by_registration[reg]), reg

    for reg in sorted(by_registration, key=registration_order):
        who = by_registration[reg]
        years = {lr.year_group for lr in who}
        name = reg if school.phase == "secondary" else f"Dosbarth {reg}"
        builder.add(reg, name, "registration", years.pop() if len(years) == 1 else None, who, None)

    for yg in sorted(by_year, key=YEAR_OFFSET.__getitem__):
        cohort = sorted(by_year[yg], key=attrgetter("pupil_id"))
        offset = YEAR_OFFSET[yg]
        if school.phase == "primary":
            if offset >= 1 and len(cohort) >= 6:
                builder.sets(yg, cohort, names.PRIMARY_GROUP_SUBJECTS, 12)
        elif offset <= 9:
            builder.sets(yg, cohort, names.KS3_SETS, 28)
            builder.form_subjects(yg, cohort, names.KS3_FORM_SUBJECTS)
        elif offset <= 11:
            builder.sets(yg, cohort, names.KS4_SETS, 26)
            builder.form_subjects(yg, cohort, names.KS4_FORM_SUBJECTS)
            builder.options(yg, cohort, names.KS4_OPTIONS, names.KS4_OPTION_COUNT, 24)
        else:
            builder.form_subjects(yg, cohort, ("Bc",))
            builder.options(yg, cohort, names.SIXTH_FORM_SUBJECTS, names.SIXTH_FORM_CHOICES, 16)
    return builder.groups, builder.members


# ---------------------------------------------------------------------------------------------- generate


def _school_learners(
    rng: random.Random,
    school: SchoolSpec,
    academic_year: int,
    ids: Ids,
    upns: UpnAllocator,
    feeder_establishments: Sequence[int],
) -> list[Learner]:
    years = year_groups(school.phase)
    counts = dict(
        zip(years, _split_counts(school.learners, [_YEAR_WEIGHT.get(y, 1.0) for y in years]), strict=True)
    )
    plan = registration_plan(school, counts)
    entry_offset = YEAR_OFFSET[years[0]]
    learners: list[Learner] = []
    for yg in years:
        offset = YEAR_OFFSET[yg]
        normal_admission = first_day(academic_year - (offset - entry_offset))
        regs = plan.get(yg, [])
        for i in range(counts[yg]):
            mover = rng.random() < 0.12
            admission = (
                _random_date(rng, normal_admission, first_day(academic_year)) if mover else normal_admission
            )
            # The UPN is allocated by the first school, in the year the learner started nursery/reception.
            start_year = min(academic_year, academic_year - offset - 2 + rng.choice((0, 0, 0, 1, 2)))
            if school.phase == "primary" and not mover:
                establishment = school.establishment
            else:
                establishment = (
                    rng.choice(feeder_establishments) if feeder_establishments else school.establishment
                )
            learners.append(
                new_learner(
                    rng,
                    school,
                    pupil_id=ids.next_pupil(),
                    upn=upns.allocate(school.la_number, establishment, start_year),
                    year_group=yg,
                    registration_group=regs[i % len(regs)] if regs else None,
                    academic_year=academic_year,
                    admission_date=admission,
                )
            )
    return learners


def generate(
    seed: int,
    schools: Sequence[SchoolSpec],
    *,
    academic_year: int = DEFAULT_ACADEMIC_YEAR,
    broken: bool | int = False,
) -> MisData:
    """Generate the reference MIS content for ``schools`` in the academic year starting in ``academic_year``.

    Deterministic: the same ``seed``, school list and options give identical rows (ids included).
    ``broken=True`` damages one record of each kind in ``BROKEN_KINDS``; an integer damages that many,
    cycling through the kinds; each is declared in ``MisData.broken``."""
    if len({s.dfes_number for s in schools}) != len(schools):
        raise ValueError("each school's DfES number must be unique")
    rng = random.Random(seed)  # noqa: S311 (synthetic data: reproducible on purpose)
    ids = Ids()
    upns = UpnAllocator()
    primaries_by_la: dict[int, list[int]] = defaultdict(list)
    for school in schools:
        if school.phase == "primary":
            primaries_by_la[school.la_number].append(school.establishment)
    learners: list[Learner] = []
    staff: list[Staff] = []
    groups: list[Group] = []
    members: list[GroupMember] = []
    staff_roles: dict[int, str] = {}
    for school in schools:
        feeders = primaries_by_la.get(school.la_number, [])
        school_learners = _school_learners(rng, school, academic_year, ids, upns, feeders)
        taken: set[str] = set()
        school_staff = [
            new_staff(
                rng,
                school,
                staff_id=ids.next_staff(),
                taken_codes=taken,
                start_date=_staff_start_date(rng, academic_year),
            )
            for _ in range(school.staff)
        ]
        school_roles = assign_roles(rng, school, [s.staff_id for s in school_staff])
        staff_roles.update(school_roles)
        teachers = teachers_for(school_roles, school_roles)
        school_groups, school_members = build_groups(
            rng, school, academic_year, school_learners, teachers, ids
        )
        learners.extend(school_learners)
        staff.extend(school_staff)
        groups.extend(school_groups)
        members.extend(school_members)
    data = MisData(academic_year, tuple(schools), learners, staff, groups, members, [], staff_roles)
    count = len(BROKEN_KINDS) if broken is True else int(broken)
    if count:
        data = break_records(data, count, seed=seed)
    return data


# ------------------------------------------------------------------------------------------ broken records

#: The kinds of damage, in the order they are applied: (table, reason). ``broken=True`` applies each once.
BROKEN_KINDS: Final[tuple[tuple[str, ReasonCode], ...]] = (
    ("mis_pupil", "upn_temporary"),
    ("mis_staff", "start_date_missing"),
    ("mis_pupil", "upn_bad_check_letter"),
    ("mis_staff", "staff_code_missing"),
    ("mis_pupil", "upn_duplicate"),
    ("mis_staff", "staff_code_duplicate"),
    ("mis_pupil", "date_of_birth_missing"),
    ("mis_staff", "leaving_before_start"),
    ("mis_pupil", "date_of_birth_in_future"),
    ("mis_pupil", "year_group_missing"),
    ("mis_pupil", "text_control_characters"),
    ("mis_pupil", "upn_missing"),
    ("mis_pupil", "upn_bad_format"),
    ("mis_pupil", "legal_forename_missing"),
    ("mis_pupil", "legal_surname_missing"),
    ("mis_pupil", "year_group_invalid"),
    ("mis_pupil", "text_too_long"),
)


def _break_learner(rng: random.Random, row: Learner, reason: ReasonCode) -> tuple[Learner, str]:
    upn = row.upn or ""
    if reason == "upn_temporary":
        body = upn[1:12] + rng.choice("ABCDEFGHJKLMNPQRTUVWXYZ")
        return replace(
            row, upn=check_letter(body) + body
        ), "temporary UPN (ends in a letter), valid check letter"
    if reason == "upn_bad_check_letter":
        wrong = CHECK_LETTERS[(CHECK_LETTERS.index(upn[0]) + 1 + rng.randrange(21)) % 23]
        return replace(row, upn=wrong + upn[1:]), "check letter changed"
    if reason == "upn_missing":
        return replace(row, upn=None), "UPN is NULL"
    if reason == "upn_bad_format":
        return replace(row, upn=upn[:5] + upn[6:]), "one digit dropped (12 characters)"
    if reason == "date_of_birth_missing":
        return replace(row, date_of_birth=None), "date of birth is NULL"
    if reason == "date_of_birth_in_future":
        dob = row.date_of_birth or dt.date(2015, 1, 1)
        return replace(
            row, date_of_birth=dob.replace(year=dob.year + 100, day=min(dob.day, 28))
        ), "century typo"
    if reason == "year_group_missing":
        return replace(row, year_group=None), "year group is NULL"
    if reason == "year_group_invalid":
        return replace(row, year_group=f"Y{row.year_group}"), "year group written as 'Y<n>'"
    if reason == "text_control_characters":
        surname = row.legal_surname or "Jones"
        return replace(
            row, legal_surname=surname[:2] + "\x0b" + surname[2:]
        ), "vertical tab in the legal surname"
    if reason == "legal_forename_missing":
        return replace(row, legal_forename=None, preferred_forename=None), "legal forename is NULL"
    if reason == "legal_surname_missing":
        return replace(row, legal_surname=""), "legal surname is an empty string"
    if reason == "text_too_long":
        parts = [row.legal_forename or "Elen"]
        while len(" ".join(parts)) <= 110:
            parts.append(rng.choice(names.GIRLS if row.gender == "F" else names.BOYS)[0])
        return replace(row, legal_forename=" ".join(parts)), "every middle name in the legal forename (> 100)"
    raise ValueError(reason)


def _break_staff(rng: random.Random, row: Staff, reason: ReasonCode) -> tuple[Staff, str]:
    if reason == "start_date_missing":
        return replace(row, start_date=None), "start date is NULL"
    if reason == "staff_code_missing":
        return replace(row, staff_code=None), "staff code is NULL"
    if reason == "leaving_before_start":
        start = row.start_date or dt.date(2020, 9, 1)
        return replace(
            row, leaving_date=start - dt.timedelta(days=rng.randint(1, 400))
        ), "leaving date before start"
    raise ValueError(reason)


def break_records(data: MisData, count: int, *, seed: int) -> MisData:
    """A copy of ``data`` with ``count`` more records damaged (cycling through ``BROKEN_KINDS``).

    Each damaged record has exactly one problem; duplicates pair two otherwise sound records of the same
    school, and both are declared."""
    rng = random.Random(f"broken-{seed}")  # noqa: S311 (synthetic data)
    learners = list(data.learners)
    staff = list(data.staff)
    broken = list(data.broken)
    touched = {(b.table, b.row_id) for b in broken}
    learner_index: dict[str, list[int]] = defaultdict(list)
    for i, lr in enumerate(learners):
        if lr.leaving_date is None and ("mis_pupil", lr.pupil_id) not in touched:
            learner_index[lr.dfes_number].append(i)
    staff_index: dict[str, list[int]] = defaultdict(list)
    for i, st in enumerate(staff):
        if st.leaving_date is None and ("mis_staff", st.staff_id) not in touched:
            staff_index[st.dfes_number].append(i)

    def take(index: dict[str, list[int]], need: int) -> tuple[str, list[int]]:
        candidates = sorted(d for d, rows in index.items() if len(rows) >= need + 1)
        if not candidates:
            raise ValueError("not enough sound records left to break")
        dfes = rng.choice(candidates)
        picked = rng.sample(index[dfes], need)
        for i in picked:
            index[dfes].remove(i)
        return dfes, picked

    for n in range(count):
        table, reason = BROKEN_KINDS[n % len(BROKEN_KINDS)]
        if table == "mis_pupil":
            if reason == "upn_duplicate":
                dfes, (victim, partner) = take(learner_index, 2)
                learners[victim] = replace(learners[victim], upn=learners[partner].upn)
                for i in (victim, partner):
                    broken.append(
                        BrokenRecord(table, learners[i].pupil_id, dfes, reason, "two learners share a UPN")
                    )
                continue
            dfes, (victim,) = take(learner_index, 1)
            learners[victim], detail = _break_learner(rng, learners[victim], reason)
            broken.append(BrokenRecord(table, learners[victim].pupil_id, dfes, reason, detail))
        else:
            if reason == "staff_code_duplicate":
                dfes, (victim, partner) = take(staff_index, 2)
                staff[victim] = replace(staff[victim], staff_code=staff[partner].staff_code)
                for i in (victim, partner):
                    broken.append(
                        BrokenRecord(table, staff[i].staff_id, dfes, reason, "two staff share a code")
                    )
                continue
            dfes, (victim,) = take(staff_index, 1)
            staff[victim], detail = _break_staff(rng, staff[victim], reason)
            broken.append(BrokenRecord(table, staff[victim].staff_id, dfes, reason, detail))
    return replace(data, learners=learners, staff=staff, broken=broken)

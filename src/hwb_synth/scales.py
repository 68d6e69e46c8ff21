"""School lists for the standard scales: the demo pair, one local authority, all of Wales.

Proportions follow Wales roughly: about 85 % of schools are primary, a primary teaches nine year groups
(N1-6, nursery part-time) and a secondary seven (7-13, a smaller sixth form), so about 58 % of learners are
in primaries; staff (teachers, assistants, office) are about one per 7.5 learners, more in primaries.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final, Literal

from hwb_synth import names
from hwb_synth.generate import SchoolSpec, _split_counts

Scale = Literal["demo", "small", "la", "national"]

#: The demo's two schools (Gwynedd, LA 661): Year 6 of the primary moves to the secondary.
DEMO_PRIMARY: Final = SchoolSpec("6612001", "Ysgol Gynradd Llanfair", "primary", 150, 18)
DEMO_SECONDARY: Final = SchoolSpec("6614001", "Ysgol Uwchradd Aberdyfi", "secondary", 620, 75)


def demo_schools() -> list[SchoolSpec]:
    """A primary and a secondary school in Gwynedd (the demo and the rollover)."""
    return [DEMO_PRIMARY, DEMO_SECONDARY]


def small_schools() -> list[SchoolSpec]:
    """Four small schools in two LAs (tests): a mixed-age primary, a primary and two secondaries."""
    return [
        SchoolSpec("6612001", "Ysgol Gynradd Llanfair", "primary", 60, 8),
        SchoolSpec("6612002", "Ysgol Gymuned Llanberis", "primary", 180, 20),
        SchoolSpec("6614001", "Ysgol Uwchradd Aberdyfi", "secondary", 300, 40),
        SchoolSpec("6694001", "Ysgol Gyfun Aberaeron", "secondary", 250, 35),
    ]


def _schools(
    rng: random.Random,
    la_numbers: Sequence[int],
    *,
    primaries: int,
    secondaries: int,
    learners: int,
    staff: int,
) -> list[SchoolSpec]:
    """``primaries`` + ``secondaries`` schools spread over ``la_numbers`` with realistic size spread,
    scaled to exactly ``learners`` learners and ``staff`` staff."""
    phases = ["primary"] * primaries + ["secondary"] * secondaries
    # Raw sizes: primaries from tiny rural schools to large town ones, secondaries 500-2000.
    raw = [
        max(25.0, rng.lognormvariate(5.3, 0.55)) if p == "primary" else max(450.0, rng.gauss(1200, 300))
        for p in phases
    ]
    primary_learners = round(learners * 0.58) if primaries and secondaries else learners * (primaries > 0)
    learner_counts = [0] * len(phases)
    for phase, phase_total in (("primary", primary_learners), ("secondary", learners - primary_learners)):
        positions = [i for i, p in enumerate(phases) if p == phase]
        for i, count in zip(positions, _split_counts(phase_total, [raw[i] for i in positions]), strict=True):
            learner_counts[i] = count
    staff_raw = [
        c / (7.0 if p == "primary" else 8.0) + 3 for c, p in zip(learner_counts, phases, strict=True)
    ]
    staff_counts = _split_counts(staff, staff_raw)
    styles_used: set[str] = set()
    schools: list[SchoolSpec] = []
    next_establishment: dict[tuple[int, str], int] = {}
    for i, phase in enumerate(phases):
        la = la_numbers[i % len(la_numbers)]
        key = (la, phase)
        establishment = next_establishment.get(key, 2001 if phase == "primary" else 4001)
        next_establishment[key] = establishment + 1
        styles = names.PRIMARY_STYLES if phase == "primary" else names.SECONDARY_STYLES
        for attempt in range(1000):
            name = rng.choice(styles).format(rng.choice(names.PLACES))
            if name not in styles_used:
                break
            if attempt == 999:
                name = f"{name} ({la}{establishment:04d})"
        styles_used.add(name)
        schools.append(
            SchoolSpec(f"{la}{establishment:04d}", name, phase, learner_counts[i], staff_counts[i])  # type: ignore[arg-type]
        )
    return schools


def la_schools(seed: int, la_number: int = 669) -> list[SchoolSpec]:
    """One LA's schools (benchmark scale): 120 schools, 60,000 learners, 8,000 staff."""
    return _schools(
        random.Random(seed),  # noqa: S311 (synthetic data)
        [la_number],
        primaries=102,
        secondaries=18,
        learners=60_000,
        staff=8_000,
    )


def national_schools(seed: int) -> list[SchoolSpec]:
    """All of Wales (national scale): about 1,470 schools, 470,000 learners, 62,000 staff in 22 LAs."""
    return _schools(
        random.Random(seed),  # noqa: S311 (synthetic data)
        list(range(660, 682)),
        primaries=1_250,
        secondaries=220,
        learners=470_000,
        staff=62_000,
    )


def schools_for(scale: Scale, seed: int) -> list[SchoolSpec]:
    """The school list for a named scale."""
    if scale == "demo":
        return demo_schools()
    if scale == "small":
        return small_schools()
    if scale == "la":
        return la_schools(seed)
    if scale == "national":
        return national_schools(seed)
    raise ValueError(f"unknown scale {scale!r}")

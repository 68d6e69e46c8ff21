"""Names with control, bidi or other invisible characters are refused per operation, as the client does.

A right-to-left override (U+202E) makes ``Jones\u202eevil`` print as something else; NUL and other C0/C1
controls break the systems that print or store a name. The sandbox refuses such an operation with the
reason ``text_control_characters`` (the client's own held-back reason) and applies the rest of the batch.
"""

from __future__ import annotations

import pytest
from sandbox_helpers import SchoolClient, batch, learner, op, staff

from hwb_client.core.validate import Invalid, Reason, clean_text

HOSTILE = [
    pytest.param("\x00", id="NUL"),
    pytest.param("\x1b", id="C0-escape"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\x85", id="C1-next-line"),
    pytest.param("\x9b", id="C1-CSI"),
    pytest.param("\u202a", id="LRE"),
    pytest.param("\u202b", id="RLE"),
    pytest.param("\u202c", id="PDF"),
    pytest.param("\u202d", id="LRO"),
    pytest.param("\u202e", id="RLO"),
    pytest.param("\u2066", id="LRI"),
    pytest.param("\u2067", id="RLI"),
    pytest.param("\u2068", id="FSI"),
    pytest.param("\u2069", id="PDI"),
]


@pytest.mark.parametrize("char", HOSTILE)
def test_a_learner_name_with_a_control_or_bidi_character_is_refused_with_a_reason(
    school: SchoolClient, char: str
) -> None:
    """The hostile learner is refused ``text_control_characters``; the clean one beside it is applied."""
    hostile = {**learner(f"hostile-{char!r}"), "legal_surname": f"Jones{char}evil"}
    clean = learner(f"clean-{char!r}")

    response = school.post_batch(batch(op("upsert", "learner", hostile), op("upsert", "learner", clean)))

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {"index": 0, "status": "refused", "reason": "text_control_characters"}
    assert results[1]["status"] == "applied"
    assert school.manifest_entry("learner", hostile["upn_hash"]) is None


@pytest.mark.parametrize("char", HOSTILE)
def test_the_client_refuses_the_same_characters(char: str) -> None:
    """The client holds such a name back with the same reason, so a 0.2.0 client never sends one."""
    with pytest.raises(Invalid) as refused:
        clean_text(f"Jones{char}evil", missing=Reason.TEXT_CONTROL_CHARACTERS)

    assert refused.value.reason.value == "text_control_characters"


def test_staff_forenames_and_group_names_are_checked_too(school: SchoolClient) -> None:
    hostile_staff = {**staff("S1"), "legal_forename": "Rhys\u202e"}
    hostile_group = {"group_id": "7X", "name": "7X\x00", "group_type": "teaching", "year_group": "7"}

    response = school.post_batch(
        batch(op("upsert", "staff", hostile_staff), op("upsert", "group", hostile_group))
    )

    assert [r.get("reason") for r in response.json()["results"]] == ["text_control_characters"] * 2


def test_names_in_welsh_and_other_scripts_are_accepted(school: SchoolClient) -> None:
    """Letters with diacritics, right-to-left scripts and apostrophes are names, not controls."""
    names = ["Siân", "Llŷr", "Ffion-Wyn", "O'Brien", "محمد", "שרה", "Zoë Ångström"]
    operations = [
        op("upsert", "learner", {**learner(f"ok-{i}"), "legal_forename": name})
        for i, name in enumerate(names)
    ]

    response = school.post_batch(batch(*operations))

    assert response.json()["applied"] == len(names), response.text

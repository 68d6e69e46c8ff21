"""Protocol 2's per-record lookup: the school's own records, their accounts, and whether a learner is on
roll at another school (never which one). Version 1 requests are untouched by it."""

from __future__ import annotations

from sandbox_helpers import SchoolClient, assert_problem, batch, enrol, learner, op, staff, upn_hash

from hwb_sandbox.testing import SandboxProcess


def lookup(school: SchoolClient, *refs: tuple[str, str], **kwargs):
    body = {"records": [{"kind": kind, "key": key} for kind, key in refs]}
    return school.call(
        "POST",
        f"/v1/schools/{school.dfes}/records/lookup",
        json_body=body,
        headers={"Hwb-Protocol": "2"},
        **kwargs,
    )


def test_lookup_answers_for_the_schools_own_records_and_says_only_whether_a_learner_is_elsewhere(
    module_sandbox: SandboxProcess, school: SchoolClient
) -> None:
    other = enrol(module_sandbox, "6619998", "Ysgol Arall")
    shared, mine = learner("shared"), learner("mine")
    assert other.post_batch(batch(op("upsert", "learner", shared))).status_code == 200
    sent = school.post_batch(batch(op("upsert", "learner", mine), op("upsert", "staff", staff("T1"))))
    assert sent.status_code == 200, sent.text
    answer = lookup(school, ("learner", mine["upn_hash"]), ("learner", shared["upn_hash"]), ("staff", "T1"))
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    assert [r["key"] for r in records] == [mine["upn_hash"], shared["upn_hash"], "T1"]
    assert records[0]["status_at_school"] == "active" and records[0]["account_active"] is True
    assert records[0]["on_roll_elsewhere"] is False
    assert records[1]["status_at_school"] is None and records[1]["on_roll_elsewhere"] is True
    assert records[1]["account_id"] is None  # the other school's account is not disclosed
    assert records[2]["status_at_school"] == "active" and records[2]["on_roll_elsewhere"] is None
    assert "6619998" not in answer.text and "Arall" not in answer.text


def test_lookup_is_signed_and_validated(school: SchoolClient) -> None:
    assert_problem(lookup(school, ("staff", "T1"), sign=False), 401, "signature-invalid")
    bad = school.call(
        "POST",
        f"/v1/schools/{school.dfes}/records/lookup",
        json_body={"records": [{"kind": "group", "key": "x"}]},
    )
    assert_problem(bad, 422, "validation-failed")
    empty = school.call("POST", f"/v1/schools/{school.dfes}/records/lookup", json_body={"records": []})
    assert_problem(empty, 422, "validation-failed")
    assert lookup(school, ("learner", upn_hash("nobody"))).json()["records"][0]["status_at_school"] is None

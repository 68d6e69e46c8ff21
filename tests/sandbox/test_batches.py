"""Batches: exactly once by batch id, per-operation results, and national accounts across schools."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_helpers import (
    PRIMARY,
    SECONDARY,
    SchoolClient,
    assert_problem,
    batch,
    learner,
    op,
    staff,
    upn_hash,
)

from hwb_client.core.model import record_digest
from hwb_sandbox.store import SandboxStore
from hwb_sandbox.testing import SandboxProcess

BATCHES = f"/v1/schools/{PRIMARY}/batches"


@pytest.fixture(params=[1, 2], ids=["in-process", "two-apply-workers"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxProcess]:
    """Every test here twice: batches applied in the serving process, and in two worker processes
    (``serve --apply-workers 2``): exactly once, the answers and the refusals are the same."""
    args = () if request.param == 1 else ("--apply-workers", str(request.param))
    with SandboxProcess(tmp_path / "sandbox" / "sandbox.db", serve_args=args) as process:
        yield process


def _accounts(sandbox: SandboxProcess, dfes: str) -> dict[str, dict[str, Any]]:
    """The school's accounts by key, as ``hwb-sandbox accounts --json`` reports them."""
    store = SandboxStore(sandbox.db_path)
    try:
        return {row["key"]: row for row in store.accounts(dfes)}
    finally:
        store.close()


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- exactly once ---------------------------------------------------------------------------------------------


def test_batch_sent_twice_is_applied_once(sandbox: SandboxProcess, primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("once")), op("upsert", "staff", staff("T01")))
    first = primary.post_batch(body)
    manifest_after_first = primary.manifest()
    accounts_after_first = _accounts(sandbox, PRIMARY)

    second = primary.post_batch(body)  # re-signed (new nonce), same id and body

    assert _ok(first)["applied"] == 2
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert primary.manifest() == manifest_after_first
    assert _accounts(sandbox, PRIMARY) == accounts_after_first


def test_same_batch_id_with_a_different_body_is_refused_and_changes_nothing(primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("first")))
    _ok(primary.post_batch(body))
    changed = dict(body, operations=[op("upsert", "learner", learner("second"))])

    assert_problem(primary.post_batch(changed), 422, "idempotency-key-reused")
    assert [r["key"] for r in primary.manifest()["records"]] == [upn_hash("first")]


def test_same_batch_with_other_white_space_and_key_order_is_the_same_body(primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("spacing")))
    first = _ok(primary.post_batch(body))
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=3).encode()

    again = primary.call(
        "POST", BATCHES, body=reordered, headers={"Idempotency-Key": f'"{body["batch_id"]}"'}
    )

    assert _ok(again) == first
    assert again.headers["Idempotent-Replayed"] == "true"


def test_batch_without_idempotency_key_is_refused(primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("no-key")))

    assert_problem(primary.call("POST", BATCHES, json_body=body), 400, "idempotency-key-missing")


def test_unquoted_idempotency_key_is_refused(primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("bare-key")))
    response = primary.call("POST", BATCHES, json_body=body, headers={"Idempotency-Key": body["batch_id"]})

    assert_problem(response, 400, "idempotency-key-missing")


def test_idempotency_key_differing_from_the_body_batch_id_is_refused(primary: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("mismatch")))

    response = primary.post_batch(body, idempotency_key=str(uuid.uuid4()))

    assert_problem(response, 400, "idempotency-key-mismatch")
    assert primary.manifest()["records"] == []


def test_concurrent_posts_of_one_batch_apply_it_once(sandbox: SandboxProcess, primary: SchoolClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = batch(*(op("upsert", "learner", learner(f"race-{i}")) for i in range(50)))
    prepared = []
    for _ in range(4):
        request = primary.prepare(
            "POST", BATCHES, json_body=body, headers={"Idempotency-Key": f'"{body["batch_id"]}"'}
        )
        primary.signer.sign(request)
        prepared.append(request)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(primary.send, prepared))

    assert [r.status_code for r in responses] == [200] * 4
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert len({r.content for r in responses}) == 1
    assert len(_accounts(sandbox, PRIMARY)) == 50


# -- per-operation results and national accounts ----------------------------------------------------------------


def test_year_6_leaver_keeps_the_same_account_at_the_secondary_school(
    sandbox: SandboxProcess, primary: SchoolClient, secondary: SchoolClient
) -> None:
    pupil = learner("y6-to-y7", year_group="6")
    created = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]
    account_id = created["account_id"]
    assert created["status"] == "applied" and account_id.startswith("acc-")

    leaver = dict(pupil, leaving_date="2026-08-31")
    left = _ok(primary.post_batch(batch(op("leave", "learner", leaver))))["results"][0]
    assert left == {"index": 0, "status": "applied", "account_id": account_id}
    assert _accounts(sandbox, PRIMARY)[pupil["upn_hash"]]["account_active"] is False
    assert primary.manifest_entry("learner", pupil["upn_hash"]) == {
        "kind": "learner",
        "key": pupil["upn_hash"],
        "digest": record_digest(leaver),
        "status": "left",
        "account_id": account_id,
    }

    year_7 = dict(pupil, year_group="7", registration_group="7B")
    joined = _ok(secondary.post_batch(batch(op("upsert", "learner", year_7))))["results"][0]

    assert joined == {"index": 0, "status": "applied", "account_id": account_id}
    assert _accounts(sandbox, SECONDARY)[pupil["upn_hash"]]["account_active"] is True
    assert secondary.manifest_entry("learner", pupil["upn_hash"])["status"] == "active"  # type: ignore[index]


def test_learner_on_roll_at_two_schools_stays_active_until_both_release_it(
    sandbox: SandboxProcess, primary: SchoolClient, secondary: SchoolClient
) -> None:
    # A leave takes effect on the national calendar (the day after the leaving date; Year 6 from 31 August):
    # the sandbox clock is set past this test's leaving date so that the leave releases at once.
    sandbox.set_today(dt.date(2027, 9, 1))
    pupil = learner("dual")
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))
    _ok(secondary.post_batch(batch(op("upsert", "learner", pupil))))

    _ok(primary.post_batch(batch(op("remove", "learner", None, key=pupil["upn_hash"]))))
    assert _accounts(sandbox, SECONDARY)[pupil["upn_hash"]]["account_active"] is True
    assert primary.manifest_entry("learner", pupil["upn_hash"]) is None  # removed records are not listed

    _ok(secondary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2027-07-20")))))
    assert _accounts(sandbox, SECONDARY)[pupil["upn_hash"]]["account_active"] is False


def test_returning_learner_is_reactivated_at_the_same_school_with_the_same_account(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    pupil = learner("returner")
    account_id = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]["account_id"]
    _ok(primary.post_batch(batch(op("leave", "learner", dict(pupil, leaving_date="2026-02-01")))))
    assert _accounts(sandbox, PRIMARY)[pupil["upn_hash"]]["account_active"] is False

    back = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]

    assert back == {"index": 0, "status": "applied", "account_id": account_id}
    assert _accounts(sandbox, PRIMARY)[pupil["upn_hash"]]["account_active"] is True


def test_staff_without_start_date_is_refused_with_a_reason(primary: SchoolClient) -> None:
    result = _ok(primary.post_batch(batch(op("upsert", "staff", staff("NEW1", start_date=None)))))

    assert result["refused"] == 1
    assert result["results"] == [{"index": 0, "status": "refused", "reason": "staff_start_date_missing"}]
    assert primary.manifest()["records"] == []


def test_staff_leaver_is_deactivated_then_reactivated_with_the_same_account(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    teacher = staff("T42")
    account_id = _ok(primary.post_batch(batch(op("upsert", "staff", teacher))))["results"][0]["account_id"]

    left = _ok(primary.post_batch(batch(op("leave", "staff", dict(teacher, leaving_date="2026-07-22")))))
    assert left["results"][0] == {"index": 0, "status": "applied", "account_id": account_id}
    assert _accounts(sandbox, PRIMARY)["T42"]["account_active"] is False

    back = _ok(primary.post_batch(batch(op("upsert", "staff", teacher))))

    assert back["results"][0] == {"index": 0, "status": "applied", "account_id": account_id}
    assert _accounts(sandbox, PRIMARY)["T42"]["account_active"] is True


def test_unchanged_record_is_reported_unchanged(primary: SchoolClient) -> None:
    pupil = learner("steady")
    first = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))["results"][0]

    again = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))

    assert again["unchanged"] == 1
    assert again["results"][0] == {"index": 0, "status": "unchanged", "account_id": first["account_id"]}


def test_groups_and_memberships_need_their_group_and_member(primary: SchoolClient) -> None:
    pupil = learner("member")
    group = {"group_id": "7S1", "name": "7S1 Science", "group_type": "teaching", "year_group": "7"}
    member = {"group_id": "7S1", "member_kind": "learner", "member_key": pupil["upn_hash"]}
    stranger = {"group_id": "7S1", "member_kind": "staff", "member_key": "NOBODY"}
    orphan = {"group_id": "9Z9", "member_kind": "learner", "member_key": pupil["upn_hash"]}

    result = _ok(
        primary.post_batch(
            batch(
                op("upsert", "learner", pupil),
                op("upsert", "group", group),
                op("upsert", "membership", member),
                op("upsert", "membership", stranger),
                op("upsert", "membership", orphan),
            )
        )
    )

    assert [r["status"] for r in result["results"]] == ["applied", "applied", "applied", "refused", "refused"]
    assert [r.get("reason") for r in result["results"][3:]] == ["unknown_member", "unknown_group"]
    assert "account_id" not in result["results"][1]  # groups and memberships have no account
    assert primary.manifest_entry("membership", f"7S1/learner/{pupil['upn_hash']}") is not None


def test_operation_key_must_match_its_record(primary: SchoolClient) -> None:
    result = _ok(primary.post_batch(batch(op("upsert", "learner", learner("a"), key=upn_hash("b")))))

    assert result["results"] == [{"index": 0, "status": "refused", "reason": "key_mismatch"}]


def test_learner_hashed_with_another_key_than_the_batch_upn_key_is_refused(primary: SchoolClient) -> None:
    pupil = dict(learner("old-key"), upn_hash=upn_hash("old-key", key_id="nat-2025"))

    result = _ok(primary.post_batch(batch(op("upsert", "learner", pupil))))

    assert result["results"] == [{"index": 0, "status": "refused", "reason": "upn_key_unknown"}]


def test_leave_or_remove_of_a_record_never_sent_is_not_found(primary: SchoolClient) -> None:
    result = _ok(
        primary.post_batch(
            batch(
                op("leave", "learner", learner("ghost", leaving_date="2026-07-22")),
                op("remove", "staff", None, key="GHOST"),
            )
        )
    )

    assert [r.get("reason") for r in result["results"]] == ["not_found", "not_found"]


def test_manifest_digests_are_the_clients_record_digests(primary: SchoolClient) -> None:
    pupil = dict(learner("digest"), legal_forename="Ffion Ŵyn", legal_surname="Ap Siôn")
    teacher = staff("S01")
    _ok(primary.post_batch(batch(op("upsert", "learner", pupil), op("upsert", "staff", teacher))))

    digests = {(r["kind"], r["key"]): r["digest"] for r in primary.manifest()["records"]}

    assert digests == {
        ("learner", pupil["upn_hash"]): record_digest(pupil),
        ("staff", "S01"): record_digest(teacher),
    }

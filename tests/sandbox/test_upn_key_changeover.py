"""The sandbox through a national UPN key changeover: a learner found by either pseudonym, the school's
record re-keyed in place, and version 1 records (without ``upn_hash_previous``) unchanged."""

from __future__ import annotations

from typing import Any

from sandbox_helpers import SchoolClient, batch, learner, op, upn_hash

from hwb_client.core.model import record_digest

OLD_KEY_ID = "nat-2025"


def under_new_key(seed: str, **extra: Any) -> dict[str, Any]:
    """The learner's record in the window: new pseudonym (the batch's key), old one beside it."""
    return {**learner(seed, **extra), "upn_hash_previous": upn_hash(seed, OLD_KEY_ID)}


def old_batch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {**batch(*operations), "upn_key_id": OLD_KEY_ID}


def under_old_key(seed: str, **extra: Any) -> dict[str, Any]:
    return {**learner(seed, **extra), "upn_hash": upn_hash(seed, OLD_KEY_ID)}


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def group_and_member(upn: str) -> list[dict[str, Any]]:
    group = {"group_id": "6A", "name": "Dosbarth 6A", "group_type": "registration", "year_group": "6"}
    member = {"group_id": "6A", "member_kind": "learner", "member_key": upn}
    return [op("upsert", "group", group), op("upsert", "membership", member)]


def test_a_record_without_the_previous_pseudonym_keeps_its_version_1_digest(primary: SchoolClient) -> None:
    record = learner("v1")
    assert results(primary.post_batch(batch(op("upsert", "learner", record))))[0]["status"] == "applied"
    entry = primary.manifest_entry("learner", record["upn_hash"])
    assert entry is not None and entry["digest"] == record_digest(record)


def test_the_changeover_maps_both_pseudonyms_to_one_account_and_rekeys_the_school(
    primary: SchoolClient, secondary: SchoolClient
) -> None:
    """Year 6 under the old key at the primary; in the window the primary sends both pseudonyms (its
    record and membership are re-keyed, the school holds the learner once); after it the secondary sends
    only the new pseudonym and finds the same account."""
    old = under_old_key("elen")
    first = results(
        primary.post_batch(old_batch(op("upsert", "learner", old), *group_and_member(old["upn_hash"])))
    )
    account = first[0]["account_id"]

    new = under_new_key("elen")
    member = {"group_id": "6A", "member_kind": "learner", "member_key": new["upn_hash"]}
    window = results(
        primary.post_batch(batch(op("upsert", "learner", new), op("upsert", "membership", member)))
    )
    assert window[0]["account_id"] == account and [r["status"] for r in window] == ["applied", "applied"]
    keys = {(r["kind"], r["key"]) for r in primary.manifest()["records"]}
    assert keys == {
        ("learner", new["upn_hash"]),
        ("group", "6A"),
        ("membership", f"6A/learner/{new['upn_hash']}"),
    }
    entry = primary.manifest_entry("learner", new["upn_hash"])
    assert entry is not None and entry["digest"] == record_digest(new)

    year_7 = learner("elen", year_group="7")  # the new key only, after the window
    assert results(secondary.post_batch(batch(op("upsert", "learner", year_7))))[0]["account_id"] == account


def test_a_previous_pseudonym_under_the_batch_s_own_key_is_refused(primary: SchoolClient) -> None:
    record = {**learner("same"), "upn_hash_previous": upn_hash("other")}
    assert results(primary.post_batch(batch(op("upsert", "learner", record))))[0] == {
        "index": 0,
        "status": "refused",
        "reason": "upn_key_unknown",
    }

"""National UPN key rotation end to end: a primary and a secondary school, the real CLI in subprocesses,
the sandbox national API, and a key file taken through a changeover window (dates relative to today,
since the CLI runs on today's date)."""

from __future__ import annotations

import datetime as dt
import os

from reliability_support import RLab

from hwb_client.adapters.national_key import load_national_keys, write_national_keys
from hwb_client.core.model import Kind
from mis_builder import Mis, small_school, upn

AREA = "National UPN key rotation"
NEW_KEY_ID = "nat-2"
LEARNERS = (1, 2, 3)


def accounts(lab: RLab, dfes: str) -> dict[str, tuple[str, str]]:
    """The school's learner records in the national manifest: upn_hash -> (account id, status)."""
    return {
        key: (record["account_id"], record["status"])
        for (kind, key), record in lab.manifest(dfes).items()
        if kind == "learner"
    }


def changes(run_stdout: str, dfes: str) -> str:
    lines = run_stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{dfes}:"))
    return next(line for line in lines[start + 1 :] if line.startswith("  sent:"))


def secondary_admits_year_7(mis: Mis) -> None:
    mis.add_group(2, "7A", year="7")
    for i, n in enumerate(LEARNERS):
        mis.add_learner(n, year="7", reg="7A")
        mis.add_member(200 + i, 2, pupil=n)
    mis.commit()


def test_the_year_6_to_year_7_match_survives_a_national_key_changeover(rlab, scenario):
    """Year 6 is hashed under the old key at the primary; through the changeover window the primary sends
    both pseudonyms (re-keyed in place: no remove, no duplicate, a second run sends nothing); after the
    old key is retired the secondary admits them as Year 7 under the new key only, and they hold the
    same national accounts."""
    lab = rlab(schools=2)
    primary, secondary = (s.dfes_number for s in lab.schools)
    key_file = lab.lab.national_key_file
    (old,) = load_national_keys(key_file)
    new_secret = os.urandom(32)
    today = dt.date.today()

    mis = small_school(lab.schools[0].mis_path, primary, learners=len(LEARNERS))
    small_school(lab.schools[1].mis_path, secondary, learners=3, first=500).close()  # its own learners
    first = lab.run_now()
    assert first.returncode == 0, first.stdout + first.stderr
    before = accounts(lab, primary)
    old_hash = {n: old.hasher(upn(n)) for n in LEARNERS}
    assert set(before) == set(old_hash.values())

    # The changeover window opens today and closes in 30 days.
    write_national_keys(
        key_file,
        [
            (old.key_id, old.hasher.key, None, today + dt.timedelta(days=30)),
            (NEW_KEY_ID, new_secret, today, None),
        ],
    )
    said = lab.cli("check-config").stdout
    assert f"national UPN key: {NEW_KEY_ID} + {old.key_id} in use" in said
    assert f"changeover in progress: {old.key_id} -> {NEW_KEY_ID}" in said
    (_, new) = sorted(load_national_keys(key_file), key=lambda p: p.key_id != old.key_id)
    new_hash = {n: new.hasher(upn(n)) for n in LEARNERS}

    window = lab.run_now()
    assert window.returncode == 0, window.stdout + window.stderr
    sent = changes(window.stdout, primary)
    assert "remove" not in sent and "learner upsert=3" in sent, sent
    in_window = accounts(lab, primary)
    assert set(in_window) == set(new_hash.values()), "the school holds each learner once, under the new key"
    assert {new_hash[n]: before[old_hash[n]] for n in LEARNERS} == in_window
    index = lab.acknowledged(primary)
    assert set(index[Kind.LEARNER]) == set(new_hash.values())
    members = [k for k in index[Kind.MEMBERSHIP] if "/learner/" in k]
    assert len(members) == len(LEARNERS) and all(NEW_KEY_ID + ":" in k for k in members)
    again = lab.run_now()
    assert again.returncode == 0 and "sent: none" in changes(again.stdout, primary), again.stdout

    # The old key is retired; the Year 6 learners leave the primary and join the secondary's Year 7.
    write_national_keys(
        key_file,
        [
            (old.key_id, old.hasher.key, None, today - dt.timedelta(days=1)),
            (NEW_KEY_ID, new_secret, today - dt.timedelta(days=31), None),
        ],
    )
    assert f"national key {old.key_id} retired after" in lab.cli("check-config").stdout
    mis.db.execute("UPDATE mis_pupil SET leaving_date = ?", ((today - dt.timedelta(days=1)).isoformat(),))
    mis.commit()
    secondary_admits_year_7(Mis(lab.schools[1].mis_path, secondary))
    after = lab.run_now()
    assert after.returncode == 0, after.stdout + after.stderr
    assert "remove" not in changes(after.stdout, primary)
    year_7 = accounts(lab, secondary)
    assert set(new_hash.values()) <= set(year_7)
    matched = sum(year_7[new_hash[n]][0] == before[old_hash[n]][0] for n in LEARNERS)
    assert matched == len(LEARNERS)
    assert all(status == "left" for _, status in accounts(lab, primary).values())
    scenario.figures["learners matched across the changeover"] = f"{matched} of {len(LEARNERS)}"

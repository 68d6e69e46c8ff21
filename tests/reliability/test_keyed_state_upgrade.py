"""Upgrading a school from 0.1.0: its state's plain record digests are keyed in place, and its national
response key, which 0.1.0 never learned, is learned and pinned on the first run; nothing is re-sent or
removed, and no new enrolment code is needed."""

from __future__ import annotations

import sqlite3

from reliability_support import RLab, ledger

from hwb_client.adapters.response_keys import load_pinned, pin_path
from hwb_client.adapters.state import KEYED_DIGESTS_VERSION, MIGRATIONS
from mis_builder import small_school

AREA = "Upgrading from 0.1.0: keyed state digests and the national response key"

#: the keyed-digest migration is the last one; it only rewrites values (the genuine 0.1.0 state is
#: migrated in ``tests/e2e/test_upgrade_from_0_1_0.py``)
KEYED_DIGESTS_MIGRATION = KEYED_DIGESTS_VERSION


def _as_made_by_0_1_0(lab: RLab) -> int:
    """Turn the lab's state back into what it was before the keyed-digest migration: plain ``sha-256:``
    digests (those of the records the MIS gives, as 0.1.0 stored them), and no pinned response key."""
    snapshot = lab.projection()
    db = sqlite3.connect(lab.root / "state" / f"{lab.dfes}.sqlite3")
    with db:
        rows = db.execute("SELECT kind, key FROM acknowledged").fetchall()
        for kind, key in rows:
            entry = next(e for k, e in snapshot.entries.items() if k.value == kind)[key]
            db.execute(
                "UPDATE acknowledged SET digest = ? WHERE kind = ? AND key = ?", (entry.digest, kind, key)
            )
        db.execute("DELETE FROM schema_migrations WHERE version = ?", (KEYED_DIGESTS_MIGRATION,))
    db.close()
    pin_path(lab.root / "state" / "keys" / f"{lab.dfes}.pem").unlink()
    return len(rows)


def _digests(lab: RLab) -> list[str]:
    db = sqlite3.connect(lab.root / "state" / f"{lab.dfes}.sqlite3")
    try:
        return [row[0] for row in db.execute("SELECT digest FROM acknowledged")]
    finally:
        db.close()


def test_a_0_1_0_state_is_keyed_in_place_and_the_next_run_sends_and_removes_nothing(rlab, scenario):
    """A state with 0.1.0's plain digests and no pinned national key (the genuine 0.1.0 state is
    ``tests/e2e/test_upgrade_from_0_1_0.py``): the next run migrates it in place (every digest keyed,
    none left plain), learns and pins the national response key (trust on first use over the configured
    HTTPS channel), sends nothing and removes nothing."""
    lab = rlab(batches=10)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=12).close()
    assert lab.run_now().returncode == 0
    before = ledger(lab.sandbox, lab.dfes)
    records = _as_made_by_0_1_0(lab)
    assert all(d.startswith("sha-256:") for d in _digests(lab))

    upgraded = lab.run_now()
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert upgraded.events("batch_acknowledged") == []
    assert len(ledger(lab.sandbox, lab.dfes).since(before)) == 0  # nothing sent, nothing removed
    digests = _digests(lab)
    assert len(digests) == records and all(d.startswith("hmac-sha-256:") for d in digests)
    (pinned,) = upgraded.events("response_key_pinned")
    assert pinned["learned_at"] == "first_use"
    assert load_pinned(pin_path(lab.root / "state" / "keys" / f"{lab.dfes}.pem"))
    assert lab.pending_changes() == []
    verified = lab.cli("--run-now", "--verify")
    assert verified.events("state_verified")[0]["kinds_mismatched"] == 0  # keyed state agrees nationally
    scenario.figures.update({"records migrated": records, "schema version": len(MIGRATIONS)})

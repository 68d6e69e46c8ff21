"""Anti-entropy: compare the acknowledged index with the national manifest, and repair the difference.

A digest per kind first (``GET .../manifest/summary``, keyed with the school's state digest key), the
records of a kind only when its summary differs. The repair makes the acknowledged index say what the
national side holds (``core.anti_entropy.differences``): what it lost is forgotten locally, so the next
diff sends it again; what it holds differently or that the client did not know is adopted, so the next
diff corrects or removes it. A lost or faked acknowledgement is thereby found and healed in the same run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog

from hwb_client.adapters.state import StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.core.anti_entropy import Difference, Held, differences, mismatched_kinds, verify_due
from hwb_client.errors import StateError
from hwb_client.i18n import N_

log = structlog.get_logger("hwb_client.verify")


@dataclass(frozen=True)
class Verification:
    kinds_mismatched: tuple[str, ...]
    forgotten: int
    adopted: int


def held_index(state: StateStore) -> dict[str, dict[str, Held]]:
    index: dict[str, dict[str, Held]] = {"learner": {}, "staff": {}, "group": {}, "membership": {}}
    for kind, key, status, digest in state.db.execute("SELECT kind, key, status, digest FROM acknowledged"):
        index.setdefault(kind, {})[key] = Held(status, digest)
    return index


def last_verified(state: StateStore) -> dt.datetime | None:
    row = state.db.execute("SELECT value FROM meta WHERE name = 'verified_at'").fetchone()
    return dt.datetime.fromisoformat(row[0]) if row else None


def is_due(state: StateStore, now: dt.datetime, every_days: int) -> bool:
    return verify_due(last_verified(state), now, every_days)


def _repair(state: StateStore, difference: Difference, accounts: dict[str, str | None], now: str) -> None:
    kind = difference.kind
    state.db.executemany(
        "DELETE FROM acknowledged WHERE kind = ? AND key = ?", ((kind, key) for key in difference.forget)
    )
    state.db.executemany(
        "INSERT INTO acknowledged (kind, key, digest, status, account_id, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, key) DO UPDATE SET digest = excluded.digest, status = excluded.status, "
        "account_id = coalesce(excluded.account_id, acknowledged.account_id), fingerprint = NULL, stable = NULL, "
        "updated_at = excluded.updated_at",
        ((kind, key, held.digest, held.status, accounts.get(key), now) for key, held in difference.adopt),
    )


def verify(api: NationalApi, state: StateStore, dfes: str, now: dt.datetime) -> Verification:
    """Compare and repair; the repaired index is what the next diff (this run's) compares the MIS with."""
    if state.record_digest_key is None:
        raise StateError(
            N_("school {dfes}: the state's secret is missing; the state cannot be verified"), dfes=dfes
        )
    summary = api.manifest_summary(dfes, state.record_digest_key)
    local = held_index(state)
    national = {kind: (s.count, s.digest) for kind, s in summary.kinds.items()}
    mismatched = mismatched_kinds(local, national)
    forgotten = adopted = 0
    stamp = now.isoformat(timespec="seconds")
    if mismatched:
        manifest = api.manifest(dfes)
        with state.transaction():
            for kind in mismatched:
                records = [r for r in manifest.records if r.kind == kind]
                held = [(r.key, Held(r.status, state.stored_digest(r.digest))) for r in records]
                difference = differences(kind, local.get(kind, {}), held)
                _repair(state, difference, {r.key: r.account_id for r in records}, stamp)
                forgotten += len(difference.forget)
                adopted += len(difference.adopt)
                log.warning(
                    "state_differs_from_national",
                    dfes=dfes,
                    kind=kind,
                    forgotten=len(difference.forget),
                    adopted=len(difference.adopt),
                )
    state.db.execute("INSERT OR REPLACE INTO meta VALUES ('verified_at', ?)", (stamp,))
    log.info(
        "state_verified", dfes=dfes, kinds_mismatched=len(mismatched), forgotten=forgotten, adopted=adopted
    )
    return Verification(tuple(mismatched), forgotten, adopted)

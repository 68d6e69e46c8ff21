"""National UPN key rotation, decided on a given day (pure: the key file is read in ``adapters``).

Every pseudonym depends on the national key, so a new key is brought in through a **changeover window**
set nationally in the key file: the new key's ``use_from`` date opens it, the old key's ``retire_after``
date (its last day) closes it.

* Before the window only the old key is in use.
* Through the window the new key is the **current** one (``upn_hash`` and every membership use it) and
  each learner record also carries ``upn_hash_previous``, its pseudonym under the old key. The national
  side maps one to the other: same account, wherever the learner is (a Year 6 learner hashed under the
  old key at the primary is the Year 7 learner under the new key at the secondary).
* After the window only the new key is in use; the old one may stay in the file, unused.

The acknowledged index is keyed by ``upn_hash``: on the first run in the window its learners (and their
memberships) are re-keyed from the old pseudonym to the new one (``rekey_moves``), so the diff sends each
learner once as an upsert under the new key (with the old one beside it), never a remove and an add.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hwb_client.core.diff import Acknowledged
from hwb_client.core.model import Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.errors import Phrase
from hwb_client.i18n import N_

PREVIOUS_FIELD = "upn_hash_previous"


@dataclass(frozen=True)
class KeyPeriod:
    """One national key and the days it is in use (``None``: open-ended)."""

    hasher: UpnHasher
    use_from: dt.date | None = None
    retire_after: dt.date | None = None

    @property
    def key_id(self) -> str:
        return self.hasher.key_id

    def in_use(self, today: dt.date) -> bool:
        started = self.use_from is None or self.use_from <= today
        return started and (self.retire_after is None or today <= self.retire_after)


@dataclass(frozen=True)
class KeysInUse:
    """The key that makes ``upn_hash`` today, and the one sent beside it during a changeover."""

    current: UpnHasher
    previous: UpnHasher | None = None

    @property
    def key_ids(self) -> tuple[str, ...]:
        return (self.current.key_id,) + ((self.previous.key_id,) if self.previous else ())

    def previous_hash(self, upn: str) -> str | None:
        return self.previous(upn) if self.previous is not None else None


class KeyScheduleError(ValueError):
    """The key file's dates leave no key, or more than two, in use on a day; ``error`` is the sentence,
    translated with the error that names the key file."""

    def __init__(self, message: str, /, **params: object) -> None:
        self.error = Phrase(message, **params)
        super().__init__(self.error.english)


def _start(period: KeyPeriod) -> dt.date:
    return period.use_from or dt.date.min


def keys_in_use(periods: Sequence[KeyPeriod], today: dt.date) -> KeysInUse:
    """The current key (the latest ``use_from`` among the keys in use) and the previous one, if any."""
    using = sorted((p for p in periods if p.in_use(today)), key=_start, reverse=True)
    if not using:
        raise KeyScheduleError(N_("no national key is in use on {day}"), day=today)
    if len(using) > 2:
        raise KeyScheduleError(
            N_("{count} national keys are in use on {day}; a changeover has two at most"),
            count=len(using),
            day=today,
        )
    return KeysInUse(using[0].hasher, using[1].hasher if len(using) > 1 else None)


def describe(periods: Sequence[KeyPeriod], today: dt.date) -> list[str]:
    """What ``check-config`` says about the national key: the key ids in use and any changeover."""
    using = keys_in_use(periods, today)
    lines = [f"national UPN key: {' + '.join(using.key_ids)} in use on {today.isoformat()}"]
    current = next(p for p in periods if p.key_id == using.current.key_id)
    if using.previous is not None:
        old = next(p for p in periods if p.key_id == using.previous.key_id)
        until = old.retire_after.isoformat() if old.retire_after else "(no end date)"
        lines.append(
            f"national key changeover in progress: {old.key_id} -> {current.key_id} until {until}; "
            "learners are sent under both keys"
        )
    for upcoming in sorted((p for p in periods if _start(p) > today), key=_start):
        assert upcoming.use_from is not None
        lines.append(
            f"national key changeover due: {upcoming.key_id} replaces {using.current.key_id} "
            f"from {upcoming.use_from.isoformat()}"
        )
    for retired in (p for p in periods if p.retire_after is not None and p.retire_after < today):
        assert retired.retire_after is not None
        lines.append(
            f"national key {retired.key_id} retired after {retired.retire_after.isoformat()} "
            "(no longer used; it may be removed from the key file)"
        )
    return lines


Moves = list[tuple[Kind, str, str]]
AckIndex = Mapping[Kind, Mapping[str, Acknowledged]]


def rekey_moves(learners: Mapping[str, Mapping[str, str | None]], acknowledged: AckIndex) -> Moves:
    """(kind, old key, new key) for every acknowledged learner, and membership of one, that the MIS
    still holds under a new pseudonym: ``learners`` is new ``upn_hash`` -> its wire record."""
    known = acknowledged.get(Kind.LEARNER, {})
    renamed: dict[str, str] = {}
    for new, record in learners.items():
        old = record.get(PREVIOUS_FIELD)
        if old and old in known and new not in known:
            renamed[old] = new
    moves: Moves = [(Kind.LEARNER, old, new) for old, new in renamed.items()]
    if not renamed:
        return moves
    for key in acknowledged.get(Kind.MEMBERSHIP, {}):
        group, member_kind, member = key.rsplit("/", 2)
        if member_kind == "learner" and member in renamed:
            moved = f"{group}/learner/{renamed[member]}"
            if moved not in acknowledged[Kind.MEMBERSHIP]:
                moves.append((Kind.MEMBERSHIP, key, moved))
    return moves


def apply_moves(acknowledged: AckIndex, moves: Moves) -> dict[Kind, dict[str, Acknowledged]]:
    """The acknowledged index with ``moves`` applied (what the state database holds after them)."""
    index = {kind: dict(records) for kind, records in acknowledged.items()}
    for kind, old, new in moves:
        index[kind][new] = index[kind].pop(old)
    return index

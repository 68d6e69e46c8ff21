"""Keyed state digests and the anti-entropy comparison with the national manifest. Pure.

A record digest (``sha-256:`` + hex of the canonical JSON) is guessable from the record: next to a hashed
UPN, a name list and a date of birth, it confirms a guess. The state database therefore keeps
``hmac-sha-256:`` + hex(HMAC-SHA256(digest_key, digest)) under a per-school secret kept beside it.
``keyed_digest`` is idempotent: an already keyed digest is returned as it is, so a value from the state
(a row recognised by its fingerprint) and a freshly computed one compare alike.

Anti-entropy: the national side answers, per kind, a count and SHA-256 over the sorted lines
``key TAB status TAB keyed-digest LF`` (keyed with the same key, which the client sends for that one
request); the client computes the same over its acknowledged index (``kind_digest``). Only a kind whose
summary differs is compared record by record (``differences``), with the manifest's digests keyed on
arrival. See docs/protocol.md, "Anti-entropy".
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from hwb_client.core.hmac256 import HmacSha256

KEYED_PREFIX: Final = "hmac-sha-256:"
KINDS: Final = ("learner", "staff", "group", "membership")


def keyed_digest(digest_key: bytes, digest: str) -> str:
    """``digest`` keyed with ``digest_key`` (unchanged when it is already keyed)."""
    if digest.startswith(KEYED_PREFIX):
        return digest
    return KEYED_PREFIX + _mac(digest_key).hexdigest(digest.encode("ascii"))


@functools.lru_cache(maxsize=8)
def _mac(digest_key: bytes) -> HmacSha256:
    """The key's padded blocks hashed once: a run keys one digest per record (``core.hmac256``)."""
    return HmacSha256(digest_key)


@dataclass(frozen=True, slots=True)
class Held:
    """One record as one side holds it: status and keyed digest."""

    status: str
    digest: str


Index = Mapping[str, Mapping[str, Held]]  # kind -> key -> held


def kind_digest(records: Mapping[str, Held]) -> str:
    """The summary digest of one kind (the national side computes the same; docs/protocol.md)."""
    lines = sorted(f"{key}\t{held.status}\t{held.digest}\n" for key, held in records.items())
    return "sha-256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def mismatched_kinds(local: Index, national: Mapping[str, tuple[int, str]]) -> list[str]:
    """Kinds whose (count, digest) differ between the acknowledged index and the national summary."""
    return [
        kind
        for kind in KINDS
        if national.get(kind) != (len(local.get(kind, {})), kind_digest(local.get(kind, {})))
    ]


@dataclass(frozen=True, slots=True)
class Difference:
    """What to repair in one kind of the acknowledged index, so that it says what the national side holds.

    ``forget``: keys acknowledged locally that the national side does not hold: dropped, so the next
    diff sends them again (a lost or faked acknowledgement). ``adopt``: records the national side holds
    differently (another digest or status) or that the client does not know: taken into the index as the
    national side holds them, so the next diff corrects, or removes, what should not be there.
    """

    kind: str
    forget: tuple[str, ...]
    adopt: tuple[tuple[str, Held], ...]

    def __len__(self) -> int:
        return len(self.forget) + len(self.adopt)


def differences(kind: str, local: Mapping[str, Held], national: Iterable[tuple[str, Held]]) -> Difference:
    national_index = dict(national)
    forget = tuple(sorted(key for key in local if key not in national_index))
    adopt = tuple(sorted((k, held) for k, held in national_index.items() if local.get(k) != held))
    return Difference(kind, forget, adopt)


def verify_due(last_verified: dt.datetime | None, now: dt.datetime, every_days: int) -> bool:
    """Whether the scheduled check is due: ``every_days`` since the last one, or never checked.
    ``every_days`` 0 means only on request (``--run-now --verify``)."""
    if every_days <= 0:
        return False
    return last_verified is None or now - last_verified >= dt.timedelta(days=every_days)

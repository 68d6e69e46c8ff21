"""The national API's replies, checked against the protocol and turned into typed values.

A reply that does not match the protocol (not JSON, not an object, an unknown per-operation status, a
batch id that is not the one sent, not one result per operation, a manifest record that is not
well-formed) is an ``ApiError`` naming what was wrong: never a traceback, and never a silent success.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hwb_client.errors import ApiError, Phrase
from hwb_client.i18n import N_

#: Statuses that refuse a request's bytes for good (retrying the same body can never succeed): a batch or
#: run report so refused is set aside. Authentication (401/403) and unknown schools (404) are not: they
#: are fixed by a person, after which the same bytes are accepted.
PERMANENTLY_REFUSED: Final = frozenset({400, 409, 413, 415, 422})

OperationStatus = Literal["applied", "unchanged", "refused"]
OPERATION_STATUSES: Final = frozenset({"applied", "unchanged", "refused"})
KINDS: Final = frozenset({"learner", "staff", "group", "membership"})
RECORD_STATUSES: Final = frozenset({"active", "left"})
_DIGEST = re.compile(r"^sha-256:[0-9a-f]{64}$")
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ACCOUNT = re.compile(r"^acc-[0-9a-f]{32}$")
_MAX_KEY = 200

#: What a reply answers, as the errors name it (translated with them; logs keep the English).
MANIFEST: Final = Phrase(N_("manifest"))
MANIFEST_SUMMARY: Final = Phrase(N_("manifest summary"))


def batch(batch_id: str) -> Phrase:
    return Phrase(N_("batch {batch_id}"), batch_id=batch_id)


@dataclass(frozen=True, slots=True)
class OperationResult:
    status: OperationStatus
    reason: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchAck:
    """A verified acknowledgement: one typed result per operation, in order."""

    batch_id: str
    results: tuple[OperationResult, ...]
    replayed: bool


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    kind: str
    key: str
    digest: str
    status: str
    account_id: str | None


@dataclass(frozen=True, slots=True)
class Manifest:
    dfes_number: str
    records: tuple[ManifestRecord, ...]


@dataclass(frozen=True, slots=True)
class KindSummary:
    count: int
    digest: str


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """Per kind: how many records the national side holds and a digest over them (see docs/protocol.md)."""

    dfes_number: str
    kinds: Mapping[str, KindSummary]


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """The reply body as a JSON object, or ``ApiError``."""
    if not body:
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(
            N_("{what}: the national API's reply is not JSON (a proxy or the wrong server?)"), what=what
        ) from None
    if not isinstance(value, dict):
        raise ApiError(N_("{what}: the national API's reply is not a JSON object"), what=what)
    return value


def _bad(what: str, detail: str, /, **params: object) -> ApiError:
    """The reply breaks the protocol: ``detail`` (marked ``N_``) says where."""
    return ApiError(
        N_("{what}: the national API's reply does not match the protocol: {detail}"),
        what=what,
        detail=Phrase(detail, **params),
    )


def _result(item: object, index: int, what: str) -> OperationResult:
    if not isinstance(item, dict):
        raise _bad(what, N_("results[{index}] is not an object"), index=index)
    status = item.get("status")
    if status not in OPERATION_STATUSES:
        raise _bad(
            what,
            N_("results[{index}].status is {status}, not applied/unchanged/refused"),
            index=index,
            status=repr(str(status)[:40]),
        )
    if item.get("index", index) != index:
        raise _bad(
            what,
            N_("results[{index}] has index {given}"),
            index=index,
            given=repr(str(item.get("index"))[:20]),
        )
    reason = item.get("reason")
    if status == "refused" and not (isinstance(reason, str) and _REASON.match(reason)):
        raise _bad(what, N_("results[{index}] is refused without a reason code"), index=index)
    account = item.get("account_id")
    if account is not None and not (isinstance(account, str) and _ACCOUNT.match(account)):
        raise _bad(what, N_("results[{index}].account_id is not an account id"), index=index)
    return OperationResult(status, reason if status == "refused" else None, account)


def batch_ack(body: bytes, *, batch_id: str, operations: int, replayed: bool) -> BatchAck:
    what = batch(batch_id)
    value = json_object(body, what)
    if value.get("batch_id") != batch_id:
        raise _bad(what, N_("the reply's batch_id is not the batch that was sent"))
    results = value.get("results")
    if not isinstance(results, list) or len(results) != operations:
        raise _bad(what, N_("expected one result per operation ({operations})"), operations=operations)
    return BatchAck(batch_id, tuple(_result(item, i, what) for i, item in enumerate(results)), replayed)


def _record(item: object, index: int) -> ManifestRecord:
    what = MANIFEST
    if not isinstance(item, dict):
        raise _bad(what, N_("records[{index}] is not an object"), index=index)
    kind, key, digest, status = item.get("kind"), item.get("key"), item.get("digest"), item.get("status")
    account = item.get("account_id")
    if kind not in KINDS:
        raise _bad(what, N_("records[{index}].kind is not a record kind"), index=index)
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY:
        raise _bad(what, N_("records[{index}].key is not a key"), index=index)
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise _bad(what, N_("records[{index}].digest is not a sha-256 digest"), index=index)
    if status not in RECORD_STATUSES:
        raise _bad(what, N_("records[{index}].status is not active/left"), index=index)
    if account is not None and not (isinstance(account, str) and _ACCOUNT.match(account)):
        raise _bad(what, N_("records[{index}].account_id is not an account id"), index=index)
    return ManifestRecord(str(kind), key, digest, str(status), account)


def manifest(body: bytes, dfes_number: str) -> Manifest:
    value = json_object(body, MANIFEST)
    if value.get("dfes_number") != dfes_number:
        raise _bad(MANIFEST, N_("it is for another school"))
    records = value.get("records")
    if not isinstance(records, list):
        raise _bad(MANIFEST, N_("records is not a list"))
    parsed = tuple(_record(item, i) for i, item in enumerate(records))
    if len({(r.kind, r.key) for r in parsed}) != len(parsed):
        raise _bad(MANIFEST, N_("a record is listed twice"))
    return Manifest(dfes_number, parsed)


def manifest_summary(body: bytes, dfes_number: str) -> ManifestSummary:
    value = json_object(body, MANIFEST_SUMMARY)
    if value.get("dfes_number") != dfes_number:
        raise _bad(MANIFEST_SUMMARY, N_("it is for another school"))
    kinds = value.get("kinds")
    if not isinstance(kinds, dict) or set(kinds) != KINDS:
        raise _bad(MANIFEST_SUMMARY, N_("kinds must list learner, staff, group and membership"))
    summary: dict[str, KindSummary] = {}
    for kind, item in kinds.items():
        count = item.get("count") if isinstance(item, dict) else None
        digest = item.get("digest") if isinstance(item, dict) else None
        if type(count) is not int or count < 0 or not isinstance(digest, str) or not _DIGEST.match(digest):
            raise _bad(MANIFEST_SUMMARY, N_("kinds.{kind} needs a count and a sha-256 digest"), kind=kind)
        summary[kind] = KindSummary(count, digest)
    return ManifestSummary(dfes_number, summary)


def problem(body: bytes, reason: str) -> tuple[str, str | None]:
    """The detail and type of a problem document (RFC 9457), or the HTTP reason."""
    try:
        value = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        detail = str(value.get("detail") or value.get("title") or reason)
        kind = value.get("type")
        return detail[:300], kind if isinstance(kind, str) else None
    return reason or "no detail", None

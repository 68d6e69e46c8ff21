"""The national API over HTTPS: signed requests, bounded and verified replies, bounded retries.

Retrying a POST is safe here only because every batch carries its id as ``Idempotency-Key`` and the
server applies a batch once. Connection errors, timeouts, 5xx and 429 are retried with exponential
backoff and full jitter (honouring ``Retry-After``) until ``max_attempts`` or ``give_up_after_seconds``;
any other 4xx is final. Each attempt is signed afresh (new ``created`` and ``nonce``) over the same bytes.

Every exchange has a deadline for the whole of it and a size cap (``bounded_http``), ends when the stop
event is set, and every answer is checked against the protocol (``replies``) and, once the school has a
pinned national response key, its signature (``response_keys``): anything else is an ``ApiError``.
Requests carry ``Hwb-Protocol: 2``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests
import structlog

from hwb_client import __version__, errors
from hwb_client.adapters import replies
from hwb_client.adapters.bounded_http import ExchangeCut, Reply, exchange, watched_session
from hwb_client.adapters.replies import (
    MANIFEST,
    MANIFEST_SUMMARY,
    PERMANENTLY_REFUSED,
    BatchAck,
    Manifest,
    ManifestSummary,
)
from hwb_client.adapters.response_keys import ResponseKey, signature_key_id, verify_answer
from hwb_client.adapters.tls_failure import certificate_refused, tls_failure_error
from hwb_client.errors import ApiError, Interrupted, Phrase
from hwb_client.i18n import N_
from hwb_client.settings import ApiSettings

log = structlog.get_logger("hwb_client.transport")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The protocol version this client speaks (docs/protocol.md, "Changes in version 2"); absent means 1.
PROTOCOL_VERSION = "2"

__all__ = ["PERMANENTLY_REFUSED", "BatchAck", "Manifest", "ManifestSummary", "NationalApi", "Response"]

#: What each request is, as its errors name it (translated with them; the logs keep the English).
ENROLMENT = Phrase(N_("enrolment"))
RUN_REPORT = Phrase(N_("run report"))
KEY = Phrase(N_("key"))
KEY_RETIREMENT = Phrase(N_("key retirement"))
HEALTH_CHECK = Phrase(N_("health check"))
RESPONSE_KEYS = Phrase(N_("response keys"))
RECORD_LOOKUP = Phrase(N_("record lookup"))
STATUS = Phrase(N_("status"))
ROTATION = Phrase(N_("rotation"))
REQUEST = Phrase(N_("request"))
_LIST_NOT_USABLE = N_("response keys: the national API's list is not usable: {problem}")
_RESENT = N_("{what}: {detail}; what was not acknowledged is resent next run")


class Signer(Protocol):
    def sign(self, request: requests.PreparedRequest) -> None: ...


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Answer:
    """A 2xx answer: the reply and the request it answers (for its signature)."""

    reply: Reply
    request: requests.PreparedRequest


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class NationalApi:
    """A client for one school's side of the protocol (see docs/protocol.md).

    ``response_keys`` are the school's pinned national response keys: when given, every 2xx answer to a
    signed request must carry a valid national signature. ``None`` (enrolment, or a 0.1.0 school before
    its key is learned) checks the answers' shape only.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        signer: Signer | None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        session: requests.Session | None = None,
        response_keys: tuple[ResponseKey, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.base_url).rstrip("/")
        self.signer = signer
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self.response_keys = response_keys
        #: called with the new key set when a pinned key vouched for a rotated national key
        self.on_keys_rotated: Callable[[tuple[ResponseKey, ...]], None] | None = None
        self.session = session or watched_session()
        self.session.headers["User-Agent"] = f"hwb-client/{__version__}"
        self.session.headers["Hwb-Protocol"] = PROTOCOL_VERSION
        self.session.headers["Accept-Encoding"] = "gzip"
        self.session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        if settings.proxy:
            self.session.proxies = {"http": settings.proxy, "https": settings.proxy}

    def close(self) -> None:
        self.session.close()

    # -- the protocol ------------------------------------------------------------------------------

    def enrol(self, dfes_number: str, code: str, public_key_b64: str) -> dict[str, Any]:
        """Enrol; the answer's ``response_key`` (v2) is returned parsed as a ``ResponseKey``."""
        body = {"dfes_number": dfes_number, "enrolment_code": code, "public_key": public_key_b64}
        answer = self._call("POST", "/v1/enrolments", json_body=body, signed=False, what=ENROLMENT)
        value = replies.json_object(answer.reply.body, ENROLMENT)
        if "response_key" in value:
            try:
                value["response_key"] = ResponseKey.parse(value["response_key"])
            except ValueError as exc:
                raise ApiError(
                    N_("enrolment: the national response key is not usable: {problem}"), problem=exc
                ) from None
        return value

    def post_batch(
        self, dfes_number: str, batch_id: str, body: bytes, content_encoding: str | None, operations: int
    ) -> BatchAck:
        headers = {"Content-Type": "application/json", "Idempotency-Key": f'"{batch_id}"'}
        if content_encoding:
            headers["Content-Encoding"] = content_encoding
        answer = self._call(
            "POST",
            f"/v1/schools/{dfes_number}/batches",
            body=body,
            headers=headers,
            what=replies.batch(batch_id),
        )
        replayed = answer.reply.headers.get("Idempotent-Replayed") == "true"
        return replies.batch_ack(
            answer.reply.body, batch_id=batch_id, operations=operations, replayed=replayed
        )

    def post_run_report(self, dfes_number: str, report: Mapping[str, Any]) -> None:
        answer = self._call(
            "POST", f"/v1/schools/{dfes_number}/run-reports", json_body=report, what=RUN_REPORT
        )
        replies.json_object(answer.reply.body, RUN_REPORT)

    def add_key(self, dfes_number: str, public_key_b64: str) -> dict[str, Any]:
        """Register a new signing key, signed by a current one (key rotation)."""
        body = {"public_key": public_key_b64}
        answer = self._call("POST", f"/v1/schools/{dfes_number}/keys", json_body=body, what=KEY)
        return replies.json_object(answer.reply.body, KEY)

    def retire_key(self, dfes_number: str, key_id: str) -> None:
        self._call("DELETE", f"/v1/schools/{dfes_number}/keys/{key_id}", what=KEY_RETIREMENT)

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (not signed either way): a sandbox says so (``"sandbox": true``) and its today."""
        answer = self._call("GET", "/healthz", signed=False, what=HEALTH_CHECK, verify=False)
        return replies.json_object(answer.reply.body, HEALTH_CHECK)

    def manifest(self, dfes_number: str) -> Manifest:
        answer = self._call("GET", f"/v1/schools/{dfes_number}/manifest", what=MANIFEST)
        return replies.manifest(answer.reply.body, dfes_number)

    def manifest_document(self, dfes_number: str) -> dict[str, Any]:
        """The manifest as the national side wrote it (protocol 2 adds per-record calendar fields), for
        people and demos; a run uses the checked, typed ``manifest``."""
        answer = self._call("GET", f"/v1/schools/{dfes_number}/manifest", what=MANIFEST)
        replies.manifest(answer.reply.body, dfes_number)  # the same checks, then the document as sent
        return replies.json_object(answer.reply.body, MANIFEST)

    def manifest_summary(self, dfes_number: str, digest_key: bytes) -> ManifestSummary:
        headers = {"Hwb-Digest-Key": base64.urlsafe_b64encode(digest_key).decode("ascii").rstrip("=")}
        answer = self._call(
            "GET", f"/v1/schools/{dfes_number}/manifest/summary", headers=headers, what=MANIFEST_SUMMARY
        )
        return replies.manifest_summary(answer.reply.body, dfes_number)

    def fetch_response_keys(self) -> tuple[ResponseKey, ...]:
        """The national response keys as listed by ``GET /v1/response-keys``; the answer must be signed by
        one of the keys it lists (and, when keys are pinned, by a pinned one)."""
        answer = self._call("GET", "/v1/response-keys", signed=False, what=RESPONSE_KEYS, verify=False)
        value = replies.json_object(answer.reply.body, RESPONSE_KEYS)
        try:
            listed = tuple(ResponseKey.parse(item) for item in value.get("keys") or ())
        except (ValueError, TypeError) as exc:
            raise ApiError(_LIST_NOT_USABLE, problem=exc) from None
        if not listed:
            raise ApiError(N_("response keys: the national API lists no response key (protocol version 1?)"))
        trusted = self.response_keys if self.response_keys else listed
        reply = answer.reply
        verify_answer(trusted, answer.request, reply.status, reply.headers, reply.wire, what=RESPONSE_KEYS)
        return listed

    def lookup_records(self, dfes_number: str, refs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Protocol 2: the national side's view of some of the school's own records, ``(kind, key)``
        with hashed keys only (see docs/protocol.md, "Per-record lookup")."""
        body = {"records": [{"kind": kind, "key": key} for kind, key in refs]}
        answer = self._call(
            "POST",
            f"/v1/schools/{dfes_number}/records/lookup",
            json_body=body,
            what=RECORD_LOOKUP,
        )
        records = replies.json_object(answer.reply.body, RECORD_LOOKUP).get("records")
        return [dict(r) for r in records] if isinstance(records, list) else []

    def status(self, dfes_number: str) -> dict[str, Any]:
        answer = self._call("GET", f"/v1/schools/{dfes_number}/status", what=STATUS)
        return replies.json_object(answer.reply.body, STATUS)

    # -- plumbing ----------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.stop.wait(seconds):
            raise Interrupted(
                N_("stopped while waiting to retry; what was not acknowledged is resent next run")
            )

    def _prepare(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], signed: bool
    ) -> requests.PreparedRequest:
        if self.stop.is_set():
            raise Interrupted(N_("stopped before sending; what was not acknowledged is resent next run"))
        prepared = self.session.prepare_request(
            requests.Request(method, url, data=body, headers=dict(headers))
        )
        if signed:
            if self.signer is None:
                raise ApiError(N_("this school is not enrolled: run `hwb-client enrol` first"))
            self.signer.sign(prepared)
        return prepared

    def _attempt(self, prepared: requests.PreparedRequest, deadline_seconds: float, what: Phrase) -> Reply:
        timeout = (self.settings.connect_timeout_seconds, self.settings.read_timeout_seconds)
        try:
            return exchange(
                self.session,
                prepared,
                timeout=timeout,
                deadline_seconds=deadline_seconds,
                max_bytes=self.settings.max_reply_bytes,
                stop=self.stop,
            )
        except ExchangeCut as exc:
            if exc.reason == "stopped":
                raise Interrupted(_RESENT, what=what, detail=exc.detail) from None
            if exc.reason == "too_large":
                raise ApiError(
                    N_("{what}: the national API's reply is too large: {detail}"),
                    what=what,
                    detail=exc.detail,
                ) from None
            raise
        except requests.RequestException:
            raise
        except ValueError as exc:
            raise ApiError(
                N_("{what}: the national API's reply cannot be read: {problem}"), what=what, problem=exc
            ) from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        what: Phrase = REQUEST,
        verify: bool = True,
    ) -> _Answer:
        url = self.base_url + path
        request_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            request_headers.setdefault("Content-Type", "application/json")
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            prepared = self._prepare(method, url, body, request_headers, signed)
            remaining = self.settings.give_up_after_seconds - (time.monotonic() - started)
            deadline_seconds = max(1.0, min(self.settings.request_deadline_seconds, remaining))
            retry_after: float | None = None
            status: int | None = None
            failure: str
            try:
                reply = self._attempt(prepared, deadline_seconds, what)
            except ExchangeCut as exc:
                failure = exc.detail
            except requests.exceptions.SSLError as exc:
                if certificate_refused(exc):  # a certificate does not verify better on a retry
                    raise tls_failure_error(what, exc, url, self.settings.ca_bundle) from None
                failure = "SSLError"  # a handshake cut short: retried like a reset
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                # ChunkedEncodingError: the connection broke while the answer's body was being read (a
                # reset mid-body). The server may have applied the request; retrying the same bytes is
                # safe because the batch id deduplicates it.
                failure = f"{type(exc).__name__}"
            except requests.RequestException as exc:
                raise ApiError(
                    N_("{what}: {error_type}: {problem}"),
                    what=what,
                    error_type=type(exc).__name__,
                    problem=exc,
                ) from None
            else:
                status = reply.status
                if 200 <= status < 300:
                    return self._accepted(_Answer(reply, prepared), signed=signed and verify, what=what)
                detail, problem_type = replies.problem(reply.body, reply.reason)
                failure = f"HTTP {status}: {detail}"
                if status not in RETRY_STATUSES:
                    raise ApiError(
                        N_("{what} refused by the national API: {failure}"),
                        what=what,
                        failure=failure,
                        status=status,
                        problem_type=problem_type,
                        permanent=status in PERMANENTLY_REFUSED,
                    )
                retry_after = _retry_after(reply.headers.get("Retry-After"))
            self._before_retry(attempt, started, failure, status, retry_after, what)

    def _accepted(self, answer: _Answer, *, signed: bool, what: Phrase) -> _Answer:
        if signed and self.response_keys is not None:
            reply = answer.reply
            key_id = signature_key_id(reply.headers)
            if key_id is not None and key_id not in {key.key_id for key in self.response_keys}:
                self._follow_rotation(key_id)
            verify_answer(
                self.response_keys, answer.request, reply.status, reply.headers, reply.wire, what=what
            )
        return answer

    def _vouched_keys(self, pinned: ResponseKey) -> tuple[ResponseKey, ...]:
        """The national keys as listed in an answer signed by ``pinned`` (``ApiError`` otherwise)."""
        path = f"/v1/response-keys?signed_by={quote(pinned.key_id, safe='')}"
        answer = self._call("GET", path, signed=False, what=RESPONSE_KEYS, verify=False)
        reply = answer.reply
        verify_answer((pinned,), answer.request, reply.status, reply.headers, reply.wire, what=ROTATION)
        listed = replies.json_object(reply.body, RESPONSE_KEYS).get("keys") or ()
        try:
            return tuple(ResponseKey.parse(item) for item in listed)
        except (ValueError, TypeError) as exc:
            raise ApiError(_LIST_NOT_USABLE, problem=exc) from None

    def _follow_rotation(self, new_key_id: str) -> None:
        """An answer signed by a key not pinned: adopt the national keys a pinned key vouches for
        (``GET /v1/response-keys?signed_by=PINNED``), if they list the new key. Otherwise nothing changes
        and the answer is refused."""
        for pinned in self.response_keys or ():
            try:
                listed = self._vouched_keys(pinned)
            except ApiError:
                continue
            if new_key_id in {key.key_id for key in listed}:
                self.response_keys = listed
                log.warning("response_key_rotated", key_id=new_key_id, vouched_by=pinned.key_id)
                if self.on_keys_rotated is not None:
                    self.on_keys_rotated(listed)
                return

    def _before_retry(
        self,
        attempt: int,
        started: float,
        failure: str,
        status: int | None,
        retry_after: float | None,
        what: Phrase,
    ) -> None:
        elapsed = time.monotonic() - started
        backoff = min(
            self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempt - 1)
        )
        delay = random.uniform(0, backoff)  # noqa: S311 - jitter, not cryptography
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.backoff_max_seconds))
        if attempt >= self.settings.max_attempts or elapsed + delay > self.settings.give_up_after_seconds:
            raise ApiError(
                errors.ngettext(
                    "{what}: the national API could not be reached after {attempts} attempt over "
                    "{seconds} s (last: {failure}); the run will be retried",
                    "{what}: the national API could not be reached after {attempts} attempts over "
                    "{seconds} s (last: {failure}); the run will be retried",
                    attempt,
                ),
                what=what,
                attempts=attempt,
                seconds=f"{elapsed:.0f}",
                failure=failure,
                status=status,
            )
        log.warning(
            "request_retry",
            what=what.split(" ")[0],
            attempt=attempt,
            failure=failure,
            delay_seconds=round(delay, 2),
        )
        self._wait(delay)

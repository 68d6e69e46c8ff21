"""The national API over HTTPS: signed requests, bounded retries, problem documents turned into errors.

Retrying a POST is safe here only because every batch carries its id as ``Idempotency-Key`` and the
server applies a batch once. Connection errors, timeouts, 5xx and 429 are retried with exponential
backoff and full jitter (honouring ``Retry-After``) until ``max_attempts`` or ``give_up_after_seconds``;
any other 4xx is final. Each attempt is signed afresh (new ``created`` and ``nonce``) over the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
import structlog

from hwb_client import __version__
from hwb_client.adapters.tls_failure import certificate_refused, tls_failure_message
from hwb_client.errors import ApiError, Interrupted
from hwb_client.settings import ApiSettings

log = structlog.get_logger("hwb_client.transport")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The protocol version this client speaks (docs/protocol.md, "Changes in version 2"); absent means 1.
PROTOCOL_VERSION = "2"


class Signer(Protocol):
    def sign(self, request: requests.PreparedRequest) -> None: ...


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]


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


def _problem(response: requests.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no detail", None
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or response.reason)
        return detail[:300], body.get("type")
    return response.reason or "no detail", None


class NationalApi:
    """A client for one school's side of the protocol (see docs/protocol.md)."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        signer: Signer | None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.base_url).rstrip("/")
        self.signer = signer
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"hwb-client/{__version__}"
        self.session.headers["Hwb-Protocol"] = PROTOCOL_VERSION
        self.session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        if settings.proxy:
            self.session.proxies = {"http": settings.proxy, "https": settings.proxy}

    def close(self) -> None:
        self.session.close()

    # -- the protocol ------------------------------------------------------------------------------

    def enrol(self, dfes_number: str, code: str, public_key_b64: str) -> dict[str, Any]:
        body = {"dfes_number": dfes_number, "enrolment_code": code, "public_key": public_key_b64}
        return dict(self._call("POST", "/v1/enrolments", json_body=body, signed=False).body)

    def post_batch(
        self, dfes_number: str, batch_id: str, body: bytes, content_encoding: str | None
    ) -> Response:
        headers = {"Content-Type": "application/json", "Idempotency-Key": f'"{batch_id}"'}
        if content_encoding:
            headers["Content-Encoding"] = content_encoding
        return self._call(
            "POST", f"/v1/schools/{dfes_number}/batches", body=body, headers=headers, what=f"batch {batch_id}"
        )

    def post_run_report(self, dfes_number: str, report: Mapping[str, Any]) -> Response:
        return self._call(
            "POST", f"/v1/schools/{dfes_number}/run-reports", json_body=report, what="run report"
        )

    def add_key(self, dfes_number: str, public_key_b64: str) -> dict[str, Any]:
        """Register a new signing key, signed by a current one (key rotation)."""
        body = {"public_key": public_key_b64}
        return dict(self._call("POST", f"/v1/schools/{dfes_number}/keys", json_body=body, what="key").body)

    def retire_key(self, dfes_number: str, key_id: str) -> None:
        self._call("DELETE", f"/v1/schools/{dfes_number}/keys/{key_id}", what="key retirement")

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (not signed): a sandbox says so (``"sandbox": true``) and gives its today."""
        answer = self._call("GET", "/healthz", signed=False, what="health check").body
        return dict(answer) if isinstance(answer, dict) else {}

    def manifest(self, dfes_number: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/schools/{dfes_number}/manifest", what="manifest").body)

    def lookup_records(self, dfes_number: str, refs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Protocol 2: the national side's view of some of the school's own records, ``(kind, key)``
        with hashed keys only (see docs/protocol.md, "Per-record lookup")."""
        body = {"records": [{"kind": kind, "key": key} for kind, key in refs]}
        answer = self._call(
            "POST",
            f"/v1/schools/{dfes_number}/records/lookup",
            json_body=body,
            headers={"Hwb-Protocol": "2"},
            what="record lookup",
        ).body
        records = answer.get("records") if isinstance(answer, dict) else None
        return [dict(r) for r in records] if isinstance(records, list) else []

    def status(self, dfes_number: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/schools/{dfes_number}/status", what="status").body)

    # -- plumbing ----------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.stop.wait(seconds):
            raise Interrupted("stopped while waiting to retry; what was not acknowledged is resent next run")

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        what: str = "request",
    ) -> Response:
        url = self.base_url + path
        request_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            request_headers.setdefault("Content-Type", "application/json")
        timeout = (self.settings.connect_timeout_seconds, self.settings.read_timeout_seconds)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if self.stop.is_set():
                raise Interrupted("stopped before sending; what was not acknowledged is resent next run")
            prepared = self.session.prepare_request(
                requests.Request(method, url, data=body, headers=request_headers)
            )
            if signed:
                if self.signer is None:
                    raise ApiError("this school is not enrolled: run `hwb-client enrol` first")
                self.signer.sign(prepared)
            retry_after: float | None = None
            try:
                response = self.session.send(prepared, timeout=timeout, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                if certificate_refused(exc):  # a certificate does not verify better on a retry
                    raise ApiError(tls_failure_message(what, exc, url, self.settings.ca_bundle)) from None
                failure, status = "SSLError", None  # a handshake cut short: retried like a reset
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                # ChunkedEncodingError: the connection broke while the answer's body was being read (a
                # reset mid-body). The server may have applied the request; retrying the same bytes is
                # safe because the batch id deduplicates it.
                failure = f"{type(exc).__name__}"
                status = None
            except requests.RequestException as exc:
                raise ApiError(f"{what}: {type(exc).__name__}: {exc}") from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    payload = response.json() if response.content else {}
                    return Response(status, payload, dict(response.headers))
                detail, problem_type = _problem(response)
                failure = f"HTTP {status}: {detail}"
                if status not in RETRY_STATUSES:
                    raise ApiError(
                        f"{what} refused by the national API: {failure}",
                        status=status,
                        problem_type=problem_type,
                    )
                retry_after = _retry_after(response.headers.get("Retry-After"))
            elapsed = time.monotonic() - started
            backoff = min(
                self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempt - 1)
            )
            delay = random.uniform(0, backoff)  # noqa: S311 - jitter, not cryptography
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.settings.backoff_max_seconds))
            if attempt >= self.settings.max_attempts or elapsed + delay > self.settings.give_up_after_seconds:
                raise ApiError(
                    f"{what}: the national API could not be reached after {attempt} attempt(s) over "
                    f"{elapsed:.0f} s (last: {failure}); the run will be retried",
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

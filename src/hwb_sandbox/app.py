"""The sandbox national API as a WSGI application (Werkzeug routing, request parsing and responses).

Each handler reads, checks and refuses in the same order: the route and school (404), the body size
(413), the signature (401), the media type and encoding (415), JSON (400) and the protocol schema (422).
Every refusal is a problem document; an unexpected exception becomes a ``500`` problem document and is
logged with its traceback, but no bad input is meant to reach that path (the fuzz tests check it).
Problem documents and the portal are in the language of the request's ``Accept-Language`` (English or
Welsh, :mod:`hwb_sandbox.i18n`), said in ``Content-Language`` with ``Vary: Accept-Language``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from hwb_sandbox import bounded, national, openapi, portal
from hwb_sandbox.appliers import BatchAppliers
from hwb_sandbox.bodies import parse_json, validate
from hwb_sandbox.i18n import N_, Language, negotiate
from hwb_sandbox.problems import PROBLEM_MEDIA_TYPE, Problem
from hwb_sandbox.schemas import (
    EnrolmentRequest,
    KeyRequest,
    RecordLookup,
    RunReport,
)
from hwb_sandbox.signatures import (
    BATCH_COMPONENTS,
    BODY_COMPONENTS,
    GET_COMPONENTS,
    ResponseKeyring,
    SignedRequest,
    verify_request,
)
from hwb_sandbox.store import EnrolmentRefused, SandboxStore, School, public_key_from_b64

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY_BYTES: Final = bounded.BATCH.raw
MAX_DECOMPRESSED_BYTES: Final = bounded.BATCH.inflated

log = logging.getLogger("hwb_sandbox")

URL_MAP: Final = Map(
    [
        Rule("/healthz", endpoint="healthz", methods=["GET"]),
        Rule("/openapi.json", endpoint="openapi", methods=["GET"]),
        Rule("/portal", endpoint="portal", methods=["GET"]),
        Rule("/v1/enrolments", endpoint="enrol", methods=["POST"]),
        Rule("/v1/schools/<dfes>/keys", endpoint="add_key", methods=["POST"]),
        Rule("/v1/schools/<dfes>/keys/<key_id>", endpoint="retire_key", methods=["DELETE"]),
        Rule("/v1/schools/<dfes>/batches", endpoint="post_batch", methods=["POST"]),
        Rule("/v1/schools/<dfes>/run-reports", endpoint="post_run_report", methods=["POST"]),
        Rule("/v1/schools/<dfes>/status", endpoint="status", methods=["GET"]),
        Rule("/v1/schools/<dfes>/manifest", endpoint="manifest", methods=["GET"]),
        Rule("/v1/schools/<dfes>/records/lookup", endpoint="lookup_records", methods=["POST"]),
        Rule("/v1/schools/<dfes>/manifest/summary", endpoint="manifest_summary", methods=["GET"]),
        Rule("/v1/response-keys", endpoint="response_keys", methods=["GET"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log a stable snake_case event with key=value context (never names, dates of birth or UPNs)."""
    context = " ".join(f"{key}={value}" for key, value in fields.items())
    log.log(level, "%s %s", event, context)


def json_response(value: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return Response(body, status=status, headers=dict(headers or {}), content_type="application/json")


def in_language(response: Response, lang: Language) -> Response:
    """Mark a reply whose words follow ``Accept-Language``: its language, and that it varies with it."""
    response.headers["Content-Language"] = lang.code
    response.vary.add("Accept-Language")
    return response


def problem_response(problem: Problem, lang: Language) -> Response:
    response = Response(
        problem.body_bytes(lang),
        status=problem.status,
        headers=problem.headers,
        content_type=PROBLEM_MEDIA_TYPE,
    )
    return in_language(response, lang)


def target_uri(environ: Mapping[str, Any], public_url: str | None) -> str:
    """The absolute URI the client signed: the public base (or scheme and Host) + the request target."""
    request_uri = str(environ.get("REQUEST_URI") or "")
    if not request_uri:
        request_uri = quote(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")))
        if environ.get("QUERY_STRING"):
            request_uri += "?" + str(environ["QUERY_STRING"])
    if request_uri.startswith(("http://", "https://")):  # absolute-form request target
        parts = urlsplit(request_uri)
        if public_url is None:
            return request_uri
        request_uri = parts.path + (f"?{parts.query}" if parts.query else "")
    if public_url is not None:
        return public_url.rstrip("/") + request_uri
    host = (
        environ.get("HTTP_HOST")
        or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    )
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{request_uri}"


def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body bytes as sent, at most ``limit`` (413 beyond)."""
    return bounded.read_capped(request.stream, request.content_length, limit)


def decode_content(request: Request, body: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Check the media type (JSON, UTF-8) and undo ``Content-Encoding: gzip`` up to ``limit`` bytes."""
    if request.mimetype != "application/json":
        raise Problem("unsupported-media-type", N_("the body must be Content-Type: application/json"))
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Problem("unsupported-media-type", N_("the body must be UTF-8"))
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise Problem("unsupported-media-type", N_("the only content encoding accepted is gzip"))
    return bounded.inflate_gzip(body, limit)


def idempotency_key(request: Request) -> str:
    """The batch id from ``Idempotency-Key: "UUID"`` (a structured-field string); 400 if absent or not."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        raise Problem(
            "idempotency-key-missing", N_('a batch post needs an Idempotency-Key: "BATCH_ID" header')
        )
    try:
        parsed = http_sf.parse(raw.encode("ascii"), tltype="item")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise Problem(
            "idempotency-key-missing", N_("Idempotency-Key must be a quoted structured-field string")
        ) from exc
    value = parsed[0] if isinstance(parsed, tuple) else None
    if not isinstance(value, str) or not value:
        raise Problem(
            "idempotency-key-missing", N_("Idempotency-Key must be a quoted structured-field string")
        )
    return value


def protocol_version(request: Request) -> int:
    """The protocol version the client speaks: its ``Hwb-Protocol`` header (absent or unreadable: 1)."""
    return national.protocol_version(request.headers.get("Hwb-Protocol"))


def kind_summaries(records: Iterable[Mapping[str, Any]], digest_key: bytes) -> dict[str, dict[str, Any]]:
    """Per kind: the count, and SHA-256 over sorted ``key TAB status TAB keyed-digest LF`` lines, where
    keyed-digest is ``hmac-sha-256:`` + hex(HMAC-SHA256(digest_key, digest)) (docs/protocol.md)."""
    lines: dict[str, list[str]] = {kind: [] for kind in ("learner", "staff", "group", "membership")}
    for record in records:
        keyed = hmac.new(digest_key, str(record["digest"]).encode("ascii"), hashlib.sha256).hexdigest()
        lines.setdefault(str(record["kind"]), []).append(
            f"{record['key']}\t{record['status']}\thmac-sha-256:{keyed}\n"
        )
    return {
        kind: {
            "count": len(found),
            "digest": "sha-256:" + hashlib.sha256("".join(sorted(found)).encode("utf-8")).hexdigest(),
        }
        for kind, found in lines.items()
    }


def _digest_key(request: Request) -> bytes:
    raw = request.headers.get("Hwb-Digest-Key") or ""
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)) if raw.isascii() else b""
    except ValueError:
        key = b""
    if len(key) != 32:
        raise Problem("validation-failed", N_("Hwb-Digest-Key must be the base64url of 32 bytes"))
    return key


Handler = Callable[..., Response]


class SandboxApp:
    """The WSGI application. ``public_url`` is the scheme and authority clients sign, if behind a proxy."""

    def __init__(
        self, store: SandboxStore, *, public_url: str | None = None, appliers: BatchAppliers | None = None
    ) -> None:
        self.store = store
        self.public_url = public_url
        #: where batches are applied: in the serving thread, or in worker processes (``appliers``)
        self.appliers = appliers or BatchAppliers(store)
        self._openapi_bytes = json.dumps(openapi.document(), ensure_ascii=False, indent=2).encode("utf-8")
        self.response_keys = ResponseKeyring.for_database(store.path)
        self.response_signer = self.response_keys.current

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        lang = negotiate(request.headers.get("Accept-Language"))
        endpoint = "unmatched"
        try:
            adapter = URL_MAP.bind_to_environ(environ)
            endpoint, args = adapter.match()
            handler: Handler = getattr(self, f"on_{endpoint}")
            response = handler(request, **args)
        except Problem as problem:
            response = problem_response(problem, lang)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            refusal = Problem(
                "method-not-allowed", N_("allowed: {methods}"), headers={"Allow": allowed}, methods=allowed
            )
            response = problem_response(refusal, lang)
        except NotFound:
            response = problem_response(Problem("not-found", N_("no such resource in protocol v1")), lang)
        except HTTPException as exc:  # a redirect or another routing answer Werkzeug builds itself
            response = exc.get_response(environ)
        except Exception:
            log.exception("request_failed endpoint=%s", endpoint)
            response = problem_response(
                Problem("internal-error", N_("the sandbox failed; see its log")), lang
            )
        if request.path.startswith("/v1/"):
            self._sign_response(request, response)
        log_event(
            "request_handled",
            method=request.method,
            endpoint=endpoint,
            status=response.status_code,
            protocol=protocol_version(request),
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response(environ, start_response)

    # -- shared steps ----------------------------------------------------------------------------------------

    def _school(self, dfes: str) -> School:
        school = self.store.school(dfes)
        if school is None:
            raise Problem(
                "school-unknown",
                N_("no school {dfes} is registered; ask for an enrolment code"),
                dfes=repr(dfes),
            )
        return school

    def _verified(
        self, request: Request, dfes: str, components: tuple[str, ...], limit: int = bounded.SMALL.raw
    ) -> tuple[str, bytes]:
        """Read the body (at most ``limit`` bytes), verify the signature over it; return (key id, body)."""
        body = read_body(request, limit)
        signed = SignedRequest.build(
            request.method, target_uri(request.environ, self.public_url), request.headers.items(), body
        )
        key_id = verify_request(self.store, dfes, signed, components)
        return key_id, body

    def _sign_response(self, request: Request, response: Response) -> None:
        """Sign every /v1 answer with the national response key (v2; harmless extra headers for v1)."""
        answered = SignedRequest.build(
            request.method, target_uri(request.environ, self.public_url), request.headers.items(), b""
        )
        signer = request.environ.get("hwb.response_signer", self.response_signer)
        signer.sign(answered, response.status_code, response.headers, response.get_data(), self.store.clock())

    # -- public documents ------------------------------------------------------------------------------------

    def on_healthz(self, request: Request) -> Response:
        # ``sandbox``: a client rehearsing a date (``--as-of``) sends real runs only to a sandbox
        return json_response({"status": "ok", "sandbox": True, "today": self.store.today().isoformat()})

    def on_openapi(self, request: Request) -> Response:
        return Response(self._openapi_bytes, content_type="application/json")

    def on_portal(self, request: Request) -> Response:
        lang = negotiate(request.headers.get("Accept-Language"))
        page = Response(portal.render(self.store, lang), content_type="text/html; charset=utf-8")
        return in_language(page, lang)

    # -- enrolment and keys ----------------------------------------------------------------------------------

    def on_enrol(self, request: Request) -> Response:
        body = read_body(request, bounded.SMALL.raw)
        enrolment = validate(
            EnrolmentRequest, parse_json(decode_content(request, body, bounded.SMALL.inflated))
        )
        public_key = _public_key(enrolment.public_key)
        try:
            school, key_id = self.store.enrol(enrolment.dfes_number, enrolment.enrolment_code, public_key)
        except EnrolmentRefused as exc:
            log_event("enrolment_refused", dfes=enrolment.dfes_number)
            raise Problem("enrolment-code-invalid", exc.template) from exc
        log_event("school_enrolled", dfes=school.dfes_number, key_id=key_id)
        answer: dict[str, Any] = {
            "dfes_number": school.dfes_number,
            "key_id": key_id,
            "school_name": school.name,
        }
        if protocol_version(request) >= 2:
            answer["response_key"] = self.response_signer.public()  # v2: the key the client pins
        return json_response(answer, status=201)

    def on_add_key(self, request: Request, dfes: str) -> Response:
        self._school(dfes)
        signer, body = self._verified(request, dfes, BODY_COMPONENTS)
        key_request = validate(KeyRequest, parse_json(decode_content(request, body, bounded.SMALL.inflated)))
        try:
            key_id = self.store.add_key(dfes, _public_key(key_request.public_key))
        except EnrolmentRefused as exc:
            raise Problem("validation-failed", exc.template) from exc
        log_event("key_added", dfes=dfes, key_id=key_id, signed_by=signer)
        return json_response({"key_id": key_id}, status=201)

    def on_retire_key(self, request: Request, dfes: str, key_id: str) -> Response:
        self._school(dfes)
        signer, _body = self._verified(request, dfes, GET_COMPONENTS)
        key = self.store.key(key_id)
        if key is None or key.dfes_number != dfes:
            raise Problem(
                "not-found", N_("school {dfes} has no key {key_id}"), dfes=dfes, key_id=repr(key_id)
            )
        if not key.retired and self.store.active_keys(dfes) == [key_id]:
            raise Problem(
                "validation-failed",
                N_("this is the school's only current key; add another key before retiring it"),
            )
        self.store.retire_key(key_id)
        log_event("key_retired", dfes=dfes, key_id=key_id, signed_by=signer)
        return Response(status=204)

    # -- batches and run reports -----------------------------------------------------------------------------

    def on_post_batch(self, request: Request, dfes: str) -> Response:
        self._school(dfes)
        batch_key = idempotency_key(request)
        _signer, body = self._verified(request, dfes, BATCH_COMPONENTS, bounded.BATCH.raw)
        inflated = decode_content(request, body, bounded.BATCH.inflated)
        try:
            applied = self.appliers.apply(dfes, batch_key, inflated)
        except Problem as problem:
            if problem.slug == "idempotency-key-reused":
                log_event("batch_id_reused", level=logging.WARNING, dfes=dfes, batch_id=batch_key)
            raise
        answer = applied.answer
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        log_event(
            "batch_replayed" if answer.replayed else "batch_applied",
            dfes=dfes,
            batch_id=applied.batch_id,
            run_id=applied.run_id,
            batch_seq=applied.sequence,
            operations=applied.operations,
        )
        return Response(answer.body, status=200, headers=headers, content_type="application/json")

    def on_post_run_report(self, request: Request, dfes: str) -> Response:
        self._school(dfes)
        _signer, body = self._verified(request, dfes, BODY_COMPONENTS, bounded.RUN_REPORT.raw)
        report = validate(RunReport, parse_json(decode_content(request, body, bounded.RUN_REPORT.inflated)))
        created, received_at = self.store.record_run_report(
            dfes, report.model_dump(mode="json", exclude_unset=True)
        )
        log_event("run_report_received", dfes=dfes, run_id=report.run_id, outcome=report.outcome, new=created)
        return json_response(
            {"run_id": report.run_id, "received_at": received_at}, status=201 if created else 200
        )

    # -- reads -----------------------------------------------------------------------------------------------

    def on_status(self, request: Request, dfes: str) -> Response:
        school = self._school(dfes)
        self._verified(request, dfes, GET_COMPONENTS)
        return json_response(
            {
                "dfes_number": school.dfes_number,
                "school_name": school.name,
                "last_run": self.store.last_run(dfes),
                "last_success_at": self.store.last_success_at(dfes),
            }
        )

    def on_manifest(self, request: Request, dfes: str) -> Response:
        school = self._school(dfes)
        self._verified(request, dfes, GET_COMPONENTS)
        records = self.store.manifest(dfes, protocol=protocol_version(request))
        return json_response({"dfes_number": school.dfes_number, "records": records})

    def on_lookup_records(self, request: Request, dfes: str) -> Response:
        """Protocol 2: the school's own learner/staff records by key (POST, so hashes stay out of URLs)."""
        school = self._school(dfes)
        _signer, body = self._verified(request, dfes, BODY_COMPONENTS)
        lookup = validate(RecordLookup, parse_json(decode_content(request, body)))
        records = [self.store.lookup(dfes, ref.kind, ref.key) for ref in lookup.records]
        log_event("records_looked_up", dfes=dfes, records=len(records))
        return json_response({"dfes_number": school.dfes_number, "records": records})

    def on_manifest_summary(self, request: Request, dfes: str) -> Response:
        school = self._school(dfes)
        self._verified(request, dfes, GET_COMPONENTS)
        summary = kind_summaries(self.store.manifest(dfes), _digest_key(request))
        return json_response({"dfes_number": school.dfes_number, "kinds": summary})

    def on_response_keys(self, request: Request) -> Response:
        """The current key, signed by the current key or by ``?signed_by=KEY_ID`` (a previous one)."""
        wanted = request.args.get("signed_by")
        if wanted is not None:
            signer = self.response_keys.by_id.get(wanted)
            if signer is None:
                raise Problem("not-found", N_("no such response key"))
            request.environ["hwb.response_signer"] = signer
        return json_response({"keys": [self.response_signer.public()]})


def _public_key(value: str) -> bytes:
    """Raw Ed25519 public key bytes from the protocol's base64; 422 when it is not a usable key."""
    try:
        raw = public_key_from_b64(value)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise Problem(
            "validation-failed", N_("public_key must be the base64 of a raw 32-byte Ed25519 public key")
        ) from exc
    return raw

"""Protocol v1 as an OpenAPI 3.1 document: schemas from the pydantic models, paths written out here.

``hwb-sandbox openapi > docs/openapi.json`` regenerates the copy kept in the repository; a test fails
when the copy and the served document differ.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hwb_sandbox.problems import PROBLEM_MEDIA_TYPE, PROBLEMS
from hwb_sandbox.schemas import (
    DFES_PATTERN,
    Batch,
    BatchResult,
    EnrolmentRequest,
    EnrolmentResponse,
    Health,
    KeyRequest,
    KeyResponse,
    Manifest,
    ManifestSummary,
    ProblemDocument,
    RecordLookup,
    RecordLookupResult,
    ResponseKeys,
    RunReport,
    RunReportAck,
    Status,
)

PROTOCOL_VERSION: Final = "1.0.0"

_REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Batch,
    EnrolmentRequest,
    KeyRequest,
    RecordLookup,
    RunReport,
)
_RESPONSE_MODELS: Final[tuple[type[BaseModel], ...]] = (
    BatchResult,
    EnrolmentResponse,
    Health,
    KeyResponse,
    Manifest,
    ProblemDocument,
    RecordLookupResult,
    RunReportAck,
    Status,
    ManifestSummary,
    ResponseKeys,
)

_SIGNATURE_HEADERS: Final = [
    {
        "name": "Signature-Input",
        "in": "header",
        "required": True,
        "description": 'RFC 9421 signature input, label "hwb", alg "ed25519", with created, keyid and nonce',
        "schema": {"type": "string"},
    },
    {
        "name": "Signature",
        "in": "header",
        "required": True,
        "description": 'RFC 9421 signature, label "hwb"',
        "schema": {"type": "string"},
    },
]
_DIGEST_HEADER: Final = {
    "name": "Content-Digest",
    "in": "header",
    "required": True,
    "description": "RFC 9530 digest (sha-256) of the body as sent "
    "(the gzip bytes when Content-Encoding: gzip)",
    "schema": {"type": "string"},
}
_IDEMPOTENCY_HEADER: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": 'The batch id as a structured-field string, e.g. "3f1c...", covered by the signature',
    "schema": {"type": "string"},
}
_DFES_PARAMETER: Final = {
    "name": "dfes",
    "in": "path",
    "required": True,
    "description": "The school's DfES number",
    "schema": {"type": "string", "pattern": DFES_PATTERN},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problems(*slugs: str) -> dict[str, Any]:
    """Responses for the given problem slugs, grouped by status."""
    by_status: dict[str, list[str]] = {}
    for slug in slugs:
        by_status.setdefault(str(PROBLEMS[slug][0]), []).append(slug)
    return {
        status: {
            "description": "Problem: " + ", ".join(group),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref(ProblemDocument)}},
        }
        for status, group in sorted(by_status.items())
    }


_SIGNED_PROBLEMS: Final = (
    "signature-invalid",
    "signature-stale",
    "nonce-replayed",
    "key-unknown",
    "school-unknown",
)
_BODY_PROBLEMS: Final = ("body-too-large", "body-malformed", "validation-failed", "unsupported-media-type")


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _paths() -> dict[str, Any]:
    signed_body = [_DFES_PARAMETER, *_SIGNATURE_HEADERS, _DIGEST_HEADER]
    signed_get = [_DFES_PARAMETER, *_SIGNATURE_HEADERS]
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "responses": {"200": _json(Health, "The sandbox is up")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
        "/portal": {
            "get": {
                "operationId": "portal",
                "summary": "Provisioning status of every school, as HTML",
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}},
            }
        },
        "/v1/enrolments": {
            "post": {
                "operationId": "enrol",
                "summary": "Enrol a school's signing key with a one-time code (not signed)",
                "requestBody": _body(EnrolmentRequest),
                "responses": {
                    "201": _json(EnrolmentResponse, "Key enrolled"),
                    **_problems("enrolment-code-invalid", *_BODY_PROBLEMS),
                },
            }
        },
        "/v1/schools/{dfes}/keys": {
            "post": {
                "operationId": "addKey",
                "summary": "Add a signing key (rotation), signed by a current key",
                "parameters": signed_body,
                "requestBody": _body(KeyRequest),
                "responses": {
                    "201": _json(KeyResponse, "Key added"),
                    **_problems(*_SIGNED_PROBLEMS, *_BODY_PROBLEMS),
                },
            }
        },
        "/v1/schools/{dfes}/keys/{key_id}": {
            "delete": {
                "operationId": "retireKey",
                "summary": "Retire a signing key",
                "parameters": [
                    *signed_get,
                    {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "204": {"description": "Key retired"},
                    **_problems(*_SIGNED_PROBLEMS, "not-found", "validation-failed"),
                },
            }
        },
        "/v1/schools/{dfes}/batches": {
            "post": {
                "operationId": "postBatch",
                "summary": "Apply a batch of operations exactly once (idempotent by batch_id)",
                "parameters": [*signed_body, _IDEMPOTENCY_HEADER],
                "requestBody": _body(Batch),
                "responses": {
                    "200": {
                        **_json(BatchResult, "Applied, or the stored first answer replayed"),
                        "headers": {
                            "Idempotent-Replayed": {
                                "description": '"true" when this is the stored answer to an earlier request',
                                "schema": {"type": "string", "enum": ["true"]},
                            }
                        },
                    },
                    **_problems(
                        *_SIGNED_PROBLEMS,
                        *_BODY_PROBLEMS,
                        "idempotency-key-missing",
                        "idempotency-key-mismatch",
                        "idempotency-key-reused",
                    ),
                },
            }
        },
        "/v1/schools/{dfes}/run-reports": {
            "post": {
                "operationId": "postRunReport",
                "summary": "Report a run (idempotent by run_id)",
                "parameters": signed_body,
                "requestBody": _body(RunReport),
                "responses": {
                    "200": _json(RunReportAck, "Already received"),
                    "201": _json(RunReportAck, "Received"),
                    **_problems(*_SIGNED_PROBLEMS, *_BODY_PROBLEMS),
                },
            }
        },
        "/v1/schools/{dfes}/status": {
            "get": {
                "operationId": "status",
                "summary": "The school's last run as the national side saw it",
                "parameters": signed_get,
                "responses": {"200": _json(Status, "Status"), **_problems(*_SIGNED_PROBLEMS)},
            }
        },
        "/v1/schools/{dfes}/manifest": {
            "get": {
                "operationId": "manifest",
                "summary": "Keys and digests of what the national side holds for the school",
                "parameters": signed_get,
                "responses": {"200": _json(Manifest, "Manifest"), **_problems(*_SIGNED_PROBLEMS)},
            }
        },
        "/v1/schools/{dfes}/records/lookup": {
            "post": {
                "operationId": "lookupRecords",
                "summary": "Protocol 2: the school's own learner/staff records by key, their national "
                "account, and whether a hashed UPN is on roll at another school (not named)",
                "parameters": signed_body,
                "requestBody": _body(RecordLookup),
                "responses": {
                    "200": _json(RecordLookupResult, "One answer per record asked for, in order"),
                    **_problems(*_SIGNED_PROBLEMS, *_BODY_PROBLEMS),
                },
            }
        },
        "/v1/schools/{dfes}/manifest/summary": {
            "get": {
                "operationId": "manifestSummary",
                "summary": "Per kind, a count and a digest keyed with the client's Hwb-Digest-Key (v2)",
                "parameters": [*signed_get, _DIGEST_KEY_HEADER],
                "responses": {
                    "200": _json(ManifestSummary, "Summary"),
                    **_problems(*_SIGNED_PROBLEMS, "validation-failed"),
                },
            }
        },
        "/v1/response-keys": {
            "get": {
                "operationId": "responseKeys",
                "summary": "The national API's response-signing keys (v2; the answer is signed by them)",
                "parameters": [
                    {
                        "name": "signed_by",
                        "in": "query",
                        "required": False,
                        "description": "sign the answer with this (previous) response key: rotation",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _json(ResponseKeys, "Keys"), **_problems("not-found")},
            }
        },
    }


_DIGEST_KEY_HEADER: Final = {
    "name": "Hwb-Digest-Key",
    "in": "header",
    "required": True,
    "description": "base64url of the school's 32-byte state-digest key (see docs/protocol.md)",
    "schema": {"type": "string"},
}


def _schemas() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (model, "validation") for model in _REQUEST_MODELS
    ]
    pairs += [(model, "serialization") for model in _RESPONSE_MODELS]
    _keys, top = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = top.get("$defs", {})
    return dict(sorted(defs.items()))


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document the sandbox serves at ``/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hwb provisioning protocol (sandbox)",
            "version": PROTOCOL_VERSION,
            "description": "See docs/protocol.md. Requests under /v1/schools are signed with RFC 9421 "
            '(label "hwb", ed25519) and carry an RFC 9530 Content-Digest. Errors are RFC 9457 problem '
            "documents with type urn:hwb:problem:SLUG.",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
    }

"""RFC 9457 problem documents: the only shape in which the sandbox reports an error.

Every refusal is a :class:`Problem` raised by a handler and rendered once, by the WSGI app, as
``application/problem+json`` with ``type = "urn:hwb:problem:SLUG"``. The slugs are the stable part of the
contract (docs/protocol.md); titles and details are for people.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:hwb:problem:"

#: slug -> (HTTP status, title). The protocol's list, plus ``internal-error`` for the catch-all.
PROBLEMS: Final[Mapping[str, tuple[int, str]]] = {
    "signature-invalid": (401, "The request signature is missing, malformed or does not verify"),
    "signature-stale": (401, "The signature's created time is not within 300 seconds of the server clock"),
    "nonce-replayed": (401, "The signature's nonce was already used"),
    "key-unknown": (401, "The signing key is unknown, retired or belongs to another school"),
    "enrolment-code-invalid": (403, "The enrolment code is wrong, used or expired"),
    "school-unknown": (404, "No school with this DfES number is registered"),
    "body-too-large": (413, "The request body is too large"),
    "body-malformed": (400, "The request or its body is malformed"),
    "validation-failed": (422, "The request body does not match the protocol"),
    "idempotency-key-missing": (400, "The Idempotency-Key header is missing or malformed"),
    "idempotency-key-mismatch": (400, "The Idempotency-Key header does not match the body's batch_id"),
    "idempotency-key-reused": (422, "This batch_id was already used with a different body"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "unsupported-media-type": (415, "Unsupported media type or content encoding"),
    "internal-error": (500, "Internal error in the sandbox"),
}


class Problem(Exception):
    """A refusal with a stable slug; the app renders it as a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, object]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if slug not in PROBLEMS:
            raise ValueError(f"unknown problem slug {slug!r}")
        super().__init__(f"{slug}: {detail}")
        self.slug = slug
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers) if headers is not None else {}

    @property
    def status(self) -> int:
        return PROBLEMS[self.slug][0]

    def document(self) -> dict[str, object]:
        """The problem document (RFC 9457 members plus ``errors`` for validation failures)."""
        status, title = PROBLEMS[self.slug]
        body: dict[str, object] = {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": title,
            "status": status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body

    def body_bytes(self) -> bytes:
        return json.dumps(self.document(), ensure_ascii=False).encode("utf-8")

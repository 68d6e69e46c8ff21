"""RFC 9457 problem documents: the only shape in which the sandbox reports an error.

Every refusal is a :class:`Problem` raised by a handler and rendered once, by the WSGI app, as
``application/problem+json`` with ``type = "urn:hwb:problem:SLUG"``. The slugs are the stable part of the
contract (docs/protocol.md); titles and details are for people, in English or Welsh by the request's
``Accept-Language`` (:mod:`hwb_sandbox.i18n`): a detail is a sentence marked ``N_("...")`` with named
placeholders filled from the problem's parameters after translation. A client that asks for no language
reads the English it always has.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from hwb_sandbox.i18n import ENGLISH, N_, Language

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:hwb:problem:"

#: slug -> (HTTP status, title). The protocol's list, plus ``internal-error`` for the catch-all.
PROBLEMS: Final[Mapping[str, tuple[int, str]]] = {
    "signature-invalid": (401, N_("The request signature is missing, malformed or does not verify")),
    "signature-stale": (
        401,
        N_("The signature's created time is not within 300 seconds of the server clock"),
    ),
    "nonce-replayed": (401, N_("The signature's nonce was already used")),
    "key-unknown": (401, N_("The signing key is unknown, retired or belongs to another school")),
    "enrolment-code-invalid": (403, N_("The enrolment code is wrong, used or expired")),
    "school-unknown": (404, N_("No school with this DfES number is registered")),
    "body-too-large": (413, N_("The request body is too large")),
    "body-malformed": (400, N_("The request or its body is malformed")),
    "validation-failed": (422, N_("The request body does not match the protocol")),
    "idempotency-key-missing": (400, N_("The Idempotency-Key header is missing or malformed")),
    "idempotency-key-mismatch": (400, N_("The Idempotency-Key header does not match the body's batch_id")),
    "idempotency-key-reused": (422, N_("This batch_id was already used with a different body")),
    "not-found": (404, N_("Not found")),
    "method-not-allowed": (405, N_("Method not allowed")),
    "unsupported-media-type": (415, N_("Unsupported media type or content encoding")),
    "internal-error": (500, N_("Internal error in the sandbox")),
}


class Problem(Exception):
    """A refusal with a stable slug; the app renders it as a problem document in the request's language.

    ``detail`` is an English sentence marked ``N_("...")``, its named placeholders filled from ``params``
    after translation: ``Problem("not-found", N_("school {dfes} has no key {key_id}"), dfes=..., key_id=...)``;
    or, for a sentence with a count, a function of the :class:`~hwb_sandbox.i18n.Language` that calls
    ``lang.ngettext``. ``.detail`` is the English (the exception's and the log's text).
    """

    def __init__(
        self,
        slug: str,
        detail: str | Callable[[Language], str],
        *,
        errors: Sequence[Mapping[str, object]] | None = None,
        headers: Mapping[str, str] | None = None,
        **params: object,
    ) -> None:
        if slug not in PROBLEMS:
            raise ValueError(f"unknown problem slug {slug!r}")
        self.slug = slug
        self.template = detail
        self.params = params
        super().__init__(f"{slug}: {self.detail}")
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers) if headers is not None else {}

    @property
    def status(self) -> int:
        return PROBLEMS[self.slug][0]

    @property
    def detail(self) -> str:
        """The detail in English (the log's and the exception's text)."""
        return self.detail_in(ENGLISH)

    def detail_in(self, lang: Language) -> str:
        """The detail in ``lang``: the template translated, then its placeholders filled (a detail with a
        count is a function of the language that calls ``lang.ngettext``)."""
        if callable(self.template):
            return self.template(lang)
        text = lang._(self.template)
        return text.format(**self.params) if self.params else text

    def document(self, lang: Language = ENGLISH) -> dict[str, object]:
        """The problem document (RFC 9457 members plus ``errors`` for validation failures) in ``lang``;
        ``type``, ``status`` and the member names are the protocol's and never change."""
        status, title = PROBLEMS[self.slug]
        body: dict[str, object] = {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": lang._(title),
            "status": status,
            "detail": self.detail_in(lang),
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body

    def body_bytes(self, lang: Language = ENGLISH) -> bytes:
        return json.dumps(self.document(lang), ensure_ascii=False).encode("utf-8")

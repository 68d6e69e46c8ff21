"""Verifying a school's request: RFC 9421 signature (label ``hwb``, ed25519) and RFC 9530 Content-Digest.

The checks run in an order that gives each failure its own problem slug: the signature fields parse
(``signature-invalid``), ``created`` is within 300 s (``signature-stale``), the key is an enrolled,
unretired key of the school in the path (``key-unknown``), the Content-Digest matches the bytes as sent
and the signature verifies over the required components (``signature-invalid``), and only then is the
nonce remembered, so that a forged request cannot burn a genuine client's nonce (``nonce-replayed``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import http_sf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from hwb_sandbox.i18n import N_
from hwb_sandbox.problems import Problem
from hwb_sandbox.store import SandboxStore

LABEL: Final = "hwb"
MAX_SKEW_SECONDS: Final = 300
MIN_NONCE_LENGTH: Final = 16
GET_COMPONENTS: Final = ("@method", "@target-uri")
BODY_COMPONENTS: Final = ("@method", "@target-uri", "content-digest", "content-type")
BATCH_COMPONENTS: Final = (*BODY_COMPONENTS, "idempotency-key")


@dataclass(frozen=True, slots=True)
class _Headers:
    """The request's header fields as the signature library reads them (``items()``)."""

    fields: tuple[tuple[str, str], ...]

    def items(self) -> Iterable[tuple[str, str]]:
        return iter(self.fields)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What verification needs from an HTTP request: method, absolute target URI, headers, body as sent."""

    method: str
    url: str
    headers: _Headers
    body: bytes

    @classmethod
    def build(cls, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> SignedRequest:
        return cls(method, url, _Headers(tuple(headers)), body)

    def header(self, name: str) -> str | None:
        values = [value for field, value in self.headers.fields if field.lower() == name.lower()]
        return ", ".join(values) if values else None


class _SingleKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, public_key: Ed25519PublicKey) -> None:
        self.key_id = key_id
        self.public_key = public_key

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        if key_id != self.key_id:
            raise HTTPMessageSignaturesException("unexpected key id")
        return self.public_key

    def resolve_private_key(self, key_id: str) -> Any:
        raise NotImplementedError("the sandbox never signs")


@dataclass(frozen=True, slots=True)
class _SignatureParams:
    key_id: str
    created: int
    nonce: str


def _parse_params(request: SignedRequest) -> _SignatureParams:
    signature_input = request.header("Signature-Input")
    signature = request.header("Signature")
    if signature_input is None or signature is None:
        raise Problem(
            "signature-invalid", N_("the Signature and Signature-Input headers are required (RFC 9421)")
        )
    try:
        inputs = http_sf.parse(signature_input.encode("ascii"), tltype="dictionary")
        signatures = http_sf.parse(signature.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise Problem(
            "signature-invalid", N_("Signature-Input or Signature is not a structured-field dictionary")
        ) from exc
    if not isinstance(inputs, dict) or not isinstance(signatures, dict):
        raise Problem("signature-invalid", N_("Signature-Input and Signature must be dictionaries"))
    if set(inputs) != {LABEL} or set(signatures) != {LABEL}:
        raise Problem(
            "signature-invalid", N_('exactly one signature, labelled "{label}", is expected'), label=LABEL
        )
    member = inputs[LABEL]
    if not isinstance(member, tuple) or not isinstance(member[0], list):
        raise Problem("signature-invalid", N_("the hwb Signature-Input member must be an inner list"))
    params: dict[str, Any] = dict(member[1])
    key_id, created, nonce, alg = (
        params.get("keyid"),
        params.get("created"),
        params.get("nonce"),
        params.get("alg"),
    )
    if not isinstance(key_id, str) or type(created) is not int or not isinstance(nonce, str):
        raise Problem("signature-invalid", N_("the signature needs keyid, created and nonce parameters"))
    if alg != "ed25519":
        raise Problem("signature-invalid", N_('the signature must declare alg="ed25519"'))
    if len(nonce) < MIN_NONCE_LENGTH:
        raise Problem(
            "signature-invalid", N_("the nonce must be at least {length} characters"), length=MIN_NONCE_LENGTH
        )
    return _SignatureParams(key_id, created, nonce)


def verify_request(
    store: SandboxStore, dfes_number: str, request: SignedRequest, required_components: Sequence[str]
) -> str:
    """Verify the school's signature on ``request``; return the key id, or raise a 401 ``Problem``."""
    params = _parse_params(request)
    now = store.clock()
    if abs(now - params.created) > MAX_SKEW_SECONDS:
        raise Problem(
            "signature-stale",
            N_("created is {skew} s from the server clock (allowed: {allowed} s); check the client's clock"),
            skew=int(now - params.created),
            allowed=MAX_SKEW_SECONDS,
        )
    key = store.key(params.key_id)
    if key is None or key.retired or key.dfes_number != dfes_number:
        raise Problem(
            "key-unknown",
            N_("key {key_id} is not an enrolled, current key of school {dfes}"),
            key_id=repr(params.key_id),
            dfes=dfes_number,
        )
    _check_content_digest(request)
    try:
        public_key = Ed25519PublicKey.from_public_bytes(key.public_key_raw)
        verifier = HTTPMessageVerifier(
            signature_algorithm=algorithms.ED25519, key_resolver=_SingleKey(key.key_id, public_key)
        )
        verifier.max_clock_skew = dt.timedelta(seconds=MAX_SKEW_SECONDS)
        verifier.verify(request, max_age=None, require_components=required_components, body=request.body)
    except (HTTPMessageSignaturesException, ValueError, TypeError) as exc:
        raise Problem("signature-invalid", N_("the signature does not verify: {error}"), error=exc) from exc
    if not store.remember_nonce(params.nonce):
        raise Problem("nonce-replayed", N_("this nonce was already used; sign every request afresh"))
    return key.key_id


def _check_content_digest(request: SignedRequest) -> None:
    digest = request.header("Content-Digest")
    if digest is None:
        if request.body:
            raise Problem(
                "signature-invalid", N_("a request with a body needs a Content-Digest header (RFC 9530)")
            )
        return
    try:
        ContentDigest.verify(digest, request.body)
    except HTTPMessageSignaturesException as exc:
        raise Problem(
            "signature-invalid",
            N_("Content-Digest does not match the body as sent (RFC 9530): {error}"),
            error=exc,
        ) from exc


# ------------------------------------------------------------------------------------------------------------
# Signing responses (protocol version 2): the national API's own key signs every /v1 answer.

RESPONSE_TAG: Final = "hwb-response"
RESPONSE_COMPONENTS: Final = ("@status", "content-digest", '"@method";req', '"@target-uri";req')


class _ResponseFields:
    """A Werkzeug response's headers as the signature library writes them (names, items, set, delete)."""

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers.items())

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(name for name, _ in self._headers.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._headers

    def __setitem__(self, name: str, value: str) -> None:
        self._headers[name] = value

    def __delitem__(self, name: str) -> None:
        del self._headers[name]


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    headers: _ResponseFields
    request: SignedRequest


class _PrivateKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        self.key_id = key_id
        self.private_key = private_key

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self.private_key


class ResponseSigner:
    """The national response key: kept in a PEM file beside the sandbox database (created on first use)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode("ascii")
        self.key_id = "hwb-national:" + hashlib.sha256(raw).hexdigest()[:16]
        self._signer = HTTPMessageSigner(
            signature_algorithm=algorithms.ED25519, key_resolver=_PrivateKey(self.key_id, private_key)
        )

    @classmethod
    def from_file(cls, path: Path) -> ResponseSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def create(cls, path: Path) -> ResponseSigner:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return cls(key)

    @classmethod
    def for_database(cls, db_path: Path) -> ResponseSigner:
        path = current_key_path(db_path)
        return cls.from_file(path) if path.exists() else cls.create(path)

    def public(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": self.public_key_b64, "alg": "ed25519"}

    def sign(self, request: SignedRequest, status: int, headers: Any, body: bytes, created: float) -> None:
        """Sign a response in place: ``@status``, its Content-Digest and the request's method, target URI
        and (when present) ``Idempotency-Key``, so an acknowledgement is bound to the batch it answers."""
        covered = list(RESPONSE_COMPONENTS)
        if request.header("Idempotency-Key") is not None:
            covered.append('"idempotency-key";req')
        for name in ("Signature", "Signature-Input", "Content-Digest"):
            if name in headers:
                del headers[name]
        self._signer.sign(
            _Answer(status, _ResponseFields(headers), request),
            key_id=self.key_id,
            created=dt.datetime.fromtimestamp(created, dt.UTC),
            label=LABEL,
            tag=RESPONSE_TAG,
            include_alg=True,
            covered_component_ids=tuple(covered),
            body=body,
        )


def current_key_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".response-key.pem")


class ResponseKeyring:
    """The current response key, and previous ones kept only to vouch for it (``rotate``).

    A client that pinned a previous key asks ``GET /v1/response-keys?signed_by=PREVIOUS`` and gets the
    current key listed in an answer signed by the key it trusts (docs/protocol.md, rotation)."""

    def __init__(self, current: ResponseSigner, previous: Sequence[ResponseSigner]) -> None:
        self.current = current
        self.by_id = {signer.key_id: signer for signer in (*previous, current)}

    @classmethod
    def for_database(cls, db_path: Path) -> ResponseKeyring:
        previous = sorted(db_path.parent.glob(db_path.name + ".response-key.previous-*.pem"))
        return cls(ResponseSigner.for_database(db_path), [ResponseSigner.from_file(p) for p in previous])

    @staticmethod
    def rotate(db_path: Path) -> ResponseSigner:
        """Keep the current key as a previous one and make a new current key (restart the server)."""
        current = current_key_path(db_path)
        if current.exists():
            old = ResponseSigner.from_file(current)
            thumb = old.key_id.rsplit(":", 1)[-1]
            current.rename(db_path.with_name(f"{db_path.name}.response-key.previous-{thumb}.pem"))
        return ResponseSigner.create(current)

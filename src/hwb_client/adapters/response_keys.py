"""Trusting the national API's answers: its response-signing keys, pinned per school, and verification.

Protocol version 2: the national API signs every answer (RFC 9421, ed25519, tag ``hwb-response``)
over ``@status``, ``content-digest`` and the request's ``@method`` and ``@target-uri`` (``;req``), plus
``idempotency-key;req`` for batch posts, so an acknowledgement is bound to the batch it answers.

The key is learned at enrolment (the enrolment answer carries it) and pinned in
``<signing key file>.response-keys.json`` beside the school's signing key (mode 0600). A school enrolled
by 0.1.0 has no pinned key: its first 0.2.0 run fetches ``GET /v1/response-keys`` over the same TLS
channel (server authenticated by its certificate) that 0.1.0 enrolled over, and pins the answer only if
the answer is signed by the key it lists (trust on first use, then never replaced silently). Rotation:
a key the pinned file does not hold is accepted only from a ``/v1/response-keys`` answer that a pinned
key signs (see docs/protocol.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import http_sf
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from hwb_client.errors import ApiError, KeyFileError, Phrase
from hwb_client.i18n import N_
from hwb_client.platform.files import write_secret_file

RESPONSE_TAG: Final = "hwb-response"
RESPONSE_COMPONENTS: Final = ("@status", "content-digest", '"@method";req', '"@target-uri";req')
MAX_AGE: Final = dt.timedelta(seconds=300)


@dataclass(frozen=True, slots=True)
class ResponseKey:
    key_id: str
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, value: object) -> ResponseKey:
        if not isinstance(value, Mapping):
            raise ValueError(Phrase(N_("a response key must be an object")))
        key_id, public = value.get("key_id"), value.get("public_key")
        if not isinstance(key_id, str) or not 0 < len(key_id) <= 100 or not isinstance(public, str):
            raise ValueError(Phrase(N_("a response key needs key_id and public_key")))
        return cls(key_id, Ed25519PublicKey.from_public_bytes(base64.b64decode(public, validate=True)))

    def to_json(self) -> dict[str, str]:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"key_id": self.key_id, "public_key": base64.b64encode(raw).decode("ascii"), "alg": "ed25519"}


def pin_path(signing_key_path: Path) -> Path:
    return signing_key_path.with_name(signing_key_path.name + ".response-keys.json")


def load_pinned(path: Path) -> tuple[ResponseKey, ...]:
    """The pinned keys; empty when the file does not exist (a school enrolled by 0.1.0)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return tuple(ResponseKey.parse(item) for item in value["keys"])
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(
            N_(
                "the pinned national response keys {path} cannot be read ({problem}); restore the file "
                "from backup, or delete it to learn the key again on the next run"
            ),
            path=path,
            problem=type(exc).__name__,
        ) from None


def save_pinned(path: Path, keys: Sequence[ResponseKey]) -> None:
    body = json.dumps({"keys": [key.to_json() for key in keys]}, indent=2).encode("utf-8")
    write_secret_file(path, body)


class _Pinned(HTTPSignatureKeyResolver):
    def __init__(self, keys: Sequence[ResponseKey]) -> None:
        self.keys = {key.key_id: key.public_key for key in keys}

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        try:
            return self.keys[key_id]
        except KeyError:
            raise HTTPMessageSignaturesException(
                f"key {key_id[:60]!r} is not a pinned national key"
            ) from None

    def resolve_private_key(self, key_id: str) -> Any:
        raise NotImplementedError("the client never signs with a national key")


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    headers: Mapping[str, str]
    request: requests.PreparedRequest


class _Fields:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers

    def items(self) -> Any:
        return self._headers.items()


def verify_answer(
    keys: Sequence[ResponseKey],
    request: requests.PreparedRequest,
    status: int,
    headers: Mapping[str, str],
    wire: bytes,
    *,
    what: str,
) -> str:
    """Check the national API's signature on an answer; return the key id, or raise ``ApiError``."""
    if "Signature" not in headers or "Signature-Input" not in headers:
        raise ApiError(N_("{what}: the national API's answer is not signed; it is not trusted"), what=what)
    required = list(RESPONSE_COMPONENTS)
    if "Idempotency-Key" in request.headers:
        required.append('"idempotency-key";req')
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Pinned(keys))
    try:
        results = verifier.verify(
            _Answer(status, _Fields(headers), request),  # type: ignore[arg-type]  # a duck-typed message view
            max_age=MAX_AGE,
            expect_tag=RESPONSE_TAG,
            require_components=required,
            body=wire,
        )
    except (HTTPMessageSignaturesException, ValueError, TypeError) as exc:
        raise ApiError(
            N_(
                "{what}: the national API's answer is not validly signed by its pinned key ({problem}); "
                "it is not trusted"
            ),
            what=what,
            problem=str(exc)[:120],
        ) from None
    return str(results[0].parameters.get("keyid", ""))


def signature_key_id(headers: Mapping[str, str]) -> str | None:
    """The ``keyid`` of an answer's signature, read without verifying anything (None if unreadable)."""
    value = headers.get("Signature-Input")
    if not value:
        return None
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        return None
    (member,) = parsed.values()
    key_id = dict(member[1]).get("keyid") if isinstance(member, tuple) else None
    return key_id if isinstance(key_id, str) else None

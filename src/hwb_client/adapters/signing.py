"""Signing requests to the national API (RFC 9421, ed25519, label ``hwb``) and the school's key file.

``RequestSigner.sign`` signs a ``requests.PreparedRequest`` in place: it sets ``Content-Digest``
(RFC 9530, SHA-256 over the body bytes exactly as they will be sent, so the gzip bytes for a gzip body),
then ``Signature-Input`` and ``Signature`` covering ``@method``, ``@target-uri`` and, for a request with a
body, ``content-digest`` and ``content-type``, plus ``idempotency-key`` when that header is present. Each
call uses a fresh nonce and ``created`` time, so a retried batch is re-signed with the same id and body.

The key file is an unencrypted PKCS#8 PEM Ed25519 private key, created with mode 0600 in a directory
created 0700; loading refuses a file that other users can read (POSIX).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from hwb_client.errors import KeyFileError, UnsafeFileError
from hwb_client.i18n import N_
from hwb_client.platform.filesystem import DIR_MODE, FILE_MODE, fsync_dir, read_private

SIGNATURE_LABEL: Final = "hwb"
NONCE_BYTES: Final = 18  # 24 URL-safe characters; the protocol asks for at least 16
_KEY_FILE_MODE: Final = FILE_MODE
_KEY_DIR_MODE: Final = DIR_MODE


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        self._key_id = key_id
        self._private_key = private_key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        if key_id != self._key_id:
            raise KeyError(key_id)
        return self._private_key

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        return self.resolve_private_key(key_id).public_key()


def body_bytes(request: requests.PreparedRequest) -> bytes:
    """The body exactly as ``requests`` will send it; a streamed body cannot be digested (TypeError)."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError("a streamed request body cannot be signed; pass the body as bytes")


def covered_components(request: requests.PreparedRequest, body: bytes) -> tuple[str, ...]:
    """The components the protocol requires for this request, in the protocol's order."""
    components: list[str] = ["@method", "@target-uri"]
    if body:
        if "Content-Type" not in request.headers:
            raise ValueError("a request with a body must have a Content-Type header before it is signed")
        components += ["content-digest", "content-type"]
    if "Idempotency-Key" in request.headers:
        components.append("idempotency-key")
    return tuple(components)


def sign_message(
    request: requests.PreparedRequest,
    *,
    private_key: Ed25519PrivateKey,
    key_id: str,
    covered: Sequence[str],
    label: str,
    created: dt.datetime,
    nonce: str | None,
    include_alg: bool,
    body: bytes | None,
) -> None:
    """Sign ``request`` in place with explicit parameters (the one call into the RFC 9421 library).

    With ``body`` given, ``Content-Digest`` is (re)computed over it and ``content-digest`` is covered;
    without it, any ``Content-Digest`` already on the request is left alone.
    ``RequestSigner`` uses this with the protocol's parameters; tests use it with the RFC's examples.
    """
    for name in ("Signature", "Signature-Input", *(("Content-Digest",) if body is not None else ())):
        if name in request.headers:
            del request.headers[name]
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key_id, private_key)
    )
    signer.sign(
        request,
        key_id=key_id,
        created=created,
        nonce=nonce,
        label=label,
        include_alg=include_alg,
        covered_component_ids=tuple(covered),
        body=body,
        # Without ``body`` an existing Content-Digest is kept as it is (only its syntax is checked).
        use_existing_digest=body is None and "Content-Digest" in request.headers,
    )


class RequestSigner:
    """Signs requests for one school with its enrolled Ed25519 key (key id ``DFES:THUMBPRINT``)."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str) -> None:
        self._private_key = private_key
        self.key_id = key_id

    def sign(
        self,
        request: requests.PreparedRequest,
        *,
        created: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> None:
        """Set Content-Digest (for a body), Signature-Input and Signature on ``request``, in place.

        ``created`` defaults to now and ``nonce`` to a fresh random value; pass them only in tests.
        """
        body = body_bytes(request)
        if not body and "Content-Digest" in request.headers:
            del request.headers["Content-Digest"]  # never send a digest of some other body
        sign_message(
            request,
            private_key=self._private_key,
            key_id=self.key_id,
            covered=covered_components(request, body),
            label=SIGNATURE_LABEL,
            created=created if created is not None else dt.datetime.now(dt.UTC),
            nonce=nonce if nonce is not None else secrets.token_urlsafe(NONCE_BYTES),
            include_alg=True,
            body=body if body else None,
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """``requests`` auth hook: ``session.post(url, ..., auth=signer)`` signs the prepared request."""
        self.sign(request)
        return request


# ------------------------------------------------------------------------------------------------------------
# Keys and key files


def _raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as the protocol sends it: standard base64 of the raw 32 bytes."""
    return base64.b64encode(_raw_public(key)).decode("ascii")


def key_id_for(dfes_number: str, public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """``DFES:`` + the first 16 hex digits of SHA-256 of the raw public key (the server computes the same)."""
    return f"{dfes_number}:{hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]}"


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """Create a new key file at ``path`` (mode 0600; missing parent directories are created 0700).

    Refuses to overwrite an existing file (``KeyFileError``): an enrolled key is never replaced silently.
    The file is written to a temporary name, synced, then linked into place.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    parent = path.parent
    try:
        missing = [p for p in (parent, *parent.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=_KEY_DIR_MODE)
            directory.chmod(_KEY_DIR_MODE)  # mkdir's mode is filtered by the umask
        if path.exists():
            raise KeyFileError(
                N_(
                    "signing key file {path} already exists; move it away first if you really mean to "
                    "replace the school's key (the new key must then be enrolled)"
                ),
                path=path,
            )
        tmp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _KEY_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.chmod(_KEY_FILE_MODE)
            os.link(tmp, path)  # fails if the file appeared meanwhile: never overwrite
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(parent)
    except FileExistsError as exc:
        raise KeyFileError(
            N_("signing key file {path} already exists; it was not replaced"), path=path
        ) from exc
    except OSError as exc:
        raise KeyFileError(
            N_("cannot create signing key file {path}: {reason}"), path=path, reason=exc.strerror or exc
        ) from exc
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the school's key file; ``KeyFileError`` naming the file and the fix when it cannot be used."""
    try:
        pem = read_private(path, fix=False)  # no symbolic link, ours, and no access for others
    except UnsafeFileError as exc:
        raise KeyFileError(N_("signing key file {problem}"), problem=exc) from None
    except FileNotFoundError as exc:
        raise KeyFileError(
            N_(
                "signing key file {path} does not exist: this school is not enrolled on this server; run "
                "`hwb-client enrol --school DFES --code CODE` with a one-time enrolment code (or restore "
                "the key file from backup)"
            ),
            path=path,
        ) from exc
    except OSError as exc:
        raise KeyFileError(
            N_("cannot read signing key file {path}: {reason}; run the client as the user that owns it"),
            path=path,
            reason=exc.strerror or exc,
        ) from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            N_(
                "signing key file {path} is not an unencrypted PKCS#8 PEM Ed25519 private key; restore it "
                "from backup, or generate a new key and enrol it"
            ),
            path=path,
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            N_(
                "signing key file {path} holds a {key_type}, not an Ed25519 key; generate a new key and enrol it"
            ),
            path=path,
            key_type=type(key).__name__,
        )
    return key

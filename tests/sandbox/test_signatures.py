"""RFC 9421 signatures and RFC 9530 digests: the client's signer, the sandbox's verifier, and the RFC."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import re

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sandbox_helpers import SchoolClient, assert_problem, batch, learner, op

from hwb_client.adapters.signing import RequestSigner, sign_message
from hwb_sandbox.problems import Problem
from hwb_sandbox.signatures import SignedRequest, verify_request
from hwb_sandbox.store import SandboxStore
from hwb_sandbox.testing import SandboxProcess

# -- the sandbox refuses what it must ------------------------------------------------------------------------


def test_same_nonce_twice_is_refused_as_a_replay(school: SchoolClient) -> None:
    prepared = school.prepare("GET", f"/v1/schools/{school.dfes}/status")
    school.signer.sign(prepared)

    assert school.send(prepared).status_code == 200
    assert_problem(school.send(prepared), 401, "nonce-replayed")


def test_one_changed_body_byte_is_refused(school: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("tamper")))
    prepared = school.prepare(
        "POST",
        f"/v1/schools/{school.dfes}/batches",
        json_body=body,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"'},
    )
    school.signer.sign(prepared)
    assert isinstance(prepared.body, bytes)
    prepared.body = prepared.body.replace(b"Jones", b"Jonez")

    document = assert_problem(school.send(prepared), 401, "signature-invalid")

    assert "Content-Digest" in document["detail"]
    assert school.manifest()["records"] == []


def test_changed_idempotency_key_after_signing_is_refused(school: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("rebind")))
    prepared = school.prepare(
        "POST",
        f"/v1/schools/{school.dfes}/batches",
        json_body=body,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"'},
    )
    school.signer.sign(prepared)
    prepared.headers["Idempotency-Key"] = '"00000000-0000-0000-0000-000000000000"'

    assert_problem(school.send(prepared), 401, "signature-invalid")


@pytest.mark.parametrize("offset", [-330, -3600, 330])
def test_created_well_over_300_seconds_from_the_server_clock_is_refused(
    school: SchoolClient, offset: int
) -> None:
    # Over HTTP the server reads its clock a moment after the client signs, and ``created`` is whole
    # seconds: a request 301 s ahead can arrive 300 s ahead on a busy machine. The exact boundary is
    # tested below against a server clock held still.
    prepared = school.prepare("GET", f"/v1/schools/{school.dfes}/status")
    school.signer.sign(prepared, created=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset))

    assert_problem(school.send(prepared), 401, "signature-stale")


@pytest.mark.parametrize(("offset", "refused"), [(-301, True), (-300, False), (300, False), (301, True)])
def test_the_300_second_boundary_on_a_server_clock_held_still(
    school: SchoolClient, module_sandbox: SandboxProcess, offset: int, refused: bool
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    store = SandboxStore(module_sandbox.db_path, clock=now.timestamp)
    prepared = school.prepare("GET", f"/v1/schools/{school.dfes}/status")
    school.signer.sign(prepared, created=now + dt.timedelta(seconds=offset))
    assert prepared.url is not None
    headers = [(name, str(value)) for name, value in prepared.headers.items()]
    signed = SignedRequest.build("GET", prepared.url, headers, b"")

    if refused:
        with pytest.raises(Problem) as raised:
            verify_request(store, school.dfes, signed, ("@method", "@target-uri"))
        assert raised.value.slug == "signature-stale"
    else:
        assert verify_request(store, school.dfes, signed, ("@method", "@target-uri")) == school.key_id


def test_created_a_little_off_the_server_clock_is_accepted(school: SchoolClient) -> None:
    prepared = school.prepare("GET", f"/v1/schools/{school.dfes}/status")
    school.signer.sign(prepared, created=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120))

    assert school.send(prepared).status_code == 200


def test_unsigned_request_is_refused(school: SchoolClient) -> None:
    document = assert_problem(
        school.call("GET", f"/v1/schools/{school.dfes}/status", sign=False), 401, "signature-invalid"
    )

    assert "Signature" in document["detail"]


def test_signature_not_covering_the_required_components_is_refused(school: SchoolClient) -> None:
    body = {"run_id": "9a0e0000-0000-4000-8000-000000000000"}
    prepared = school.prepare("POST", f"/v1/schools/{school.dfes}/run-reports", json_body=body)
    assert isinstance(prepared.body, bytes)
    sign_message(
        prepared,
        private_key=school.private_key,
        key_id=school.key_id,
        covered=("@method", "@target-uri"),
        label="hwb",
        created=dt.datetime.now(dt.UTC),
        nonce="n" * 24,
        include_alg=True,
        body=None,
    )
    prepared.headers["Content-Digest"] = (
        "sha-256=:" + base64.b64encode(hashlib.sha256(prepared.body).digest()).decode() + ":"
    )

    assert_problem(school.send(prepared), 401, "signature-invalid")


def test_short_nonce_is_refused(school: SchoolClient) -> None:
    prepared = school.prepare("GET", f"/v1/schools/{school.dfes}/status")
    school.signer.sign(prepared, nonce="short")

    assert_problem(school.send(prepared), 401, "signature-invalid")


def test_gzip_body_is_signed_over_the_compressed_bytes_and_accepted(school: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("gzip")))

    response = school.post_batch(body, gzip_body=True)

    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 1


def test_gzip_body_with_a_digest_of_the_uncompressed_bytes_is_refused(school: SchoolClient) -> None:
    body = batch(op("upsert", "learner", learner("gzip-wrong-digest")))
    raw = json.dumps(body).encode()
    prepared = school.prepare(
        "POST",
        f"/v1/schools/{school.dfes}/batches",
        body=raw,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"'},
    )
    school.signer.sign(prepared)  # digest and signature over the uncompressed bytes...
    prepared.body = gzip.compress(raw)  # ...then the body is compressed on the way out
    prepared.headers["Content-Encoding"] = "gzip"
    prepared.headers["Content-Length"] = str(len(prepared.body))

    assert_problem(school.send(prepared), 401, "signature-invalid")


# -- the client's signer against the RFC and an independent verifier -----------------------------------------

RFC_TEST_KEY_ED25519 = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""


def test_signer_reproduces_rfc_9421_appendix_b_2_6_byte_for_byte() -> None:
    """RFC 9421 B.2.6: ed25519 over date, @method, @path, @authority, content-type, content-length."""
    key = serialization.load_pem_private_key(RFC_TEST_KEY_ED25519, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    request = requests.Request(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        headers={
            "Host": "example.com",
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+"
            "AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        },
        data=b'{"hello": "world"}',
    ).prepare()
    assert request.headers["Content-Length"] == "18"

    sign_message(
        request,
        private_key=key,
        key_id="test-key-ed25519",
        covered=("date", "@method", "@path", "@authority", "content-type", "content-length"),
        label="sig-b26",
        created=dt.datetime.fromtimestamp(1618884473, tz=dt.UTC),
        nonce=None,
        include_alg=False,
        body=None,
    )

    assert request.headers["Signature-Input"] == (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    assert request.headers["Signature"] == (
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
    )


def _header(request: requests.PreparedRequest, name: str) -> str:
    value = request.headers[name]
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _independent_verify(request: requests.PreparedRequest, public_key: Ed25519PublicKey) -> dict[str, str]:
    """A minimal RFC 9421 verifier written from the RFC (section 2.5), sharing no code with the signer.

    Handles what the protocol uses: one label, plain field and derived components, string/integer params.
    Returns the signature parameters.
    """
    body = request.body if isinstance(request.body, bytes) else b""
    if body:
        expected_digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        assert _header(request, "Content-Digest") == expected_digest
    label, _, inner = _header(request, "Signature-Input").partition("=")
    components_text, _, params_text = inner.partition(")")
    components = re.findall(r'"([^"]+)"', components_text)
    params = dict(re.findall(r';([a-z]+)=("[^"]*"|[0-9]+)', params_text))
    lines = []
    for component in components:
        if component == "@method":
            value = str(request.method)
        elif component == "@target-uri":
            value = str(request.url)
        else:
            value = _header(request, component).strip()
        lines.append(f'"{component}": {value}')
    lines.append(f'"@signature-params": {inner}')
    signature_base = "\n".join(lines).encode("ascii")
    sig_label, _, sig_value = _header(request, "Signature").partition("=")
    assert sig_label == label == "hwb"
    signature = base64.b64decode(sig_value.strip(":"))
    public_key.verify(signature, signature_base)  # raises InvalidSignature
    return {name: value.strip('"') for name, value in params.items()}


def test_request_signed_by_request_signer_verifies_with_an_independent_implementation(
    school: SchoolClient,
) -> None:
    body = batch(op("upsert", "learner", learner("independent")))
    prepared = school.prepare(
        "POST",
        f"/v1/schools/{school.dfes}/batches",
        json_body=body,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"'},
    )
    school.signer.sign(prepared)

    params = _independent_verify(prepared, school.private_key.public_key())

    assert _header(prepared, "Signature-Input").startswith(
        'hwb=("@method" "@target-uri" "content-digest" "content-type" "idempotency-key");'
    )
    assert params["keyid"] == school.key_id
    assert params["alg"] == "ed25519"
    assert len(params["nonce"]) >= 16
    assert abs(int(params["created"]) - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert school.send(prepared).status_code == 200


def test_get_is_signed_over_method_and_target_uri_only() -> None:
    key = Ed25519PrivateKey.generate()
    prepared = requests.Request("GET", "http://127.0.0.1:9/v1/schools/6601234/status").prepare()

    RequestSigner(key, "6601234:0123456789abcdef").sign(prepared)

    assert _header(prepared, "Signature-Input").startswith('hwb=("@method" "@target-uri");created=')
    assert "Content-Digest" not in prepared.headers
    _independent_verify(prepared, key.public_key())


def test_resigning_a_retried_request_keeps_the_body_and_changes_the_nonce() -> None:
    key = Ed25519PrivateKey.generate()
    signer = RequestSigner(key, "6601234:0123456789abcdef")
    prepared = requests.Request(
        "POST", "http://127.0.0.1:9/x", data=b'{"a":1}', headers={"Content-Type": "application/json"}
    ).prepare()

    signer.sign(prepared)
    first = (prepared.headers["Signature-Input"], prepared.headers["Content-Digest"])
    signer.sign(prepared)

    assert prepared.headers["Content-Digest"] == first[1]
    assert prepared.headers["Signature-Input"] != first[0]
    assert prepared.body == b'{"a":1}'
    _independent_verify(prepared, key.public_key())


def test_signing_a_body_without_content_type_is_a_programming_error() -> None:
    prepared = requests.Request("POST", "http://127.0.0.1:9/x", data=b"{}").prepare()
    prepared.headers.pop("Content-Type", None)

    with pytest.raises(ValueError, match="Content-Type"):
        RequestSigner(Ed25519PrivateKey.generate(), "k").sign(prepared)

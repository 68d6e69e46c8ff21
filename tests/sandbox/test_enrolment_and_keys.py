"""Enrolment with one-time codes, key rotation and retirement, over real HTTP to the sandbox."""

from __future__ import annotations

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sandbox_helpers import PRIMARY, SECONDARY, SchoolClient, assert_problem

from hwb_client.adapters.signing import RequestSigner, key_id_for, public_key_b64
from hwb_sandbox.store import SandboxStore
from hwb_sandbox.testing import SandboxProcess


def _enrol(sandbox: SandboxProcess, dfes: str, code: str, key: Ed25519PrivateKey) -> requests.Response:
    return requests.post(
        sandbox.url + "/v1/enrolments",
        json={"dfes_number": dfes, "enrolment_code": code, "public_key": public_key_b64(key)},
        timeout=30,
    )


def test_enrolment_with_a_good_code_returns_the_key_id_and_school_name(sandbox: SandboxProcess) -> None:
    code = sandbox.issue_code(PRIMARY, "Ysgol Gynradd <Prawf>")
    key = Ed25519PrivateKey.generate()

    response = _enrol(sandbox, PRIMARY, code.lower(), key)  # codes compare case-insensitively

    assert response.status_code == 201, response.text
    assert response.json() == {
        "dfes_number": PRIMARY,
        "key_id": key_id_for(PRIMARY, key.public_key()),
        "school_name": "Ysgol Gynradd <Prawf>",
    }


def test_enrolment_code_works_only_once(sandbox: SandboxProcess) -> None:
    code = sandbox.issue_code(PRIMARY)
    assert _enrol(sandbox, PRIMARY, code, Ed25519PrivateKey.generate()).status_code == 201

    again = _enrol(sandbox, PRIMARY, code, Ed25519PrivateKey.generate())

    assert "already used" in assert_problem(again, 403, "enrolment-code-invalid")["detail"]


def test_wrong_or_other_schools_enrolment_code_is_refused(sandbox: SandboxProcess) -> None:
    code = sandbox.issue_code(PRIMARY)
    sandbox.issue_code(SECONDARY)

    assert_problem(
        _enrol(sandbox, PRIMARY, "AAAA-BBBB-CCCC", Ed25519PrivateKey.generate()),
        403,
        "enrolment-code-invalid",
    )
    assert_problem(
        _enrol(sandbox, SECONDARY, code, Ed25519PrivateKey.generate()), 403, "enrolment-code-invalid"
    )
    assert_problem(
        _enrol(sandbox, "6609999", code, Ed25519PrivateKey.generate()), 403, "enrolment-code-invalid"
    )


def test_expired_enrolment_code_is_refused(sandbox: SandboxProcess) -> None:
    store = SandboxStore(sandbox.db_path)
    try:
        code = store.issue_code(PRIMARY, "Ysgol", valid_days=-1)
    finally:
        store.close()

    response = _enrol(sandbox, PRIMARY, code, Ed25519PrivateKey.generate())

    assert "expired" in assert_problem(response, 403, "enrolment-code-invalid")["detail"]


def test_enrolment_with_a_malformed_public_key_is_a_validation_failure(sandbox: SandboxProcess) -> None:
    code = sandbox.issue_code(PRIMARY)
    response = requests.post(
        sandbox.url + "/v1/enrolments",
        json={"dfes_number": PRIMARY, "enrolment_code": code, "public_key": "not-a-key"},
        timeout=30,
    )
    assert_problem(response, 422, "validation-failed")


def test_rotated_key_works_and_retired_key_is_refused(school: SchoolClient) -> None:
    new_key = Ed25519PrivateKey.generate()
    added = school.call(
        "POST", f"/v1/schools/{school.dfes}/keys", json_body={"public_key": public_key_b64(new_key)}
    )
    assert added.status_code == 201, added.text
    new_key_id = added.json()["key_id"]
    assert new_key_id == key_id_for(school.dfes, new_key.public_key())
    new_signer = RequestSigner(new_key, new_key_id)

    assert school.call("GET", f"/v1/schools/{school.dfes}/status", signer=new_signer).status_code == 200
    retired = school.call("DELETE", f"/v1/schools/{school.dfes}/keys/{school.key_id}", signer=new_signer)
    assert retired.status_code == 204, retired.text

    assert_problem(school.status(), 401, "key-unknown")
    assert school.call("GET", f"/v1/schools/{school.dfes}/status", signer=new_signer).status_code == 200


def test_retiring_the_only_key_is_refused(school: SchoolClient) -> None:
    response = school.call("DELETE", f"/v1/schools/{school.dfes}/keys/{school.key_id}")

    assert_problem(response, 422, "validation-failed")
    assert school.status().status_code == 200


def test_second_enrolment_code_adds_a_key_and_both_work(
    sandbox: SandboxProcess, primary: SchoolClient
) -> None:
    second_key = Ed25519PrivateKey.generate()
    response = _enrol(sandbox, PRIMARY, sandbox.issue_code(PRIMARY), second_key)
    assert response.status_code == 201

    second = RequestSigner(second_key, response.json()["key_id"])

    assert primary.status().status_code == 200
    assert primary.call("GET", f"/v1/schools/{PRIMARY}/status", signer=second).status_code == 200


def test_key_of_another_school_is_refused(primary: SchoolClient, secondary: SchoolClient) -> None:
    response = primary.call("GET", f"/v1/schools/{PRIMARY}/status", signer=secondary.signer)

    assert_problem(response, 401, "key-unknown")


def test_unknown_key_is_refused(school: SchoolClient) -> None:
    stranger = Ed25519PrivateKey.generate()
    signer = RequestSigner(stranger, key_id_for(school.dfes, stranger.public_key()))

    assert_problem(school.call("GET", f"/v1/schools/{school.dfes}/status", signer=signer), 401, "key-unknown")


def test_key_id_claimed_with_the_wrong_private_key_does_not_verify(school: SchoolClient) -> None:
    impostor = RequestSigner(Ed25519PrivateKey.generate(), school.key_id)

    assert_problem(
        school.call("GET", f"/v1/schools/{school.dfes}/status", signer=impostor), 401, "signature-invalid"
    )

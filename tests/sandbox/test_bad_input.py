"""Bad input is refused with a problem document, never a 500: malformed, unknown, too large, wrong type."""

from __future__ import annotations

import gzip
import json
import socket
import uuid

import pytest
import requests
from sandbox_helpers import PRIMARY, SchoolClient, assert_problem, batch, learner, op

from hwb_sandbox.testing import SandboxProcess


def batches_path(school: SchoolClient) -> str:
    return f"/v1/schools/{school.dfes}/batches"


def test_malformed_json_is_refused(school: SchoolClient) -> None:
    key = str(uuid.uuid4())
    response = school.call(
        "POST", batches_path(school), body=b'{"batch_id": ', headers={"Idempotency-Key": f'"{key}"'}
    )

    assert_problem(response, 400, "body-malformed")


def test_an_integer_too_long_to_convert_in_a_signed_body_is_malformed(school: SchoolClient) -> None:
    """5,000 digits (over Python's conversion limit; too big for the 4 KiB enrolment bound): 400."""
    prepared = school.prepare(
        "POST",
        f"/v1/schools/{school.dfes}/run-reports",
        body=b'{"a": ' + b"9" * 5000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    school.signer.sign(prepared)

    assert_problem(school.send(prepared), 400, "body-malformed")


def test_duplicate_json_keys_are_refused(school: SchoolClient) -> None:
    key = str(uuid.uuid4())
    body = f'{{"batch_id": "{key}", "batch_id": "{key}"}}'.encode()

    assert_problem(
        school.call("POST", batches_path(school), body=body, headers={"Idempotency-Key": f'"{key}"'}),
        400,
        "body-malformed",
    )


def test_unknown_record_field_is_refused_listing_where(school: SchoolClient) -> None:
    pupil = dict(learner("extra"), upn="J681234525017")  # a raw UPN must never be accepted

    document = assert_problem(
        school.post_batch(batch(op("upsert", "learner", pupil))), 422, "validation-failed"
    )

    assert any(error["loc"].endswith("record/upn") for error in document["errors"])
    assert "J681234525017" not in json.dumps(document)  # the refused value is not echoed back


def test_missing_nullable_field_is_refused(school: SchoolClient) -> None:
    pupil = learner("missing")
    del pupil["leaving_date"]

    assert_problem(school.post_batch(batch(op("upsert", "learner", pupil))), 422, "validation-failed")


def test_wrong_content_type_is_refused(school: SchoolClient) -> None:
    body = batch()
    response = school.call(
        "POST",
        batches_path(school),
        json_body=body,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"', "Content-Type": "text/plain"},
    )

    assert_problem(response, 415, "unsupported-media-type")


def test_unknown_school_is_not_found(school: SchoolClient) -> None:
    body = batch()

    response = school.call(
        "POST",
        "/v1/schools/6609999/batches",
        json_body=body,
        headers={"Idempotency-Key": f'"{body["batch_id"]}"'},
    )

    assert_problem(response, 404, "school-unknown")
    assert_problem(school.call("GET", "/v1/schools/6609999/status"), 404, "school-unknown")


def test_unknown_path_and_wrong_method_are_problem_documents(school: SchoolClient) -> None:
    assert_problem(school.call("GET", "/v2/anything"), 404, "not-found")
    response = school.call("PUT", batches_path(school), json_body={})

    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


def test_more_than_5000_operations_is_too_large(school: SchoolClient) -> None:
    operation = op("remove", "staff", None, key="X")

    assert_problem(school.post_batch(batch(*[operation] * 5001)), 413, "body-too-large")


def test_gzip_body_over_32_mib_decompressed_is_too_large(school: SchoolClient) -> None:
    key = str(uuid.uuid4())
    bomb = b'{"batch_id": "' + key.encode() + b'", "pad": "' + b" " * (33 * 1024 * 1024) + b'"}'
    prepared = school.prepare(
        "POST",
        batches_path(school),
        body=gzip.compress(bomb),
        headers={"Idempotency-Key": f'"{key}"', "Content-Encoding": "gzip"},
    )
    school.signer.sign(prepared)

    assert_problem(school.send(prepared), 413, "body-too-large")


def test_body_over_8_mib_is_refused_before_it_is_read(module_sandbox: SandboxProcess) -> None:
    host, port = module_sandbox.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/schools/{PRIMARY}/batches HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 9000000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = connection.makefile("rb").read()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["type"] == "urn:hwb:problem:body-too-large"


@pytest.mark.parametrize("size", [8 * 1024 * 1024 + 1])
def test_body_over_8_mib_sent_by_a_client_gets_413(school: SchoolClient, size: int) -> None:
    key = str(uuid.uuid4())
    prepared = school.prepare(
        "POST", batches_path(school), body=b" " * size, headers={"Idempotency-Key": f'"{key}"'}
    )
    school.signer.sign(prepared)

    assert_problem(school.send(prepared), 413, "body-too-large")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"dfes_number": "\\ud800"}', id="unpaired-surrogate"),
        pytest.param(b'{"dfes_number": 1e999999}', id="infinity"),
        pytest.param(b'{"dfes_number": NaN}', id="nan"),
        pytest.param(b"[" * 2_000 + b"]" * 2_000, id="deep-nesting"),  # within the 4 KiB enrolment bound
        pytest.param(b"\xef\xbb\xbf{}", id="byte-order-mark"),
        pytest.param(b"\xff\xfe{\x00}\x00", id="utf-16"),
    ],
)
def test_json_that_cannot_be_handled_faithfully_is_malformed(
    module_sandbox: SandboxProcess, body: bytes
) -> None:
    response = requests.post(
        module_sandbox.url + "/v1/enrolments",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert_problem(response, 400, "body-malformed")

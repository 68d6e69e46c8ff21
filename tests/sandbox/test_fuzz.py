"""Schema-driven fuzzing of the live sandbox: no generated request may produce a 5xx.

schemathesis generates requests for every operation of the OpenAPI document the sandbox serves, and
sends them to the running subprocess. Requests to a school's endpoints are aimed at an enrolled school and signed with its real key
(most of them; some are left with the generated headers), so the body and header validation behind the
signature check is exercised, not only the 401 in front of it. Bounded to a few seconds per operation.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from sandbox_helpers import PRIMARY, SchoolClient, enrol
from schemathesis.checks import not_a_server_error

from hwb_sandbox import openapi
from hwb_sandbox.testing import SandboxProcess


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxProcess, SchoolClient]]:
    """One sandbox and one enrolled school for all the fuzzing in this module."""
    with SandboxProcess(tmp_path_factory.mktemp("fuzz") / "sandbox.db") as process:
        live = requests.get(process.url + "/openapi.json", timeout=30).json()
        assert live == openapi.document()
        client = enrol(process, PRIMARY, "Ysgol Fuzz")
        yield process, client
        client.session.close()


# Generated from the document the sandbox serves; ``fuzz_target`` checks that the live /openapi.json is this
# same document. (schemathesis's lazy ``from_fixture`` loader does not run under pytest 9.)
schema = schemathesis.openapi.from_dict(openapi.document())


def _sign_this_one(case: Any) -> bool:
    """Four cases in five are signed and aimed at the enrolled school; decided by the case, so reproducible."""
    return zlib.crc32(repr((case.path_parameters, case.headers, case.body)).encode()) % 5 != 0


def _aim_at_the_school(case: Any, body_choice: bool) -> None:
    if "dfes" in (case.path_parameters or {}) and body_choice:
        case.path_parameters["dfes"] = PRIMARY
    if case.headers and "Idempotency-Key" in case.headers and isinstance(case.body, dict) and body_choice:
        batch_id = case.body.get("batch_id")
        if isinstance(batch_id, str) and batch_id.isascii() and '"' not in batch_id and "\\" not in batch_id:
            case.headers["Idempotency-Key"] = json.dumps(batch_id)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_generated_request_gets_a_server_error(
    case: Any, fuzz_target: tuple[SandboxProcess, SchoolClient]
) -> None:
    process, client = fuzz_target
    sign = _sign_this_one(case)
    _aim_at_the_school(case, sign)
    kwargs = case.as_transport_kwargs(base_url=process.url)
    kwargs.setdefault("timeout", 30)
    prepared = client.session.prepare_request(
        requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs.get("headers"),
            data=kwargs.get("data"),
            json=kwargs.get("json"),
            params=kwargs.get("params"),
            cookies=kwargs.get("cookies"),
        )
    )
    if sign:
        # A generated request the client itself would never sign (a body without a type) goes unsigned.
        with contextlib.suppress(ValueError, TypeError):
            client.signer.sign(prepared)
    response = client.session.send(prepared, timeout=30, allow_redirects=False)

    assert response.status_code < 500, (response.status_code, response.text[:500])
    case.validate_response(response, checks=[not_a_server_error])

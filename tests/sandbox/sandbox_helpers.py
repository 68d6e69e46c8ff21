"""Helpers for the sandbox tests: a signing school client and builders for protocol records."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hwb_client.adapters.signing import RequestSigner, key_id_for, public_key_b64
from hwb_sandbox.testing import SandboxProcess

PRIMARY = "6601234"  # a primary school
SECONDARY = "6605678"  # the secondary school its Year 6 moves to
UPN_KEY_ID = "nat-2026"
PROBLEM = "application/problem+json"


def upn_hash(seed: str, key_id: str = UPN_KEY_ID) -> str:
    """A well-formed hashed UPN for tests (the real one is an HMAC of a validated UPN)."""
    return f"{key_id}:{hashlib.sha256(seed.encode()).hexdigest()}"


def learner(seed: str, *, year_group: str = "6", leaving_date: str | None = None) -> dict[str, Any]:
    return {
        "upn_hash": upn_hash(seed),
        "legal_forename": "Siân",
        "legal_surname": "Jones",
        "date_of_birth": "2015-03-02",
        "year_group": year_group,
        "registration_group": f"{year_group}A",
        "leaving_date": leaving_date,
    }


def staff(
    code: str, *, start_date: str | None = "2020-09-01", leaving_date: str | None = None
) -> dict[str, Any]:
    return {
        "staff_code": code,
        "legal_forename": "Rhys",
        "legal_surname": "Evans",
        "start_date": start_date,
        "leaving_date": leaving_date,
    }


def op(op_name: str, kind: str, record: dict[str, Any] | None, key: str | None = None) -> dict[str, Any]:
    fields = {"learner": "upn_hash", "staff": "staff_code", "group": "group_id"}
    if key is None:
        assert record is not None
        if kind == "membership":
            key = f"{record['group_id']}/{record['member_kind']}/{record['member_key']}"
        else:
            key = record[fields[kind]]
    body: dict[str, Any] = {"op": op_name, "kind": kind, "key": key}
    if record is not None:
        body["record"] = record
    return body


def batch(*operations: dict[str, Any], batch_id: str | None = None) -> dict[str, Any]:
    return {
        "batch_id": batch_id or str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "sequence": 1,
        "academic_year": "2026/27",
        "upn_key_id": UPN_KEY_ID,
        "operations": list(operations),
    }


def run_report(outcome: str = "success", run_id: str | None = None, message: str = "ok") -> dict[str, Any]:
    return {
        "run_id": run_id or str(uuid.uuid4()),
        "outcome": outcome,
        "started_at": "2026-08-30T02:00:00Z",
        "finished_at": "2026-08-30T02:01:10Z",
        "client_version": "0.1.0",
        "counts": {"learner": {"upsert": 10, "leave": 2, "remove": 0}, "staff": {"upsert": 1}},
        "held_back": {"upn_temporary": 1, "staff_start_date_missing": 2},
        "batches": 1,
        "message": message,
    }


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status and slug."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    document: dict[str, Any] = response.json()
    assert document["type"] == f"urn:hwb:problem:{slug}", document
    assert document["status"] == status
    assert document["title"] and document["detail"]
    return document


@dataclass
class SchoolClient:
    """One enrolled school talking to the sandbox: signs every request with its key."""

    base_url: str
    dfes: str
    private_key: Ed25519PrivateKey
    key_id: str
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def signer(self) -> RequestSigner:
        return RequestSigner(self.private_key, self.key_id)

    def prepare(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        gzip_body: bool = False,
    ) -> requests.PreparedRequest:
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
            if gzip_body:
                body = gzip.compress(body)
                all_headers["Content-Encoding"] = "gzip"
        request = requests.Request(method, self.base_url + path, data=body, headers=all_headers)
        return self.session.prepare_request(request)

    def send(self, prepared: requests.PreparedRequest) -> requests.Response:
        return self.session.send(prepared, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        *,
        signer: RequestSigner | None = None,
        sign: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        prepared = self.prepare(method, path, **kwargs)
        if sign:
            (signer or self.signer).sign(prepared)
        return self.send(prepared)

    def post_batch(
        self, body: dict[str, Any], *, idempotency_key: str | None = None, **kwargs: Any
    ) -> requests.Response:
        key = idempotency_key if idempotency_key is not None else body["batch_id"]
        return self.call(
            "POST",
            f"/v1/schools/{self.dfes}/batches",
            json_body=body,
            headers={"Idempotency-Key": f'"{key}"'},
            **kwargs,
        )

    def post_report(self, report: dict[str, Any]) -> requests.Response:
        return self.call("POST", f"/v1/schools/{self.dfes}/run-reports", json_body=report)

    def status(self) -> requests.Response:
        return self.call("GET", f"/v1/schools/{self.dfes}/status")

    def manifest(self) -> dict[str, Any]:
        response = self.call("GET", f"/v1/schools/{self.dfes}/manifest")
        assert response.status_code == 200, response.text
        manifest: dict[str, Any] = response.json()
        return manifest

    def manifest_entry(self, kind: str, key: str) -> dict[str, Any] | None:
        for record in self.manifest()["records"]:
            if record["kind"] == kind and record["key"] == key:
                entry: dict[str, Any] = record
                return entry
        return None


def enrol(sandbox: SandboxProcess, dfes: str, name: str = "Ysgol Prawf") -> SchoolClient:
    """Register the school, enrol a fresh key with a one-time code, and return a signing client."""
    code = sandbox.issue_code(dfes, name)
    key = Ed25519PrivateKey.generate()
    response = requests.post(
        sandbox.url + "/v1/enrolments",
        json={"dfes_number": dfes, "enrolment_code": code, "public_key": public_key_b64(key)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["key_id"] == key_id_for(dfes, key.public_key())
    return SchoolClient(sandbox.url, dfes, key, response.json()["key_id"])

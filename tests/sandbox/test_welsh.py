"""The sandbox in Welsh and English, by ``Accept-Language``: the portal page and the problem documents.

A browser or client that asks for Welsh (``cy``, ``cy-GB``, Welsh before English by quality) reads Welsh;
anyone else reads the English the sandbox has always sent, byte for byte. The language is the request's,
not the process's: requests in both languages are answered at the same time. Problem ``type`` URIs,
statuses and member names are the protocol's and never change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema_rs
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sandbox_helpers import PRIMARY, SECONDARY, SchoolClient, assert_problem, batch, learner, op, run_report

from headless_browser import run_chromium
from hwb_sandbox import openapi
from hwb_sandbox.i18n import negotiate
from hwb_sandbox.testing import SandboxProcess

WELSH = {"Accept-Language": "cy"}
NOT_FOUND_ENGLISH = (
    b'{"type": "urn:hwb:problem:not-found", "title": "Not found", "status": 404,'
    b' "detail": "no such resource in protocol v1"}'
)


def _portal(sandbox: SandboxProcess, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.get(sandbox.url + "/portal", headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _row(page: str, dfes: str) -> str:
    return next(line for line in page.splitlines() if f"<td>{dfes}</td>" in line)


def _assert_language(response: requests.Response, code: str) -> None:
    assert response.headers["Content-Language"] == code
    assert "Accept-Language" in [part.strip() for part in response.headers["Vary"].split(",")]


@pytest.fixture
def summer_portal(sandbox: SandboxProcess, primary: SchoolClient, secondary: SchoolClient) -> SandboxProcess:
    """Two schools on 2 June 2027: the primary ran (partial) and changed two classes, the secondary
    never ran and changed one class."""
    sandbox.set_today(dt.date(2027, 6, 2))
    group = {"group_id": "5S", "name": "5 Science", "group_type": "teaching", "year_group": "5"}
    pupil = learner("welsh", year_group="5")
    member = {"group_id": "5S", "member_kind": "learner", "member_key": pupil["upn_hash"]}
    two = batch(
        op("upsert", "learner", pupil), op("upsert", "group", group), op("upsert", "membership", member)
    )
    assert primary.post_batch(two).status_code == 200
    assert secondary.post_batch(batch(op("upsert", "group", group))).status_code == 200
    report = run_report("partial", message="2 staff held back: no start date")
    assert primary.post_report(report).status_code == 201
    return sandbox


def test_the_portal_in_welsh(summer_portal: SandboxProcess) -> None:
    response = _portal(summer_portal, WELSH)
    page = response.text

    _assert_language(response, "cy")
    assert page.startswith('<!doctype html>\n<html lang="cy">')
    assert "<title>Blwch tywod Hwb: statws darparu</title>" in page
    assert "<h1>Statws darparu</h1>" in page
    assert "<th>Rhif DfES</th><th>Ysgol</th><th>Rhediad diwethaf</th><th>Canlyniad</th>" in page
    assert "<th>Newidiadau dosbarth a gedwir</th><th>Allweddi</th>" in page
    assert "Heddiw yn y blwch tywod: 2 Mehefin 2027 (wedi&#x27;i osod gyda hwb-sandbox clock)" in page
    ran = _row(page, PRIMARY)
    assert 'class="outcome-partial"' in ran and "<td>rhannol</td>" in ran  # the code stays in the class
    assert "<td>30 Awst 2026 02:01:10Z</td>" in ran  # the run's finished_at, its date in Welsh
    assert "<td>2 staff held back: no start date</td>" in ran  # the client's own message, as sent
    assert "2 newid wedi&#x27;u cofnodi, heb eu trosglwyddo i Teams" in ran
    never = _row(page, SECONDARY)
    assert "<td>erioed</td>" in never
    assert "1 newid wedi&#x27;i gofnodi, heb ei drosglwyddo i Teams" in never
    for english in ("Provisioning status", "Sandbox today", "never", "recorded, not passed on", "Last run"):
        assert english not in page


def test_the_portal_in_english_by_default_and_for_an_english_browser(summer_portal: SandboxProcess) -> None:
    plain = _portal(summer_portal)
    english = _portal(summer_portal, {"Accept-Language": "en-GB,en;q=0.9"})
    other = _portal(summer_portal, {"Accept-Language": "fr-FR, de;q=0.5"})

    assert english.content == plain.content == other.content
    for response in (plain, english, other):
        _assert_language(response, "en")
    page = plain.text
    assert page.startswith('<!doctype html>\n<html lang="en">')
    assert "<h1>Provisioning status</h1>" in page
    assert "<th>DfES</th><th>School</th><th>Last run</th><th>Outcome</th>" in page
    assert "Sandbox today: 2027-06-02 (set with hwb-sandbox clock)" in page
    assert "<td>partial</td>" in _row(page, PRIMARY)
    assert "<td>2026-08-30T02:01:10Z</td>" in _row(page, PRIMARY)
    assert "2 recorded, not passed on to Teams, Google Classroom or Apple Classroom (from 2 June)" in page
    assert "1 recorded, not passed on to Teams" in _row(page, SECONDARY)
    assert "<td>never</td>" in _row(page, SECONDARY)


@pytest.mark.parametrize(
    ("accept_language", "code"),
    [
        ("cy-GB", "cy"),
        ("cy;q=0.8, en;q=0.5", "cy"),
        ("cy-GB, en;q=0.5", "cy"),  # a regional Welsh tag first still wins over a plain English one
        ("en;q=0.3, cy-GB", "cy"),
        ("CY", "cy"),
        ("cy;q=0, en", "en"),  # q=0: "not Welsh"
        ("en-GB,en;q=0.9", "en"),
        ("*", "en"),
        ("de", "en"),
    ],
)
def test_the_language_asked_for_is_chosen(
    module_sandbox: SandboxProcess, accept_language: str, code: str
) -> None:
    response = _portal(module_sandbox, {"Accept-Language": accept_language})

    _assert_language(response, code)
    assert f'<html lang="{code}">' in response.text


@given(st.text())
def test_any_accept_language_header_gets_an_answer_in_one_of_the_two_languages(header: str) -> None:
    assert negotiate(header).code in ("en", "cy")  # never an exception: it is read before any handler


def test_a_problem_document_in_welsh_keeps_its_type_status_and_members(
    module_sandbox: SandboxProcess,
) -> None:
    english = requests.get(module_sandbox.url + "/v1/nothing-here", timeout=30)
    welsh = requests.get(module_sandbox.url + "/v1/nothing-here", headers=WELSH, timeout=30)

    assert english.content == NOT_FOUND_ENGLISH  # a client that asks for no language: today's bytes
    _assert_language(english, "en")
    _assert_language(welsh, "cy")
    assert welsh.headers["Content-Type"] == english.headers["Content-Type"] == "application/problem+json"
    document = assert_problem(welsh, 404, "not-found")
    assert document == {
        "type": "urn:hwb:problem:not-found",
        "title": "Heb ei ganfod",
        "status": 404,
        "detail": "nid oes adnodd o'r fath ym mhrotocol v1",
    }


def test_an_unknown_school_and_a_body_that_does_not_match_in_welsh(module_sandbox: SandboxProcess) -> None:
    unknown = requests.get(f"{module_sandbox.url}/v1/schools/6619999/status", headers=WELSH, timeout=30)
    invalid = requests.post(module_sandbox.url + "/v1/enrolments", json={}, headers=WELSH, timeout=30)
    english = requests.post(module_sandbox.url + "/v1/enrolments", json={}, timeout=30)

    assert assert_problem(unknown, 404, "school-unknown")["title"] == "Nid oes ysgol hysbys â'r rhif DfES hwn"
    assert "gofynnwch am god ymrestru" in unknown.json()["detail"]
    document = assert_problem(invalid, 422, "validation-failed")
    assert document["title"] == "Nid yw corff y cais yn cyfateb i'r protocol"
    assert document["detail"] == "nid yw 3 maes yn cyfateb i'r protocol"
    assert document["errors"] == english.json()["errors"]  # locations, codes: the protocol's, in English
    assert english.json()["title"] == "The request body does not match the protocol"
    assert english.json()["detail"] == "3 fields do not match the protocol"
    schema = openapi.document()["components"]["schemas"]["ProblemDocument"]
    for reply in (unknown, invalid, english):
        jsonschema_rs.validate(schema, reply.json())


def test_a_signed_request_refused_in_welsh(school: SchoolClient) -> None:
    response = school.call("DELETE", f"/v1/schools/{school.dfes}/keys/{school.key_id}", headers=WELSH)

    document = assert_problem(response, 422, "validation-failed")
    _assert_language(response, "cy")
    assert document["detail"] == (
        "dyma unig allwedd gyfredol yr ysgol; ychwanegwch allwedd arall cyn tynnu hon yn ôl"
    )
    assert "Signature" in response.headers  # still signed by the national key


def test_a_refusal_before_the_app_runs_has_a_welsh_title(module_sandbox: SandboxProcess) -> None:
    host, port = module_sandbox.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/schools/{PRIMARY}/batches HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Language: cy\r\n"
        "Content-Type: application/json\r\nContent-Length: 9000000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = connection.makefile("rb").read()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Content-Language: cy" in head and b"Vary: Accept-Language" in head
    document = json.loads(body)
    assert document["type"] == "urn:hwb:problem:body-too-large" and document["status"] == 413
    assert document["title"] == "Mae corff y cais yn rhy fawr"


def test_requests_in_both_languages_at_once_each_get_their_own(module_sandbox: SandboxProcess) -> None:
    def fetch(index: int) -> tuple[str, str, str]:
        asked = "cy" if index % 2 else "en"
        path = "/portal" if index % 3 else f"/v1/{uuid.uuid4()}"
        response = requests.get(module_sandbox.url + path, headers={"Accept-Language": asked}, timeout=30)
        return asked, response.headers["Content-Language"], response.text

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(fetch, range(48)))

    for asked, answered, text in answers:
        assert answered == asked
        welsh = "Statws darparu" in text or "Heb ei ganfod" in text
        assert welsh == (asked == "cy"), text[:200]


def test_the_welsh_portal_renders_in_a_browser(summer_portal: SandboxProcess, tmp_path: Path) -> None:
    """Headless Chromium asking for Welsh (``--accept-lang=cy``) draws the page the sandbox serves it."""
    png = tmp_path / "portal-cy.png"
    url = summer_portal.url + "/portal"
    dom = run_chromium("--accept-lang=cy", "--dump-dom", url)
    run_chromium("--accept-lang=cy", f"--screenshot={png}", "--window-size=1600,500", url)
    assert '<html lang="cy">' in dom and "<h1>Statws darparu</h1>" in dom  # the browser was served Welsh
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5_000
    if os.environ.get("HWB_SCREENSHOT_DIR"):  # to look at it: HWB_SCREENSHOT_DIR=/tmp/shots pytest ...
        shutil.copy(png, Path(os.environ["HWB_SCREENSHOT_DIR"]) / png.name)

"""Run reports, status and the portal: "has the client run recently and successfully?"."""

from __future__ import annotations

import datetime as dt
import uuid

import requests
from sandbox_helpers import SchoolClient, assert_problem, run_report

from hwb_sandbox.testing import SandboxProcess


def test_run_report_shows_in_status_and_on_the_portal(
    module_sandbox: SandboxProcess, school: SchoolClient
) -> None:
    report = run_report("partial", message="2 staff held back: no start date")

    posted = school.post_report(report)
    status = school.status()
    portal = requests.get(module_sandbox.url + "/portal", timeout=30)

    assert posted.status_code == 201, posted.text
    assert posted.json()["run_id"] == report["run_id"]
    assert status.status_code == 200
    body = status.json()
    assert body["dfes_number"] == school.dfes
    assert body["school_name"] == "Ysgol Gynradd Prawf"
    assert body["last_run"] == dict(report, received_at=posted.json()["received_at"])
    assert body["last_success_at"] == report["finished_at"]
    assert portal.status_code == 200
    assert portal.headers["Content-Type"].startswith("text/html")
    assert school.dfes in portal.text
    row = next(line for line in portal.text.splitlines() if f"<td>{school.dfes}</td>" in line)
    assert "<td>partial</td>" in row
    assert "<td>2 staff held back: no start date</td>" in row
    assert "staff_start_date_missing 2" in row


def test_run_report_is_idempotent_by_run_id(school: SchoolClient) -> None:
    report = run_report("success")
    first = school.post_report(report)

    again = school.post_report(dict(report, message="sent again"))

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert school.status().json()["last_run"]["message"] == "ok"


def test_failed_run_is_the_last_run_but_not_the_last_success(school: SchoolClient) -> None:
    success = run_report("success")
    school.post_report(success)
    school.post_report(run_report("failed", message="MIS unreachable"))

    body = school.status().json()

    assert body["last_run"]["outcome"] == "failed"
    assert body["last_success_at"] == success["finished_at"]


def test_status_before_any_run_says_never(school: SchoolClient) -> None:
    assert school.status().json()["last_run"] is None
    assert school.status().json()["last_success_at"] is None


def test_run_report_with_an_unknown_outcome_is_refused(school: SchoolClient) -> None:
    response = school.post_report(dict(run_report(), outcome="mostly"))

    assert_problem(response, 422, "validation-failed")


def test_portal_escapes_school_names_and_messages(
    module_sandbox: SandboxProcess, school: SchoolClient
) -> None:
    module_sandbox.issue_code("6611111", "<script>alert('x')</script> & Ysgol")
    school.post_report(
        run_report("blocked", run_id=str(uuid.uuid4()), message="<img src=x onerror=alert(1)>")
    )

    page = requests.get(module_sandbox.url + "/portal", timeout=30).text

    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Ysgol" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_healthz_answers_ok(module_sandbox: SandboxProcess) -> None:
    response = requests.get(module_sandbox.url + "/healthz", timeout=30)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok" and answer["sandbox"] is True  # a rehearsal's real runs check this
    assert dt.date.fromisoformat(answer["today"])

"""The sandbox as a package and a command: independent of the client, documented, and well behaved."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sandbox_helpers import PRIMARY, SchoolClient, batch, learner, op

from hwb_client.adapters.signing import public_key_b64
from hwb_sandbox.cli import main
from hwb_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_SRC = ROOT / "src" / "hwb_sandbox"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hwb_sandbox", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_sandbox_package_imports_nothing_from_hwb_client() -> None:
    for path in sorted(SANDBOX_SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.split(".")[0] == "hwb_client" for name in names), f"{path} imports {names}"

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hwb_sandbox.cli, hwb_sandbox.testing, hwb_sandbox.pytest_plugin;"
            "print([m for m in sys.modules if m.startswith('hwb_client')])",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "[]"


def test_served_openapi_document_matches_the_copy_in_docs(sandbox: SandboxProcess) -> None:
    served = requests.get(sandbox.url + "/openapi.json", timeout=30).json()
    kept = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))

    assert served == kept, "docs/openapi.json is stale: run `hwb-sandbox openapi > docs/openapi.json`"
    assert served["openapi"].startswith("3.1")
    assert {"/v1/enrolments", "/v1/schools/{dfes}/batches", "/portal", "/healthz"} <= set(served["paths"])


@pytest.mark.parametrize(
    "command", ["serve", "issue-code", "schools", "accounts", "clock", "rotate-response-key", "openapi"]
)
def test_every_cli_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert f"usage: hwb-sandbox {command}" in help_text
    assert len(help_text.splitlines()) > 3


def test_issue_code_cli_prints_a_code_that_enrols(sandbox: SandboxProcess) -> None:
    result = _cli("issue-code", "--db", str(sandbox.db_path), "--dfes", PRIMARY, "--name", "Ysgol Gynradd")
    assert result.returncode == 0, result.stderr
    code = result.stdout.strip()

    response = requests.post(
        sandbox.url + "/v1/enrolments",
        json={
            "dfes_number": PRIMARY,
            "enrolment_code": code,
            "public_key": public_key_b64(Ed25519PrivateKey.generate()),
        },
        timeout=30,
    )

    assert response.status_code == 201, response.text
    assert response.json()["school_name"] == "Ysgol Gynradd"


def test_issue_code_cli_refuses_a_dfes_number_outside_wales(tmp_path: Path) -> None:
    result = _cli("issue-code", "--db", str(tmp_path / "s.db"), "--dfes", "2071234")

    assert result.returncode == 3
    assert "not a Welsh DfES number" in result.stderr


def test_accounts_cli_lists_accounts_without_names(sandbox: SandboxProcess, primary: SchoolClient) -> None:
    pupil = learner("cli")
    primary.post_batch(batch(op("upsert", "learner", pupil)))

    result = _cli("accounts", "--db", str(sandbox.db_path), "--dfes", PRIMARY, "--json")

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["kind"], row["key"], row["account_active"]) for row in rows] == [
        ("learner", pupil["upn_hash"], True)
    ]
    assert pupil["legal_forename"] not in result.stdout and pupil["date_of_birth"] not in result.stdout


def test_accounts_cli_for_an_unknown_school_exits_4(tmp_path: Path) -> None:
    result = _cli("accounts", "--db", str(tmp_path / "s.db"), "--dfes", PRIMARY)

    assert result.returncode == 4


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    sandbox = SandboxProcess(tmp_path / "s.db").start()
    pid = sandbox.pid

    status = sandbox.stop()  # SIGTERM (Popen.terminate), then wait

    assert pid > 0
    if sys.platform != "win32":  # Windows has no SIGTERM handler to run: TerminateProcess
        assert status == 0
        assert "sandbox_stopped" in (tmp_path / "s.db.log").read_text(encoding="utf-8")


def test_sandbox_state_survives_a_restart(tmp_path: Path) -> None:
    with SandboxProcess(tmp_path / "s.db") as first:
        code = first.issue_code(PRIMARY)
        key = Ed25519PrivateKey.generate()
        enrolled = requests.post(
            first.url + "/v1/enrolments",
            json={"dfes_number": PRIMARY, "enrolment_code": code, "public_key": public_key_b64(key)},
            timeout=30,
        ).json()
        client = SchoolClient(first.url, PRIMARY, key, enrolled["key_id"])
        client.post_batch(batch(op("upsert", "learner", learner("durable"))))
        client.session.close()

    with SandboxProcess(tmp_path / "s.db") as second:
        client = SchoolClient(second.url, PRIMARY, key, enrolled["key_id"])
        try:
            assert len(client.manifest()["records"]) == 1
        finally:
            client.session.close()

"""HTTPS between the real client and the sandbox: a trusted test CA, an unknown CA, a wrong host name.

The sandbox serves TLS itself (``hwb-sandbox serve --tls-cert --tls-key``), with certificates from a test
CA made here with ``cryptography`` for 127.0.0.1 and localhost. The HTTPS sandboxes share the session's
national database, so a school enrolled over one is known to all. The client trusts the test CA only when
``api.ca_bundle`` names it; otherwise, or when the certificate is for another name, the run fails at once
(no retries: retrying cannot fix a certificate) with exit 5 and a message that says what to set.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import RLab, ledger
from tls_certs import CertAuthority

from hwb_sandbox.testing import SandboxProcess
from mis_builder import small_school

AREA = "HTTPS to the sandbox: a trusted CA, an unknown CA, a certificate for another name"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test CA, another CA nobody configured, and server certificates (right and wrong names)."""
    directory = tmp_path_factory.mktemp("tls")
    ca = CertAuthority.create(directory, "hwb test CA")
    other = CertAuthority.create(directory, "another CA")
    cert, key = ca.issue(directory)
    wrong_cert, wrong_key = ca.issue(directory, ("provisioning.example",))
    return {
        "ca": ca.cert_file,
        "other_ca": other.cert_file,
        "cert": cert,
        "key": key,
        "wrong_cert": wrong_cert,
        "wrong_key": wrong_key,
    }


def _https_sandbox(
    national: SandboxProcess, cert: Path, key: Path, ca: Path, *, check_hostname: bool = True
) -> SandboxProcess:
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = check_hostname
    return SandboxProcess(
        national.db_path, serve_args=["--tls-cert", str(cert), "--tls-key", str(key)], tls_context=context
    )


@pytest.fixture(scope="module")
def https_national(national: SandboxProcess, pki: dict[str, Path]) -> Iterator[SandboxProcess]:
    with _https_sandbox(national, pki["cert"], pki["key"], pki["ca"]) as process:
        yield process


def _lab(rlab, https_national: SandboxProcess, pki: dict[str, Path]) -> RLab:
    lab = rlab(base_url=https_national.url, api={"ca_bundle": str(pki["ca"])})
    small_school(lab.schools[0].mis_path, lab.dfes, learners=10).close()
    return lab


def test_the_client_runs_over_https_when_api_ca_bundle_names_the_test_ca(
    rlab, https_national: SandboxProcess, pki: dict[str, Path], scenario
) -> None:
    """Enrolment and a full run over HTTPS with api.ca_bundle = the test CA: exit 0, sandbox == MIS."""
    lab = _lab(rlab, https_national, pki)

    run = lab.run_now()

    assert run.returncode == 0, run.stdout + run.stderr
    assert https_national.url.startswith("https://127.0.0.1:")
    compared = lab.assert_sandbox_matches_mis()
    scenario.figures.update(
        {
            "url": "https://127.0.0.1:PORT",
            "records compared": compared,
            "batches": len(ledger(lab.sandbox, lab.dfes).batches),
        }
    )


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_a_certificate_from_an_unknown_ca_fails_with_exit_5_naming_api_ca_bundle(
    rlab, https_national: SandboxProcess, pki: dict[str, Path], trust: str, scenario
) -> None:
    """The sandbox's CA is not the one trusted (the system's, or another file): exit 5 at once, the
    message says the certificate is not trusted and to set api.ca_bundle; nothing is sent."""
    lab = _lab(rlab, https_national, pki)
    before = ledger(lab.sandbox, lab.dfes)
    lab.write_config(api={"ca_bundle": str(pki["other_ca"])} if trust == "another CA" else None)
    if trust == "system CAs":
        assert "ca_bundle" not in lab.lab.config_path.read_text(encoding="utf-8")

    run = lab.run_now()

    output = run.stdout + run.stderr
    assert run.returncode == 5, output
    assert "Traceback" not in output
    assert "not trusted" in output and "api.ca_bundle" in output, output
    assert run.events("request_retry") == []
    assert ledger(lab.sandbox, lab.dfes).since(before).batches == {}
    scenario.figures["message"] = _message(output, pki["other_ca"])


def test_a_certificate_for_another_name_fails_with_exit_5_saying_whose_it_is(
    rlab, national: SandboxProcess, https_national: SandboxProcess, pki: dict[str, Path], scenario
) -> None:
    """A certificate from the trusted CA but for provisioning.example, served on 127.0.0.1: exit 5 at
    once, the message says the certificate is not valid for that host and points at api.base_url."""
    lab = _lab(rlab, https_national, pki)
    with _https_sandbox(
        national, pki["wrong_cert"], pki["wrong_key"], pki["ca"], check_hostname=False
    ) as wrong:
        port = wrong.url.rsplit(":", 1)[1]
        lab.write_config(api={"ca_bundle": str(pki["ca"]), "base_url": f"https://127.0.0.1:{port}/"})
        before = ledger(lab.sandbox, lab.dfes)

        run = lab.run_now()

    output = run.stdout + run.stderr
    assert run.returncode == 5, output
    assert "Traceback" not in output
    assert "not valid for 127.0.0.1" in output and "api.base_url" in output, output
    assert run.events("request_retry") == []
    assert ledger(lab.sandbox, lab.dfes).since(before).batches == {}
    scenario.figures["message"] = _message(output, pki["other_ca"])


def test_healthz_over_https_answers_while_200_idle_and_200_half_handshaken_clients_wait(
    https_national: SandboxProcess, pki: dict[str, Path], scenario
) -> None:
    """200 TCP connections that never start TLS and 200 that send half a ClientHello: the TLS front
    handshakes in its event loop (bounded to 10 s), so an HTTPS health check still answers."""
    host, port = https_national.url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=pki["ca"])
    sockets: list[socket.socket] = []
    try:
        for i in range(400):
            connection = socket.create_connection((host, int(port)), timeout=10)
            if i % 2:
                connection.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
            sockets.append(connection)
        raw = socket.create_connection((host, int(port)), timeout=10)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            answer = tls.makefile("rb").read()
    finally:
        for connection in sockets:
            connection.close()

    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"status": "ok"' in answer.rsplit(b"\r\n\r\n", 1)[-1]
    scenario.figures["waiting clients"] = len(sockets)


def _message(output: str, *paths: Path) -> str:
    """The client's one-line explanation, without the school prefix and with test paths shortened."""
    line = next((line for line in output.splitlines() if "certificate" in line), output).strip()
    for path in paths:
        line = line.replace(str(path), path.name)
    return line.split(" - ", 1)[-1]

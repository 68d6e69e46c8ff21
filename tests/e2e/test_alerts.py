"""E-mail alerts end to end: the real CLI, the sandbox, and a real SMTP server on loopback (aiosmtpd) with
STARTTLS under a test CA and a login; once per change of state; a relay that is down."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import sqlite3
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mis_builder import small_school

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cert(subject, issuer, key, issuer_key, *, ca):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def test_ca(tmp_path):
    """A test CA (its certificate for the client) and a server context with a certificate it issued."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("hwb test CA", "hwb test CA", ca_key, ca_key, ca=True)
    server = _cert("localhost", "hwb test CA", server_key, ca_key, ca=False)
    ca_file, chain, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    return ca_file, context


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"hwb", b"s3cret")
    return AuthResult(success=ok)


def smtp_server(port, context):
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    controller.start()
    return inbox, controller


def alerts_config(lab, port, ca_file):
    (lab.root / "smtp-password").write_text("s3cret\n")
    lab.extra_config = "\n".join(
        [
            "[alerts]",
            'smtp_host = "127.0.0.1"',
            f"smtp_port = {port}",
            "starttls = true",
            f'ca_bundle = "{ca_file}"',
            'username = "hwb"',
            f'password_file = "{lab.root / "smtp-password"}"',
            'mail_from = "hwb-client@la.example"',
            'mail_to = ["schools-it@la.example"]',
            "timeout_seconds = 5",
        ]
    )
    lab.write_config()


def break_mis(lab):
    path = lab.schools[0].mis_path
    path.rename(path.with_suffix(".moved"))
    sqlite3.connect(path).close()  # an empty file: the tables are gone


def mend_mis(lab):
    path = lab.schools[0].mis_path
    path.unlink()
    path.with_suffix(".moved").rename(path)


def test_a_failed_run_is_alerted_once_over_starttls_with_login_and_again_when_it_recovers(make_lab, test_ca):
    ca_file, context = test_ca
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    inbox, controller = smtp_server(free_port(), context)
    try:
        alerts_config(lab, controller.port, ca_file)
        assert lab.cli("--run-now").returncode == 0
        assert inbox.messages == []  # a school that is fine is not news
        break_mis(lab)
        assert lab.cli("--run-now").returncode == 4
        assert len(inbox.messages) == 1
        alert = inbox.messages[0]
        assert alert["Subject"] == "hwb-client: school 6612001 run failed"
        body = alert.get_content()
        assert alert.get_content_type() == "text/plain"
        assert "School: 6612001 Ysgol Gynradd Llanfair" in body and "learners query failed" in body
        assert "What to do:" in body and "--run-now --school 6612001" in body
        assert "http" not in body and "Siân" not in body and "Prydderch" not in body
        assert lab.cli("--run-now").returncode == 4
        assert len(inbox.messages) == 1  # the same state: not sent again
        mend_mis(lab)
        assert lab.cli("--run-now").returncode == 0
        assert len(inbox.messages) == 2 and inbox.messages[1]["Subject"].endswith("back to normal")
    finally:
        controller.stop()
    assert "alert_sent" in lab.log_file.read_text(encoding="utf-8")


def test_a_relay_that_is_down_does_not_affect_the_run_and_the_alert_is_retried_next_time(make_lab, test_ca):
    ca_file, context = test_ca
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    port = free_port()
    alerts_config(lab, port, ca_file)
    assert lab.cli("--run-now").returncode == 0
    break_mis(lab)
    down = lab.cli("--run-now")
    assert down.returncode == 4 and "Traceback" not in down.stderr  # exactly as without alerts
    log = lab.log_file.read_text(encoding="utf-8")
    assert "alert_not_sent" in log and "ConnectionRefusedError" in log
    inbox, controller = smtp_server(port, context)
    try:
        assert lab.cli("--run-now").returncode == 4
        assert [m["Subject"] for m in inbox.messages] == ["hwb-client: school 6612001 run failed"]
    finally:
        controller.stop()


def test_a_relay_whose_certificate_is_not_trusted_is_not_given_the_password(make_lab, test_ca, tmp_path):
    _ca_file, context = test_ca
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    other_ca = tmp_path / "other-ca.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    other_ca.write_bytes(_cert("other", "other", key, key, ca=True).public_bytes(serialization.Encoding.PEM))
    inbox, controller = smtp_server(free_port(), context)
    try:
        alerts_config(lab, controller.port, other_ca)
        break_mis(lab)
        assert lab.cli("--run-now").returncode == 4
        assert inbox.messages == []
        assert "CERTIFICATE_VERIFY_FAILED" in lab.log_file.read_text(encoding="utf-8")
    finally:
        controller.stop()


def test_an_overdue_school_is_alerted_once(make_lab, test_ca):
    from hwb_client.operator import alerts
    from hwb_client.settings import load_settings

    ca_file, context = test_ca
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    inbox, controller = smtp_server(free_port(), context)
    try:
        alerts_config(lab, controller.port, ca_file)
        assert lab.cli("--run-now").returncode == 0
        settings = load_settings(lab.config_path)
        school = settings.schools[0]
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        assert alerts.check_school(settings, school, soon) is None  # the last success is recent
        late = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        assert alerts.check_school(settings, school, late) == "overdue"
        assert alerts.check_school(settings, school, late + dt.timedelta(days=1)) is None
        assert [m["Subject"] for m in inbox.messages] == ["hwb-client: school 6612001 overdue"]
        assert "the last successful run was 20" in inbox.messages[0].get_content()
    finally:
        controller.stop()


def test_a_run_held_by_the_guard_is_alerted_in_welsh_with_content_language_cy(make_lab, test_ca):
    ca_file, context = test_ca
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=40)
    inbox, controller = smtp_server(free_port(), context)
    try:
        alerts_config(lab, controller.port, ca_file)
        assert lab.cli("--lang", "cy", "--run-now").returncode == 0
        mis.execute("DELETE FROM mis_group_member WHERE pupil_id > 5")
        mis.execute("DELETE FROM mis_pupil WHERE pupil_id > 5")
        mis.commit()
        assert lab.cli("--lang", "cy", "--run-now").returncode == 6
        assert len(inbox.messages) == 1
        alert = inbox.messages[0]
        assert alert["Content-Language"] == "cy"
        assert alert["Subject"] == "hwb-client: ysgol 6612001 rhediad wedi'i atal gan y gwarchodwr"
        body = alert.get_content()
        assert "Ysgol: 6612001 Ysgol Gynradd Llanfair" in body
        assert "Cyflwr: rhediad wedi'i atal gan y gwarchodwr (am " in body
        assert (
            "Rheswm: rhediad wedi'i atal, ni anfonwyd dim: cofnodion dysgwyr gweithredol: diflannodd 35 o 40"
            in body
        )
        assert "Beth i'w wneud: Ataliodd y gwarchodwr diogelwch y rhediad" in body
        assert "--allow-mass-removal" in body and "nid yw'n cynnwys unrhyw ddata personol" in body
        assert "nothing was sent" not in body and "vanished" not in body
    finally:
        controller.stop()
    state = lab.cli("history", "--json", "--last", "1").stdout
    assert "vanished from the MIS without a leaving date" in state  # the stored message stays English

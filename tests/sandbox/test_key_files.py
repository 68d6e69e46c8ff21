"""The school's signing key file: created private, refused when unusable, with messages that say the fix."""

from __future__ import annotations

import hashlib
import stat
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hwb_client.adapters.signing import generate_signing_key, key_id_for, load_signing_key, public_key_b64
from hwb_client.errors import ConfigError, KeyFileError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@posix_only
def test_generated_key_file_is_0600_in_a_new_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "signing.pem"

    key = generate_signing_key(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_b64(load_signing_key(path)) == public_key_b64(key)
    assert [p.name for p in path.parent.iterdir()] == ["signing.pem"]  # no temporary file left behind


def test_generating_over_an_existing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    first = generate_signing_key(path)

    with pytest.raises(KeyFileError, match="already exists"):
        generate_signing_key(path)

    assert public_key_b64(load_signing_key(path)) == public_key_b64(first)


def test_missing_key_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"

    with pytest.raises(KeyFileError) as caught:
        load_signing_key(path)

    assert str(path) in str(caught.value)
    assert "enrol" in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # exit code 3, nothing was read or sent


def test_malformed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(b"not a key")
    path.chmod(0o600)

    with pytest.raises(KeyFileError, match="not an unencrypted PKCS#8 PEM Ed25519 private key"):
        load_signing_key(path)


def test_key_file_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)

    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_signing_key(path)


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_file_readable_by_group_or_others_is_refused_with_the_chmod_fix(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "signing.pem"
    generate_signing_key(path)
    path.chmod(mode)

    with pytest.raises(KeyFileError) as caught:
        load_signing_key(path)

    assert f"chmod 600 {path}" in str(caught.value)


def test_key_id_is_dfes_and_16_hex_digits_of_sha256_of_the_raw_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    assert key_id_for("6601234", key.public_key()) == "6601234:" + hashlib.sha256(raw).hexdigest()[:16]
    assert key_id_for("6601234", key) == key_id_for("6601234", key.public_key())

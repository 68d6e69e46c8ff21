"""systemd credentials ($CREDENTIALS_DIRECTORY) for the MIS password and the national key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwb_client.errors import ConfigError
from hwb_client.settings import ClientSettings, SchoolSettings


def school(**extra: str) -> SchoolSettings:
    return SchoolSettings(dfes_number="6612001", odbc="DSN=SIMS;UID=hwb_reader", **extra)


def test_the_password_comes_from_the_credential_when_the_service_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mis-6612001").write_text("s3cret}\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    conn = school(odbc_password_credential="mis-6612001").connection_string()
    assert conn == "DSN=SIMS;UID=hwb_reader;PWD={s3cret}}}"


def test_without_the_credential_the_error_names_the_unit_line_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        school(odbc_password_credential="mis-6612001").connection_string()
    assert caught.value.message.startswith("schools[6612001].odbc_password_credential: $CREDENTIALS_DIRECTORY is not set")
    assert "LoadCredential=mis-6612001:/etc/hwb-client/credentials/mis-6612001" in caught.value.message


def test_runs_by_hand_fall_back_to_the_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secret = tmp_path / "password"
    secret.write_text("fromfile", encoding="utf-8")
    conn = school(odbc_password_credential="mis-6612001", odbc_password_file=str(secret)).connection_string()
    assert conn.endswith(";PWD={fromfile}")


def test_the_national_key_credential_replaces_the_file_only_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = ClientSettings(national_key_credential="national-key.json")
    assert settings.national_key_file == Path("/etc/hwb-client/national-key.json")  # not handed over
    (tmp_path / "national-key.json").write_text("{}", encoding="utf-8")
    settings = ClientSettings(national_key_credential="national-key.json")
    assert settings.national_key_file == tmp_path / "national-key.json"

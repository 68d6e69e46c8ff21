"""Configuration: a bad setting stops everything with a message naming the setting and the fix."""

from pathlib import Path

import pytest

from hwb_client.errors import ConfigError
from hwb_client.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
GOOD = """
[client]
state_dir = "{state}"
national_key_file = "{state}/national-key.json"
[api]
base_url = "http://127.0.0.1:9999/"
[[schools]]
dfes_number = "6612001"
odbc = "Driver=SQLite3;Database=/tmp/mis.sqlite3"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hwb-client.toml"
    path.write_text(text.format(state=tmp_path))
    return path


def test_the_shipped_example_configuration_is_valid() -> None:
    settings = load_settings(REPO / "config" / "hwb-client.example.toml")
    assert settings.schools[0].dfes_number == "6612001"
    assert str(settings.api.base_url).startswith("https://")


def test_a_minimal_configuration_loads_with_sane_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.guard.max_removal_share == 0.10 and settings.guard.min_removals == 3
    assert settings.signing_key_path(settings.schools[0]) == tmp_path / "keys" / "6612001.pem"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('dfes_number = "6612001"', 'dfes_number = "1234567"'),
            r"schools\[1234567\]\.dfes_number: must be the school's 7-digit DfES",
        ),
        (
            ('base_url = "http://127.0.0.1:9999/"', 'base_url = "http://api.example.org/"'),
            r"api\.base_url: must be https://",
        ),
        (("[api]", "[api]\ntimeout = 3"), r"api\.timeout: unknown setting"),
        (
            ('odbc = "Driver=SQLite3;Database=/tmp/mis.sqlite3"\n', ""),
            r"schools\[6612001\]\.odbc: required setting is missing",
        ),
        (("[client]", "[guard]\nmax_removal_share = 3\n[client]"), r"guard\.max_removal_share"),
        (
            ("[api]", '[api]\nca_bundle = "/nonexistent/ca.pem"'),
            r"api\.ca_bundle: no file at /nonexistent/ca\.pem",
        ),
        (
            ('base_url = "http://127.0.0.1:9999/"', 'base_url = "http://127.attacker.example/"'),
            r"api\.base_url: must be https://",
        ),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, GOOD.replace(*change)))


def test_a_missing_file_says_where_to_copy_the_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hwb-client\.example\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_is_reported_with_its_position(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, GOOD + "\n[[schools]\n"))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWB_GUARD__MIN_REMOVALS", "5")
    assert load_settings(write(tmp_path, GOOD)).guard.min_removals == 5


def test_password_comes_from_the_environment_never_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        GOOD.replace(
            'Database=/tmp/mis.sqlite3"', 'Database=/tmp/mis.sqlite3"\nodbc_password_env = "MIS_PW"'
        ),
    )
    school = load_settings(path).schools[0]
    with pytest.raises(ConfigError, match="MIS_PW is not set"):
        school.connection_string()
    monkeypatch.setenv("MIS_PW", "s3cr}t")
    assert school.connection_string().endswith(";PWD={s3cr}}t}")
    assert "s3cr" not in repr(school)

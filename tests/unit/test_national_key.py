"""The national UPN hashing key file: format and permissions."""

import json
from pathlib import Path

import pytest

from hwb_client.adapters.national_key import load_national_key, write_national_key
from hwb_client.errors import KeyFileError


def test_a_written_key_loads_and_hashes_with_its_key_id(tmp_path: Path) -> None:
    path = tmp_path / "national-key.json"
    write_national_key(path, "nat-2026", b"x" * 32)
    hasher = load_national_key(path)
    assert hasher("J681234525017").startswith("nat-2026:") and len(hasher("J681234525017")) == 9 + 64
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_group_readable_is_accepted_for_the_service_group(tmp_path: Path) -> None:
    path = tmp_path / "national-key.json"
    write_national_key(path, "nat-2026")
    path.chmod(0o640)
    load_national_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_a_world_readable_key_has_that_access_removed(tmp_path: Path) -> None:
    path = tmp_path / "national-key.json"
    write_national_key(path, "nat-2026")
    path.chmod(0o644)
    load_national_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o640"


@pytest.mark.parametrize(
    "content",
    [
        '{"key_id": "k"}',
        '{"key_id": "k", "key": "c2hvcnQ="}',
        "not json",
        '{"key_id": "a:b", "key": "' + "A" * 44 + '"}',
    ],
)
def test_a_malformed_key_file_is_refused_with_its_format(tmp_path: Path, content: str) -> None:
    path = tmp_path / "national-key.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a valid key file"):
        load_national_key(path)


def test_a_missing_key_file_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="national UPN hashing key"):
        load_national_key(tmp_path / "nope.json")


def test_the_key_never_appears_in_the_hashers_repr(tmp_path: Path) -> None:
    path = tmp_path / "national-key.json"
    write_national_key(path, "nat-2026", b"s3cr3t-national-key-material-32b")
    assert "s3cr3t" not in repr(load_national_key(path))
    assert json.loads(path.read_text())["key_id"] == "nat-2026"

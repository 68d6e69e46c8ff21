"""platform/filesystem.py: owner-only modes whatever the umask, no-follow opens, directories and files
open to others fixed or refused, and full or read-only storage told apart from other errors."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_client.errors import StateStorageError, UnsafeFileError
from hwb_client.platform import filesystem as fs


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def loose_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_new_directories_and_files_are_owner_only_whatever_the_umask(
    tmp_path: Path, loose_umask: int
) -> None:
    state = tmp_path / "a" / "state"
    fs.ensure_private_dir(state)
    assert mode(state) == mode(state.parent) == 0o700
    fs.create_private(state / "x.sqlite3")
    fs.atomic_write(state / "report.json", b"{}")
    fs.write_secret_file(state / "keys" / "k.pem", b"secret")
    assert {mode(p) for p in state.rglob("*") if p.is_file()} == {0o600}
    assert mode(state / "keys") == 0o700


def test_log_files_are_created_owner_only_and_stay_so_across_rotations(
    tmp_path: Path, loose_umask: int
) -> None:
    path = tmp_path / "logs" / "hwb-client.log"
    handler = fs.PrivateRotatingFileHandler(path, maxBytes=50, backupCount=2, encoding="utf-8")
    try:
        for n in range(5):
            handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "event %s " * 5, (n,) * 5, None))
    finally:
        handler.close()
    assert mode(path.parent) == 0o700
    files = list(path.parent.iterdir())
    assert len(files) == 3 and {mode(p) for p in files} == {0o600}


def test_a_symbolic_link_is_refused_naming_it_and_its_target_is_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"precious")
    link = tmp_path / "school.lock"
    link.symlink_to(target)
    with pytest.raises(UnsafeFileError, match=f"{link} is a symbolic link"):
        fs.open_private(link, os.O_RDWR | os.O_CREAT)
    with pytest.raises(UnsafeFileError):
        fs.read_private(link)
    assert target.read_bytes() == b"precious"


def test_an_existing_file_open_to_others_is_fixed_or_refused_as_asked(tmp_path: Path) -> None:
    path = tmp_path / "outbox.key"
    path.write_bytes(b"k" * 32)
    path.chmod(0o644)
    with pytest.raises(UnsafeFileError, match=r"accessible by other users \(mode 0644\); run: chmod 600"):
        fs.read_private(path, fix=False)
    assert fs.read_private(path) == b"k" * 32
    assert mode(path) == 0o600


def test_a_state_directory_open_to_others_is_closed_when_ours(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    fs.ensure_private_dir(state)
    assert mode(state) == 0o750
    state.chmod(0o750)  # the service unit's StateDirectoryMode: left as it is
    fs.ensure_private_dir(state)
    assert mode(state) == 0o750


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_a_state_directory_open_to_others_and_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    os.chown(state, 65534, 65534)
    with pytest.raises(UnsafeFileError, match="owned by another user"):
        fs.ensure_private_dir(state)
    assert mode(state) == 0o777


def test_full_and_read_only_storage_are_told_apart_from_other_errors(tmp_path: Path) -> None:
    full = fs.storage_problem(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(full, StateStorageError) and f"{tmp_path} is full" in full.message
    assert "free space" in full.message
    sqlite_full = fs.storage_problem(sqlite3.OperationalError("database or disk is full"), tmp_path)
    assert sqlite_full is not None and "is full" in sqlite_full.message
    read_only = fs.storage_problem(OSError(errno.EROFS, "Read-only file system"), tmp_path)
    assert read_only is not None and "cannot be written" in read_only.message
    assert fs.storage_problem(sqlite3.OperationalError("no such table: runs"), tmp_path) is None


def test_a_fifo_where_a_key_is_expected_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "outbox.key"
    os.mkfifo(path, 0o600)
    with pytest.raises(UnsafeFileError, match="is not a regular file"):
        fs.read_private(path)


def test_a_read_only_use_leaves_modes_as_found_but_still_refuses_a_link(tmp_path: Path) -> None:
    """``status`` and dry runs read the outbox key of a state 0.1.0 left 0644 without failing or changing
    it (the next real run tightens it); a link is refused all the same."""
    path = tmp_path / "outbox.key"
    path.write_bytes(b"k" * 32)
    path.chmod(0o644)
    assert fs.read_private(path, fix=None) == b"k" * 32
    assert mode(path) == 0o644
    link = tmp_path / "linked.key"
    link.symlink_to(path)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        fs.read_private(link, fix=None)

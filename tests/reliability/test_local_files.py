"""Local files whatever the umask, symbolic links in the state directory, a state directory open to
others: each scenario runs the real CLI in a subprocess (with the umask under test) against the sandbox."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import ledger, run_reports

from mis_builder import small_school

AREA = "Safe local files: modes whatever the umask, links, directories open to others"


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    """The test process's umask (inherited by every CLI subprocess and the lab's set-up)."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_everything_the_client_creates_is_owner_only_whatever_the_umask(mask, rlab, scenario):
    """Under umask 022 and 000, a first run creates the state directory, the database with its -wal and
    -shm, the lock, the outbox key, the signing key and the log owner-only (directories 0700, files
    0600; the run is killed mid-way so that the -wal and -shm are still there); the national key is not open to others
    at most (0640 as documented for an installed one)."""
    with umask(mask):
        lab = rlab()
        small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
        # Killed after the outbox is written, so that the database's -wal and -shm are still there.
        killed = lab.run_now(HWB_FAILPOINT="after_outbox")
        assert killed.killed, killed.stdout + killed.stderr
        state = lab.lab.state_dir
        db = state / f"{lab.dfes}.sqlite3"
        expected_files = [
            db,
            db.with_name(db.name + "-wal"),
            db.with_name(db.name + "-shm"),
            state / f"{lab.dfes}.lock",
            state / f"{lab.dfes}.outbox.key",
            state / "keys" / f"{lab.dfes}.pem",
            lab.lab.log_file,
        ]
        for path in expected_files:
            assert path.exists(), path
        modes = {str(p.relative_to(lab.root)): f"{mode(p):04o}" for p in expected_files}
        for directory in (state, state / "keys", lab.lab.log_file.parent):
            assert mode(directory) == 0o700, (directory, f"{mode(directory):04o}")
        for path in state.rglob("*"):
            if path.is_file():
                assert mode(path) == 0o600, (path, f"{mode(path):04o}")
        assert mode(lab.lab.log_file) == 0o600
        assert not mode(lab.lab.national_key_file) & 0o037  # at most 0640, as documented
        done = lab.run_now()
        assert done.returncode == 0, done.stdout + done.stderr
    scenario.figures["umask"] = f"{mask:03o}"
    scenario.figures["modes"] = "dirs 0700, files 0600, national key 0640"
    assert len(modes) == len(expected_files)


def test_a_lock_file_linked_elsewhere_is_refused_and_its_target_is_not_written(rlab, tmp_path, scenario):
    """The school's lock file replaced by a symbolic link to another file: exit 8 naming the lock file
    and the fix, the link's target unchanged, nothing sent; once the link is removed the run goes ahead."""
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n", encoding="utf-8")
    lock = lab.lab.state_dir / f"{lab.dfes}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.symlink_to(victim)
    refused = lab.run_now()
    said = refused.stdout + refused.stderr
    assert refused.returncode == 8, said
    assert f"{lock} is a symbolic link" in said and "remove the link" in said
    assert "Traceback" not in said
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert len(ledger(lab.sandbox, lab.dfes)) == 0
    lock.unlink()
    assert lab.run_now().returncode == 0
    scenario.figures["exit code"] = refused.returncode


def test_an_all_zero_outbox_key_linked_in_is_refused(rlab, tmp_path, scenario):
    """After a good run, the outbox key replaced by a link to an all-zero key: exit 8 naming the key
    file, the target untouched; the link removed, the next run goes ahead (a new key is made)."""
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    assert lab.run_now().returncode == 0
    zeros = tmp_path / "zeros.key"
    zeros.write_bytes(bytes(32))
    key = lab.lab.state_dir / f"{lab.dfes}.outbox.key"
    key.unlink()
    key.symlink_to(zeros)
    refused = lab.run_now()
    said = refused.stdout + refused.stderr
    assert refused.returncode == 8, said
    assert f"{key} is a symbolic link" in said and "Traceback" not in said
    assert zeros.read_bytes() == bytes(32)
    key.unlink()
    again = lab.run_now()
    assert again.returncode == 0, again.stdout + again.stderr
    assert mode(key) == 0o600 and key.read_bytes() != bytes(32)
    scenario.figures["exit code"] = refused.returncode


def test_a_state_directory_open_to_everyone_is_closed_with_a_warning(rlab, scenario):
    """A state directory of ours with mode 0777: the run goes ahead, the directory loses group write and
    every access for others (0750: the service unit's group read stays), with a logged warning."""
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    state = lab.lab.state_dir
    state.chmod(0o777)
    done = lab.run_now()
    assert done.returncode == 0, done.stdout + done.stderr
    assert mode(state) == 0o750
    warned = done.events("directory_permissions_fixed")
    assert warned and warned[0]["mode_was"] == "0777" and warned[0]["path"] == str(state)
    scenario.figures["mode after"] = "0750"


def test_a_state_directory_open_to_everyone_and_owned_by_another_user_is_refused(rlab, scenario):
    """A state directory with mode 0777 owned by another user: exit 8 naming the directory and the fix,
    nothing sent (someone else controls what appears in it); owned by us again, the run goes ahead."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    state = lab.lab.state_dir
    state.chmod(0o777)
    os.chown(state, 65534, 65534)
    refused = lab.run_now()
    said = refused.stdout + refused.stderr
    assert refused.returncode == 8, said
    assert f"the directory {state} (mode 0777) is open to other users and owned by another user" in said
    assert len(ledger(lab.sandbox, lab.dfes)) == 0 and run_reports(lab.sandbox, lab.dfes) == []
    os.chown(state, 0, 0)
    assert lab.run_now().returncode == 0
    scenario.figures["exit code"] = refused.returncode


def test_a_state_left_with_0_1_0_modes_is_tightened_in_place_and_nothing_is_resent(rlab, scenario):
    """A state written under umask 022 by 0.1.0 (directory 0755, database, -wal, -shm, lock and outbox
    key 0644): the next run makes them 0700/0600 with a warning per file, sends nothing and removes
    nothing (the state is the same state)."""
    lab = rlab()
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    assert lab.run_now(HWB_FAILPOINT="after_outbox").killed  # leaves the -wal and -shm behind
    state = lab.lab.state_dir
    state.chmod(0o755)
    loose = [p for p in state.iterdir() if p.is_file()]
    for path in loose:
        path.chmod(0o644)
    done = lab.run_now()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{lab.dfes}: SUCCESS" in done.stdout
    fixed = {event["path"] for event in done.events("file_permissions_fixed")}
    assert {str(p) for p in loose if p.exists()} <= fixed | {str(p) for p in loose if not p.exists()}
    assert not mode(state) & 0o027
    # the one file meant for others: status.json, which a monitoring group may read (never the world)
    wanted = {"status.json": 0o640}
    loose_now = {
        p.name: oct(mode(p)) for p in state.iterdir() if p.is_file() and mode(p) != wanted.get(p.name, 0o600)
    }
    assert loose_now == {}, loose_now
    again = lab.run_now()
    assert "sent: none" in again.stdout and "remove" not in again.stdout
    scenario.figures["files tightened"] = len(fixed)

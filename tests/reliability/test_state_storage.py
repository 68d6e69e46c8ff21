"""A full disk and a read-only state directory, on a real small file system (a tmpfs of 2 MB mounted as
the lab's state directory): state errors (exit 8) naming the directory and the fix, the run reported
upstream as failed, and a clean run once the disk is freed or writable again.

Mounting needs root (or the capability); where it is impossible the scenarios are skipped with a
message, except under CI, where they fail."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_support import RLab, ledger, run_reports

from hwb_client.core.model import Kind
from mis_builder import Mis, small_school

AREA = "Full disk and read-only state"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_state(rlab) -> Iterator[Callable[[], RLab]]:
    """``small_state()``: a lab (one school, 20 learners) whose state directory is a 2 MB tmpfs."""
    mounted: list[Path] = []

    def make() -> RLab:
        lab = rlab(enrol=False)
        state = lab.lab.state_dir
        state.mkdir(mode=0o700)
        done = _mount("-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(state))
        if done.returncode != 0:
            message = f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(state)
        lab.enrol()
        small_school(lab.schools[0].mis_path, lab.dfes, learners=20).close()
        return lab

    yield make
    for path in mounted:
        _mount("-o", "remount,rw", str(path))
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no space left; return it."""
    filler = directory / "filler.bin"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def said_line(said: str, lab: RLab) -> str:
    """The CLI's one error line, with the lab's path shortened."""
    line = next(x for x in said.splitlines() if x.startswith("hwb-client: error:"))
    return line.replace(str(lab.lab.state_dir), "STATE_DIR")


def add_learners(lab: RLab, first: int, count: int) -> None:
    mis = Mis(lab.schools[0].mis_path, lab.dfes)
    for n in range(first, first + count):
        mis.add_learner(n)
    mis.commit()
    mis.close()


def test_a_full_state_disk_is_a_state_error_naming_the_directory_and_the_run_is_reported_failed(
    small_state, scenario
):
    """The state directory's file system full (a 2 MB tmpfs filled up): exit 8 with one line naming the
    directory and "free space", no traceback, the run reported upstream as failed; once space is freed
    the next run sends what was waiting and nothing is lost or sent twice."""
    lab = small_state()
    assert lab.run_now().returncode == 0
    filler = fill(lab.lab.state_dir)
    add_learners(lab, 500, 200)
    full = lab.run_now()
    said = full.stdout + full.stderr
    assert full.returncode == 8, said
    assert f"the state directory {lab.lab.state_dir} is full" in said and "free space" in said
    assert "Traceback" not in said and "internal error" not in said
    last = run_reports(lab.sandbox, lab.dfes)[-1]
    assert last["outcome"] == "failed" and "is full" in last["message"]
    filler.unlink()
    again = lab.run_now()
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(lab.acknowledged()[Kind.LEARNER]) == 220
    assert lab.assert_sandbox_matches_mis() > 0
    scenario.figures["file system"] = "tmpfs 2 MB"
    scenario.figures["exit code"] = full.returncode
    scenario.figures["message"] = said_line(said, lab)
    scenario.figures["applied batches"] = len(ledger(lab.sandbox, lab.dfes))


def test_a_read_only_state_directory_is_a_state_error_and_the_run_is_reported_failed(small_state, scenario):
    """The state directory's file system remounted read-only: exit 8 with one line naming the directory
    and the fix (make it writable), the run reported upstream as failed; writable again, the next run
    goes ahead."""
    lab = small_state()
    assert lab.run_now().returncode == 0
    add_learners(lab, 500, 5)
    assert _mount("-o", "remount,ro", str(lab.lab.state_dir)).returncode == 0
    refused = lab.run_now()
    said = refused.stdout + refused.stderr
    assert refused.returncode == 8, said
    assert f"the state directory {lab.lab.state_dir} cannot be written" in said and "writable" in said
    assert "Traceback" not in said and "internal error" not in said
    last = run_reports(lab.sandbox, lab.dfes)[-1]
    assert last["outcome"] == "failed" and "cannot be written" in last["message"]
    assert _mount("-o", "remount,rw", str(lab.lab.state_dir)).returncode == 0
    again = lab.run_now()
    assert again.returncode == 0, again.stdout + again.stderr
    assert lab.assert_sandbox_matches_mis() > 0
    scenario.figures["exit code"] = refused.returncode
    scenario.figures["message"] = said_line(said, lab)

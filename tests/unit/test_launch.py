"""The command's entry point (``hwb_client.launch``): the workers' forkserver started before the client
is imported, for the runs that will use it and for no other.

A ``--run-now`` of many schools forks its workers from a forkserver that imports the client; started at
the top of the command, that import runs beside the command's own instead of after it (about 0.2 s of
every such run, before the first school starts). The guess is made from the command line and the file
alone: a one-school run, a single school asked for, a run with schools one at a time or any other
command starts none, and a broken configuration still stops at once, leaving nothing behind."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwb_client import launch

pytestmark = pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver (Windows)"
)


def _config(path: Path, schools: int, *, concurrent: int | None = None, disabled: int = 0) -> Path:
    text = "[client]\n"
    if concurrent is not None:
        text += f"[schedule]\nmax_concurrent_schools = {concurrent}\n"
    for n in range(schools):
        text += f'[[schools]]\ndfes_number = "66{n:05d}"\nname = "School {n}"\n'
        if n < disabled:
            text += "enabled = false\n"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("schools", "concurrent", "disabled", "expected"),
    [
        (2, None, 0, True),  # two schools, two at a time by default
        (120, 4, 0, True),
        (1, None, 0, False),  # one school: no worker process at all
        (2, 1, 0, False),  # one at a time: the school runs in the command itself
        (2, None, 1, False),  # one of the two disabled
        (0, None, 0, False),
    ],
)
def test_the_guess_follows_the_schools_and_how_many_run_at_once(
    tmp_path, schools, concurrent, disabled, expected
):
    config = _config(tmp_path / "hwb-client.toml", schools, concurrent=concurrent, disabled=disabled)
    assert launch.runs_schools_side_by_side(["--config", str(config), "--run-now"], {}) is expected
    assert launch.runs_schools_side_by_side([f"--config={config}", "--run-now"], {}) is expected
    assert launch.runs_schools_side_by_side(["--run-now"], {"HWB_CONFIG": str(config)}) is expected


def test_only_a_run_now_of_every_school_starts_one(tmp_path):
    config = str(_config(tmp_path / "hwb-client.toml", 3))
    assert launch.runs_schools_side_by_side(["--config", config, "--run-now", "--dry-run"], {})
    assert not launch.runs_schools_side_by_side(["--config", config, "--run-now", "--school", "6600001"], {})
    assert not launch.runs_schools_side_by_side(["--config", config, "--run-now", "--school=6600001"], {})
    for command in (["daemon"], ["status"], ["check-config"], ["why", "6600001", "x"], []):
        assert not launch.runs_schools_side_by_side(["--config", config, *command], {})


def test_the_environment_setting_of_schools_at_once_counts(tmp_path):
    two_at_a_time = str(_config(tmp_path / "a.toml", 2))
    one_at_a_time = str(_config(tmp_path / "b.toml", 2, concurrent=1))
    argv = ["--run-now", "--config"]
    assert not launch.runs_schools_side_by_side(
        [*argv, two_at_a_time], {"HWB_SCHEDULE__MAX_CONCURRENT_SCHOOLS": "1"}
    )
    assert launch.runs_schools_side_by_side(
        [*argv, one_at_a_time], {"hwb_schedule__max_concurrent_schools": "3"}
    )
    assert not launch.runs_schools_side_by_side(
        [*argv, two_at_a_time], {"HWB_SCHEDULE__MAX_CONCURRENT_SCHOOLS": "x"}
    )


def test_a_file_that_cannot_be_read_starts_nothing_and_the_command_says_why(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[schools]\n", encoding="utf-8")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[schools]]")
    odd = tmp_path / "odd.toml"
    odd.write_text('schools = "all of them"\nschedule = 3\n', encoding="utf-8")
    for path in (tmp_path / "missing.toml", bad, binary, odd, tmp_path):
        assert not launch.runs_schools_side_by_side(["--run-now", "--config", str(path)], {})


def test_the_workers_fork_from_the_forkserver_started_first(tmp_path):
    """The early forkserver is the one the school workers come from: not a second one started later."""
    script = textwrap.dedent(
        """
        import time
        from multiprocessing import forkserver
        from hwb_client import launch
        launch.start_forkserver()
        early = forkserver._forkserver._forkserver_pid
        from hwb_client import workers
        process = workers._shared_context().Process(target=time.sleep, args=(2,))
        process.start()
        with open(f"/proc/{process.pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        process.join()
        print(early, parent, forkserver._forkserver._forkserver_pid)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    early, parent, later = run.stdout.split()
    assert early == parent == later


def test_a_broken_configuration_still_stops_at_once_and_leaves_no_process(tmp_path):
    """The file parses, names two schools and so starts the forkserver; it fails the client's checks:
    exit 3 naming the setting, as always, and the forkserver is gone with the command (it holds the
    command's output open while it lives: were it left behind, the output would never close)."""
    config = _config(tmp_path / "hwb-client.toml", 2, concurrent=2)
    config.write_text(config.read_text(encoding="utf-8") + "[api]\nbase_url = 42\n", encoding="utf-8")
    argv = ["--config", str(config), "--run-now"]
    assert launch.runs_schools_side_by_side(argv, {})
    run = subprocess.run(
        [sys.executable, "-m", "hwb_client", *argv], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 3, run.stderr
    assert "base_url" in run.stderr
    assert "Traceback" not in run.stderr

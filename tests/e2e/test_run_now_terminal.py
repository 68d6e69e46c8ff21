"""An interactive ``--run-now`` on a terminal (a real pseudo-terminal driving the real CLI): progress, one
summary table at the end, and no log line between the results."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys

from mis_builder import small_school

SCHOOLS = 12  # 120 were shown once under tmux (see the report); 12 keep the suite quick


def run_on_pty(lab, *args):
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    env.pop("HWB_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "hwb_client", "--config", str(lab.config_path), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError("no output from the CLI for 120 s")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def as_seen(screen):
    """What the terminal shows at the end: each line after its last carriage return, no escapes."""
    lines = screen.replace("\r\n", "\n").replace("\x1b[K", "").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def test_run_now_on_a_terminal_shows_progress_then_one_summary_and_no_log_lines(make_lab):
    schools = [(f"661{n:04d}", f"Ysgol Prawf {n}") for n in range(1, SCHOOLS + 1)]
    lab = make_lab(schools)
    for index, school in enumerate(lab.schools):
        mis = small_school(school.mis_path, school.dfes_number, learners=5 + index)
        if index == 3:
            mis.add_staff(9, "NEW", start=None)
            mis.commit()
        mis.close()
    code, screen = run_on_pty(lab, "--run-now")
    assert code == 1  # one school held a record back
    assert f"schools 0/{SCHOOLS} done" in screen or f"schools 1/{SCHOOLS} done" in screen
    assert f"schools {SCHOOLS}/{SCHOOLS} done" in screen and "left" in screen and "records read" in screen
    seen = as_seen(screen)
    table = seen[
        re.search(
            r"^school +name +outcome +changes +people held +classes held +refused +time", seen, re.M
        ).start() :
    ]
    for dfes, _name in schools:
        assert re.search(rf"^{dfes}  Ysgol Prawf \d+ +(success|partial) ", table, re.MULTILINE), table
    assert f"{SCHOOLS} schools: 1 partial, {SCHOOLS - 1} success" in table
    assert "start_date_missing=1" in table  # the school that needs attention, in full after the table
    for event in ("run_started", "batch_acknowledged", "source_read", "run_finished", '"event"'):
        assert event not in screen
    assert "run_finished" in lab.log_file.read_text(encoding="utf-8")  # the events went to the log file


def test_run_now_into_a_pipe_prints_results_only(make_lab):
    lab = make_lab([("6610001", "Ysgol Prawf 1")])
    small_school(lab.schools[0].mis_path, "6610001", learners=3).close()
    result = lab.cli("--run-now")
    assert result.returncode == 0
    assert "SUCCESS" in result.stdout and "schools 1/1 done" not in result.stdout + result.stderr
    assert "\x1b[K" not in result.stdout

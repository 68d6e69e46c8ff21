"""The client's own CPU for a no-change run, in one process, on the LA's largest schools (SQLite).

    .venv/bin/python bench/profile_no_change.py setup --work-dir /tmp/prof   # data, sandbox, full run
    .venv/bin/python bench/profile_no_change.py time --work-dir /tmp/prof    # CPU of 3 no-change runs
    .venv/bin/python bench/profile_no_change.py profile --work-dir /tmp/prof # cProfile, by own time
    .venv/bin/python bench/profile_no_change.py compare --work-dir /tmp/prof # 1 process vs 2 workers
    .venv/bin/python bench/profile_no_change.py churn --work-dir /tmp/prof   # 1 % changed, cProfile (wall)
    .venv/bin/python bench/profile_no_change.py setup --no-full-run --work-dir /tmp/full
    .venv/bin/python bench/profile_no_change.py full --work-dir /tmp/full    # the full run, cProfile (CPU)

What `docs/performance.md` quotes for the per-row levers: the schools run one after another in this
process (``run.run_school``), so the figure is the client's work alone, without worker processes,
the floor or the sandbox's share. ``setup`` leaves the sandbox running (its pid in ``sandbox.pid``).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import os
import pstats
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def setup(root: Path, schools_count: int, *, full_run: bool = True) -> None:
    from hwb_client.cli import main as client_main
    from hwb_demo.lab import Lab, LabSchool
    from hwb_sandbox.testing import SandboxProcess
    from hwb_synth.generate import generate
    from hwb_synth.load import load_sqlite, odbc_connection_string
    from hwb_synth.scales import schools_for

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    schools = sorted(schools_for("la", 1), key=lambda s: -s.learners)[:schools_count]
    today = dt.date.today()
    data = generate(1, schools, academic_year=today.year if today.month >= 8 else today.year - 1)
    database = root / "mis.sqlite3"
    load_sqlite(data, database)
    connection = odbc_connection_string("sqlite", database=database)

    @dataclass
    class School(LabSchool):
        @property
        def odbc(self) -> str:
            return connection

    sandbox = SandboxProcess(root / "sandbox.sqlite3", start_timeout=60)
    sandbox.__enter__()
    lab = Lab(root / "lab", [School(s.dfes_number, s.name, database) for s in schools], sandbox.url)
    lab.root.mkdir()
    lab.write_config(schedule="max_concurrent_schools = 1\njitter_seconds = 0")
    for school in lab.schools:
        code = sandbox.issue_code(school.dfes_number, school.name)
        arguments = [
            "--config",
            str(lab.config_path),
            "enrol",
            "--school",
            school.dfes_number,
            "--code",
            code,
        ]
        if client_main(arguments, io.StringIO()) != 0:
            raise SystemExit(f"enrolment of {school.dfes_number} failed")
    if full_run:
        done = lab.cli("--run-now", timeout=1800)
        print(data.counts(), "full run exit", done.returncode)
    else:
        print(data.counts(), "enrolled; no run yet (for `full`)")
    (root / "sandbox.pid").write_text(str(sandbox.pid), encoding="ascii")
    os._exit(0)  # leave the sandbox running for the timed runs


def _runs(root: Path, repeats: int, profiler: Any = None) -> list[float]:
    from hwb_client import logs
    from hwb_client.run import run_school
    from hwb_client.settings import load_settings

    settings = load_settings(root / "lab" / "hwb-client.toml")
    client = settings.client
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        logs.configure(fmt=client.log_format, level=client.log_level, log_file=client.log_file, stream=quiet)
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        seconds = []
        for _ in range(repeats):
            started = time.process_time()
            if profiler is not None:
                profiler.enable()
            for school in settings.schools:
                result = run_school(settings, school, stop=threading.Event())
                if result.outcome != "success":
                    raise SystemExit(f"{school.dfes_number}: {result.outcome} {result.message}")
            if profiler is not None:
                profiler.disable()
            seconds.append(time.process_time() - started)
    return seconds


def churn_profile(root: Path, share: float = 0.01, *, cpu_clock: bool = False) -> None:
    """One night's churn (``hwb_synth.mutate.churn``) on top of the last, loaded into the MIS, then one
    run of every school in this process under cProfile with its default wall-clock timer: the time a
    1 % run spends waiting (HTTP, fsync) shows next to its CPU."""
    import pickle

    from hwb_synth.generate import generate
    from hwb_synth.load import load_sqlite
    from hwb_synth.mutate import churn
    from hwb_synth.scales import schools_for

    saved = root / "mis-data.pickle"
    counter = root / "churns"
    if saved.exists():
        data = pickle.loads(saved.read_bytes())  # our own file
    else:
        in_lab = len(_lab_schools(root))  # the same schools in the same order as ``setup``: the same data
        schools = sorted(schools_for("la", 1), key=lambda s: -s.learners)[:in_lab]
        today = dt.date.today()
        data = generate(1, schools, academic_year=today.year if today.month >= 8 else today.year - 1)
    done = int(counter.read_text()) if counter.exists() else 0
    changed = churn(data, share, seed=done + 1, today=dt.date.today())
    load_sqlite(changed.data, root / "mis.sqlite3")
    saved.write_bytes(pickle.dumps(changed.data))
    counter.write_text(str(done + 1))
    summary = changed.summary
    print(
        f"churn {done + 1}: {summary.surname_changes} surnames, {summary.registration_moves} registration "
        f"moves, {summary.leavers} leavers, {summary.joiners} joiners, {summary.set_moves} set moves; staff: "
        f"{summary.staff_surname_changes} surnames, {summary.staff_leavers} leavers, {summary.staff_joiners} joiners"
    )
    profiler = cProfile.Profile(time.process_time if cpu_clock else time.perf_counter)
    wall = time.perf_counter()
    cpu = _runs(root, 1, profiler)[0]
    print(f"1 % run of every school in one process: wall {time.perf_counter() - wall:.2f} s, CPU {cpu:.2f} s")
    print("profiled by", "CPU time" if cpu_clock else "wall time")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.print_callers(8)
    stats.sort_stats("cumulative").print_stats(40)


def full_profile(root: Path, *, profile: bool = True) -> None:
    """The first run of every school (everything new), in this process, under cProfile by CPU time
    (or, ``profile`` false, only timed): the client's own full path, the sandbox's work left out."""
    profiler = cProfile.Profile(time.process_time) if profile else None
    wall = time.perf_counter()
    cpu = _runs(root, 1, profiler)[0]
    print(f"full run of every school in one process: wall {time.perf_counter() - wall:.2f} s, CPU {cpu:.2f} s")
    if profiler is None:
        return
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)


def _lab_schools(root: Path) -> list[Any]:
    from hwb_client.settings import load_settings

    return list(load_settings(root / "lab" / "hwb-client.toml").schools)


def compare(root: Path, repeats: int = 3) -> None:
    """The CLI's no-change run with ``max_concurrent_schools`` 1 (in one process) and 2 (two worker
    processes), alternately: wall, CPU and memory of the whole process tree (``run_bench.measure``)."""
    import re

    sys.path.insert(0, str(REPO / "bench"))
    import run_bench

    config = root / "lab" / "hwb-client.toml"
    original = config.read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HWB_API__READ_TIMEOUT_SECONDS": "120"}
    command = [sys.executable, "-m", "hwb_client", "--config", str(config), "--run-now"]
    try:
        for _ in range(repeats):
            for workers in (1, 2):
                text = re.sub(
                    r"max_concurrent_schools = \d+", f"max_concurrent_schools = {workers}", original
                )
                config.write_text(text, encoding="utf-8")
                m = run_bench.measure(command, log=root / "compare.log", sandbox_pid=None, env=env)
                print(
                    f"max_concurrent_schools={workers} exit={m.exit_code} wall_s={m.seconds:.2f} "
                    f"cpu_s={m.cpu_seconds:.2f} kernel_s={m.kernel_seconds:.2f} minor_faults={m.minor_faults} "
                    f"tree_pss_mb={m.tree_pss_mb:.0f} tree_rss_mb={m.tree_rss_mb:.0f} "
                    f"load={os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        config.write_text(original, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("setup", "time", "profile", "compare", "churn", "full"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/hwb-profile"))
    parser.add_argument("--schools", type=int, default=6)
    parser.add_argument("--cpu", action="store_true", help="churn: profile CPU time, not wall time")
    parser.add_argument("--no-full-run", action="store_true", help="setup: enrol only, for `full`")
    parser.add_argument("--no-profile", action="store_true", help="full: time it only")
    args = parser.parse_args()
    if args.action == "setup":
        setup(args.work_dir, args.schools, full_run=not args.no_full_run)
    elif args.action == "full":
        full_profile(args.work_dir, profile=not args.no_profile)
    elif args.action == "compare":
        compare(args.work_dir)
    elif args.action == "churn":
        churn_profile(args.work_dir, cpu_clock=args.cpu)
    elif args.action == "time":
        seconds = _runs(args.work_dir, 3)
        print(
            "client CPU s per no-change run:", [round(s, 2) for s in seconds], "min", round(min(seconds), 2)
        )
    else:
        profiler = cProfile.Profile()
        _runs(args.work_dir, 1, profiler)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

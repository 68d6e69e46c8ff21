"""Benchmark: the provisioning client at LA (or national) scale, measured against the ODBC floor.

    .venv/bin/python bench/run_bench.py                         # LA scale, PostgreSQL -> bench/results/la.json
    .venv/bin/python bench/run_bench.py --db postgres --db sqlite --output /tmp/la.json
    .venv/bin/python bench/run_bench.py --scale national         # all of Wales (long)

One run, per database:

1. generate the synthetic reference MIS (``hwb_synth``) and load it (``ANALYZE`` after loading on
   PostgreSQL, as a live MIS has statistics);
2. start a fresh sandbox national API in its own process, applying batches in two worker processes
   (``--sandbox-workers``: the national service is many servers, and a sandbox held to one core made
   both of the client's workers wait on it while the other core idled), and enrol every school;
3. **floor**: in a fresh process, every school's four profile queries (the reference profile, the
   ``dfes_number`` bound, the client's connection string), read through pyodbc into tuples and discarded,
   one school after another;
4. **full run**: ``hwb-client --run-now`` in a subprocess, every record new;
5. **no-change run**: the same again, nothing changed in the MIS;
6. **1 % change run**: ``hwb_synth.mutate.churn`` reloaded into the database (the floor is measured again
   on the changed data), then ``--run-now``.

For each run: wall seconds and the ratio to the floor; the client's CPU seconds and peak RSS (``wait4``
on the client process); the sandbox's CPU seconds over the run, its apply workers' included (``/proc/PID/stat``), and its share of the
wall time; batches, operations and gzip'd body bytes per operation (from the ``batch_acknowledged`` log
events); the time the client spent waiting for the API. Results go to a JSON file and a table on stdout.
Never personal data: counts and timings only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUNS = ("full_run", "no_change_run", "churn_run")

#: Targets from issue #14, as ratios of the floor (the full run's with the sandbox's CPU set aside) and
#: MB of peak memory (the client's whole process tree).
TARGETS = {"no_change_run": 1.3, "churn_run": 1.5, "full_run": 2.5, "peak_rss_mb": 200}


# ---------------------------------------------------------------------------------------------- the floor


def floor_main(config_path: str, output: str) -> int:
    """Read every enabled school's profile queries into tuples and discard them; write counts as JSON.

    Runs in its own process (``run_bench.py _floor``) so it starts cold, as the client does."""
    import pyodbc

    from hwb_client.adapters.odbc_source import FETCH_ROWS, KINDS, load_profile
    from hwb_client.settings import load_settings

    started = time.perf_counter()
    settings = load_settings(Path(config_path))
    base = settings.config_path.parent if settings.config_path else None
    rows: Counter[str] = Counter()
    for school in settings.schools:
        if not school.enabled:
            continue
        profile = load_profile(school.profile, base_dir=base)
        connection = pyodbc.connect(school.connection_string(), autocommit=True, timeout=30)
        try:
            for kind in KINDS:
                query = profile.query(kind)
                cursor = connection.cursor()
                cursor.execute(query.sql, *[school.dfes_number for _ in query.params])
                while chunk := cursor.fetchmany(FETCH_ROWS):
                    for row in chunk:
                        tuple(row)
                    rows[kind] += len(chunk)
                cursor.close()
        finally:
            connection.close()
    Path(output).write_text(
        json.dumps({"rows": dict(rows), "read_seconds": time.perf_counter() - started}), encoding="utf-8"
    )
    return 0


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One subprocess: wall time, its own CPU and peak RSS, and the sandbox's CPU meanwhile."""

    seconds: float
    exit_code: int
    cpu_seconds: float
    peak_rss_mb: float
    sandbox_cpu_seconds: float
    tree_rss_mb: float = 0.0
    tree_pss_mb: float = 0.0
    #: at the moment the tree's PSS peaked: each process's role and PSS in MB, largest first
    pss_at_peak_mb: list[tuple[str, float]] = field(default_factory=list)
    processes: int = 1
    kernel_seconds: float = 0.0
    minor_faults: int = 0
    #: when it started, by the wall clock (the client's log stamps are wall-clock times)
    started_at: float = 0.0


def _proc_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (all its threads) and of its live children (the sandbox's
    apply workers), from /proc/PID/stat."""
    if pid is None:
        return 0.0
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text[text.rindex(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    listed = children.read_text(encoding="ascii").split() if children.exists() else []
    return own + sum(_proc_cpu_seconds(int(child)) for child in listed)


#: Runs a command and reports its wall time, CPU and peak memory. The client is started from this small
#: process, not from the benchmark (which holds the generated data set): on Linux a child's ru_maxrss
#: counts the memory of the process it was forked from, so forking from the benchmark would report
#: the benchmark's size, not the client's. The client runs schools in worker processes, so memory is
#: also sampled over the whole process tree (every 0.1 s, from /proc): the peak of the tree's summed
#: RSS (which counts pages the workers share with their forkserver once per process: an upper bound)
#: and of its summed PSS (shared pages divided between the processes sharing them). The launcher is a
#: child subreaper, so the CPU time of the workers (children of the client's forkserver) is counted.
_LAUNCHER = """
import ctypes, json, os, resource, subprocess, sys, threading, time

# A child subreaper: the client's forkserver (and so its workers' CPU time) is reaped here, not by init.
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

def tree(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            children.setdefault(int(text[text.rindex(")") + 2:].split()[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found

def kib(pid, path, field):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def role(pid, root):
    if pid == root:
        return "client"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return "gone"
    if b"forkserver" in command:  # the forkserver, and each worker forked from it (same command line)
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return "worker" if int(text[text.rindex(")") + 2:].split()[1]) != root else "forkserver"
    return "resource tracker" if b"resource_tracker" in command else "other"

peak = {"rss": 0, "pss": 0, "processes": 0, "pss_at_peak": []}
def sample(child, done):
    while not done.wait(0.1):
        pids = tree(child.pid)
        peak["rss"] = max(peak["rss"], sum(kib(p, "status", "VmRSS:") for p in pids))
        each = [(kib(p, "smaps_rollup", "Pss:"), p) for p in pids]
        if sum(pss for pss, _ in each) > peak["pss"]:
            peak["pss"] = sum(pss for pss, _ in each)
            peak["pss_at_peak"] = sorted(([role(p, child.pid), pss] for pss, p in each), key=lambda r: -r[1])
        peak["processes"] = max(peak["processes"], len(pids))

started_at = time.time()
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
done = threading.Event()
sampler = threading.Thread(target=sample, args=(child, done))
sampler.start()
code = child.wait()
seconds = time.perf_counter() - started
done.set()
sampler.join()
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "started_at": started_at, "exit_code": code, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "kernel_seconds": usage.ru_stime, "minor_faults": usage.ru_minflt,
               "peak_rss_kib": usage.ru_maxrss, "tree_rss_kib": peak["rss"], "tree_pss_kib": peak["pss"],
               "processes": peak["processes"], "pss_at_peak_kib": peak["pss_at_peak"]}, out)
"""


def measure(command: Sequence[str], *, log: Path, sandbox_pid: int | None, env: dict[str, str]) -> Measured:
    """Run ``command`` to completion (through the launcher); stdout and stderr go to ``log``."""
    report = log.with_name(log.name + ".usage.json")
    sandbox_before = _proc_cpu_seconds(sandbox_pid)
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, str(report), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            check=True,
        )
    sandbox_cpu = _proc_cpu_seconds(sandbox_pid) - sandbox_before
    usage = json.loads(report.read_text(encoding="utf-8"))
    return Measured(
        seconds=usage["seconds"],
        exit_code=usage["exit_code"],
        cpu_seconds=usage["cpu_seconds"],
        peak_rss_mb=usage["peak_rss_kib"] / 1024,
        sandbox_cpu_seconds=sandbox_cpu,
        tree_rss_mb=usage["tree_rss_kib"] / 1024,
        tree_pss_mb=usage["tree_pss_kib"] / 1024,
        processes=usage["processes"],
        pss_at_peak_mb=[(name, round(kib / 1024, 1)) for name, kib in usage.get("pss_at_peak_kib", [])],
        kernel_seconds=usage.get("kernel_seconds", 0.0),
        started_at=usage.get("started_at", 0.0),
        minor_faults=usage.get("minor_faults", 0),
    )


def _events(log_file: Path, offset: int) -> list[dict[str, Any]]:
    """The JSON log events the client wrote from ``offset`` on."""
    events = []
    with log_file.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _phases(events: Sequence[dict[str, Any]], started_at: float, seconds: float) -> dict[str, Any]:
    """Where a run's wall time went, from its log: before the first school started and after the last
    one ended (the command's own start and end: imports, the worker processes, the summary), and the
    schools' own time summed over the workers that ran them side by side, split into reading and
    deciding (up to the snapshot's ``source_read``), waiting on the API for batches (each
    acknowledgement's ``api_seconds``) and the rest (acknowledgements written, the run report, the
    state opened, checked and closed)."""
    runs: dict[str, dict[str, float]] = {}
    for event in events:
        name, run_id = event.get("event"), event.get("run_id")
        if run_id is None or name not in ("run_started", "source_read", "run_finished", "batch_acknowledged"):
            continue
        run = runs.setdefault(str(run_id), {"api": 0.0})
        stamp = dt.datetime.fromisoformat(str(event["timestamp"])).timestamp()
        if name == "batch_acknowledged":
            run["api"] += float(event.get("api_seconds", 0.0))
        elif name == "source_read":
            run["read"] = max(run.get("read", stamp), stamp)
        else:
            run[name] = stamp
    whole = [r for r in runs.values() if {"run_started", "run_finished"} <= r.keys()]
    if not whole or not started_at:
        return {}
    schools = sum(r["run_finished"] - r["run_started"] for r in whole)
    read = sum(r.get("read", r["run_started"]) - r["run_started"] for r in whole)
    api = sum(r["api"] for r in whole)
    return {
        "schools": len(whole),
        "before_first_school_seconds": round(min(r["run_started"] for r in whole) - started_at, 3),
        "after_last_school_seconds": round(started_at + seconds - max(r["run_finished"] for r in whole), 3),
        "school_seconds": round(schools, 3),
        "read_and_decide_seconds": round(read, 3),
        "batch_api_seconds": round(api, 3),
        "rest_seconds": round(schools - read - api, 3),
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# ---------------------------------------------------------------------------------------------- the bench


@dataclass
class Target:
    """Where one data set lives: its ODBC connection strings and how to (re)load it."""

    kind: str
    database: str  # a PostgreSQL database name or an SQLite file path

    def connection_string(self) -> str:
        from hwb_synth.load import odbc_connection_string

        return odbc_connection_string(
            "sqlite" if self.kind == "sqlite" else "postgres", database=self.database
        )

    def load(self, data: Any) -> float:
        started = time.perf_counter()
        if self.kind == "sqlite":
            from hwb_synth.load import load_sqlite

            load_sqlite(data, self.database)
            return time.perf_counter() - started
        from hwb_synth.dbservers import ServerSettings, ensure_database
        from hwb_synth.load import load_server

        settings = ServerSettings.from_env("postgres")
        target = ensure_database(settings, self.database)
        load_server(data, target)
        import pyodbc

        connection = pyodbc.connect(target.connection_string, autocommit=True)
        try:
            connection.execute("ANALYZE")
        finally:
            connection.close()
        return time.perf_counter() - started


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        self.env.pop("HWB_CONFIG", None)
        # The lab's short rehearsal timeouts are too short for a big school's first run.
        self.env["HWB_API__READ_TIMEOUT_SECONDS"] = "120"
        self.env["HWB_API__GIVE_UP_AFTER_SECONDS"] = "600"

    def say(self, line: str) -> None:
        if not self.args.quiet:
            print(line, flush=True)

    def run_database(self, kind: str, data: Any, churned: Any, schools: Sequence[Any]) -> dict[str, Any]:
        from hwb_demo.lab import Lab, LabSchool
        from hwb_sandbox.testing import SandboxProcess

        root = self.work / kind
        root.mkdir(parents=True)
        database = (
            str(root / "mis.sqlite3")
            if kind == "sqlite"
            else (self.args.database or f"hwb_bench_{self.args.scale}")
        )
        target = Target(kind, database)
        result: dict[str, Any] = {"database": kind}
        self.say(f"[{kind}] loading {data.counts()['learners']:,} learners ...")
        result["load_seconds"] = round(target.load(data), 2)
        connection = target.connection_string()

        @dataclass
        class BenchSchool(LabSchool):
            @property
            def odbc(self) -> str:
                return connection

        serve_args = ("--apply-workers", str(self.args.sandbox_workers))
        with SandboxProcess(root / "sandbox.sqlite3", start_timeout=60, serve_args=serve_args) as sandbox:
            lab = Lab(
                root / "lab",
                [BenchSchool(s.dfes_number, s.name, Path(database)) for s in schools],
                sandbox.url,
            )
            lab.root.mkdir()
            lab.extra_config = self._batches_config()
            lab.write_config(
                schedule=f"max_concurrent_schools = {self.args.concurrency}\njitter_seconds = 0",
            )
            self.say(f"[{kind}] enrolling {len(schools)} schools ...")
            self._enrol(lab, sandbox)
            result["floor"] = self.floor(lab, "floor-1")
            self.say(f"[{kind}] floor {result['floor']['seconds']:.2f} s")
            for name in ("full_run", "no_change_run"):
                result[name] = self.client_run(lab, sandbox, name, result["floor"]["seconds"])
            if self.args.no_churn:
                return self._sizes(result, sandbox, lab)
            self.say(f"[{kind}] loading the 1 % churn ...")
            result["churn_load_seconds"] = round(target.load(churned.data), 2)
            result["floor_after_churn"] = self.floor(lab, "floor-2")
            result["churn_run"] = self.client_run(
                lab, sandbox, "churn_run", result["floor_after_churn"]["seconds"]
            )
            return self._sizes(result, sandbox, lab)

    @staticmethod
    def _sizes(result: dict[str, Any], sandbox: Any, lab: Any) -> dict[str, Any]:
        result["sandbox_db_bytes"] = _size(sandbox.db_path) + _size(
            sandbox.db_path.with_name(sandbox.db_path.name + "-wal")
        )
        result["state_db_bytes"] = sum(_size(p) for p in lab.state_dir.glob("*.sqlite3*"))
        return result

    def _batches_config(self) -> str:
        lines = []
        if self.args.gzip_level is not None or self.args.max_operations is not None:
            lines.append("[batches]")
            if self.args.gzip_level is not None:
                lines.append(f"gzip_level = {self.args.gzip_level}")
            if self.args.max_operations is not None:
                lines.append(f"max_operations = {self.args.max_operations}")
        return "\n".join(lines)

    def _enrol(self, lab: Any, sandbox: Any) -> None:
        """Enrol every school through the client's own ``enrol`` command, in this process (fast)."""
        from hwb_client.cli import main as client_main

        for school in lab.schools:
            code = sandbox.issue_code(school.dfes_number, school.name)
            answer = io.StringIO()
            code_ = client_main(
                ["--config", str(lab.config_path), "enrol", "--school", school.dfes_number, "--code", code],
                answer,
            )
            if code_ != 0:
                raise RuntimeError(f"enrolment of {school.dfes_number} failed (exit {code_})")

    def floor(self, lab: Any, name: str) -> dict[str, Any]:
        """The floor read ``--floor-reads`` times in a row: the median read's figures, and every read's
        seconds (``reads``). One read moves by a fifth or more from one minute to the next on this
        machine, more than a target's margin; the median of three is steadier and, unlike the best
        of three, not biased towards a fast moment."""
        reads = [self._floor_once(lab, f"{name}-{n}" if n else name) for n in range(self.args.floor_reads)]
        chosen = sorted(reads, key=lambda r: r["seconds"])[len(reads) // 2]
        return {**chosen, "reads": [r["seconds"] for r in reads]}

    def _floor_once(self, lab: Any, name: str) -> dict[str, Any]:
        counts = self.work / f"{name}.json"
        measured = measure(
            [sys.executable, str(Path(__file__).resolve()), "_floor", str(lab.config_path), str(counts)],
            log=self.work / f"{name}.log",
            sandbox_pid=None,
            env=self.env,
        )
        if measured.exit_code != 0:
            raise RuntimeError(
                f"the floor reader failed (exit {measured.exit_code}); see {self.work / name}.log"
            )
        report = json.loads(counts.read_text(encoding="utf-8"))
        return {
            "seconds": round(measured.seconds, 3),
            "read_seconds": round(report["read_seconds"], 3),
            "rows": report["rows"],
            "cpu_seconds": round(measured.cpu_seconds, 3),
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "load_average": list(os.getloadavg()),
        }

    def client_run(self, lab: Any, sandbox: Any, name: str, floor_seconds: float) -> dict[str, Any]:
        log_offset = _size(lab.log_file)
        measured = measure(
            [sys.executable, "-m", "hwb_client", "--config", str(lab.config_path), "--run-now"],
            log=self.work / f"{name}.out",
            sandbox_pid=sandbox.pid,
            env=self.env,
        )
        if measured.exit_code not in (0, 1):
            raise RuntimeError(f"{name}: hwb-client exited {measured.exit_code}; see {self.work / name}.out")
        events = _events(lab.log_file, log_offset)
        acknowledged = [e for e in events if e.get("event") == "batch_acknowledged"]
        outcomes = Counter(str(e.get("outcome")) for e in events if e.get("event") == "run_finished")
        operations = sum(int(e.get("operations", 0)) for e in acknowledged)
        body_bytes = sum(int(e.get("body_bytes", 0)) for e in acknowledged)
        api_seconds = sum(float(e.get("api_seconds", 0.0)) for e in acknowledged)
        client_seconds = max(0.0, measured.seconds - measured.sandbox_cpu_seconds)
        figures = {
            "seconds": round(measured.seconds, 3),
            "ratio_to_floor": round(measured.seconds / floor_seconds, 3),
            "exit_code": measured.exit_code,
            "outcomes": dict(outcomes),
            "client_cpu_seconds": round(measured.cpu_seconds, 3),
            "peak_rss_mb": round(max(measured.peak_rss_mb, measured.tree_rss_mb), 1),
            "largest_process_rss_mb": round(measured.peak_rss_mb, 1),
            "tree_pss_mb": round(measured.tree_pss_mb, 1),
            "pss_at_peak_mb": measured.pss_at_peak_mb,
            "processes": measured.processes,
            "load_average": list(os.getloadavg()),
            "sandbox_cpu_seconds": round(measured.sandbox_cpu_seconds, 3),
            "sandbox_share": round(measured.sandbox_cpu_seconds / measured.seconds, 3),
            "seconds_without_sandbox": round(client_seconds, 3),
            "ratio_to_floor_without_sandbox": round(client_seconds / floor_seconds, 3),
            "api_wait_seconds": round(api_seconds, 3),
            "batches": len(acknowledged),
            "operations": operations,
            "body_bytes": body_bytes,
            "bytes_per_operation": round(body_bytes / operations, 1) if operations else None,
            "phases": _phases(events, measured.started_at, measured.seconds),
        }
        self.say(
            f"  {name:<14} {figures['seconds']:8.2f} s  {figures['ratio_to_floor']:5.2f}x floor  "
            f"(without sandbox CPU {figures['ratio_to_floor_without_sandbox']:.2f}x)  "
            f"peak {figures['peak_rss_mb']:.0f} MB  {operations:,} ops in {len(acknowledged)} batches  "
            f"{figures['bytes_per_operation'] or 0} B/op  sandbox CPU {figures['sandbox_cpu_seconds']:.1f} s"
        )
        return figures


def _verdicts(result: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    for name in ("no_change_run", "churn_run", "full_run"):
        if name not in result:
            continue
        figures = result[name]
        ratio = figures["ratio_to_floor_without_sandbox" if name == "full_run" else "ratio_to_floor"]
        verdicts[name] = {"target": TARGETS[name], "ratio": ratio, "met": ratio <= TARGETS[name]}
    peak = max(result[name]["peak_rss_mb"] for name in RUNS if name in result)
    verdicts["peak_rss_mb"] = {
        "target": TARGETS["peak_rss_mb"],
        "value": peak,
        "met": peak <= TARGETS["peak_rss_mb"],
    }
    return verdicts


def _table(results: dict[str, Any]) -> str:
    lines = [
        f"{'database':<9} {'run':<14} {'seconds':>8} {'x floor':>8} {'x floor*':>9} {'peak MB':>8} "
        f"{'ops':>8} {'B/op':>6} {'sandbox CPU':>11}"
    ]
    for kind, result in results.items():
        floor = result["floor"]
        lines.append(
            f"{kind:<9} {'floor':<14} {floor['seconds']:8.2f} {1:8.2f} {'':>9} {floor['peak_rss_mb']:8.0f}"
        )
        for name in (name for name in RUNS if name in result):
            f = result[name]
            lines.append(
                f"{kind:<9} {name:<14} {f['seconds']:8.2f} {f['ratio_to_floor']:8.2f} "
                f"{f['ratio_to_floor_without_sandbox']:9.2f} {f['peak_rss_mb']:8.0f} {f['operations']:8,} "
                f"{f['bytes_per_operation'] or 0:6} {f['sandbox_cpu_seconds']:10.1f}s"
            )
    lines.append("x floor* = (wall seconds - sandbox CPU seconds) / floor")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("small", "la", "national"), default="la")
    parser.add_argument(
        "--db", action="append", choices=("postgres", "sqlite"), help="repeatable; default postgres"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn-share", type=float, default=0.01)
    parser.add_argument(
        "--floor-reads",
        type=int,
        default=3,
        help="reads of the floor before each run, the median taken (default 3; 1 before 2026-12-04)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="schedule.max_concurrent_schools (default 2)"
    )
    parser.add_argument(
        "--sandbox-workers",
        type=int,
        default=2,
        help="the sandbox's serve --apply-workers (default 2: as many schools' batches applied at once as"
        " the client runs schools; 1: in the sandbox's own process, as before 2026-12-04)",
    )
    parser.add_argument("--gzip-level", type=int, help="batches.gzip_level (default: the client's)")
    parser.add_argument("--max-operations", type=int, help="batches.max_operations (default: the client's)")
    parser.add_argument("--database", help="PostgreSQL database name (default hwb_bench_SCALE; replaced)")
    parser.add_argument(
        "--output", type=Path, help="JSON results (default bench/results/SCALE-DB-YYYYMMDDTHHMMSS.json)"
    )
    parser.add_argument(
        "--label", default="default", help="names a variant in the report (e.g. the code before a change)"
    )
    parser.add_argument(
        "--no-churn", action="store_true", help="only the floor, the full and the no-change run (national)"
    )
    parser.add_argument("--work-dir", type=Path, help="keep the lab here (default: a temporary directory)")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_floor"]:
        return floor_main(argv[1], argv[2])
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from hwb_synth.generate import generate
    from hwb_synth.mutate import churn
    from hwb_synth.scales import schools_for

    kinds = args.db or ["postgres"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    output = args.output or DEFAULT_RESULTS / f"{args.scale}-{'-'.join(kinds)}-{stamp}.json"
    today = dt.date.today()
    academic_year = today.year if today.month >= 8 else today.year - 1
    started = time.perf_counter()
    schools = schools_for(args.scale, args.seed)
    data = generate(args.seed, schools, academic_year=academic_year)
    churned = churn(data, args.churn_share, seed=args.seed, today=today)
    generate_seconds = time.perf_counter() - started
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="hwb-bench-"))
    if args.work_dir and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    bench.say(
        f"{args.scale} scale, seed {args.seed}: "
        + ", ".join(f"{v:,} {k}" for k, v in data.counts().items())
        + f" (generated in {generate_seconds:.1f} s); work directory {work}"
    )
    results: dict[str, Any] = {}
    try:
        for kind in kinds:
            results[kind] = bench.run_database(kind, data, churned, schools)
            results[kind]["targets"] = _verdicts(results[kind])
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    summary = churned.summary
    document = {
        "command": "bench/run_bench.py " + shlex.join(argv),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "label": args.label,
        "schools": len(schools),
        "seed": args.seed,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "data": data.counts(),
        "churn": {
            "share": args.churn_share,
            "learner_changes": summary.learner_changes,
            "staff_changes": summary.staff_surname_changes + summary.staff_leavers + summary.staff_joiners,
        },
        "client": {"max_concurrent_schools": args.concurrency},
        "sandbox": {"apply_workers": args.sandbox_workers},
        "floor_reads": args.floor_reads,
        "targets": TARGETS,
        "results": results,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    bench.say(_table(results))
    bench.say(f"results written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

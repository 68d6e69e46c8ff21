"""Results from a benchmark's own work files when it was stopped before it wrote its JSON (deadline).

    .venv/bin/python bench/assemble_partial.py WORK_DIR OUTPUT.json [SANDBOX_PID] [BENCH_STDOUT]

Reads the floor and each finished run's usage file (``*.usage.json``, written by the launcher), the
client's log events, the sandbox CPU the benchmark printed for each finished run, and for a run still
going, how far it got (schools finished, operations acknowledged, seconds so far).
"""

import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench  # the benchmark's own helpers (bench/ is not a package)

work = Path(sys.argv[1])
out = Path(sys.argv[2])
floor_counts = json.loads((work / "floor-1.json").read_text())
floor_usage = json.loads((work / "floor-1.log.usage.json").read_text())
floor = {
    "seconds": round(floor_usage["seconds"], 3),
    "read_seconds": round(floor_counts["read_seconds"], 3),
    "rows": floor_counts["rows"],
    "cpu_seconds": round(floor_usage["cpu_seconds"], 3),
    "peak_rss_mb": round(floor_usage["peak_rss_kib"] / 1024, 1),
}
result = {"database": "postgres", "floor": floor}
log_file = work / "postgres" / "lab" / "logs" / "hwb-client.log"
events = run_bench._events(log_file, 0)
for name in ("full_run", "no_change_run"):
    usage_file = work / f"{name}.out.usage.json"
    if not usage_file.exists():
        continue
    u = json.loads(usage_file.read_text())
    acked = [e for e in events if e.get("event") == "batch_acknowledged"] if name == "full_run" else []
    ops = sum(int(e.get("operations", 0)) for e in acked)
    body = sum(int(e.get("body_bytes", 0)) for e in acked)
    result[name] = {
        "seconds": round(u["seconds"], 3),
        "ratio_to_floor": round(u["seconds"] / floor["seconds"], 3),
        "exit_code": u["exit_code"],
        "client_cpu_seconds": round(u["cpu_seconds"], 3),
        "peak_rss_mb": round(max(u["peak_rss_kib"], u["tree_rss_kib"]) / 1024, 1),
        "largest_process_rss_mb": round(u["peak_rss_kib"] / 1024, 1),
        "tree_pss_mb": round(u["tree_pss_kib"] / 1024, 1),
        "processes": u["processes"],
        "sandbox_cpu_seconds": None,
        "ratio_to_floor_without_sandbox": None,
        "api_wait_seconds": round(sum(float(e.get("api_seconds", 0)) for e in acked), 3),
        "batches": len(acked),
        "operations": ops,
        "body_bytes": body,
    }

bench_log = Path(sys.argv[4]).read_text() if len(sys.argv) > 4 else ""
for name in ("full_run", "no_change_run"):
    m = re.search(rf"^  {name} .* sandbox CPU ([0-9.]+) s$", bench_log, re.M)
    if m and name in result:
        cpu = float(m.group(1))
        r = result[name]
        r["sandbox_cpu_seconds"] = cpu
        r["sandbox_share"] = round(cpu / r["seconds"], 3)
        r["seconds_without_sandbox"] = round(r["seconds"] - cpu, 3)
        r["ratio_to_floor_without_sandbox"] = round((r["seconds"] - cpu) / floor["seconds"], 3)
doc = {
    "command": "bench/run_bench.py --scale national --db postgres --no-churn --database hwb_perf_national (assembled by bench/assemble_partial.py from its work files and its printed sandbox CPU: the benchmark had not finished by the deadline)",
    "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    "scale": "national",
    "label": "default",
    "schools": 1470,
    "partial": True,
    "targets": run_bench.TARGETS,
    "results": {"postgres": result},
}
out.write_text(json.dumps(doc, indent=2) + "\n")
print(json.dumps(result, indent=1)[:1500])

# the full run still going: what it has done so far, from its own log
if "full_run" not in result:
    started = [e for e in events if e.get("event") == "run_started"]
    finished = [e for e in events if e.get("event") == "run_finished"]
    acked = [e for e in events if e.get("event") == "batch_acknowledged"]
    t0 = dt.datetime.fromisoformat(started[0]["timestamp"].replace("Z", "+00:00"))
    t1 = dt.datetime.fromisoformat(events[-1]["timestamp"].replace("Z", "+00:00"))
    progress = {
        "schools_finished": len(finished),
        "schools": 1470,
        "seconds_so_far": round((t1 - t0).total_seconds(), 1),
        "operations_acknowledged": sum(int(e.get("operations", 0)) for e in acked),
        "batches_acknowledged": len(acked),
        "api_wait_seconds": round(sum(float(e.get("api_seconds", 0)) for e in acked), 1),
    }
    if len(sys.argv) > 3 and sys.argv[3]:
        progress["sandbox_cpu_seconds_since_start"] = run_bench._proc_cpu_seconds(int(sys.argv[3]))
    doc["results"]["postgres"]["full_run_unfinished"] = progress
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(progress)

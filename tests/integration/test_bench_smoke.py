"""The benchmark script still runs end to end (at a tiny scale), so it cannot rot. Timings are not checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = ("full_run", "no_change_run", "churn_run")
RUN_FIGURES = {
    "seconds",
    "ratio_to_floor",
    "exit_code",
    "client_cpu_seconds",
    "peak_rss_mb",
    "sandbox_cpu_seconds",
    "sandbox_share",
    "seconds_without_sandbox",
    "ratio_to_floor_without_sandbox",
    "api_wait_seconds",
    "batches",
    "operations",
    "body_bytes",
    "bytes_per_operation",
}


@pytest.mark.slow
def test_bench_script_writes_every_figure_for_the_floor_and_the_three_runs(tmp_path: Path) -> None:
    """bench/run_bench.py at the small scale on SQLite: the floor, a full run that sends every record, a
    no-change run that sends nothing and a churn run that sends a little, each with its figures."""
    output = tmp_path / "small.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run_bench.py"),
            "--scale",
            "small",
            "--db",
            "sqlite",
            "--output",
            str(output),
            "--work-dir",
            str(tmp_path / "work"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["scale"] == "small"
    assert set(document["targets"]) == {"no_change_run", "churn_run", "full_run", "peak_rss_mb"}
    result = document["results"]["sqlite"]
    assert result["floor"]["seconds"] > 0
    for floor in (result["floor"], result["floor_after_churn"]):  # three reads, the median taken
        assert len(floor["reads"]) == 3 and document["floor_reads"] == 3
        assert floor["seconds"] == sorted(floor["reads"])[1]
    assert result["floor"]["rows"] == {kind: document["data"][kind] for kind in result["floor"]["rows"]}
    for run in RUNS:
        assert set(result[run]) >= RUN_FIGURES, run
        assert result[run]["exit_code"] == 0, run
        assert result[run]["peak_rss_mb"] > 0, run
        phases = result[run]["phases"]  # where the wall time went, from the client's log
        assert phases["schools"] == document["schools"], run
        assert 0 < phases["read_and_decide_seconds"] <= phases["school_seconds"], run
        assert 0 < phases["before_first_school_seconds"] < result[run]["seconds"], run
    full, unchanged, churned = (result[run] for run in RUNS)
    assert full["operations"] > sum(document["data"][k] for k in ("learners", "staff", "groups"))
    assert full["bytes_per_operation"] > 0
    assert unchanged["operations"] == 0 and unchanged["batches"] == 0
    assert 0 < churned["operations"] < full["operations"] / 10
    assert set(result["targets"]) == {"no_change_run", "churn_run", "full_run", "peak_rss_mb"}

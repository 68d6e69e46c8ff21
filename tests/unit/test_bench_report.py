"""bench/report.py writes docs/performance.md from benchmark JSON: figures come from the files, not a hand."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "bench" / "report.py"


def _run(name: str, seconds: float, floor: float, **extra: Any) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "ratio_to_floor": round(seconds / floor, 3),
        "ratio_to_floor_without_sandbox": round((seconds - extra.get("sandbox", 0.0)) / floor, 3),
        "client_cpu_seconds": seconds * 0.9,
        "sandbox_cpu_seconds": extra.get("sandbox", 0.0),
        "peak_rss_mb": extra.get("rss", 150.0),
        "tree_pss_mb": 100.0,
        "load_average": [2.0, 2.0, 2.0],
        "operations": extra.get("operations", 0),
    }


def _document(scale: str, floor: float, no_change: float, churn: float, full: float) -> dict[str, Any]:
    result = {
        "floor": {
            "seconds": floor,
            "cpu_seconds": 1.0,
            "peak_rss_mb": 40.0,
            "rows": {"learners": 600, "memberships": 400},
            "load_average": [2.0, 2.0, 2.0],
        },
        "full_run": _run("full_run", full, floor, sandbox=full / 2, operations=1000),
        "no_change_run": _run("no_change_run", no_change, floor),
        "churn_run": _run("churn_run", churn, floor, operations=10),
    }
    return {
        "command": f"bench/run_bench.py --scale {scale}",
        "finished_at": "2026-12-01T20:00:00+00:00",
        "scale": scale,
        "label": "default",
        "schools": 120,
        "targets": {"no_change_run": 1.3, "churn_run": 1.5, "full_run": 2.5, "peak_rss_mb": 200},
        "results": {"postgres": result},
    }


def _render(tmp_path: Path, documents: list[dict[str, Any]], notes: str) -> str:
    """``bench/report.py`` over these results files (``la-N.json``) and notes: what it printed."""
    files = []
    for i, document in enumerate(documents):
        path = tmp_path / f"la-{i}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        files.append(str(path))
    (tmp_path / "notes.md").write_text(notes, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(REPORT), *files, "--notes", str(tmp_path / "notes.md")],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_the_report_gives_each_figure_as_median_and_range_and_judges_the_targets(tmp_path: Path) -> None:
    """Three repeats of the LA run: medians with their range, and met/missed on the median."""
    files = []
    for i, (no_change, churn) in enumerate([(12.0, 14.0), (11.0, 16.0), (13.0, 20.0)]):
        path = tmp_path / f"la-{i}.json"
        path.write_text(json.dumps(_document("la", 10.0, no_change, churn, 40.0)), encoding="utf-8")
        files.append(str(path))
    notes = tmp_path / "notes.md"
    notes.write_text(
        "# Performance\n\n{{TARGETS}}\n\n{{GROWTH}}\n\n{{FIGURES}}\n\n{{SOURCES}}\n", encoding="utf-8"
    )

    done = subprocess.run(
        [sys.executable, str(REPORT), *files, "--notes", str(notes)],
        capture_output=True,
        text=True,
        check=True,
    )
    document = done.stdout
    assert document.startswith("# Performance\n")
    assert "{{" not in document
    # no-change 1.1-1.3× (median 1.2×: met); 1 % change 1.4-2.0× (median 1.6×: missed)
    assert "| no-change run ≤ 1.3× floor | 1.20× **met** (1.20 (1.10-1.30)) |" in document
    assert "| 1 % change run ≤ 1.5× floor | 1.60× **missed** (1.60 (1.40-2.00)) |" in document
    assert "| full run ≤ 2.5× floor (sandbox CPU set aside) | 2.00× **met**" in document
    assert "client peak memory ≤ 200 MB: PSS" in document and "100 MB **met**" in document
    assert "RSS summed over its processes" in document and "150 MB **met**" in document
    assert "| no-change run | 12.00 (11.00-13.00) |" in document
    assert document.count("`la-") == 3  # every results file is named as a source


def test_spread_gives_the_median_alone_below_three_values() -> None:
    spec = importlib.util.spec_from_file_location("bench_report", REPORT)
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = report  # dataclasses look their module up while the class is made
    spec.loader.exec_module(report)
    assert report.spread([2.0]) == "2.00"
    assert report.spread([1.0, 3.0]) == "2.00 (n=2)"
    assert report.spread([1.0, 5.0, 2.0]) == "2.00 (1.00-5.00)"


def test_the_first_table_sets_each_variant_beside_the_default_and_judges_the_default(tmp_path: Path) -> None:
    """The code before a change (``--label``) beside ``default``: ratios with the client CPU behind
    them, and the verdict on the default's median only."""
    documents = []
    for i, (label, no_change) in enumerate([("default", 12.0), ("default", 12.5), ("before", 15.0)] * 2):
        document = _document("la", 10.0, no_change + i * 0.01, 14.0, 40.0)
        document["label"] = label
        documents.append(document)
    output = _render(tmp_path, documents, "{{READ_FIRST}}\n")
    lines = output.splitlines()
    assert lines[0] == "| run | default (n=4) | before (n=2) | target |  |"
    no_change = next(line for line in lines if line.startswith("| no-change run |"))
    assert no_change.endswith("| 1.3× | met |")
    assert "| 1.23× (1.20-1.25); client CPU 11.0 (10.8-11.3) s |" in no_change  # the default's 4 runs
    assert "| 1.50× (n=2); client CPU 13.5 (n=2) s |" in no_change  # the variant's 2


def test_the_first_table_can_name_the_variants_it_shows(tmp_path: Path) -> None:
    """``{{READ_FIRST | b | a}}``: the default, then those labels in that order; the others left out."""
    documents = []
    for label, no_change in [("default", 12.0), ("a", 13.0), ("b", 14.0), ("c", 15.0)]:
        document = _document("la", 10.0, no_change, 14.0, 40.0)
        document["label"] = label
        documents.append(document)
    output = _render(tmp_path, documents, "{{READ_FIRST | b | a}}\n")
    assert output.splitlines()[0] == "| run | default (n=1) | b (n=1) | a (n=1) | target |  |"


def test_where_the_time_went_is_shown_for_the_runs_that_recorded_it(tmp_path: Path) -> None:
    """``phases`` (from the client's log) of the default's LA runs: medians over the files that have it;
    a file from before it was recorded is left out of that table, not counted as zero."""
    documents = []
    for i, before in enumerate([0.4, 0.5, None]):
        document = _document("la", 10.0, 12.0, 14.0, 40.0)
        if before is not None:
            document["results"]["postgres"]["churn_run"]["phases"] = {
                "schools": 120,
                "before_first_school_seconds": before,
                "after_last_school_seconds": 0.05,
                "school_seconds": 26.0 + i,
                "read_and_decide_seconds": 18.0,
                "batch_api_seconds": 2.0,
                "rest_seconds": 6.0 + i,
            }
        documents.append(document)
    output = _render(tmp_path, documents, "{{PHASES}}\n")
    rows = [line for line in output.splitlines() if line.startswith("| default | postgres |")]
    assert rows == [
        "| default | postgres | 1 % change run | 2 | 14.00 (n=2) | 0.45 (n=2) | 0.05 (n=2) | 26.50 (n=2) | 18.00 (n=2) "
        "| 2.00 (n=2) | 6.50 (n=2) |"
    ]


def test_the_committed_performance_page_is_what_the_command_makes() -> None:
    """docs/performance.md is generated, not typed: the command in its header, over the results filed
    in bench/results/, gives it byte for byte (edit bench/notes.md or the results, then run it again)."""
    files = sorted(str(path) for path in (REPO / "bench" / "results").glob("*.json"))
    done = subprocess.run(
        [sys.executable, str(REPORT), *files], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout == (REPO / "docs" / "performance.md").read_text(encoding="utf-8")

"""docs/performance.md, regenerated from the benchmark's JSON: every figure comes from a results file.

    .venv/bin/python bench/report.py bench/results/*.json > docs/performance.md

Results files of the same scale, database and label (``run_bench.py --label``) are repeats of the same
command: each figure is given as the median and, over three or more repeats, the range (min-max). The
prose around the tables is in ``bench/notes.md`` (what the figures mean, where the time goes); no figure
in the tables is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTES = Path(__file__).resolve().parent / "notes.md"
RUNS = ("full_run", "no_change_run", "churn_run")
RUN_NAMES = {"full_run": "full run", "no_change_run": "no-change run", "churn_run": "1 % change run"}
SCALES = ("small", "la", "national")
#: Labels in the order the lever table shows them; others follow alphabetically.
DEFAULT_LABEL = "default"


@dataclass(frozen=True)
class Group:
    scale: str
    database: str
    label: str
    documents: tuple[dict[str, Any], ...]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [d["results"][self.database] for d in self.documents]

    def values(self, run: str, figure: str) -> list[float]:
        return [float(r[run][figure]) for r in self.results if run in r and r[run].get(figure) is not None]


def load(paths: Iterable[Path]) -> list[Group]:
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for path in sorted(paths):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["_file"] = path.name
        for database in document["results"]:
            key = (document["scale"], database, document.get("label") or DEFAULT_LABEL)
            grouped.setdefault(key, []).append(document)
    order = {scale: i for i, scale in enumerate(SCALES)}
    return [
        Group(scale, database, label, tuple(docs))
        for (scale, database, label), docs in sorted(
            grouped.items(),
            key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2] != DEFAULT_LABEL, kv[0][2]),
        )
    ]


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` over three or more values; the median alone otherwise (with n)."""
    if not values:
        return "-"
    median = fmt.format(statistics.median(values))
    if len(values) >= 3:
        return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return median if len(values) == 1 else f"{median} (n={len(values)})"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], right_from: int = 1) -> list[str]:
    lines = [_row(header), _row(["---" if i < right_from else "---:" for i in range(len(header))])]
    lines.extend(_row(row) for row in rows)
    return lines


def figures_table(group: Group) -> list[str]:
    """Every run of one scale, database and label: seconds, ratios, CPU, memory, the API."""
    header = [
        "run",
        "seconds",
        "× floor",
        "× floor*",
        "client CPU s",
        "sandbox CPU s",
        "peak RSS MB (tree)",
        "PSS MB (tree)",
        "load (1 min)",
        "operations",
    ]
    rows = [
        [
            "floor",
            spread([r["floor"]["seconds"] for r in group.results]),
            "1.00",
            "",
            spread([r["floor"]["cpu_seconds"] for r in group.results]),
            "",
            spread([r["floor"]["peak_rss_mb"] for r in group.results], "{:.0f}"),
            "",
            spread([r["floor"].get("load_average", [0])[0] for r in group.results], "{:.1f}"),
            f"{sum(group.results[0]['floor']['rows'].values()):,} rows",
        ]
    ]
    for run in RUNS:
        if not group.values(run, "seconds"):
            continue
        ops = group.values(run, "operations")
        rows.append(
            [
                RUN_NAMES[run],
                spread(group.values(run, "seconds")),
                spread(group.values(run, "ratio_to_floor")),
                spread(group.values(run, "ratio_to_floor_without_sandbox")),
                spread(group.values(run, "client_cpu_seconds"), "{:.1f}"),
                spread(group.values(run, "sandbox_cpu_seconds"), "{:.1f}"),
                spread(group.values(run, "peak_rss_mb"), "{:.0f}"),
                spread(group.values(run, "tree_pss_mb"), "{:.0f}"),
                spread(_loads(group, run), "{:.1f}"),
                f"{int(statistics.median(ops)):,}" if ops else "-",
            ]
        )
    return _table(header, rows)


def _loads(group: Group, run: str) -> list[float]:
    return [float(r[run]["load_average"][0]) for r in group.results if "load_average" in r.get(run, {})]


#: (target name, run, figure, what the target says)
TARGET_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("no_change_run", "no_change_run", "ratio_to_floor", "no-change run ≤ {}× floor"),
    ("churn_run", "churn_run", "ratio_to_floor", "1 % change run ≤ {}× floor"),
    (
        "full_run",
        "full_run",
        "ratio_to_floor_without_sandbox",
        "full run ≤ {}× floor (sandbox CPU set aside)",
    ),
)


def targets_table(groups: Sequence[Group]) -> list[str]:
    """The LA set's targets, judged on the median of the repeats, per database (default label)."""
    chosen = [g for g in groups if g.scale == "la" and g.label == DEFAULT_LABEL]
    if not chosen:
        return ["No LA results."]
    targets = chosen[0].documents[-1]["targets"]
    header = ["target", *(f"{g.database} (n={len(g.documents)})" for g in chosen)]
    rows = []
    for name, run, figure, text in TARGET_ROWS:
        cells = [text.format(targets[name])]
        for group in chosen:
            values = group.values(run, figure)
            cells.append(_verdict(values, targets[name], "{:.2f}×"))
        rows.append(cells)
    limit = targets["peak_rss_mb"]
    for figure, text in (
        ("tree_pss_mb", f"client peak memory ≤ {limit} MB: PSS of its process tree (worst run)"),
        ("peak_rss_mb", "the same as RSS summed over its processes (shared pages counted per process)"),
    ):
        memory = [text]
        for group in chosen:
            memory.append(_verdict(_worst(group, figure), limit, "{:.0f} MB"))
        rows.append(memory)
    return _table(header, rows, right_from=9)


def _worst(group: Group, figure: str) -> list[float]:
    """Each repeat's largest ``figure`` over its runs (memory: the run that held the most)."""
    return [max(r[run].get(figure, 0.0) for run in RUNS if run in r) for r in group.results]


def read_first_table(
    groups: Sequence[Group], database: str = "postgres", labels: Sequence[str] = ()
) -> list[str]:
    """The LA set on one database, each label side by side (the default first; ``labels``: these only,
    in this order, the default always): every target's ratio with the client CPU behind it, and the
    verdict on the default's median."""
    chosen = [g for g in groups if g.scale == "la" and g.database == database]
    if labels:
        wanted = [DEFAULT_LABEL, *(label for label in labels if label != DEFAULT_LABEL)]
        chosen = sorted((g for g in chosen if g.label in wanted), key=lambda g: wanted.index(g.label))
    default = next((g for g in chosen if g.label == DEFAULT_LABEL), None)
    if default is None:
        return [f"No LA results on {database}."]
    targets = default.documents[-1]["targets"]
    header = ["run", *(f"{g.label} (n={len(g.documents)})" for g in chosen), "target", ""]
    rows = []
    for name, run, figure, _text in TARGET_ROWS:
        cells = [RUN_NAMES[run] + (", sandbox CPU set aside" if figure.endswith("without_sandbox") else "")]
        for group in chosen:
            ratio = spread(group.values(run, figure)).replace(" (", "× (", 1)
            cells.append(f"{ratio}; client CPU {spread(group.values(run, 'client_cpu_seconds'), '{:.1f}')} s")
        median = statistics.median(default.values(run, figure) or [float("inf")])
        cells += [f"{targets[name]}×", "met" if median <= targets[name] else "missed"]
        rows.append(cells)
    limit = targets["peak_rss_mb"]
    memory = ["memory, PSS of the process tree (worst run)"]
    memory += [f"{spread(_worst(group, 'tree_pss_mb'), '{:.0f}')} MB" for group in chosen]
    memory += [
        f"{limit} MB",
        "met" if statistics.median(_worst(default, "tree_pss_mb")) <= limit else "missed",
    ]
    rows.append(memory)
    return _table(header, rows, right_from=len(header))


def _verdict(values: Sequence[float], target: float, fmt: str) -> str:
    """The median against the target, then every value's spread (as in the other tables)."""
    if not values:
        return "-"
    median = statistics.median(values)
    word = "**met**" if median <= target else "**missed**"
    number = "{:.0f}" if fmt.endswith("MB") else "{:.2f}"
    return f"{fmt.format(median)} {word} ({spread(values, number)})"


def growth_table(groups: Sequence[Group]) -> list[str]:
    """Full and no-change runs at each size: how time, CPU and memory grow with records and schools."""
    header = [
        "scale",
        "database",
        "schools",
        "records",
        "run",
        "seconds",
        "× floor",
        "× floor*",
        "client CPU µs / record",
        "peak RSS MB",
        "PSS MB",
    ]
    rows = []
    for group in groups:
        if group.label != DEFAULT_LABEL:
            continue
        document = group.documents[0]
        records = sum(document["results"][group.database]["floor"]["rows"].values())
        schools = _schools(document)
        for run in ("full_run", "no_change_run"):
            cpu = group.values(run, "client_cpu_seconds")
            if not cpu:
                continue
            rows.append(
                [
                    group.scale,
                    group.database,
                    f"{schools:,}",
                    f"{records:,}",
                    RUN_NAMES[run],
                    spread(group.values(run, "seconds")),
                    spread(group.values(run, "ratio_to_floor")),
                    spread(group.values(run, "ratio_to_floor_without_sandbox")),
                    spread([c * 1e6 / records for c in cpu], "{:.1f}"),
                    spread(group.values(run, "peak_rss_mb"), "{:.0f}"),
                    spread(group.values(run, "tree_pss_mb"), "{:.0f}"),
                ]
            )
    return _table(header, rows, right_from=2)


def _schools(document: dict[str, Any]) -> int:
    return int(document.get("schools") or {"small": 4, "la": 120, "national": 1470}.get(document["scale"], 0))


def levers_table(groups: Sequence[Group]) -> list[str]:
    """The same command before and after each change (``--label``), LA scale: the ratios' medians."""
    chosen = [g for g in groups if g.scale == "la"]
    header = ["label", "database", "n", "full × floor*", "no-change × floor", "1 % × floor", "peak RSS MB"]
    rows = [
        [
            g.label,
            g.database,
            str(len(g.documents)),
            spread(g.values("full_run", "ratio_to_floor_without_sandbox")),
            spread(g.values("no_change_run", "ratio_to_floor")),
            spread(g.values("churn_run", "ratio_to_floor")),
            spread(_worst(g, "peak_rss_mb"), "{:.0f}"),
        ]
        for g in chosen
    ]
    return _table(header, rows, right_from=2)


def phases_table(groups: Sequence[Group]) -> list[str]:
    """Where each run's wall time went (``phases``, from the client's log; results from 2026-12-04 on),
    at LA scale, ``default`` first: medians of the repeats that have it."""
    header = [
        "label",
        "database",
        "run",
        "n",
        "wall s",
        "before the first school s",
        "after the last s",
        "schools' time s (summed over the workers)",
        "reading and deciding s",
        "waiting on the API for batches s",
        "the rest s",
    ]
    rows = []
    for group in groups:
        if group.scale != "la":
            continue
        for run in RUNS:
            have = [r[run] for r in group.results if r.get(run, {}).get("phases")]
            if not have:
                continue
            cells = [
                spread([float(h["phases"][name]) for h in have])
                for name in (
                    "before_first_school_seconds",
                    "after_last_school_seconds",
                    "school_seconds",
                    "read_and_decide_seconds",
                    "batch_api_seconds",
                    "rest_seconds",
                )
            ]
            wall = spread([float(h["seconds"]) for h in have])
            rows.append([group.label, group.database, RUN_NAMES[run], str(len(have)), wall, *cells])
    return _table(header, rows, right_from=3)


def national(groups: Sequence[Group]) -> list[str]:
    """The national set: its floor, the runs that finished and, for a run cut off, how far it got."""
    lines: list[str] = []
    for group in (g for g in groups if g.scale == "national"):
        for document in group.documents:
            result = document["results"][group.database]
            floor = result["floor"]
            rows = sum(floor["rows"].values())
            lines.append(
                f"- {group.database}, `{document['_file']}`: floor {floor['seconds']:.1f} s for {rows:,} rows "
                f"(its own CPU {floor['cpu_seconds']:.1f} s)."
            )
            for run in RUNS:
                if run in result:
                    figures = result[run]
                    sandbox = figures.get("sandbox_cpu_seconds")
                    lines.append(
                        f"- {RUN_NAMES[run]}: {figures['seconds']:.1f} s, {figures['ratio_to_floor']:.2f}× the floor, "
                        f"client CPU {figures['client_cpu_seconds']:.1f} s"
                        + (f", sandbox CPU {sandbox:.1f} s" if sandbox is not None else "")
                        + f", peak PSS {figures.get('tree_pss_mb', 0):.0f} MB."
                    )
            cut = result.get("full_run_unfinished")
            if cut:
                lines.append(
                    f"- full run **not finished** when the results were taken: {cut['schools_finished']:,} of "
                    f"{cut['schools']:,} schools done after {cut['seconds_so_far']:.0f} s, "
                    f"{cut['operations_acknowledged']:,} operations acknowledged in {cut['batches_acknowledged']:,} "
                    f"batches; the workers waited on the API {cut['api_wait_seconds']:.0f} s between them; the "
                    f"sandbox had used {cut.get('sandbox_cpu_seconds_since_start', 0):.0f} s of CPU since it "
                    "started (enrolment included)."
                )
    return lines or ["No national results."]


def sources(groups: Sequence[Group]) -> list[str]:
    lines = []
    for group in groups:
        for document in group.documents:
            # files from before 2026-12-04 have no "sandbox": their sandbox applied batches in its own process
            workers = document.get("sandbox", {}).get("apply_workers", 1)
            reads = document.get("floor_reads", 1)  # files from before 2026-12-04 (later) read it once
            floor = "the floor read once" if reads == 1 else f"the floor the median of {reads} reads"
            lines.append(
                f"- `{document['_file']}`: `{document['command']}` ({group.scale}, {group.database}, "
                f"label {group.label}; the sandbox's apply workers: {workers}; {floor}), "
                f"finished {document['finished_at']}"
            )
    return sorted(set(lines))


def render(groups: Sequence[Group], notes: str) -> str:
    """The notes with each ``{{SECTION}}`` line replaced by its table; ``{{READ_FIRST | a | b}}``
    sets those labels beside the default."""
    sections: dict[str, Callable[..., list[str]]] = {
        "READ_FIRST": lambda *labels: read_first_table(groups, labels=labels),
        "TARGETS": lambda: targets_table(groups),
        "GROWTH": lambda: growth_table(groups),
        "LEVERS": lambda: levers_table(groups),
        "PHASES": lambda: phases_table(groups),
        "SOURCES": lambda: sources(groups),
        "NATIONAL": lambda: national(groups),
        "FIGURES": lambda: _all_figures(groups),
    }
    out = []
    for line in notes.splitlines():
        marker = line.strip()
        if marker.startswith("{{") and marker.endswith("}}"):
            name, *arguments = (part.strip() for part in marker[2:-2].split("|"))
            if name in sections:
                out.extend(sections[name](*arguments))
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def _all_figures(groups: Sequence[Group]) -> list[str]:
    lines: list[str] = []
    for group in groups:
        lines.append(
            f"**{group.scale}, {group.database}, {group.label}** ({len(group.documents)} run(s) of "
            f"`{group.documents[0]['command']}`):"
        )
        lines.append("")
        lines.extend(figures_table(group))
        lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/run_bench.py JSON files")
    parser.add_argument(
        "--notes", type=Path, default=NOTES, help="the document's prose with {{SECTION}} markers"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(render(load(args.results), args.notes.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The portal page: every school's provisioning status and last run, as plain HTML.

Everything shown is escaped; no personal data is shown (only counts, outcomes and operator messages).
Records held count learners and staff by their calendar state today (``active``, ``starting``,
``leaving``, ``left``); "Class changes held" counts group and membership changes recorded from 2 June that
are not passed on to Teams, Google Classroom or Apple Classroom.
"""

from __future__ import annotations

from html import escape
from typing import Any

from hwb_sandbox.store import SandboxStore


def _counts_text(counts: dict[str, Any]) -> str:
    parts = []
    for kind, ops in sorted(counts.items()):
        if isinstance(ops, dict):
            ops_text = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
            parts.append(f"{kind}: {ops_text}")
    return "; ".join(parts) or "-"


def _held_back_text(held_back: dict[str, Any]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(held_back.items())) or "-"


def _not_passed_on_text(count: int) -> str:
    if count == 0:
        return "-"
    return f"{count} recorded, not passed on to Teams, Google Classroom or Apple Classroom (from 2 June)"


def _clock_text(store: SandboxStore) -> str:
    setting = store.clock_setting()
    if setting is None:
        return f"Sandbox today: {store.today().isoformat()} (the real date)"
    return f"Sandbox today: {setting.isoformat()} (set with hwb-sandbox clock)"


def _row(store: SandboxStore, dfes_number: str, name: str) -> str:
    run = store.last_run(dfes_number)
    held = store.record_counts(dfes_number)
    held_text = "; ".join(
        f"{kind}: " + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        for kind, by_status in sorted(held.items())
    )
    cells = [
        dfes_number,
        name,
        run["finished_at"] if run else "never",
        run["outcome"] if run else "-",
        _counts_text(run.get("counts", {})) if run else "-",
        _held_back_text(run.get("held_back", {})) if run else "-",
        run.get("message", "") if run else "",
        store.last_success_at(dfes_number) or "never",
        held_text or "-",
        _not_passed_on_text(store.class_changes_not_passed_on(dfes_number)),
        str(len(store.active_keys(dfes_number))),
    ]
    outcome_class = f' class="outcome-{escape(run["outcome"])}"' if run else ""
    tds = "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
    return f"<tr{outcome_class}>{tds}</tr>"


def render(store: SandboxStore) -> str:
    """The whole page."""
    header = "".join(
        f"<th>{escape(title)}</th>"
        for title in (
            "DfES",
            "School",
            "Last run",
            "Outcome",
            "Counts",
            "Held back",
            "Message",
            "Last success",
            "Records held",
            "Class changes held",
            "Keys",
        )
    )
    rows = "\n".join(_row(store, school.dfes_number, school.name) for school in store.schools())
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Hwb sandbox: provisioning status</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:left}"
        ".outcome-failed,.outcome-blocked{background:#fdd}.outcome-partial{background:#ffd}</style>"
        "</head><body><h1>Provisioning status</h1>"
        f'<p id="sandbox-today">{escape(_clock_text(store))}</p>'
        f"<table><thead><tr>{header}</tr></thead><tbody>\n{rows}\n</tbody></table></body></html>\n"
    )

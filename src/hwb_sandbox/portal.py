"""The portal page: every school's provisioning status and last run, as plain HTML.

Everything shown is escaped; no personal data is shown (only counts, outcomes and operator messages).
Records held count learners and staff by their calendar state today (``active``, ``starting``,
``leaving``, ``left``); "Class changes held" counts group and membership changes recorded from 2 June that
are not passed on to Teams, Google Classroom or Apple Classroom.

The page is in English or Welsh (``render(store, lang)``, the request's ``Accept-Language``): headings,
sentences and dates (``30 Awst 2026`` in Welsh; ISO 8601 in English, as always). Codes stay as they are
in the protocol (record kinds, operations, calendar states, held-back reasons); run outcomes show the
word a person reads, the row's ``class`` keeps the code.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any, Final

from hwb_sandbox.i18n import ENGLISH, N_, Language
from hwb_sandbox.store import SandboxStore

#: The run outcome codes (the protocol's) and the word a person reads for each.
OUTCOMES: Final = {
    "success": N_("success"),
    "partial": N_("partial"),
    "failed": N_("failed"),
    "blocked": N_("blocked"),
}

COLUMNS: Final = (
    N_("DfES"),
    N_("School"),
    N_("Last run"),
    N_("Outcome"),
    N_("Counts"),
    N_("Held back"),
    N_("Message"),
    N_("Last success"),
    N_("Records held"),
    N_("Class changes held"),
    N_("Keys"),
)


def _counts_text(counts: dict[str, Any]) -> str:
    parts = []
    for kind, ops in sorted(counts.items()):
        if isinstance(ops, dict):
            ops_text = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
            parts.append(f"{kind}: {ops_text}")
    return "; ".join(parts) or "-"


def _held_back_text(held_back: dict[str, Any]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(held_back.items())) or "-"


def _not_passed_on_text(count: int, lang: Language) -> str:
    if count == 0:
        return "-"
    return lang.ngettext(
        "{count} recorded, not passed on to Teams, Google Classroom or Apple Classroom (from 2 June)",
        "{count} recorded, not passed on to Teams, Google Classroom or Apple Classroom (from 2 June)",
        count,
    ).format(count=count)


def _clock_text(store: SandboxStore, lang: Language) -> str:
    setting = store.clock_setting()
    if setting is None:
        return lang._("Sandbox today: {date} (the real date)").format(date=lang.format_date(store.today()))
    return lang._("Sandbox today: {date} (set with hwb-sandbox clock)").format(date=lang.format_date(setting))


def _when(timestamp: str | None, lang: Language) -> str:
    """A run's time as the client reported it (ISO 8601); in Welsh its date in words, its time as sent."""
    if not timestamp:
        return lang._("never")
    if lang == ENGLISH:
        return timestamp
    try:
        day = dt.datetime.fromisoformat(timestamp).date()
    except ValueError:
        return timestamp
    time_part = timestamp.partition("T")[2]
    return f"{lang.format_date(day)} {time_part}".rstrip()


def _outcome_text(outcome: str, lang: Language) -> str:
    return lang._(OUTCOMES[outcome]) if outcome in OUTCOMES else outcome


def _row(store: SandboxStore, dfes_number: str, name: str, lang: Language) -> str:
    run = store.last_run(dfes_number)
    held = store.record_counts(dfes_number)
    held_text = "; ".join(
        f"{kind}: " + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        for kind, by_status in sorted(held.items())
    )
    cells = [
        dfes_number,
        name,
        _when(run["finished_at"], lang) if run else lang._("never"),
        _outcome_text(run["outcome"], lang) if run else "-",
        _counts_text(run.get("counts", {})) if run else "-",
        _held_back_text(run.get("held_back", {})) if run else "-",
        run.get("message", "") if run else "",
        _when(store.last_success_at(dfes_number), lang),
        held_text or "-",
        _not_passed_on_text(store.class_changes_not_passed_on(dfes_number), lang),
        str(len(store.active_keys(dfes_number))),
    ]
    outcome_class = f' class="outcome-{escape(run["outcome"])}"' if run else ""
    tds = "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
    return f"<tr{outcome_class}>{tds}</tr>"


def render(store: SandboxStore, lang: Language = ENGLISH) -> str:
    """The whole page, in ``lang`` (its ``<html lang>``, headings, cell texts and dates)."""
    header = "".join(f"<th>{escape(lang._(title))}</th>" for title in COLUMNS)
    rows = "\n".join(_row(store, school.dfes_number, school.name, lang) for school in store.schools())
    title, heading = lang._("Hwb sandbox: provisioning status"), lang._("Provisioning status")
    return (
        f'<!doctype html>\n<html lang="{lang.code}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:left}"
        ".outcome-failed,.outcome-blocked{background:#fdd}.outcome-partial{background:#ffd}</style>"
        f"</head><body><h1>{escape(heading)}</h1>"
        f'<p id="sandbox-today">{escape(_clock_text(store, lang))}</p>'
        f"<table><thead><tr>{header}</tr></thead><tbody>\n{rows}\n</tbody></table></body></html>\n"
    )

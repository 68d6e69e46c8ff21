"""``hwb-client report``: the school's own report for its MIS administrator (HTML, or CSV by extension).

The last run (when, outcome, what changed) from the local state, and every held-back record from a live
read of the MIS, with its row, MIS id, name, reason and what to change in the MIS. It names people: the
file is created readable by its owner only (mode 0600 from the start), says so at its top, and is never
sent anywhere by the client.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from hwb_client import __version__, i18n
from hwb_client.adapters.state import StateStore
from hwb_client.core.validate import ADVICE, Reason
from hwb_client.operator.history import summarise
from hwb_client.operator.school_read import HeldBackRow, read_school
from hwb_client.platform.files import atomic_write
from hwb_client.run_result import outcome_text
from hwb_client.settings import SchoolSettings, Settings

PEOPLE_AND_GROUPS = ("learner", "staff", "group")
CSV_FIELDS = ("kind", "row", "mis_id", "name", "reason", "fix")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def when(value: str | None) -> str:
    """An ISO 8601 time as people read it: ``2026-12-01 19:29 UTC`` (in Welsh ``1 Rhagfyr 2026 19:29
    UTC``: the date through ``i18n.format_date``)."""
    if not value:
        return ""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    return f"{i18n.format_date(moment.date())} {moment:%H:%M} UTC"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("hwb_client.operator", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_callables(i18n._, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    environment.filters["when"] = when
    environment.filters["outcome"] = outcome_text
    environment.filters["kind"] = kind_text
    environment.filters["op"] = op_text
    environment.globals["lang"] = i18n.language
    return environment


#: The kinds of record as the report's tables name them (the reason codes stay as they are).
KINDS = {
    "learner": i18n.N_("learner"),
    "staff": i18n.N_("staff"),
    "group": i18n.N_("group"),
    "membership": i18n.N_("membership"),
}
#: The changes as the report's table names them.
OPS = {"upsert": i18n.N_("upsert"), "leave": i18n.N_("leave"), "remove": i18n.N_("remove")}


def kind_text(kind: str) -> str:
    return i18n._(KINDS[kind]) if kind in KINDS else kind


def op_text(op: str) -> str:
    return i18n._(OPS[op]) if op in OPS else op


def report_context(settings: Settings, school: SchoolSettings, now: dt.datetime) -> dict[str, Any]:
    store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
    try:
        last = store.last_run()
    finally:
        store.close()
    read = read_school(settings, school, now.date())
    held = read.held_back_rows()
    memberships = Counter(h.reason for h in held if h.kind not in PEOPLE_AND_GROUPS)
    changes = (last.report or {}).get("counts", {}) if last else {}
    return {
        "school": school,
        "generated_at": now.isoformat(timespec="minutes"),
        "client_version": __version__,
        "last_run": summarise(school.dfes_number, last) if last else None,
        "changes": {kind: dict(sorted(ops.items())) for kind, ops in sorted(changes.items())},
        "held": [h for h in held if h.kind in PEOPLE_AND_GROUPS],
        "memberships": [
            {"reason": reason, "count": count, "fix": i18n._(ADVICE[Reason(reason)])}
            for reason, count in sorted(memberships.items())
        ],
        "rows_read": {kind.value: len(rows) for kind, rows in read.rows.items()},
    }


def render_html(context: dict[str, Any]) -> str:
    return _environment().get_template("report.html.j2").render(**context)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text  # never a formula in a spreadsheet


def render_csv(held: list[HeldBackRow]) -> str:
    buffer = io.StringIO()
    notice = i18n._("This file names people: for the school's MIS administrator only; never send it on.")
    buffer.write(f"# {notice}\r\n")
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for h in held:
        writer.writerow([_cell(getattr(h, name)) for name in CSV_FIELDS])
    return buffer.getvalue()


def write_report(
    settings: Settings, school: SchoolSettings, output: Path, now: dt.datetime | None = None
) -> Path:
    """Write the report (CSV when ``output`` ends in .csv, else HTML), owner-only; return its path."""
    now = now or dt.datetime.now(dt.UTC)
    if output.suffix.lower() == ".csv":
        read = read_school(settings, school, now.date())
        data = render_csv(read.held_back_rows())
    else:
        data = render_html(report_context(settings, school, now))
    atomic_write(output, data.encode("utf-8"), mode=0o600)  # the temp file is created 0600 (mkstemp)
    return output

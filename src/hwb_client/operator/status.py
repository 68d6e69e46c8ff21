"""``hwb-client status``: each school's health, for people (text), scripts (``--json``) and monitoring
(``--nagios``). Exit codes follow the monitoring plugin convention: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN (the worst school decides).

A monitoring account may read the configuration but neither the keys nor the state: when a school's state
database cannot be read, its entry comes from the status file the service writes after every run
(``monitoring.status_file``), marked ``"source": "status_file"``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from hwb_client.adapters.state import StateStore
from hwb_client.errors import HwbClientError
from hwb_client.i18n import N_, _, ngettext
from hwb_client.run_result import outcome_text, report_message
from hwb_client.settings import SchoolSettings, Settings

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
#: The levels as the text output shows them (the Nagios line and the JSON keep ``LABELS``).
SEVERITY_TEXT = {
    "OK": N_("OK"),
    "WARNING": N_("WARNING"),
    "CRITICAL": N_("CRITICAL"),
    "UNKNOWN": N_("UNKNOWN"),
}


def status_file_path(settings: Settings) -> Path:
    return settings.monitoring.status_file or settings.client.state_dir / "status.json"


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _schedule(settings: Settings, last_success: str | None, now: dt.datetime) -> dict[str, Any]:
    try:
        from hwb_client.service_commands import schedule_health

        return schedule_health(settings, _parse_time(last_success), now)
    except (ImportError, HwbClientError) as exc:
        return {"error": str(exc)}


def severity(entry: dict[str, Any]) -> tuple[int, str]:
    """How bad a school's status is, and why, in a few English words (the JSON's ``reason``; the text
    and the Nagios line show them translated, ``_(reason)``)."""
    last = entry.get("last_run")
    schedule = entry.get("schedule") or {}
    if entry.get("unreadable"):
        return UNKNOWN, entry["unreadable"]
    if last is None:
        return CRITICAL, N_("never run")
    outcome = last.get("outcome")
    if outcome == "failed":
        return CRITICAL, N_("last run failed")
    if outcome == "blocked":
        return CRITICAL, N_("last run blocked")
    if schedule.get("overdue"):
        return CRITICAL, N_("overdue")
    if outcome == "partial":
        return WARNING, N_("records held back or refused")
    if entry.get("pending_batches"):
        return WARNING, N_("batches waiting to be resent")
    return OK, N_("ok")


def _from_state(settings: Settings, school: SchoolSettings, now: dt.datetime) -> dict[str, Any]:
    store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
    try:
        last = store.last_run()
        last_success = store.last_success_at()
        pending = store.count_pending()
    finally:
        store.close()
    return {
        "dfes_number": school.dfes_number,
        "name": school.name,
        "last_run": last.report if last else None,
        "last_success_at": last_success,
        "pending_batches": pending,
        "schedule": _schedule(settings, last_success, now),
        "source": "state",
    }


def _from_status_file(settings: Settings, school: SchoolSettings, now: dt.datetime) -> dict[str, Any]:
    path = status_file_path(settings)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["schools"][school.dfes_number]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return {
            "dfes_number": school.dfes_number,
            "name": school.name,
            "last_run": None,
            "last_success_at": None,
            "pending_batches": 0,
            "schedule": {},
            "source": "none",
            "unreadable": f"cannot read the state or the status file {path} ({reason})",
        }
    entry = {key: saved.get(key) for key in ("last_run", "last_success_at", "pending_batches")}
    entry.update(dfes_number=school.dfes_number, name=school.name, source="status_file")
    entry["schedule"] = _schedule(settings, entry["last_success_at"], now)  # overdue as of now
    return entry


def school_status(settings: Settings, school: SchoolSettings, now: dt.datetime) -> dict[str, Any]:
    """A school's status from its state database, or from the status file when that is unreadable."""
    try:
        entry = _from_state(settings, school, now)
    except (OSError, HwbClientError, sqlite3.Error):
        entry = _from_status_file(settings, school, now)
    level, reason = severity(entry)
    entry.update(healthy=level in (OK, WARNING), severity=LABELS[level], reason=reason)
    entry["exit_code"] = level
    return entry


def overall(entries: list[dict[str, Any]]) -> int:
    """The worst school's level (UNKNOWN counts below CRITICAL, as monitoring plugins do)."""
    levels = [int(e["exit_code"]) for e in entries]
    if CRITICAL in levels:
        return CRITICAL
    return max(levels, default=UNKNOWN)


def nagios_line(entries: list[dict[str, Any]], now: dt.datetime) -> str:
    """One line of text, then ``|`` and performance data (one set of labels per school)."""
    level = overall(entries)
    bad = [e for e in entries if e["exit_code"] != OK]
    text = (
        f"HWB {LABELS[level]} - "
        + ngettext(
            "{count} school, {bad} need attention", "{count} schools, {bad} need attention", len(entries)
        ).format(count=len(entries), bad=len(bad))
        + (": " + "; ".join(f"{e['dfes_number']} {_(e['reason'])}" for e in bad[:5]) if bad else "")
        + (" " + _("and {count} more").format(count=len(bad) - 5) if len(bad) > 5 else "")
    )
    perf: list[str] = []
    for entry in entries:
        dfes = entry["dfes_number"]
        success = _parse_time(entry.get("last_success_at"))
        age = f"{(now - success).total_seconds() / 3600:.1f}" if success else "U"
        held = sum((entry.get("last_run") or {}).get("held_back", {}).values())
        perf.append(f"'{dfes}_success_age'={age}h")
        perf.append(f"'{dfes}_held_back'={held};;;0")
        perf.append(f"'{dfes}_pending_batches'={int(entry.get('pending_batches') or 0)};;;0")
    return text + " | " + " ".join(perf)


def _last_run_lines(entry: dict[str, Any]) -> list[str]:
    last = entry["last_run"]
    if last is None:
        return ["  " + _("last run: never")]
    lines = [
        "  "
        + _("last run: {finished} {outcome} - {message}").format(
            finished=last.get("finished_at"),
            outcome=outcome_text(str(last.get("outcome"))),
            message=report_message(entry["dfes_number"], last) if last.get("message") else "",
        )
    ]
    if last.get("held_back"):
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(last["held_back"].items()))
        lines.append("  " + _("held back: {records}").format(records=reasons))
    return lines


def format_text(entries: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for entry in entries:
        severity_text = _(SEVERITY_TEXT.get(entry["severity"], entry["severity"]))
        lines.append(f"{entry['dfes_number']} {entry['name']}: {severity_text} ({_(entry['reason'])})")
        if entry.get("source") == "status_file":
            lines.append("  " + _("(from the status file: the state is not readable by this user)"))
        lines += _last_run_lines(entry)
        lines.append("  " + _("last success: {when}").format(when=entry["last_success_at"] or _("never")))
        if entry["pending_batches"]:
            lines.append(
                "  " + _("batches waiting to be resent: {count}").format(count=entry["pending_batches"])
            )
        schedule = entry.get("schedule") or {}
        if "next_run" in schedule:
            lines.append(
                "  "
                + _("next run: {when} ({rule})").format(
                    when=schedule["next_run"], rule=schedule.get("next_rule", "")
                )
                + (" - " + _("OVERDUE") if schedule.get("overdue") else "")
            )
    return "".join(line + "\n" for line in lines)

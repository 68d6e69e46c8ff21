"""``hwb-client history``: each run of a school, from the run reports kept in its state database.

Reports written by 0.1.0 lack the newer keys (``planned``, ``held_back_by_kind``, ``refused``,
``resent_batches``, ``holds``, ``overrides``): they read as absent, never as an error. In a 0.1.0
report ``counts`` is what the run planned (sent only when it succeeded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hwb_client.adapters.state import RunRow, StateStore
from hwb_client.core.guard import hold_report_message
from hwb_client.errors import StateError
from hwb_client.i18n import N_, _, ngettext
from hwb_client.run_result import outcome_text, report_message
from hwb_client.settings import SchoolSettings, Settings

PEOPLE = ("learner", "staff")


def _total(per_kind: Mapping[str, Any], kinds: Iterable[str]) -> int:
    total = 0
    for kind in kinds:
        ops = per_kind.get(kind) or {}
        total += sum(int(n) for n in ops.values()) if isinstance(ops, Mapping) else 0
    return total


def _others(per_kind: Mapping[str, Any]) -> list[str]:
    return [kind for kind in per_kind if kind not in PEOPLE]


@dataclass
class RunSummary:
    """One run as the operator reads it: times, outcome and counts, people and memberships apart."""

    dfes_number: str
    run_id: str
    started_at: str
    finished_at: str | None
    outcome: str
    client_version: str | None
    message: str
    sent_people: int = 0
    sent_other: int = 0
    held_back_people: int | None = None
    held_back_other: int | None = None
    held_back: dict[str, int] = field(default_factory=dict)
    refused_people: int = 0
    refused_other: int = 0
    batches: int = 0
    resent_batches: int | None = None
    resent_operations: int | None = None
    as_of: str | None = None
    holds: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    #: ``message`` in the language of the process (said again from the report's fields); not in JSON
    message_text: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["message_text"]
        return data


def summarise(dfes_number: str, row: RunRow) -> RunSummary:
    """A run report (any version) as a ``RunSummary``."""
    report: dict[str, Any] = row.report or {}
    sent = report.get("counts") or {}
    held = {str(k): int(v) for k, v in (report.get("held_back") or {}).items()}
    by_kind = report.get("held_back_by_kind")
    refused = report.get("refused") or {}
    summary = RunSummary(
        dfes_number=dfes_number,
        run_id=row.run_id,
        started_at=str(report.get("started_at") or row.started_at),
        finished_at=report.get("finished_at") or row.finished_at,
        outcome=str(report.get("outcome") or row.outcome or "running"),
        client_version=report.get("client_version"),
        message=str(report.get("message") or row.message or ""),
        sent_people=_total(sent, PEOPLE),
        sent_other=_total(sent, _others(sent)),
        held_back=held,
        refused_people=_total(refused, PEOPLE) if isinstance(refused, Mapping) else 0,
        refused_other=_total(refused, _others(refused)) if isinstance(refused, Mapping) else 0,
        batches=int(report.get("batches") or 0),
        resent_batches=report.get("resent_batches"),
        resent_operations=report.get("resent_operations"),
        as_of=report.get("as_of"),
        holds=list(report.get("holds") or []),
        overrides=list(report.get("overrides") or []),
    )
    summary.message_text = report_message(dfes_number, report) if report.get("message") else summary.message
    if isinstance(by_kind, Mapping):
        summary.held_back_people = _total(by_kind, PEOPLE)
        summary.held_back_other = _total(by_kind, _others(by_kind))
    return summary


def school_history(settings: Settings, school: SchoolSettings, last: int | None = None) -> list[RunSummary]:
    """The school's runs, newest first (``last`` of them when given)."""
    try:
        store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
    except OSError as exc:
        raise StateError(
            N_(
                "school {dfes}: cannot read its state in {state_dir} ({reason}); run history as the "
                "service user (or root)"
            ),
            dfes=school.dfes_number,
            state_dir=settings.client.state_dir,
            reason=exc.strerror,
        ) from None
    try:
        rows = store.runs(last)
    finally:
        store.close()
    return [summarise(school.dfes_number, row) for row in rows]


def _counts(people: int, other: int) -> str:
    return _("{people}, {other}").format(
        people=ngettext("{count} person", "{count} people", people).format(count=people),
        other=ngettext("{count} group/membership", "{count} groups/memberships", other).format(count=other),
    )


def _head(run: RunSummary) -> str:
    return _("{dfes} {started} -> {finished} {outcome} (client {version}, run {run_id}{as_of})").format(
        dfes=run.dfes_number,
        started=run.started_at,
        finished=run.finished_at or _("(not finished)"),
        outcome=outcome_text(run.outcome).upper(),
        version=run.client_version or _("unknown"),
        run_id=run.run_id,
        as_of=", " + _("as of {date}").format(date=run.as_of) if run.as_of else "",
    )


def _sent(run: RunSummary) -> str:
    text = _("sent: {counts} in {batches}").format(
        counts=_counts(run.sent_people, run.sent_other),
        batches=ngettext("{count} batch", "{count} batches", run.batches).format(count=run.batches),
    )
    if run.resent_batches:
        text += "; " + ngettext("{count} batch resent", "{count} batches resent", run.resent_batches).format(
            count=run.resent_batches
        )
        if run.resent_operations:
            text += " " + ngettext(
                "({count} operation)", "({count} operations)", run.resent_operations
            ).format(count=run.resent_operations)
    return text


def format_run(run: RunSummary) -> list[str]:
    lines = [_head(run), "  " + _sent(run)]
    held_total = sum(run.held_back.values())
    if held_total:
        split = (
            f" ({_counts(run.held_back_people, run.held_back_other or 0)})"
            if run.held_back_people is not None
            else ""
        )
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(run.held_back.items()))
        lines.append(
            "  "
            + _("held back: {total}{split}: {reasons}").format(total=held_total, split=split, reasons=reasons)
        )
    if run.refused_people or run.refused_other:
        lines.append(
            "  "
            + _("refused by Hwb: {records}").format(records=_counts(run.refused_people, run.refused_other))
        )
    for hold in run.holds:
        text = _("hold: {rule} {kind} - {message}").format(
            rule=hold.get("rule"), kind=hold.get("kind", ""), message=hold_report_message(hold, _)
        )
        lines.append(f"  {text}".rstrip())
    for override in run.overrides:
        lines.append(
            "  "
            + _("override: {rule} by {flag} ({user})").format(
                rule=override.get("rule"), flag=override.get("flag"), user=override.get("user")
            )
        )
    if run.message:
        lines.append(f"  {run.message_text or run.message}")
    return lines


def format_history(runs: list[RunSummary]) -> str:
    if not runs:
        return _("no runs recorded") + "\n"
    return "".join(line + "\n" for run in runs for line in format_run(run))


def history_json(runs: list[RunSummary]) -> str:
    return json.dumps({"runs": [run.to_json() for run in runs]}, indent=2, default=str) + "\n"

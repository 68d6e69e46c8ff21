"""What one run did: for the CLI, the daemon, the local history and the run report sent upstream.

Planned is kept apart from sent (a blocked run sends nothing, whatever it planned), sent counts what was
acknowledged in this run including batches left by an earlier one, and people (learners, staff) are
counted apart from classes and memberships. The report carries counts, reason codes, rule codes and the
OS user who allowed a hold: never personal data.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hwb_client import __version__, i18n
from hwb_client.core.plan import Upcoming

if TYPE_CHECKING:
    from hwb_client.errors import HwbClientError

Outcome = Literal["success", "partial", "failed", "blocked"]
PEOPLE = ("learner", "staff")

Tally = dict[str, dict[str, int]]  # kind -> op or reason -> count


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def add(tally: Tally, kind: str, name: str, count: int = 1) -> None:
    per_kind = tally.setdefault(kind, {})
    per_kind[name] = per_kind.get(name, 0) + count


def total(tally: Mapping[str, Mapping[str, int]], kinds: tuple[str, ...] | None = None) -> int:
    return sum(sum(v.values()) for k, v in tally.items() if kinds is None or k in kinds)


#: A run's outcome as people read it (the codes stay in JSON, the reports and the logs).
OUTCOMES: Mapping[str, str] = {
    "success": i18n.N_("success"),
    "partial": i18n.N_("partial"),
    "failed": i18n.N_("failed"),
    "blocked": i18n.N_("blocked"),
    "running": i18n.N_("running"),
}


def outcome_text(outcome: str) -> str:
    """``success`` → ``llwyddiant`` in Welsh; an unknown code as it is."""
    return i18n._(OUTCOMES[outcome]) if outcome in OUTCOMES else outcome


Gettext = Callable[[str], str]
NGettext = Callable[[str, str, int], str]


def _english(message: str) -> str:
    return message


def _english_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def people_and_classes(
    tally: Mapping[str, Mapping[str, int]], _: Gettext = _english, ngettext: NGettext = _english_plural
) -> str:
    """``15 people, 12 class memberships``: people, classes and memberships are never added together."""
    people = total(tally, PEOPLE)
    groups = total(tally, ("group",))
    memberships = total(tally, ("membership",))
    parts = []
    if people:
        parts.append(ngettext("{count} person", "{count} people", people).format(count=people))
    if groups:
        parts.append(ngettext("{count} class", "{count} classes", groups).format(count=groups))
    if memberships:
        parts.append(
            ngettext("{count} class membership", "{count} class memberships", memberships).format(
                count=memberships
            )
        )
    return ", ".join(parts) or _("nothing")


@dataclass
class RunResult:
    dfes_number: str
    run_id: str
    outcome: Outcome = "failed"
    message: str = ""
    started_at: str = field(default_factory=utcnow)
    finished_at: str = ""
    dry_run: bool = False
    as_of: dt.date | None = None
    planned: Tally = field(default_factory=dict)
    sent: Tally = field(default_factory=dict)
    held_back_by_kind: Tally = field(default_factory=dict)
    refused_by_kind: Tally = field(default_factory=dict)
    batches: int = 0
    resent_batches: int = 0
    resent_operations: int = 0
    holds: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    upcoming: list[Upcoming] = field(default_factory=list)
    #: the school's own report of held-back records (names them): shown on screen, never logged or stored
    held_back_details: list[tuple[str, str, str]] = field(default_factory=list)
    error_code: int | None = None
    #: batches an earlier run left, waiting to be resent (a dry run says so)
    pending_batches: int = 0
    #: the error the run ended on (its English text is ``message``); shown in the process's language
    error: HwbClientError | None = field(default=None, repr=False, compare=False)
    #: why the run report could not be delivered upstream, if it could not
    undelivered: HwbClientError | None = field(default=None, repr=False, compare=False)
    rows_read: int = 0

    @property
    def held_back(self) -> Counter[str]:
        """Held-back records per reason, all kinds together."""
        return _by_reason(self.held_back_by_kind)

    @property
    def refused(self) -> Counter[str]:
        return _by_reason(self.refused_by_kind)

    @property
    def counts(self) -> Tally:
        """What a person asks first: what was sent, or for a dry run what would be."""
        return self.planned if self.dry_run else self.sent

    def summary(self) -> str:
        """One line, in English (the run report's ``message``, sent upstream): what was sent, what is
        waiting, what was held back or refused."""
        return self._summary(_english, _english_plural)

    def summary_text(self) -> str:
        """The same line in the language of the process, for the screen."""
        return self._summary(i18n._, i18n.ngettext)

    def _summary(self, _: Gettext, ngettext: NGettext) -> str:
        if self.dry_run:
            planned = total(self.planned)
            text = ngettext(
                "dry run: {count} change would be sent; nothing was sent or changed",
                "dry run: {count} changes would be sent; nothing was sent or changed",
                planned,
            ).format(count=planned)
        else:
            sent, batches = total(self.sent), self.batches + self.resent_batches
            text = ngettext("{changes} sent in {batches}", "{changes} sent in {batches}", sent).format(
                changes=ngettext("{count} change", "{count} changes", sent).format(count=sent),
                batches=ngettext("{count} batch", "{count} batches", batches).format(count=batches),
            )
            if self.resent_operations:
                text += " " + ngettext(
                    "({count} from batches an earlier run left)",
                    "({count} from batches an earlier run left)",
                    self.resent_operations,
                ).format(count=self.resent_operations)
        if self.held_back_by_kind:
            held = people_and_classes(self.held_back_by_kind, _, ngettext)
            text += "; " + _("held back: {records}").format(records=held)
        if self.refused_by_kind:
            refused = people_and_classes(self.refused_by_kind, _, ngettext)
            text += "; " + _("refused by Hwb: {records}").format(records=refused)
        if self.overrides:
            rules = ", ".join(o["rule"] for o in self.overrides)
            text += "; " + _("allowed past the guard: {rules}").format(rules=rules)
        if self.pending_batches:
            text += "; " + ngettext(
                "{count} batch from an earlier run is waiting to be resent",
                "{count} batches from an earlier run are waiting to be resent",
                self.pending_batches,
            ).format(count=self.pending_batches)
        return text

    def fail(self, exc: HwbClientError, outcome: Outcome = "failed") -> None:
        """The run ended on ``exc``: its English text is the message sent upstream and stored; the screen
        shows it in the process's language (``shown_message``)."""
        self.outcome, self.message, self.error_code, self.error = outcome, exc.english, exc.exit_code, exc

    def not_delivered(self, exc: HwbClientError) -> None:
        """The run report could not be delivered upstream: for the operator the run has not succeeded."""
        from hwb_client.errors import ApiError

        self.outcome, self.error_code, self.undelivered = "failed", ApiError.exit_code, exc
        self.message = UNDELIVERED.format(message=self.message, problem=exc.english)

    def report(self) -> dict[str, Any]:
        """The run report as stored locally and sent upstream: counts and codes, no personal data."""
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "client_version": __version__,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "counts": self.sent,
            "planned": self.planned,
            "held_back": dict(self.held_back),
            "held_back_by_kind": self.held_back_by_kind,
            "refused": self.refused_by_kind,
            "batches": self.batches,
            "resent_batches": self.resent_batches,
            "resent_operations": self.resent_operations,
            "holds": self.holds,
            "overrides": self.overrides,
            "message": self.message[:500],
        }


#: What is added to a run's message when its report could not be delivered upstream.
UNDELIVERED = i18n.N_("{message}; the run report could not be delivered ({problem})")


def _tallies(value: Any) -> Tally:
    if not isinstance(value, Mapping):
        return {}
    return {
        str(k): {str(n): int(c) for n, c in v.items()} for k, v in value.items() if isinstance(v, Mapping)
    }


def from_report(dfes_number: str, report: Mapping[str, Any]) -> RunResult:
    """A stored run report (any version) read back as a result: enough to say its summary again."""
    return RunResult(
        dfes_number,
        str(report.get("run_id") or ""),
        outcome=report.get("outcome") or "failed",
        message=str(report.get("message") or ""),
        sent=_tallies(report.get("counts")),
        planned=_tallies(report.get("planned")),
        held_back_by_kind=_tallies(report.get("held_back_by_kind")),
        refused_by_kind=_tallies(report.get("refused")),
        batches=int(report.get("batches") or 0),
        resent_batches=int(report.get("resent_batches") or 0),
        resent_operations=int(report.get("resent_operations") or 0),
        holds=list(report.get("holds") or []),
        overrides=list(report.get("overrides") or []),
    )


def shown_message(result: RunResult) -> str:
    """The run's message in the language of the process, said again from the result's fields (its
    ``message`` is the English one sent upstream): the summary, the holds of a blocked run, the error it
    ended on; any other message (a stored report of another version) as it is."""
    from hwb_client.core.guard import hold_report_message

    message = result.message
    if result.undelivered is not None:  # said again below, in the process's language
        message = message.removesuffix(UNDELIVERED.format(message="", problem=result.undelivered.english))
    if result.outcome == "blocked" and result.holds and not result.dry_run:
        holds = "; ".join(hold_report_message(h, i18n._) for h in result.holds)
        text = i18n._("run held, nothing sent: {holds}").format(holds=holds)
    elif result.error is not None:
        text = result.error.message
    elif message.startswith(english := result.summary()):
        text = result.summary_text() + message[len(english) :]
    else:
        text = message
    if result.undelivered is not None:
        text = i18n._(UNDELIVERED).format(message=text, problem=result.undelivered.message)
    return text


def report_message(dfes_number: str, report: Mapping[str, Any]) -> str:
    """A stored run report's message in the language of the process (``shown_message``)."""
    return shown_message(from_report(dfes_number, report))


def _by_reason(tally: Mapping[str, Mapping[str, int]]) -> Counter[str]:
    counter: Counter[str] = Counter()
    for reasons in tally.values():
        counter.update(reasons)
    return counter

"""``hwb-client why``: why has this person no account? One person, from three places:

1. the MIS, read live through the school's profile and validated as a run would (found? which row and MIS
   id? valid, or held back with the reason and what to change in the MIS);
2. the local state (sent in which run and when; acknowledged, refused with the national reason, or still
   waiting in the outbox);
3. the national side, through the signed per-record lookup of protocol 2 (the record's state at this
   school, its account, and for a learner whether the hashed UPN is on roll at another school).

A UPN typed by the operator is normalised and hashed here with the national key; the raw UPN is never
logged, stored or sent. The answer names people and is printed on screen only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwb_client.adapters.signing import RequestSigner, key_id_for, load_signing_key
from hwb_client.adapters.state import OUTBOX_OPS_VERSION, StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.core import upn as upn_mod
from hwb_client.core import validate as v
from hwb_client.core.model import Kind
from hwb_client.errors import HwbClientError
from hwb_client.i18n import N_, _, ngettext
from hwb_client.operator.school_read import SchoolRead, as_text, person_name, read_school
from hwb_client.settings import SchoolSettings, Settings

#: What a school can do about each national refusal reason.
REFUSAL_ADVICE: Mapping[str, str] = {
    "not_found": N_(
        "the national side has no such record to change (it was removed there): the next run "
        "sends it again as new if it is on roll; if it persists, ask Hwb support"
    ),
    "staff_start_date_missing": N_("enter the staff member's start date in the MIS"),
    "staff_code_missing": N_("give the staff member a staff code in the MIS"),
    "unknown_member": N_("the member's own record was not accepted: fix that record first"),
    "unknown_group": N_("the class was not accepted: check the class in the MIS"),
    "upn_key_unknown": N_("the national hashing key is not the current one: install the key Hwb issued"),
    "key_mismatch": N_("a client bug: report it with the run id"),
}
#: Each kind of record as the answer names it.
KINDS: Mapping[str, str] = {
    "learner": N_("learner"),
    "staff": N_("staff"),
    "person": N_("person"),
}


@dataclass(frozen=True)
class Query:
    upn: str | None = None
    staff_code: str | None = None
    mis_id: str | None = None
    name: str | None = None

    def describe(self) -> str:
        if self.upn is not None:
            return _("the UPN you typed (hashed here; not shown, logged or sent)")
        if self.staff_code is not None:
            return _("staff code {code}").format(code=self.staff_code)
        if self.mis_id is not None:
            return _("MIS id {mis_id}").format(mis_id=self.mis_id)
        return _("name containing {name}").format(name=repr(self.name))


@dataclass
class Finding:
    kind: str
    row: int | None = None
    mis_id: str | None = None
    name: str = ""
    staff_code: str | None = None
    key: str | None = None
    held_reason: str | None = None
    fix: str | None = None
    local: dict[str, Any] = field(default_factory=dict)
    national: dict[str, Any] | None = None
    national_error: str | None = None


@dataclass
class Answer:
    dfes_number: str
    school_name: str
    asked: str
    profile_name: str
    findings: list[Finding]
    not_in_mis: Finding | None = None
    upn_problem: str | None = None


def _matches(query: Query, kind: Kind, row: Mapping[str, object]) -> bool:
    if query.upn is not None:
        return kind is Kind.LEARNER and upn_mod.normalise(as_text(row.get("upn"))) == upn_mod.normalise(
            query.upn
        )
    if query.staff_code is not None:
        return kind is Kind.STAFF and as_text(row.get("staff_code")).casefold() == query.staff_code.casefold()
    if query.mis_id is not None:
        return as_text(row.get("mis_id")) == query.mis_id.strip()
    return bool(query.name) and str(query.name).casefold() in person_name(row).casefold()


def _key(read: SchoolRead, kind: Kind, row: Mapping[str, object]) -> str | None:
    if kind is Kind.STAFF:
        return as_text(row.get("staff_code")) or None
    try:
        return read.hasher(v.parse_upn(row.get("upn")))
    except v.Invalid:
        return None


def _findings(read: SchoolRead, query: Query) -> list[Finding]:
    found: list[Finding] = []
    for kind in (Kind.LEARNER, Kind.STAFF):
        for index, row in enumerate(read.rows[kind], start=1):
            if not _matches(query, kind, row):
                continue
            held = read.held_at(kind, index)
            found.append(
                Finding(
                    kind.value,
                    index,
                    as_text(row.get("mis_id")) or None,
                    person_name(row),
                    as_text(row.get("staff_code")) or None if kind is Kind.STAFF else None,
                    _key(read, kind, row),
                    held.reason.value if held else None,
                    _(v.ADVICE[held.reason]) if held else None,
                )
            )
    return found[:20]


def local_state(store: StateStore, kind: str, key: str) -> dict[str, Any]:
    """What the local state holds about one record: acknowledged, the last national answer, the outbox."""
    db = store.db
    state: dict[str, Any] = {}
    if store.schema_version == 0:
        return state
    row = db.execute(
        "SELECT status, updated_at, account_id FROM acknowledged WHERE kind = ? AND key = ?", (kind, key)
    ).fetchone()
    if row:
        state["acknowledged"] = {"status": row[0], "at": row[1], "account_id": row[2]}
    if store.has_table("record_results"):
        row = db.execute(
            "SELECT r.op, r.status, r.reason, r.run_id, r.answered_at, runs.started_at FROM record_results r "
            "LEFT JOIN runs ON runs.run_id = r.run_id WHERE r.kind = ? AND r.key = ?",
            (kind, key),
        ).fetchone()
        if row:
            state["last_answer"] = dict(
                zip(("op", "status", "reason", "run_id", "at", "run_started_at"), row, strict=True)
            )
    if store.schema_version >= OUTBOX_OPS_VERSION:  # [idx, op, kind, key, ...] in outbox.ops
        row = db.execute(
            "SELECT o.batch_id, o.run_id, o.attempts, o.created_at, json_extract(j.value, '$[1]') "
            "FROM outbox o, json_each(o.ops) j "
            "WHERE json_extract(j.value, '$[2]') = ? AND json_extract(j.value, '$[3]') = ?",
            (kind, key),
        ).fetchone()
    else:  # a state not yet migrated (read-only: a ``why`` before the first run of a new release)
        row = db.execute(
            "SELECT o.batch_id, o.run_id, o.attempts, o.created_at, p.op FROM outbox_ops p "
            "JOIN outbox o ON o.batch_id = p.batch_id WHERE p.kind = ? AND p.key = ?",
            (kind, key),
        ).fetchone()
    if row:
        state["outbox"] = dict(zip(("batch_id", "run_id", "attempts", "since", "op"), row, strict=True))
    return state


def _ask_nationally(settings: Settings, school: SchoolSettings, findings: list[Finding]) -> None:
    refs = [(f.kind, f.key) for f in findings if f.key]
    if not refs:
        return
    try:
        key = load_signing_key(settings.signing_key_path(school))
        signer = RequestSigner(key, key_id_for(school.dfes_number, key.public_key()))
        api = NationalApi(settings.api, signer=signer)
        try:
            answers = api.lookup_records(school.dfes_number, refs)
        finally:
            api.close()
    except HwbClientError as exc:
        for finding in findings:
            finding.national_error = exc.message
        return
    by_ref = {(a.get("kind"), a.get("key")): a for a in answers}
    for finding in findings:
        if finding.key:
            finding.national = by_ref.get((finding.kind, finding.key))


def explain(settings: Settings, school: SchoolSettings, query: Query, today: dt.date | None = None) -> Answer:
    """Answer for one person (several when a name matches more than one)."""
    read = read_school(settings, school, today or dt.date.today())
    answer = Answer(
        school.dfes_number, school.name, query.describe(), read.profile_name, _findings(read, query)
    )
    if not answer.findings:
        answer.not_in_mis = _not_in_mis(read, query, answer)
    everyone = answer.findings + ([answer.not_in_mis] if answer.not_in_mis and answer.not_in_mis.key else [])
    store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
    try:
        for finding in everyone:
            if finding.key:
                finding.local = local_state(store, finding.kind, finding.key)
    finally:
        store.close()
    _ask_nationally(settings, school, everyone)
    return answer


def _not_in_mis(read: SchoolRead, query: Query, answer: Answer) -> Finding:
    """Nobody matched: still look up the record the query names (a UPN is hashed, a code as is)."""
    if query.upn is not None:
        try:
            return Finding("learner", key=read.hasher(v.parse_upn(query.upn)))
        except v.Invalid as exc:
            answer.upn_problem = f"{exc.reason.value}: {_(v.ADVICE[exc.reason])}"
            return Finding("learner")
    if query.staff_code is not None:
        return Finding("staff", staff_code=query.staff_code, key=query.staff_code.strip())
    return Finding("person")


# -- the answer, as text ----------------------------------------------------------------------------------


def _sent_lines(finding: Finding) -> list[str]:
    lines: list[str] = []
    last = finding.local.get("last_answer")
    if last:
        when = _("in run {run_id} (started {started}), answered {answered}").format(
            run_id=last["run_id"], started=last.get("run_started_at") or "?", answered=last["at"]
        )
        if last["status"] == "refused":
            reason = last.get("reason") or "unknown"
            lines.append(
                "  "
                + _("sent: {op} {when}: REFUSED by Hwb: {reason}").format(
                    op=last["op"], when=when, reason=reason
                )
            )
            advice = REFUSAL_ADVICE.get(reason, N_("ask Hwb support, quoting the run id"))
            lines.append("  " + _("what to do: {advice}").format(advice=_(advice)))
        else:
            lines.append(
                "  "
                + _("sent: {op} {when}: {status} (acknowledged)").format(
                    op=last["op"], when=when, status=last["status"]
                )
            )
    ack = finding.local.get("acknowledged")
    if ack:
        lines.append(
            "  "
            + _("local state: acknowledged as {status} (last change {when})").format(
                status=ack["status"], when=ack["at"]
            )
        )
    elif not last and not finding.held_reason:
        lines.append("  " + _("local state: never acknowledged by Hwb"))
    box = finding.local.get("outbox")
    if box:
        attempts = ngettext("{count} attempt", "{count} attempts", int(box["attempts"])).format(
            count=box["attempts"]
        )
        lines.append(
            "  "
            + _(
                "waiting in the outbox: {op} in batch {batch_id} since {since} ({attempts}); it is resent "
                "on the next run"
            ).format(op=box["op"], batch_id=box["batch_id"], since=box["since"], attempts=attempts)
        )
    return lines


def _national_lines(finding: Finding) -> list[str]:
    if finding.national_error:
        return ["  " + _("national side: could not ask ({error})").format(error=finding.national_error)]
    record = finding.national
    if record is None:
        return [] if not finding.key else ["  " + _("national side: no answer for this record")]
    lines: list[str] = []
    status = record.get("status_at_school")
    if status is None:
        lines.append("  " + _("national side: no record of this person at this school"))
    else:
        account = record.get("account_active")
        state = _("active") if account else _("inactive") if account is False else _("unknown")
        lines.append(
            "  "
            + _("national side: {status} at this school since {since}; account {account} {state}").format(
                status=status,
                since=record.get("updated_at"),
                account=record.get("account_id") or "-",
                state=state,
            )
        )
    if record.get("on_roll_elsewhere"):
        lines.append(
            "  "
            + _(
                "national side: this learner is still ON ROLL AT ANOTHER SCHOOL (not named). Usually the old "
                "school has not recorded a leaving date, or its client has not run since: ask it to, then run "
                "this school again"
            )
        )
    return lines


def _finding_lines(finding: Finding) -> list[str]:
    kind = _(KINDS[finding.kind]) if finding.kind in KINDS else finding.kind
    head = _("{kind} row {row}").format(kind=kind, row=finding.row)
    if finding.mis_id:
        head += " " + _("(MIS id {mis_id})").format(mis_id=finding.mis_id)
    head += f": {finding.name or _('(no name)')}"
    if finding.staff_code:
        head += ", " + _("staff code {code}").format(code=finding.staff_code)
    lines = [head]
    if finding.held_reason:
        lines.append(
            "  "
            + _("MIS: found; HELD BACK ({reason}): nothing is sent for it").format(reason=finding.held_reason)
        )
        lines.append("  " + _("fix in the MIS: {fix}").format(fix=finding.fix))
    else:
        lines.append("  " + _("MIS: found, valid"))
    return lines + _sent_lines(finding) + _national_lines(finding)


def format_answer(answer: Answer) -> str:
    lines = [
        _("School {dfes} {name}: looking for {asked}")
        .format(dfes=answer.dfes_number, name=answer.school_name, asked=answer.asked)
        .rstrip(),
        _("(This answer names people: it is shown on this screen only, never logged, stored or sent.)"),
        "",
    ]
    for finding in answer.findings:
        lines += [*_finding_lines(finding), ""]
    missing = answer.not_in_mis
    if missing is not None:
        lines.append(
            _(
                "NOT FOUND IN THE MIS (learners and staff, read through the profile '{profile}'): "
                "check that the person is on roll in the MIS, with this UPN / staff code / MIS id"
            ).format(profile=answer.profile_name)
        )
        if answer.upn_problem:
            lines.append(
                "  " + _("the UPN typed cannot be used: {problem}").format(problem=answer.upn_problem)
            )
        if missing.key:
            lines += _sent_lines(missing) + _national_lines(missing)
    return "\n".join(lines).rstrip() + "\n"

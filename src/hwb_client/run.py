"""One provisioning run for one school: the only module that wires the core and the adapters together.

recover (close cut-off runs, resend the outbox, rebuild lost state) -> plan (``core.plan``: read, validate,
pseudonymise, diff, guard, batches) -> deliver (outbox, transport, state) -> report (locally, then to
the national API), whatever happened.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import uuid
from dataclasses import dataclass

import structlog

from hwb_client import __version__, trust, verify
from hwb_client.adapters.national_key import keys_in_use
from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.adapters.state import StateStore, open_state
from hwb_client.adapters.transport import NationalApi
from hwb_client.core import guard
from hwb_client.core.model import Kind
from hwb_client.core.plan import BatchIds, BatchPolicy, Plan, plan
from hwb_client.core.snapshot import RowFingerprints
from hwb_client.delivery import freeze, reconcile, send, with_reading_failpoint
from hwb_client.enrolment import signer_for
from hwb_client.errors import HwbClientError, Interrupted, Joined, RunBlocked, StateStorageError
from hwb_client.i18n import N_
from hwb_client.operator.after_run import after_run
from hwb_client.operator.monitoring import held_back_to_log
from hwb_client.platform.failpoints import failpoint
from hwb_client.platform.lock import school_lock
from hwb_client.platform.users import os_user
from hwb_client.reporting import deliver_reports, finish_stale_runs, report_without_state
from hwb_client.run_result import RunResult, utcnow
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.run")


@dataclass
class _Run:
    settings: Settings
    school: SchoolSettings
    result: RunResult
    stop: threading.Event
    today: dt.date
    allowed: frozenset[str]
    verify_state: bool = False

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        return log.bind(dfes=self.school.dfes_number, run_id=self.result.run_id)  # type: ignore[no-any-return]


def run_school(
    settings: Settings,
    school: SchoolSettings,
    *,
    dry_run: bool = False,
    allow: frozenset[str] = frozenset(),
    stop: threading.Event | None = None,
    lock_wait_seconds: float = 0.0,
    today: dt.date | None = None,
    verify_state: bool = False,
    after: bool = True,
) -> RunResult:
    """Run one school on ``today`` (default: the date now). ``allow`` holds the guard flags a person
    gave (``--allow-mass-removal``, ``--allow-mass-update``); ``after=False`` leaves what follows a live
    run to the caller (a worker's parent). Raises ``RunInProgress`` when the school is locked and
    ``ConfigError`` for a bad setting; any other failure is returned as a failed run."""
    day = today or dt.date.today()
    result = RunResult(school.dfes_number, str(uuid.uuid4()), dry_run=dry_run, as_of=today)
    run = _Run(settings, school, result, stop or threading.Event(), day, allow, verify_state)
    if dry_run:
        with open_state(settings.client.state_dir, school.dfes_number, read_only=True) as state:
            _dry_run(run, state)
        return result
    try:
        with school_lock(settings.client.state_dir, school.dfes_number, wait_seconds=lock_wait_seconds):
            signer = signer_for(settings, school)
            with open_state(settings.client.state_dir, school.dfes_number, read_only=False) as state:
                api = NationalApi(settings.api, signer=signer, stop=run.stop)
                try:
                    _live_run(run, state, api)
                finally:
                    api.close()
    except StateStorageError as exc:
        report_without_state(settings, school, result, exc, run.stop)
        raise
    if after:
        after_run(settings, school, result)  # status file, Prometheus textfile, alerts; never raises
    return result


def _live_run(run: _Run, state: StateStore, api: NationalApi) -> None:
    result = run.result
    state.start_run(result.run_id, result.started_at)
    run.log.info("run_started", version=__version__, as_of=run.today.isoformat())
    try:
        trust.pin_response_keys(run.settings, run.school, api)  # answers must be signed by a pinned key
        _recover(run, state, api)
        decided = _plan(run, state, live=True)
        failpoint("after_diff")
        _check_holds(run, decided)
        _deliver(run, state, api, decided)
        result.outcome = "partial" if result.held_back_by_kind or result.refused_by_kind else "success"
        result.message = result.summary()
    except StateStorageError:
        raise  # nothing more can be written locally: run_school reports it upstream directly
    except RunBlocked as exc:
        result.fail(exc, "blocked")
        run.log.warning("run_blocked", rules=[h["rule"] for h in result.holds])
    except HwbClientError as exc:
        result.fail(exc)
        if isinstance(exc, Interrupted):
            run.log.warning("run_interrupted")
        else:
            run.log.error("run_failed", error_type=type(exc).__name__, error=exc.english)
    result.finished_at = utcnow()
    state.finish_run(result.run_id, result.report())
    if not run.stop.is_set():
        deliver_reports(state, api, run.school.dfes_number, result)
    run.log.info(
        "run_finished",
        outcome=result.outcome,
        batches=result.batches,
        held_back=result.held_back_by_kind,
        held_back_reasons=dict(result.held_back),
    )


def _dry_run(run: _Run, state: StateStore) -> None:
    """Read, validate, diff and ask the guard; send nothing, change nothing."""
    result = run.result
    try:
        decided = _plan(run, state, live=False)
    except HwbClientError as exc:
        result.fail(exc)
        result.finished_at = utcnow()
        return
    if decided.blocked:
        result.outcome, result.error_code = "blocked", RunBlocked.exit_code
    else:
        result.outcome = "partial" if result.held_back_by_kind else "success"
    result.pending_batches = state.count_pending()
    result.message = result.summary()
    result.finished_at = utcnow()


def _recover(run: _Run, state: StateStore, api: NationalApi) -> None:
    """Close runs cut off by a stop, resend what an earlier run froze, rebuild lost state."""
    finish_stale_runs(state, run.result.run_id)
    pending = state.pending_batches()
    for batch in pending:
        send(api, state, batch, run.result, run.stop)
        run.result.resent_batches += 1
        run.result.resent_operations += len(batch.ops)
    if pending:
        run.log.info("outbox_resent", batches=len(pending))
    if state.needs_reconcile():
        reconcile(api, state, run.school.dfes_number)
    now = dt.datetime.now(dt.UTC)
    if run.verify_state or verify.is_due(state, now, run.settings.api.verify_every_days):
        verify.verify(api, state, run.school.dfes_number, now)  # anti-entropy: may forget what to resend


def _plan(run: _Run, state: StateStore, *, live: bool) -> Plan:
    settings, school, result = run.settings, run.school, run.result
    base = settings.config_path.parent if settings.config_path else None
    profile = load_profile(school.profile, base_dir=base)
    keys = keys_in_use(settings.client.national_key_file, run.today)
    # The memberships of classes a clean run left settled are not loaded if this read settles them again.
    settled = state.settled_classes()
    settled_school = state.settled_school(settled)
    acknowledged, known = state.index(leave_out=frozenset({Kind.MEMBERSHIP}) if settled else frozenset())
    memberships = functools.cache(lambda same, read: state.kind_index(Kind.MEMBERSHIP, same, read, settled))
    fingerprints = None
    if state.fingerprint_key is not None:
        context = f"{'+'.join(keys.key_ids)}|{profile.profile.name}"
        later = (lambda same, read: memberships(same, read)[1]) if settled else None
        fingerprints = RowFingerprints(state.fingerprint_key, context, known, later)
    source = MisSource.connect(school.connection_string(), school.dfes_number, profile)
    try:
        decided = plan(
            with_reading_failpoint(source.source_rows()),
            hasher=keys.current,
            acknowledged=acknowledged,
            today=run.today,
            guard_policy=guard.GuardPolicy(**settings.guard.model_dump()),
            batch_policy=BatchPolicy(**settings.batches.model_dump()),
            ids=BatchIds(result.run_id, keys.current.key_id, lambda: str(uuid.uuid4())) if live else None,
            fingerprints=fingerprints,
            keyed=state.keyed,
            stored_digest=state.stored_digest,
            allowed_flags=run.allowed,
            held_before=state.held_before(),
            previous_hasher=keys.previous,
            settled=settled,
            settled_school=settled_school,
            later_memberships=(lambda same, read: memberships(same, read)[0]) if settled else None,
        )
    finally:
        source.close()
    _note_plan(run, state, decided, live=live)
    return decided


def _note_plan(run: _Run, state: StateStore, decided: Plan, *, live: bool) -> None:
    snapshot, result = decided.snapshot, run.result
    for kind in Kind:
        run.log.info(
            "source_read", kind=kind.value, rows=snapshot.rows_read[kind], valid=snapshot.count(kind)
        )
    for held in held_back_to_log(state, snapshot, remember=live):  # only when a record's reason changed
        run.log.info("record_held_back", kind=held.kind.value, ref=held.ref, reason=held.reason.value)
    result.rows_read = sum(snapshot.rows_read.values())
    result.planned = decided.counts()
    result.held_back_by_kind = decided.held_back_by_kind()
    result.held_back_details = [
        (h.kind.value, snapshot.labels.get(i, h.ref), h.reason.value)
        for i, h in enumerate(snapshot.held_back)
    ]
    result.upcoming = decided.upcoming(run.today)
    result.holds = [hold.to_report() for hold in decided.holds]
    user = os_user()
    result.overrides = [{**hold.to_report(), "user": user} for hold in decided.overridden]


def _check_holds(run: _Run, decided: Plan) -> None:
    if decided.holds:
        holds = Joined("; ", (h.message for h in decided.holds))
        raise RunBlocked(N_("run held, nothing sent: {holds}"), holds=holds)
    for hold in decided.overridden:
        run.log.warning(
            "guard_overridden", rule=hold.rule.value, kind=hold.kind, count=hold.count, limit=hold.limit
        )


def _deliver(run: _Run, state: StateStore, api: NationalApi, decided: Plan) -> None:
    if decided.rekeyed:  # a national key changeover: the state follows the new pseudonyms first
        state.rekey(decided.rekeyed)
        run.log.info("state_rekeyed", records=len(decided.rekeyed))
    frozen = [freeze(b, decided) for b in decided.batches]
    state.add_to_outbox(frozen)
    # frozen in the outbox now: the plan lets its operations go (a large school's first run peaks here)
    decided.batches.clear()
    decided.operations.clear()
    failpoint("after_outbox")
    for batch in frozen:
        send(api, state, batch, run.result, run.stop)
        run.result.batches += 1
        failpoint("mid_push")
    with state.transaction():
        state.remember_held_before(
            guard.held_back_sent(decided.snapshot, state.acknowledged_for(decided.snapshot.held_keys))
        )
    run.log.info("fingerprints_remembered", records=state.remember_fingerprints(decided.snapshot))
    snapshot = decided.snapshot
    if snapshot.settled_classes:
        run.log.info(
            "memberships_settled_before",
            classes=len(snapshot.settled_classes),
            records=snapshot.settled[Kind.MEMBERSHIP],
            by_whole_read=snapshot.school_settled,  # no class compared: the whole read is as kept
        )
    classes = decided.settles_classes
    if run.result.refused_by_kind:  # not every operation applied
        return
    if classes:
        kept = state.settle_classes(classes, run.result.run_id)
        if kept:
            records = sum(classes[gid].records for gid in kept)
            run.log.info("memberships_settled", classes=len(kept), records=records)
    if snapshot.school_token is not None and not snapshot.school_settled:  # not the one kept again
        state.settle_school(*snapshot.school_token)


__all__ = ["RunResult", "run_school", "signer_for"]

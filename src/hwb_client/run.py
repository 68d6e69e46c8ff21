"""One provisioning run for one school: the only module that wires the core and the adapters together.

source -> validate/pseudonymise (snapshot) -> diff -> guard -> batches -> outbox -> transport -> state,
and at the end, whatever happened, a run report to the national API and to the local state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from hwb_client import __version__, trust, verify
from hwb_client.adapters.national_key import load_national_key
from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.adapters.signing import RequestSigner, key_id_for, load_signing_key
from hwb_client.adapters.state import PendingBatch, StateStore, set_aside
from hwb_client.adapters.transport import NationalApi
from hwb_client.core import guard
from hwb_client.core.batches import Batch, build_batches
from hwb_client.core.diff import ACTIVE, LEFT, AckIndex, diff
from hwb_client.core.model import Kind, Operation
from hwb_client.core.snapshot import Known, RowFingerprints, Snapshot, SourceRows, build_snapshot
from hwb_client.errors import (
    ApiError,
    HwbClientError,
    Interrupted,
    MisError,
    RunBlocked,
    StateError,
)
from hwb_client.platform.failpoints import failpoint
from hwb_client.platform.lock import school_lock
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.run")

Outcome = Literal["success", "partial", "failed", "blocked"]


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RunResult:
    """What one run did, for the CLI, the daemon and the run report."""

    dfes_number: str
    run_id: str
    outcome: Outcome = "failed"
    message: str = ""
    started_at: str = field(default_factory=_utcnow)
    finished_at: str = ""
    dry_run: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    held_back: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    resent_batches: int = 0
    guard_reasons: list[str] = field(default_factory=list)
    #: the school's own report of held-back records (names them): shown on screen, never logged or stored
    held_back_details: list[tuple[str, str, str]] = field(default_factory=list)
    error_code: int | None = None

    def report(self) -> dict[str, Any]:
        """The run report as sent upstream: counts and reason codes only, no personal data."""
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "client_version": __version__,
            "counts": self.counts,
            "held_back": dict(self.held_back),
            "batches": self.batches,
            "message": self.message[:500],
        }


def _count(operations: list[Operation] | tuple[Operation, ...]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for operation in operations:
        per_kind = counts.setdefault(operation.kind.value, {})
        per_kind[operation.op.value] = per_kind.get(operation.op.value, 0) + 1
    return counts


def _pending(batch: Batch) -> PendingBatch:
    ops = tuple(
        (
            op.op,
            op.kind,
            op.key,
            op.digest,
            op.record.get("year_group") if op.record is not None and op.kind is Kind.LEARNER else None,
        )
        for op in batch.operations
    )
    return PendingBatch(batch.batch_id, batch.run_id, batch.sequence, batch.body, batch.content_encoding, ops)


@contextlib.contextmanager
def _open_state(settings: Settings, school: SchoolSettings, *, read_only: bool) -> Iterator[StateStore]:
    state_dir = settings.client.state_dir
    try:
        store = StateStore.open(state_dir, school.dfes_number, read_only=read_only)
    except StateError:
        if read_only:
            raise
        moved = set_aside(state_dir, school.dfes_number)
        log.error("state_damaged_set_aside", dfes=school.dfes_number, moved_to=str(moved))
        store = StateStore.open(state_dir, school.dfes_number)
    try:
        yield store
    finally:
        store.close()


def signer_for(settings: Settings, school: SchoolSettings) -> RequestSigner:
    """The school's request signer, from its enrolled key file (``KeyFileError`` if missing or unsafe)."""

    key = load_signing_key(settings.signing_key_path(school))
    return RequestSigner(key, key_id_for(school.dfes_number, key.public_key()))


def _fingerprints(state: StateStore, context: str, known: dict[bytes, Known]) -> RowFingerprints | None:
    if state.fingerprint_key is None:
        return None
    return RowFingerprints(state.fingerprint_key, context, known)


def _with_failpoint(rows: SourceRows) -> SourceRows:
    """The same streams, with the ``while_reading`` crash point after the first learner row."""

    def learners() -> Iterator[Mapping[str, object]]:
        for index, row in enumerate(rows.learners):
            if index == 1:
                failpoint("while_reading")
            yield row

    return dataclasses.replace(rows, learners=learners())


class _Run:
    def __init__(
        self,
        settings: Settings,
        school: SchoolSettings,
        result: RunResult,
        *,
        stop: threading.Event,
        today: dt.date,
    ) -> None:
        self.settings = settings
        self.school = school
        self.result = result
        self.stop = stop
        self.today = today
        self.dfes = school.dfes_number
        self.log = log.bind(dfes=self.dfes, run_id=result.run_id)
        self.snapshot = Snapshot()
        self.acknowledged: AckIndex = {}
        self.verify_state = False

    def read_snapshot(self, state: StateStore) -> Snapshot:
        profile_base = self.settings.config_path.parent if self.settings.config_path else None
        profile = load_profile(self.school.profile, base_dir=profile_base)
        hasher = load_national_key(self.settings.client.national_key_file)
        self.upn_key_id = hasher.key_id
        self.acknowledged, known = state.index()
        source = MisSource.connect(self.school.connection_string(), self.dfes, profile)
        try:
            snapshot = build_snapshot(
                _with_failpoint(source.source_rows()),
                hasher,
                self.today,
                _fingerprints(state, f"{hasher.key_id}|{profile.profile.name}", known),
            )
        finally:
            source.close()
        for kind in Kind:
            self.log.info(
                "source_read", kind=kind.value, rows=snapshot.rows_read[kind], valid=snapshot.count(kind)
            )
        for held in snapshot.held_back:
            self.log.info("record_held_back", kind=held.kind.value, ref=held.ref, reason=held.reason.value)
        self.result.held_back = snapshot.held_back_counts()
        self.result.held_back_details = [
            (h.kind.value, snapshot.labels.get(i, h.ref), h.reason.value)
            for i, h in enumerate(snapshot.held_back)
        ]
        return snapshot

    def plan(
        self, state: StateStore, snapshot: Snapshot | None = None
    ) -> tuple[list[Operation], guard.GuardDecision]:
        """Read the MIS (unless already read), diff against what was acknowledged, and ask the guard."""
        snapshot = snapshot or self.read_snapshot(state)
        self.snapshot = snapshot
        acknowledged = self.acknowledged
        operations = diff(snapshot, acknowledged, state.stored_digest)
        decision = guard.check(
            snapshot,
            operations,
            acknowledged,
            max_removal_share=self.settings.guard.max_removal_share,
            min_removals=self.settings.guard.min_removals,
            today=self.today,
        )
        self.result.counts = _count(operations)
        return operations, decision

    def send(self, api: NationalApi, state: StateStore, batch: PendingBatch) -> None:
        if self.stop.is_set():
            raise Interrupted("stopped between batches; the rest is resent on the next run")
        state.note_attempt(batch.batch_id)
        sent_at = time.monotonic()
        try:
            ack = api.post_batch(
                self.dfes, batch.batch_id, batch.body, batch.content_encoding, len(batch.ops)
            )
        except ApiError as exc:
            if exc.permanent:
                # The server will never take these bytes: drop the batch (state did not advance, so the
                # next run's diff rebuilds what it held) rather than retrying it forever.
                state.discard(batch.batch_id)
                self.log.error("batch_discarded", batch_id=batch.batch_id, status=exc.status)
            raise
        api_seconds = time.monotonic() - sent_at
        failpoint("after_server_ack")
        tally = state.acknowledge(batch, ack.results)
        for name, count in tally.items():
            if name.startswith("refused:"):
                self.result.refused[name.removeprefix("refused:")] += count
        self.log.info(
            "batch_acknowledged",
            batch_id=batch.batch_id,
            batch_seq=batch.sequence,
            operations=len(batch.ops),
            body_bytes=len(batch.body),
            api_seconds=round(api_seconds, 4),
            applied=tally.get("applied", 0),
            unchanged=tally.get("unchanged", 0),
            refused=tally.get("refused", 0),
            replayed=ack.replayed,
        )

    def reconcile(self, api: NationalApi, state: StateStore) -> int:
        """Rebuild lost local state from the national manifest, so nothing is re-sent or duplicated."""
        manifest = api.manifest(self.dfes)
        records = [
            (Kind(r.kind), r.key, r.digest, LEFT if r.status == LEFT else ACTIVE, r.account_id)
            for r in manifest.records
        ]
        count = state.replace_acknowledged(records)
        self.log.info("state_reconciled", records=count)
        return count


def run_school(
    settings: Settings,
    school: SchoolSettings,
    *,
    dry_run: bool = False,
    allow_mass_removal: bool = False,
    stop: threading.Event | None = None,
    lock_wait_seconds: float = 0.0,
    today: dt.date | None = None,
    verify_state: bool = False,
) -> RunResult:
    """Run one school. Raises ``RunInProgress`` when the school is locked and ``ConfigError`` for a bad
    setting found before anything was read; any other failure is returned as a failed run."""
    result = RunResult(school.dfes_number, str(uuid.uuid4()), dry_run=dry_run)
    stop = stop or threading.Event()
    run = _Run(settings, school, result, stop=stop, today=today or dt.date.today())
    run.verify_state = verify_state
    if dry_run:
        return _dry_run(settings, school, run)
    with school_lock(settings.client.state_dir, school.dfes_number, wait_seconds=lock_wait_seconds):
        signer = signer_for(settings, school)
        with _open_state(settings, school, read_only=False) as state:
            api = NationalApi(settings.api, signer=signer, stop=stop)
            try:
                _live_run(run, state, api, allow_mass_removal=allow_mass_removal)
            finally:
                api.close()
    return result


def _finish(run: _Run, state: StateStore, api: NationalApi) -> None:
    """Record the run locally, then deliver every undelivered run report (this one last)."""
    result = run.result
    result.finished_at = _utcnow()
    state.finish_run(result.run_id, result.report())
    if not run.stop.is_set():
        _deliver_reports(run, state, api)
    run.log.info(
        "run_finished",
        outcome=result.outcome,
        batches=result.batches,
        held_back=sum(result.held_back.values()),
        refused=sum(result.refused.values()),
    )


def _deliver_reports(run: _Run, state: StateStore, api: NationalApi) -> None:
    for row in state.unreported_runs():
        if row.report is None:
            continue
        try:
            failpoint("while_reporting")
            api.post_run_report(run.dfes, row.report)
        except ApiError as exc:
            if exc.permanent:
                # Refused for good (the national side will never take these bytes): set it aside so
                # that it does not hold every later report, and this run, hostage.
                state.mark_reported(row.run_id)
                run.log.error("run_report_refused", report_run_id=row.run_id, status=exc.status)
                continue
            _report_failed(run, state, exc)
            return
        except Interrupted as exc:
            _report_failed(run, state, exc)
            return
        state.mark_reported(row.run_id)
        run.log.info("run_reported", report_run_id=row.run_id, outcome=row.outcome)


def _report_failed(run: _Run, state: StateStore, exc: HwbClientError) -> None:
    result = run.result
    run.log.warning("run_report_not_sent", error=exc.message)
    if result.outcome in {"success", "partial"}:
        # The national side cannot see this run: for the operator, it has not succeeded.
        result.outcome, result.error_code = "failed", ApiError.exit_code
        result.message += f"; the run report could not be delivered ({exc.message})"
        state.finish_run(result.run_id, result.report())


def _live_run(run: _Run, state: StateStore, api: NationalApi, *, allow_mass_removal: bool) -> None:
    result = run.result
    state.start_run(result.run_id, result.started_at)
    run.log.info("run_started", version=__version__)
    try:
        trust.pin_response_keys(run.settings, run.school, api)
        for stale in state.interrupted_runs():
            if stale != result.run_id:
                # One transaction: killed between the two, the cut-off run's partial report (not a valid
                # run report) would be queued for delivery, refused with 422, and fail every later run.
                with state.transaction():
                    state.finish_run(
                        stale,
                        {
                            "run_id": stale,
                            "outcome": "failed",
                            "finished_at": _utcnow(),
                            "message": "the run was cut off (process stopped)",
                        },
                    )
                    state.mark_reported(stale)
        pending = state.pending_batches()
        for batch in pending:
            run.send(api, state, batch)
            result.resent_batches += 1
        if pending:
            run.log.info("outbox_resent", batches=len(pending))
        if state.needs_reconcile():
            run.reconcile(api, state)
        now = dt.datetime.now(dt.UTC)
        if run.verify_state or verify.is_due(state, now, run.settings.api.verify_every_days):
            verify.verify(api, state, run.dfes, now)

        operations, decision = run.plan(state)
        failpoint("after_diff")
        if decision.blocked and not allow_mass_removal:
            result.guard_reasons = decision.reasons
            raise RunBlocked("run blocked, nothing sent: " + "; ".join(decision.reasons))
        if decision.blocked:
            run.log.warning("guard_overridden", reasons=len(decision.reasons))
        batches = build_batches(
            operations,
            run_id=result.run_id,
            upn_key_id=run.upn_key_id,
            today=run.today,
            new_id=lambda: str(uuid.uuid4()),
            max_operations=run.settings.batches.max_operations,
            max_bytes=run.settings.batches.max_bytes,
            gzip_level=run.settings.batches.gzip_level,
        )
        frozen = [_pending(b) for b in batches]
        state.add_to_outbox(frozen)
        failpoint("after_outbox")
        for batch in frozen:
            run.send(api, state, batch)
            result.batches += 1
            failpoint("mid_push")
        bound = state.remember_fingerprints(run.snapshot)
        run.log.info("fingerprints_remembered", records=bound)
        sent = sum(len(b.ops) for b in frozen)
        held = sum(result.held_back.values())
        refused = sum(result.refused.values())
        result.outcome = "partial" if held or refused else "success"
        result.message = (
            f"{sent} change(s) sent in {len(frozen)} batch(es)"
            + (f"; {held} record(s) held back" if held else "")
            + (f"; {refused} operation(s) refused" if refused else "")
        )
    except RunBlocked as exc:
        result.outcome, result.message, result.error_code = "blocked", exc.message, exc.exit_code
        run.log.warning("run_blocked", reasons=len(result.guard_reasons))
    except Interrupted as exc:
        result.outcome, result.message, result.error_code = "failed", exc.message, exc.exit_code
        run.log.warning("run_interrupted")
    except (MisError, ApiError, StateError) as exc:
        result.outcome, result.message, result.error_code = "failed", exc.message, exc.exit_code
        run.log.error("run_failed", error_type=type(exc).__name__, error=exc.message)
    except HwbClientError as exc:
        result.outcome, result.message, result.error_code = "failed", exc.message, exc.exit_code
        run.log.error("run_failed", error_type=type(exc).__name__, error=exc.message)
    _finish(run, state, api)


def _dry_run(settings: Settings, school: SchoolSettings, run: _Run) -> RunResult:
    """Read, validate and diff; print nothing, send nothing, change nothing."""
    result = run.result
    with _open_state(settings, school, read_only=True) as state:
        try:
            snapshot = run.read_snapshot(state)
        except MisError as exc:
            result.outcome, result.message, result.error_code = "failed", exc.message, exc.exit_code
            result.finished_at = _utcnow()
            return result
        operations, decision = run.plan(state, snapshot)
        result.guard_reasons = decision.reasons
        result.outcome = "blocked" if decision.blocked else ("partial" if result.held_back else "success")
        result.message = f"dry run: {len(operations)} change(s) would be sent; nothing was sent or changed"
        pending = state.count_pending()
        if pending:
            result.message += f"; {pending} batch(es) from an earlier run are waiting to be resent"
    result.finished_at = _utcnow()
    return result


__all__ = ["RunResult", "run_school", "signer_for"]

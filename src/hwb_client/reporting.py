"""Run reports: closing runs a stop cut off, and delivering every undelivered report upstream.

The national portal's "Last Run" is what a school sees first, so a run whose report cannot be delivered
has not succeeded for the operator either. A report the national API refuses for good is set aside, so
that it does not hold every later report hostage.
"""

from __future__ import annotations

import threading

import structlog

from hwb_client.adapters.state import StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.enrolment import signer_for
from hwb_client.errors import ApiError, HwbClientError, Interrupted, StateStorageError
from hwb_client.i18n import N_
from hwb_client.platform.failpoints import failpoint
from hwb_client.run_result import RunResult, utcnow
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.reporting")


def finish_stale_runs(state: StateStore, current_run_id: str) -> None:
    """Runs that started and never finished (the process was stopped) are closed as failed."""
    for stale in state.interrupted_runs():
        if stale == current_run_id:
            continue
        # One transaction: killed between the two, the cut-off run's partial report (not a valid run
        # report) would be queued for delivery, refused with 422, and fail every later run.
        with state.transaction():
            state.finish_run(
                stale,
                {
                    "run_id": stale,
                    "outcome": "failed",
                    "finished_at": utcnow(),
                    "message": N_("the run was cut off (process stopped)"),  # stored in English
                },
            )
            state.mark_reported(stale)


def deliver_reports(state: StateStore, api: NationalApi, dfes: str, result: RunResult) -> None:
    """Deliver every undelivered run report, this run's last; a failure marks this run failed."""
    bound = log.bind(dfes=dfes, run_id=result.run_id)
    for row in state.unreported_runs():
        if row.report is None:
            continue
        try:
            failpoint("while_reporting")
            api.post_run_report(dfes, row.report)
        except ApiError as exc:
            if exc.permanent:  # refused for good (adapters.replies.PERMANENTLY_REFUSED)
                state.mark_reported(row.run_id)
                bound.error("run_report_refused", report_run_id=row.run_id, status=exc.status)
                continue
            _report_failed(state, result, exc)
            return
        except Interrupted as exc:
            _report_failed(state, result, exc)
            return
        state.mark_reported(row.run_id)
        bound.info("run_reported", report_run_id=row.run_id, outcome=row.outcome)


def _report_failed(state: StateStore, result: RunResult, exc: HwbClientError) -> None:
    log.warning("run_report_not_sent", dfes=result.dfes_number, run_id=result.run_id, error=exc.english)
    if result.outcome in {"success", "partial"}:
        # The national side cannot see this run: for the operator, it has not succeeded.
        result.not_delivered(exc)
        state.finish_run(result.run_id, result.report())


def report_without_state(
    settings: Settings,
    school: SchoolSettings,
    result: RunResult,
    exc: StateStorageError,
    stop: threading.Event,
) -> None:
    """The state directory is full or read-only: the run cannot be recorded locally, but the national
    side still hears that it failed (best effort: no report is queued for later)."""
    result.fail(exc)
    result.finished_at = utcnow()
    bound = log.bind(dfes=school.dfes_number, run_id=result.run_id)
    bound.error("run_failed", error_type=type(exc).__name__, error=exc.english)
    try:
        api = NationalApi(settings.api, signer=signer_for(settings, school), stop=stop)
    except HwbClientError:
        return
    try:
        api.post_run_report(school.dfes_number, result.report())
        bound.info("run_reported", report_run_id=result.run_id, outcome=result.outcome)
    except HwbClientError as report_error:
        bound.warning("run_report_not_sent", error=report_error.english)
    finally:
        api.close()

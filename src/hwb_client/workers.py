"""Schools side by side in worker processes, so that a run of many schools uses every core.

A run's per-row work (reading rows through pyodbc, fingerprints, the snapshot, the diff) is Python, held
to one core by the interpreter lock: two schools in two threads of one process share that core, two
schools in two processes use two. ``school_runner`` gives what the CLI and the daemon call for each
school: ``run_school_in_process`` where it helps (more than one school at a time, and a ``forkserver``:
Linux), else ``run.run_school`` itself, in the calling thread (one school at a time, or Windows, where
the service's schools run in threads of the service process).

Each school runs in a fresh process forked from a ``forkserver`` that has the client's modules imported
already: a fork, not an interpreter start. The worker gets the parent's settings, environment and
language; it sends its log records and then its one result (or the error it raised) back over a pipe.
The parent writes the records through its own handlers (console, journald, the one rotating log file),
and does what follows a run (status file, Prometheus textfile, alerts), so those files have one writer.

Stopping: the parent's stop event (SIGTERM/SIGINT, the service stop) is forwarded to the worker over a
second pipe, and the worker stops between batches as a run in a thread does, releasing its school lock
on the way out. A worker also stops when its parent dies (the pipe closes) and on SIGTERM/SIGINT of its
own (a Ctrl-C reaches the whole process group; systemd signals the whole control group). A worker killed
outright (SIGKILL, the OOM killer, a failpoint) leaves its school's state as a killed client would: the
next run recovers it. The parent reports that school as failed, exit code 70, and the others go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from hwb_client import i18n
from hwb_client.errors import HwbClientError, Phrase, WorkerDied
from hwb_client.i18n import N_
from hwb_client.run_result import RunResult, utcnow
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.workers")

RunSchool = Callable[..., RunResult]
_POLL_SECONDS = 0.2
_PRELOAD = ["hwb_client.workers", "hwb_client.run"]
_context: Any = None
_context_lock = threading.Lock()


def available() -> bool:
    """Whether schools can run in worker processes here (a ``forkserver``: Linux, not Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def school_runner(concurrent_schools: int) -> RunSchool:
    """What runs one school: in a worker process when schools run side by side and workers are
    available, else ``run.run_school`` in the calling thread."""
    if concurrent_schools > 1 and available():
        return run_school_in_process
    from hwb_client.run import run_school

    return run_school


@dataclass(frozen=True)
class _Job:
    settings: Settings
    school: SchoolSettings
    options: dict[str, Any]
    environ: dict[str, str]
    language: str
    log_level: int


def _shared_context() -> Any:
    """One ``forkserver`` per process, started on first use with the client's modules imported."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def run_school_in_process(
    settings: Settings,
    school: SchoolSettings,
    *,
    stop: threading.Event | None = None,
    **options: Any,
) -> RunResult:
    """``run.run_school`` in a worker process: the same result, the same errors raised (a held lock,
    a bad setting), then what follows a run, here. A worker that dies gives a failed result."""
    from hwb_client.operator.after_run import after_run

    stop = stop or threading.Event()
    context = _shared_context()
    results, results_end = context.Pipe(duplex=False)
    stop_end, stopper = context.Pipe(duplex=False)
    job = _Job(
        settings,
        school,
        options,
        dict(os.environ),
        i18n.language(),
        logging.getLogger().getEffectiveLevel(),
    )
    process = context.Process(
        target=_worker_main, args=(job, results_end, stop_end), name=f"hwb-school-{school.dfes_number}"
    )
    process.start()
    log.info("school_worker_started", dfes=school.dfes_number, pid=process.pid)
    results_end.close()
    stop_end.close()
    try:
        message = _receive(results, stop, stopper)
    finally:
        results.close()
        stopper.close()
        process.join()
    if message is None:
        return _died(school, options, process.exitcode)
    what, value = message
    if what == "error":
        raise value
    result: RunResult = value
    if not result.dry_run:
        after_run(settings, school, result)  # status file, Prometheus textfile, alerts; never raises
    return result


def _receive(results: Connection, stop: threading.Event, stopper: Connection) -> Any:
    """The worker's result or error, writing its log records meanwhile and forwarding ``stop``; None
    when it died without sending one."""
    forwarded = False
    while True:
        if stop.is_set() and not forwarded:
            forwarded = True
            with contextlib.suppress(OSError):  # a worker gone already: its result (or death) is in the pipe
                stopper.send(True)
        if not results.poll(_POLL_SECONDS):
            continue
        try:
            what, value = results.recv()
        except (EOFError, OSError):
            return None
        if what == "log":
            _write_record(value)
        else:
            return what, value


def _write_record(record: logging.LogRecord) -> None:
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _died(school: SchoolSettings, options: dict[str, Any], exitcode: int | None) -> RunResult:
    log.error("school_worker_died", dfes=school.dfes_number, exit_code=exitcode)
    if exitcode is not None and exitcode < 0:
        how = Phrase(N_("was killed by signal {signal}"), signal=-exitcode)
    else:
        how = Phrase(N_("exited with code {code}"), code=exitcode)
    result = RunResult(
        school.dfes_number,
        str(uuid.uuid4()),
        dry_run=options.get("dry_run", False),
        as_of=options.get("today"),
    )
    result.fail(
        WorkerDied(
            N_(
                "the process running this school {how} before it finished; nothing is lost: the next "
                "run resends what was not acknowledged and recovers the school's state"
            ),
            how=how,
        )
    )
    result.finished_at = utcnow()
    return result


# ---------------------------------------------------------------------------------------------- the worker


class _Forward(logging.Handler):
    """In a worker: each log record, as structlog made it, sent to the parent to be written there."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__()
        self.send = send
        self.parent_gone = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info:  # a traceback cannot cross a pipe: its text does
                text = "".join(traceback.format_exception(*record.exc_info))
                if isinstance(record.msg, dict):
                    record.msg = {**record.msg, "exception": text}
                record.exc_info, record.exc_text = None, None
            if not isinstance(record.msg, dict):
                record.msg, record.args = record.getMessage(), None
            if not self.parent_gone:
                self.send(("log", record))
                return
        except OSError:  # the parent has gone (killed): this worker is stopping; say why on stderr
            self.parent_gone = True
        except Exception:  # a log record must never fail a run
            self.handleError(record)
            return
        with contextlib.suppress(Exception):
            sys.stderr.write(json.dumps(record.msg, default=str) + "\n")


def _worker_main(job: _Job, results: Connection, stop_end: Connection) -> None:
    """In the worker: become the parent's environment and language, take a stop from the parent or a
    signal, run the school, send one message."""
    os.environ.clear()
    os.environ.update(job.environ)
    from hwb_client import logs
    from hwb_client.platform import failpoints

    failpoints.arm_from_environment()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_stop_when_told, args=(stop_end, stop), daemon=True).start()
    sending = threading.Lock()

    def send(message: Any) -> None:
        with sending:
            results.send(message)

    i18n.activate(job.language)
    logs.configure_forwarding(_Forward(send), level=job.log_level)
    tune_gc_for_runs()
    from hwb_client.run import run_school

    try:
        try:
            result = run_school(job.settings, job.school, stop=stop, after=False, **job.options)
            message: tuple[str, Any] = ("result", _portable(result))
        except HwbClientError as exc:
            message = ("error", _portable_error(exc))
        with contextlib.suppress(OSError):  # a parent gone has no use for it; the state has it all
            send(message)
    except Exception:  # a bug: logged with its traceback; the parent reports the school as failed
        log.error("unexpected_error", dfes=job.school.dfes_number, traceback=traceback.format_exc())
        os._exit(WorkerDied.exit_code)
    finally:
        results.close()


def _stop_when_told(stop_end: Connection, stop: threading.Event) -> None:
    with contextlib.suppress(EOFError, OSError):  # the parent has gone: stop as if told
        stop_end.recv()
    stop.set()


def tune_gc_for_runs() -> None:
    """A run builds hundreds of thousands of small dicts and records that live until its school is done;
    with the default thresholds the cyclic collector rescans them over and over (about a sixth of an LA
    run's CPU). Objects from start-up are frozen out of its way and it runs less often; cycles are
    still collected. (The CLI's process and each worker.)"""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _portable_error(exc: HwbClientError) -> HwbClientError:
    """``exc`` if it crosses a pipe whole, else the same kind of error with its English text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, made on the line before
        return exc
    except Exception:
        try:
            return type(exc)(exc.english)
        except Exception:
            return HwbClientError(exc.english)


def _portable(result: RunResult) -> RunResult:
    for name in ("error", "undelivered"):
        error = getattr(result, name)
        if error is not None:
            setattr(result, name, _portable_error(error))
    return result

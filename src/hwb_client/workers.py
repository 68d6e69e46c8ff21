"""Schools side by side in worker processes, so that a run of many schools uses every core.

A run's per-row work (reading rows through pyodbc, fingerprints, the snapshot, the diff) is Python, held
to one core by the interpreter lock: two schools in two threads of one process share that core, two
schools in two processes use two. ``school_runner`` gives what the CLI and the daemon call for each
school: a ``SchoolWorkers`` pool where it helps (more than one school at a time, and a ``forkserver``:
Linux), else ``run.run_school`` itself, in the calling thread (one school at a time, or Windows, where
the service's schools run in threads of the service process).

The pool holds up to ``schedule.max_concurrent_schools`` worker processes, forked from a ``forkserver``
that has the client's modules imported already. Each worker runs one school, then the next: a process
that has run a school reuses the memory it took for the next (a fresh process per school spent a third
of its time in the kernel, faulting in new pages). For each school the worker takes the parent's
settings, environment and language; it sends its log records and then its one result (or the error it
raised) back over a pipe. The parent writes the records through its own handlers (console, journald,
the one rotating log file) and does what follows a run (status file, Prometheus textfile, alerts), so
those files have one writer. Idle workers are closed when the run of every school (or the daemon's
round) is over.

Stopping: the parent's stop event (SIGTERM/SIGINT, the service stop) is forwarded to the worker over a
second pipe, and the worker stops between batches as a run in a thread does, releasing its school lock
on the way out. A worker also stops when its parent dies (the pipe closes) and on SIGTERM/SIGINT of its
own (a Ctrl-C reaches the whole process group; systemd signals the whole control group). A worker killed
outright (SIGKILL, the OOM killer, a failpoint) leaves its school's state as a killed client would: the
next run recovers it. The parent reports that school as failed, exit code 70, and the others go on in
a new worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from hwb_client import i18n
from hwb_client.errors import HwbClientError, Phrase, WorkerDied
from hwb_client.i18n import N_
from hwb_client.launch import PRELOAD
from hwb_client.run_result import RunResult, utcnow
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.workers")

RunSchool = Callable[..., RunResult]
_POLL_SECONDS = 0.2
_context: Any = None
_context_lock = threading.Lock()


def available() -> bool:
    """Whether schools can run in worker processes here (a ``forkserver``: Linux, not Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def school_runner(concurrent_schools: int) -> RunSchool:
    """What runs one school: a ``SchoolWorkers`` pool when schools run side by side and workers are
    available (close it when done: ``close_idle``), else ``run.run_school`` in the calling thread."""
    if concurrent_schools > 1 and available():
        return SchoolWorkers(concurrent_schools)
    from hwb_client.run import run_school

    return run_school


def largest_first(state_dir: Path, schools: Sequence[SchoolSettings]) -> list[SchoolSettings]:
    """The schools in the order to start them when they run side by side: largest first, by the size
    of each one's state database (what its last runs acknowledged), the config's order between equals
    and for schools with no state yet. Started in the config's order, a large secondary school listed
    last runs on one core while the others stand idle; largest first, the small ones fill in at the
    end (the longest-job-first rule)."""

    def size(school: SchoolSettings) -> int:
        try:
            return (state_dir / f"{school.dfes_number}.sqlite3").stat().st_size
        except (OSError, ValueError):  # no state yet, or a path the run itself will refuse, saying why
            return 0

    return sorted(schools, key=size, reverse=True)  # sorted is stable: ties keep the config's order


def close_idle(run_school: object) -> None:
    """Close a pool's idle workers (nothing for ``run.run_school``)."""
    if isinstance(run_school, SchoolWorkers):
        run_school.close_idle()


@dataclass(frozen=True)
class _Job:
    settings: Settings
    school: SchoolSettings
    options: dict[str, Any]
    environ: dict[str, str]
    language: str
    log_level: int


def _shared_context() -> Any:
    """One ``forkserver`` per process, with the client's modules imported: the one the command's entry
    point started before it imported the client (``launch``), else started here on first use."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


class _Worker:
    """One worker process, its pipe for results and log records and its pipe for jobs and stops."""

    def __init__(self, context: Any) -> None:
        self.results, results_end = context.Pipe(duplex=False)
        control_end, self.control = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_worker_main, args=(results_end, control_end), name="hwb-school-worker"
        )
        self.process.start()
        results_end.close()
        control_end.close()

    def run(self, job: _Job, stop: threading.Event) -> Any:
        """The job's result or error; None if the worker died (or had died) without sending one."""
        try:
            self.control.send(("job", job))
        except OSError:
            return None
        return _receive(self.results, stop, self.control)

    def close(self, *, wait: float = 10.0) -> None:
        """Close its pipes: an idle worker exits at once (a dead one is only reaped)."""
        self.control.close()
        self.results.close()
        self.process.join(wait)
        if self.process.is_alive():  # pragma: no cover - a worker that ignores its closed pipe
            self.process.kill()
            self.process.join()


class SchoolWorkers:
    """``run.run_school`` in worker processes, at most ``size`` at a time (the callers' threads decide
    how many run at once): called as ``run_school`` is, with the same result and the same errors raised
    (a held lock, a bad setting), then what follows a run, here. A worker that dies gives its school a
    failed result and is not used again."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        settings: Settings,
        school: SchoolSettings,
        *,
        stop: threading.Event | None = None,
        **options: Any,
    ) -> RunResult:
        from hwb_client.operator.after_run import after_run

        stop = stop or threading.Event()
        job = _Job(
            settings,
            school,
            options,
            dict(os.environ),
            i18n.language(),
            logging.getLogger().getEffectiveLevel(),
        )
        worker = self._take()
        log.info("school_worker_started", dfes=school.dfes_number, pid=worker.process.pid)
        message = worker.run(job, stop)
        if message is None:
            worker.close()
            return _died(school, options, worker.process.exitcode)
        self._give_back(worker)
        what, value = message
        if what == "error":
            raise value
        result: RunResult = value
        if not result.dry_run:
            after_run(settings, school, result)  # status file, Prometheus textfile, alerts; never raises
        return result

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.close()
        return _Worker(_shared_context())

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(worker)
                return
        worker.close()

    def close_idle(self) -> None:
        """Close the idle workers (a run of every school, or a daemon's round, is over): their memory
        goes back to the system; the next school starts a new one."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


def _receive(results: Connection, stop: threading.Event, stopper: Connection) -> Any:
    """The worker's result or error, writing its log records meanwhile and forwarding ``stop``; None
    when it died without sending one."""
    forwarded = False
    while True:
        if stop.is_set() and not forwarded:
            forwarded = True
            with contextlib.suppress(OSError):  # a worker gone already: its result (or death) is in the pipe
                stopper.send(("stop", None))
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


@dataclass
class _Current:
    """In a worker: the stop of the school running, and whether the worker itself is stopping."""

    stop: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False


def _worker_main(results: Connection, control: Connection) -> None:
    """In the worker: run each school the parent sends, one at a time, until the parent closes the pipe
    (or dies); stop the school running when told, or on SIGTERM/SIGINT."""
    from hwb_client import logs
    from hwb_client.platform import failpoints
    from hwb_client.run import run_school

    jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
    current = _Current()

    def stop_all(_signum: int = 0, _frame: Any = None) -> None:
        current.stopping = True
        current.stop.set()

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    threading.Thread(target=_read_control, args=(control, jobs, current, stop_all), daemon=True).start()
    sending = threading.Lock()

    def send(message: Any) -> None:
        with sending:
            results.send(message)

    forward = _Forward(send)
    tune_gc_for_runs()
    while (job := jobs.get()) is not None:
        stop = current.stop = threading.Event()
        if current.stopping:
            stop.set()
        os.environ.clear()
        os.environ.update(job.environ)
        failpoints.arm_from_environment()
        i18n.activate(job.language)
        logs.configure_forwarding(forward, level=job.log_level)
        try:
            try:
                result = run_school(job.settings, job.school, stop=stop, after=False, **job.options)
                message: tuple[str, Any] = ("result", _portable(result))
            except HwbClientError as exc:
                message = ("error", _portable_error(exc))
            send(message)
        except OSError:  # the parent has gone: it has no use for the result; the state has it all
            break
        except Exception:  # a bug: logged with its traceback; the parent reports the school as failed
            log.error("unexpected_error", dfes=job.school.dfes_number, traceback=traceback.format_exc())
            os._exit(WorkerDied.exit_code)
    results.close()


def _read_control(
    control: Connection,
    jobs: queue.SimpleQueue[_Job | None],
    current: _Current,
    stop_all: Callable[[], None],
) -> None:
    """Jobs to the queue, a stop to the school running; the pipe closed (the parent done, or dead):
    stop the school running and end after it."""
    try:
        while True:
            what, job = control.recv()
            if what == "job":
                jobs.put(job)
            else:
                current.stop.set()
    except (EOFError, OSError):
        stop_all()
        jobs.put(None)


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

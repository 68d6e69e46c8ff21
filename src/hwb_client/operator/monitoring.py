"""Files for monitoring, written after every run: the status file and the Prometheus textfile.

- The **status file** (JSON, ``monitoring.status_file``, default ``STATE_DIR/status.json``) holds each
  school's last run report (counts and reason codes only), last success and pending batches. It is
  readable by ``monitoring.status_file_group`` (mode 0640), so that ``hwb-client status`` works for a
  monitoring account that may read neither the keys nor the state.
- The **Prometheus textfile** (``monitoring.textfile_dir``/``hwb_client.prom``) is for node_exporter's
  textfile collector, written atomically (temp file + rename).

Both are rewritten whole from the school's state each time a school's run ends (within ``coalesced()``,
a run of many schools, at most every two seconds and when it ends); concurrent writers in one process
take turns (a lock), and a run in another process at the same moment can at worst leave a school's
entry one run old until its next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hwb_client.adapters.state import StateStore
from hwb_client.core.snapshot import Snapshot
from hwb_client.core.validate import HeldBack
from hwb_client.operator.status import status_file_path
from hwb_client.platform.files import atomic_write
from hwb_client.platform.ownership import set_group
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.monitoring")
_LOCK = threading.Lock()
OUTCOMES = ("success", "partial", "failed", "blocked")
PROM_FILE = "hwb_client.prom"


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def school_entry(settings: Settings, school: SchoolSettings) -> dict[str, Any]:
    """What the status file says about one school (read from its state, which the run that has just
    ended checked page by page: not again here)."""
    store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True, check=False)
    try:
        last = store.last_run()
        return {
            "name": school.name,
            "last_run": last.report if last else None,
            "last_success_at": store.last_success_at(),
            "pending_batches": store.count_pending(),
        }
    finally:
        store.close()


def _read_status(settings: Settings) -> dict[str, Any]:
    try:
        saved = json.loads(status_file_path(settings).read_text(encoding="utf-8"))
        return saved if isinstance(saved.get("schools"), dict) else {"schools": {}}
    except (OSError, ValueError, AttributeError):
        return {"schools": {}}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(schools: Mapping[str, Mapping[str, Any]]) -> str:
    """The Prometheus text exposition format (version 0.0.4) for every school in the status file."""
    metrics: dict[str, tuple[str, str, list[str]]] = {
        "last_success": ("hwb_client_last_success_timestamp_seconds", "gauge", []),
        "last_run": ("hwb_client_last_run_timestamp_seconds", "gauge", []),
        "outcome": ("hwb_client_last_run_outcome", "gauge", []),
        "held_back": ("hwb_client_held_back_records", "gauge", []),
        "pending": ("hwb_client_pending_batches", "gauge", []),
        "seconds": ("hwb_client_last_run_duration_seconds", "gauge", []),
    }
    for dfes, entry in sorted(schools.items()):
        base = f'dfes="{_label(dfes)}"'
        last = entry.get("last_run") or {}
        success = _epoch(entry.get("last_success_at"))
        if success is not None:
            metrics["last_success"][2].append(f"{{{base}}} {success:.0f}")
        finished, started = _epoch(last.get("finished_at")), _epoch(last.get("started_at"))
        if finished is not None:
            metrics["last_run"][2].append(f"{{{base}}} {finished:.0f}")
            if started is not None:
                metrics["seconds"][2].append(f"{{{base}}} {max(0.0, finished - started):.0f}")
        if last:
            for outcome in OUTCOMES:
                value = int(last.get("outcome") == outcome)
                metrics["outcome"][2].append(f'{{{base},outcome="{outcome}"}} {value}')
        for reason, count in sorted((last.get("held_back") or {}).items()):
            metrics["held_back"][2].append(f'{{{base},reason="{_label(str(reason))}"}} {int(count)}')
        metrics["pending"][2].append(f"{{{base}}} {int(entry.get('pending_batches') or 0)}")
    lines: list[str] = []
    for name, kind, samples in metrics.values():
        lines += [f"# TYPE {name} {kind}", *(f"{name}{sample}" for sample in samples)]
    return "\n".join(lines) + "\n"


#: Within ``coalesced()`` (a run of many schools), the files are written at most this often; the
#: schools finished in between are written together (at the latest when the run ends).
WRITE_EVERY_SECONDS = 2.0


@dataclass
class _Pending:
    """Schools' entries not written yet, per status file, and when this process last wrote it."""

    depth: int = 0
    timer: threading.Timer | None = None
    entries: dict[Path, tuple[Settings, dict[str, Any], dt.datetime | None]] = field(default_factory=dict)
    written: dict[Path, float] = field(default_factory=dict)


_pending = _Pending()


@contextlib.contextmanager
def coalesced() -> Iterator[None]:
    """Within it (``--run-now`` of every school, a daemon round), a school's run refreshes the files at
    most every ``WRITE_EVERY_SECONDS``, with every school finished meanwhile; on leaving, what is not
    written yet is. Each write reads, rewrites and renders every school's entry: once per school's run,
    that was quadratic in schools (for the 1,470 schools of the national set, about a third of a no-change
    run's CPU: ``docs/performance.md``)."""
    with _LOCK:
        _pending.depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _pending.depth -= 1
        flush()


def record_run(settings: Settings, school: SchoolSettings, now: dt.datetime | None = None) -> None:
    """After a school's run: refresh its entry in the status file and rewrite the Prometheus file (or,
    within ``coalesced()``, soon).

    Never raises: monitoring files must not fail a run (a failure is logged)."""
    try:
        entry = school_entry(settings, school)
        with _LOCK:
            path = status_file_path(settings)
            _, entries, _ = _pending.entries.get(path, (settings, {}, now))
            entries[school.dfes_number] = entry
            _pending.entries[path] = (settings, entries, now)
            last = _pending.written.get(path)
            wait = WRITE_EVERY_SECONDS - (time.monotonic() - last) if last is not None else 0.0
            if _pending.depth and wait > 0:
                if _pending.timer is None:  # written in ``wait`` seconds, whatever else runs meanwhile
                    _pending.timer = threading.Timer(wait, flush)
                    _pending.timer.daemon = True
                    _pending.timer.start()
                return
            _write(path)
    except Exception as exc:  # monitoring must never fail a run: say so and go on
        log.error(
            "monitoring_files_not_written", dfes=school.dfes_number, error=f"{type(exc).__name__}: {exc}"
        )


def flush() -> None:
    """Write what ``coalesced()`` held back. Never raises."""
    with _LOCK:
        if _pending.timer is not None:
            _pending.timer.cancel()
            _pending.timer = None
        for path in list(_pending.entries):
            try:
                _write(path)
            except Exception as exc:
                _pending.entries.pop(path, None)
                log.error("monitoring_files_not_written", error=f"{type(exc).__name__}: {exc}")


def _write(path: Path) -> None:
    """The status file with the pending entries put in, then the Prometheus file (``_LOCK`` held)."""
    settings, entries, now = _pending.entries.pop(path)
    status = _read_status(settings)
    status["schools"].update(entries)
    status["written_at"] = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    # No indent: json's C encoder (an indent means the pure-Python one).
    atomic_write(path, json.dumps(status, sort_keys=True).encode(), mode=0o640)
    _pending.written[path] = time.monotonic()
    if settings.monitoring.status_file_group:
        set_group(path, settings.monitoring.status_file_group)
    if settings.monitoring.textfile_dir is not None:
        prom = prometheus_text(status["schools"]).encode()
        atomic_write(settings.monitoring.textfile_dir / PROM_FILE, prom, mode=0o644)


# -- record_held_back, logged when a record's reason changes ----------------------------------------------


def held_back_ref(key: bytes | None, held: HeldBack, label: str) -> str:
    """A stable, non-personal reference for a held-back record: a keyed hash (the school's own secret) of
    its record key, else its MIS id, else its row label."""
    identity = f"key:{held.key}" if held.key else f"mis:{held.mis_id}" if held.mis_id else f"row:{label}"
    message = f"{held.kind.value}|{identity}".encode()
    return hmac.new(key or b"hwb-held-back", message, hashlib.sha256).hexdigest()[:32]


def held_back_to_log(state: StateStore, snapshot: Snapshot, *, remember: bool = True) -> list[HeldBack]:
    """The held-back records whose reason is new or changed since the last run (all of them when the
    state cannot remember); with ``remember``, the state is brought up to date (resolved ones dropped)."""
    if not state.has_table("held_back_records") or state.fingerprint_key is None:
        return list(snapshot.held_back)
    before = dict(state.db.execute("SELECT ref, reason FROM held_back_records").fetchall())
    now_refs: dict[str, tuple[HeldBack, str]] = {}
    for index, held in enumerate(snapshot.held_back):
        ref = held_back_ref(state.fingerprint_key, held, snapshot.labels.get(index, held.ref))
        now_refs[ref] = (held, held.reason.value)
    changed = [held for ref, (held, reason) in now_refs.items() if before.get(ref) != reason]
    if remember:
        _remember(state, before, now_refs.items())
    return changed


def _remember(
    state: StateStore, before: Mapping[str, str], current: Iterable[tuple[str, tuple[HeldBack, str]]]
) -> None:
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows = [(ref, held.kind.value, reason, stamp) for ref, (held, reason) in current]
    keep = {row[0] for row in rows}
    with state.transaction():
        state.db.executemany(
            "DELETE FROM held_back_records WHERE ref = ?", [(ref,) for ref in before if ref not in keep]
        )
        state.db.executemany(
            "INSERT INTO held_back_records VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET "
            "reason = excluded.reason, since = CASE WHEN reason = excluded.reason THEN since "
            "ELSE excluded.since END",
            rows,
        )

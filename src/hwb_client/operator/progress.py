"""Progress and a closing summary for an interactive ``--run-now`` (stdout a terminal).

One status line, rewritten in place (schools done of all, running, records read and sent, time left),
results printed above it, and at the end one table across schools. Services and pipes get none of it:
the CLI only builds a ``Progress`` when its output is a terminal.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from hwb_client.i18n import N_, _, ngettext
from hwb_client.run_result import outcome_text

CLEAR_LINE = "\r\x1b[K"


def duration(seconds: float) -> str:
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def changes_sent(result: Any) -> int:
    """The changes a run sent (or, for a dry run or a run that stopped, planned)."""
    return sum(sum(ops.values()) for ops in result.counts.values())


@dataclass
class Finished:
    result: Any
    name: str
    seconds: float


class Progress:
    """The live status line. Thread-safe: schools finish on worker threads."""

    def __init__(
        self, out: TextIO, total: int, workers: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.out, self.total, self.workers, self.clock = out, total, max(1, workers), clock
        self.started_at = clock()
        self.running = 0
        self.done: list[Finished] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="hwb-progress", daemon=True)
        self._ticker.start()

    def line(self) -> str:
        done = len(self.done)
        read = sum(f.result.rows_read for f in self.done)
        sent = sum(changes_sent(f.result) for f in self.done)
        elapsed = self.clock() - self.started_at
        if done:
            per_school = sum(f.seconds for f in self.done) / done
            left = _("about {duration} left").format(
                duration=duration(per_school * (self.total - done) / self.workers)
            )
        else:
            left = _("estimating time left")
        return _(
            "schools {done}/{total} done, {running} running | records read {read} | changes sent {sent} | "
            "{elapsed} elapsed, {left}"
        ).format(
            done=done,
            total=self.total,
            running=self.running,
            read=f"{read:,}",
            sent=f"{sent:,}",
            elapsed=duration(elapsed),
            left=left,
        )

    def _draw(self) -> None:
        self.out.write(CLEAR_LINE + self.line())
        self.out.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._draw()

    def started(self) -> None:
        with self._lock:
            self.running += 1
            self._draw()

    def finished(self, result: Any, name: str, seconds: float) -> None:
        with self._lock:
            self.running -= 1
            self.done.append(Finished(result, name, seconds))
            self._draw()

    def write(self, text: str) -> None:
        """Print ``text`` above the status line."""
        with self._lock:
            self.out.write(CLEAR_LINE + text)
            self._draw()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=2)
        with self._lock:
            self.out.write(CLEAR_LINE)
            self.out.flush()


def _people(count: int) -> str:
    return ngettext("{count} person", "{count} people", count).format(count=f"{count:,}")


def _people_held(result: Any) -> int:
    """Learners and staff held back (classes and memberships are counted apart)."""
    by_kind = getattr(result, "held_back_by_kind", {})
    return sum(sum(reasons.values()) for kind, reasons in by_kind.items() if kind in ("learner", "staff"))


def summary_table(finished: Sequence[Finished], elapsed: float) -> str:
    """One row per school (in DfES order), then the totals."""
    header = tuple(
        _(title)
        for title in (
            N_("school"),
            N_("name"),
            N_("outcome"),
            N_("changes"),
            N_("people held"),
            N_("classes held"),
            N_("refused"),
            N_("time"),
        )
    )
    rows = [
        (
            f.result.dfes_number,
            f.name[:32],
            outcome_text(f.result.outcome),
            f"{changes_sent(f.result):,}",
            f"{_people_held(f.result):,}",
            f"{sum(f.result.held_back.values()) - _people_held(f.result):,}",
            f"{sum(f.result.refused.values()):,}",
            duration(f.seconds),
        )
        for f in sorted(finished, key=lambda f: f.result.dfes_number)
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6, 7}

    def fmt(row: Sequence[str]) -> str:
        cells = [
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]) for i, c in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    totals = _totals(finished, elapsed)
    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows), "", totals]
    return "\n".join(lines) + "\n"


def _totals(finished: Sequence[Finished], elapsed: float) -> str:
    outcomes = Counter(f.result.outcome for f in finished)
    changes = sum(changes_sent(f.result) for f in finished)
    classes = sum(sum(f.result.held_back.values()) - _people_held(f.result) for f in finished)
    return _("{schools}: {outcomes}; {changes}, {people} and {classes} held back; {elapsed}").format(
        schools=ngettext("{count} school", "{count} schools", len(finished)).format(count=len(finished)),
        outcomes=", ".join(f"{n} {outcome_text(outcome)}" for outcome, n in sorted(outcomes.items())),
        changes=ngettext("{count} change", "{count} changes", changes).format(count=f"{changes:,}"),
        people=_people(sum(_people_held(f.result) for f in finished)),
        classes=ngettext("{count} class record", "{count} class records", classes).format(
            count=f"{classes:,}"
        ),
        elapsed=duration(elapsed),
    )


def attention(finished: Sequence[Finished]) -> list[Any]:
    """Results to print in full after the table: every school that did not simply succeed."""
    return [
        f.result
        for f in sorted(finished, key=lambda f: f.result.dfes_number)
        if f.result.outcome != "success"
    ]

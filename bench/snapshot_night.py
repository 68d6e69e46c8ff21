"""The snapshot's own CPU on one school's night, in one process: fetched rows, the state, nothing else.

    .venv/bin/python bench/profile_no_change.py setup --work-dir /tmp/prof   # once: data, sandbox, full run
    .venv/bin/python bench/snapshot_night.py --work-dir /tmp/prof            # this tree's src/
    .venv/bin/python bench/snapshot_night.py --work-dir /tmp/prof --src /tmp/other/src   # another version

The lab's first school (the largest in a ``profile_no_change.py`` lab; ``--school`` another) is read
once over ODBC; then a 1 % night is made in memory (one learner in a hundred has half of their
membership rows moved to another class, with a fixed seed), and ``build_snapshot`` is timed on it
against the school's state as it is (CPU time, ``--repeats`` times after one untimed, the minimum and
median printed), and again with no state (a first run's path). It also prints a digest of the class
tokens, the whole read's token and the fingerprints, so that two versions can be shown to hash the
same bytes. A figure for comparing two versions of the snapshot alternately on a quiet machine; the
wall-clock benchmark (``run_bench.py``) cannot resolve a few per cent.

The state is prepared as ``run._plan`` prepares it (settled classes, the index without memberships,
memberships loaded later); a change there must be made here too, or this measures another path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import hashlib
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KINDS = ("learners", "staff", "groups", "memberships")


def _night(fetched: dict[str, Any], share: float, seed: int) -> dict[str, Any]:
    names, chunks = fetched["memberships"]
    group, upn = names.index("group_id"), names.index("upn")
    rows = [row for chunk in chunks for row in chunk]  # the driver's rows, as a run gets them
    groups = sorted({row[group] for row in rows})
    chance = random.Random(seed)
    learners = sorted({row[upn] for row in rows if row[upn]})
    moved = set(chance.sample(learners, max(1, int(len(learners) * share))))
    night = []
    for row in rows:
        if row[upn] in moved and chance.random() < 0.5:
            row = (*row[:group], chance.choice(groups), *row[group + 1 :])  # a moved one, a tuple
        night.append(row)
    return {**fetched, "memberships": (names, [night[i : i + 2000] for i in range(0, len(night), 2000)])}


def _digest(snapshot: Any) -> str:
    whole = snapshot.school_token[0] if snapshot.school_token else None
    prints = sorted(
        (key, e.fingerprint) for entries in snapshot.entries.values() for key, e in entries.items()
    )
    data = repr((sorted(snapshot.class_tokens.items()), whole, prints)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work-dir", type=Path, required=True, help="a lab made by profile_no_change.py setup"
    )
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the client's source tree to time")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--school", help="the DfES number of the school to read (default: the lab's first)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))

    from hwb_client.adapters.national_key import keys_in_use
    from hwb_client.adapters.odbc_source import MisSource, load_profile
    from hwb_client.adapters.state import open_state
    from hwb_client.core.model import Kind
    from hwb_client.core.snapshot import RowChunks, RowFingerprints, SourceRows, build_snapshot
    from hwb_client.settings import load_settings

    settings = load_settings(args.work_dir / "lab" / "hwb-client.toml")
    school = next(s for s in settings.schools if args.school in (None, s.dfes_number))
    today = dt.date.today()
    base = settings.config_path.parent if settings.config_path else None
    profile = load_profile(school.profile, base_dir=base)
    keys = keys_in_use(settings.client.national_key_file, today)
    context = f"{'+'.join(keys.key_ids)}|{profile.profile.name}"
    source = MisSource.connect(school.connection_string(), school.dfes_number, profile)
    try:
        rows = source.source_rows()
        fetched = {k: (getattr(rows, k).fields, [list(c) for c in getattr(rows, k).chunks]) for k in KINDS}
    finally:
        source.close()
    night = _night(fetched, args.share, seed=1)

    def rows_of() -> Any:
        return SourceRows(*(RowChunks(f, iter(c)) for f, c in (night[k] for k in KINDS)))

    def timed(with_state: bool) -> tuple[float, Any]:
        with open_state(settings.client.state_dir, school.dfes_number, read_only=True) as state:
            settled = state.settled_classes() if with_state else None
            whole = state.settled_school(settled) if settled else None
            leave = frozenset({Kind.MEMBERSHIP}) if settled else frozenset()
            _, known = state.index(leave_out=leave) if with_state else ({}, {})
            members = functools.cache(
                lambda same, read: state.kind_index(Kind.MEMBERSHIP, same, read, settled)
            )
            later = (lambda same, read: members(same, read)[1]) if settled else None
            prints = RowFingerprints(state.fingerprint_key, context, known, later)
            started = time.process_time()
            snapshot = build_snapshot(
                rows_of(), keys.current, today, prints, state.keyed, keys.previous, settled, whole
            )
            return time.process_time() - started, snapshot

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # as a worker runs (``workers.tune_gc_for_runs``)
    for with_state, name in ((True, "the 1 % night"), (False, "a first run")):
        timed(with_state)  # untimed: the state's pages into the page cache (this machine pages them out)
        seconds = []
        for _ in range(args.repeats):  # one snapshot alive at a time, as in a worker
            last = None  # the previous one let go before the next is built
            spent, last = timed(with_state)
            seconds.append(spent)
        print(
            f"{name}: build_snapshot CPU min {min(seconds):.4f} s, median {statistics.median(seconds):.4f} s "
            f"({args.repeats} runs); classes settled {len(last.settled_classes)} of {len(last.classes_read)}, "
            f"memberships decided {len(last.entries[Kind.MEMBERSHIP])}; tokens and fingerprints "
            f"{_digest(last)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

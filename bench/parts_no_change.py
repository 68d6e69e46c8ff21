"""Where a no-change run's CPU goes, part by part, for every school of a ``profile_no_change.py setup``
work directory, in this process (no workers, no sandbox):

    .venv/bin/python bench/profile_no_change.py setup --work-dir /tmp/prof   # once: data, state
    .venv/bin/python bench/parts_no_change.py --work-dir /tmp/prof

Each part is timed with ``time.process_time`` around the same calls ``run.py`` makes: loading the
profile and keys, opening the state read-only (with its integrity check), the acknowledged index, the
ODBC connection, reading every row without building anything (the floor's work), reading and building
the snapshot (the same rows again), the diff. Memberships a clean run settled are left out of the
index and decided as ``run.py`` does (``Settled``); the memberships of a school they are loaded for
(not settled) are a part of their own. Counts and seconds only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    from hwb_client.adapters.national_key import keys_in_use
    from hwb_client.adapters.odbc_source import KINDS, MisSource, load_profile
    from hwb_client.adapters.state import StateStore
    from hwb_client.core.diff import diff
    from hwb_client.core.model import Kind
    from hwb_client.core.snapshot import RowFingerprints, build_snapshot
    from hwb_client.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    settings = load_settings(args.work_dir / "lab" / "hwb-client.toml")
    today = dt.date.today()
    parts: dict[str, float] = {}
    rows = 0
    settled_classes = 0

    def tick(name: str, started: float) -> float:
        now = time.process_time()
        parts[name] = parts.get(name, 0.0) + now - started
        return now

    for school in settings.schools:
        t = time.process_time()
        profile = load_profile(school.profile)
        keys = keys_in_use(settings.client.national_key_file, today)
        t = tick("profile and keys", t)
        state = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
        t = tick("state open (quick_check)", t)
        settled = state.settled_classes()
        acknowledged, known = state.index(leave_out=frozenset({Kind.MEMBERSHIP}) if settled else frozenset())
        memberships = functools.cache(
            lambda same, read, state=state: state.kind_index(Kind.MEMBERSHIP, same, read)
        )
        t = tick("acknowledged index (memberships left out)", t)
        context = f"{'+'.join(keys.key_ids)}|{profile.profile.name}"
        later = (lambda same, read, memberships=memberships: memberships(same, read)[1]) if settled else None
        fingerprints = RowFingerprints(state.fingerprint_key, context, known, later)
        source = MisSource.connect(school.connection_string(), school.dfes_number, profile)
        t = tick("ODBC connect", t)
        for kind in KINDS:
            for chunk in source.rows(kind).chunks:
                rows += len(chunk)
        t = tick("rows fetched, nothing built", t)
        snapshot = build_snapshot(
            source.source_rows(), keys.current, today, fingerprints, state.keyed, settled=settled
        )
        t = tick("rows fetched again and the snapshot built", t)
        if settled:
            acknowledged[Kind.MEMBERSHIP] = memberships(snapshot.settled_classes, snapshot.classes_read)[0]
            t = tick("unsettled classes' memberships loaded", t)
        settled_classes += len(snapshot.settled_classes)
        diff(snapshot, acknowledged, state.stored_digest)
        t = tick("diff", t)
        source.close()
        state.close()
        tick("close", t)
    print(
        f"{len(settings.schools)} schools ({settled_classes:,} classes settled), {rows:,} rows, "
        "client CPU seconds by part (one process):"
    )
    for name, seconds in parts.items():
        print(f"  {name:<44} {seconds:6.2f}")
    print(f"  {'total':<44} {sum(parts.values()):6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo: a primary and a secondary school through a summer rollover, against the sandbox.

    ./scripts/demo            (or: .venv/bin/python -m hwb_demo [--keep-running])

Everything runs for real: each school's MIS is a SQLite file read through the SQLite3 ODBC driver; the
sandbox national API runs in its own process; every step is the real ``hwb-client`` command in a
subprocess. The demo checks its own outcome and exits non-zero if the Year 6 learners did not keep their
national accounts in Year 7.

This demo prints counts, reason codes and account ids only. The school's own dry-run report (which names
held-back records) is shown for one school, as an administrator would see it on screen.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import shutil
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from hwb_client.adapters.national_key import load_national_key
from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess
from hwb_synth.generate import generate
from hwb_synth.load import replace_school_data_sqlite
from hwb_synth.mutate import summer_rollover
from hwb_synth.scales import DEMO_PRIMARY, DEMO_SECONDARY

SEED = 2026


def say(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)), flush=True)


def show(text: str, indent: int = 2) -> None:
    print(textwrap.indent(text.rstrip(), " " * indent), flush=True)


def load_mis(lab: Lab, data: object) -> None:
    for school in lab.schools:
        replace_school_data_sqlite(data, school.mis_path, [school.dfes_number])  # type: ignore[arg-type]


def run_now(lab: Lab, *extra: str) -> int:
    result = lab.cli("--run-now", *extra)
    show(result.stdout)
    if result.returncode not in (0, 1):
        show(result.stderr[-2000:])
    print(f"  (exit code {result.returncode})", flush=True)
    return result.returncode


def learner_accounts(lab: Lab, dfes: str) -> dict[str, dict[str, str]]:
    api = lab.api(dfes)
    try:
        records = api.manifest(dfes).records
    finally:
        api.close()
    return {r.key: dataclasses.asdict(r) for r in records if r.kind == "learner"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwb_demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--output", type=Path, default=Path("demo-output"), help="working directory (recreated)"
    )
    parser.add_argument("--keep-running", action="store_true", help="keep the sandbox up at the end (Ctrl-C)")
    args = parser.parse_args(argv)

    root: Path = args.output.resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    say("1. Two school MIS databases (SQLite, read over ODBC)")
    data = generate(SEED, [DEMO_PRIMARY, DEMO_SECONDARY], academic_year=2025, broken=True)
    schools = [
        LabSchool(DEMO_PRIMARY.dfes_number, DEMO_PRIMARY.name, root / "mis-primary.sqlite3"),
        LabSchool(DEMO_SECONDARY.dfes_number, DEMO_SECONDARY.name, root / "mis-secondary.sqlite3"),
    ]
    for spec in (DEMO_PRIMARY, DEMO_SECONDARY):
        learners = sum(1 for lr in data.learners if lr.dfes_number == spec.dfes_number)
        staff = sum(1 for s in data.staff if s.dfes_number == spec.dfes_number)
        show(f"{spec.dfes_number} {spec.name} ({spec.phase}): {learners} learners, {staff} staff")
    broken = Counter(b.expected_reason for b in data.broken)
    show("records broken on purpose: " + ", ".join(f"{r}={n}" for r, n in sorted(broken.items())))

    with SandboxProcess(root / "sandbox.sqlite3") as sandbox:
        lab = Lab(root, schools, sandbox.url)
        load_mis(lab, data)
        lab.write_config()
        say(f"2. The sandbox national API is listening on {sandbox.url}")
        show(f"configuration: {lab.config_path}\nportal:        {sandbox.url}/portal")

        say("3. Enrol both schools (one-time codes issued by the national side)")
        for school in schools:
            enrolment_code = sandbox.issue_code(school.dfes_number, school.name)
            result = lab.cli("enrol", "--school", school.dfes_number, "--code", enrolment_code)
            show(result.stdout or result.stderr)
            if result.returncode != 0:
                return result.returncode

        say("4. What the primary's administrator sees first: hwb-client --run-now --dry-run")
        dry = lab.cli("--run-now", "--dry-run", "--school", DEMO_PRIMARY.dfes_number)
        show(dry.stdout)

        say("5. First run, summer term 2025/26: every record is new")
        run_now(lab)

        say("6. Second run with no MIS change: no batch is sent")
        run_now(lab)

        before = {s.dfes_number: learner_accounts(lab, s.dfes_number) for s in schools}
        say("7. The summer rollover in both MIS (end-of-year procedures)")
        rollover = summer_rollover(
            data,
            DEMO_PRIMARY.dfes_number,
            DEMO_SECONDARY.dfes_number,
            leaving_date=dt.date(2026, 7, 22),
            seed=SEED,
        )
        load_mis(lab, rollover.data)
        summary = rollover.summary
        show(
            f"Year 6 leavers in the primary (leaving date {summary.leaving_date}): {summary.y6_leavers}, "
            f"admitted to the secondary as Year 7: {len(summary.y6_movers)}\n"
            f"Year 13 leavers: {summary.y13_leavers}; moved up a year: {summary.moved_up}; "
            f"new intake: {summary.intake}\n"
            f"a teacher moves school: {summary.teacher_leaving_code} leaves the primary, "
            f"{summary.teacher_joining_code} starts at the secondary; one brand-new learner joins {summary.joiner_dfes}"
        )

        say("8. Run after the rollover (as on 30 August)")
        code = run_now(lab)

        say("9. Year 6 -> Year 7: the same national accounts")
        hasher = load_national_key(lab.national_key_file)
        primary_before = before[DEMO_PRIMARY.dfes_number]
        primary_after = learner_accounts(lab, DEMO_PRIMARY.dfes_number)
        secondary_after = learner_accounts(lab, DEMO_SECONDARY.dfes_number)
        matched, mismatched = 0, []
        for upn in sorted(summary.y6_movers):
            key = hasher(upn)
            old = primary_before.get(key, {}).get("account_id")
            new = secondary_after.get(key, {}).get("account_id")
            left = primary_after.get(key, {}).get("status") == "left"
            if old and old == new and left:
                matched += 1
            else:
                mismatched.append(key[:20])
        examples = [
            f"{hasher(u)[:22]}...  primary {primary_before[hasher(u)]['account_id']} (left)  ->  "
            f"secondary {secondary_after[hasher(u)]['account_id']} (Year 7)"
            for u in sorted(summary.y6_movers)[:3]
            if hasher(u) in primary_before and hasher(u) in secondary_after
        ]
        show("\n".join(examples))
        show(
            f"{matched} of {len(summary.y6_movers)} Year 6 learners hold the same national account in Year 7"
        )

        say("10. Last-run status, as the national portal shows it")
        for school in schools:
            api = lab.api(school.dfes_number)
            try:
                status = api.status(school.dfes_number)
            finally:
                api.close()
            last = status.get("last_run") or {}
            show(
                f"{school.dfes_number} {school.name}: last run {last.get('finished_at')} {last.get('outcome')}"
                f" - {last.get('message')}\n  held back: {json.dumps(last.get('held_back', {}), sort_keys=True)}"
            )
        say("11. hwb-client status (local)")
        show(lab.cli("status").stdout)

        if args.keep_running:
            print(f"\nThe sandbox stays up at {sandbox.url}/portal - Ctrl-C to stop.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)

    ok = not mismatched and matched == len(summary.y6_movers) and matched > 0 and code in (0, 1)
    say("Result: " + ("OK" if ok else "FAILED"))
    if not ok:
        show(f"accounts not matched: {mismatched}")
    show(f"Everything the demo wrote is in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

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
from zoneinfo import ZoneInfo

from hwb_client.adapters.national_key import load_national_key
from hwb_client.core import calendar
from hwb_client.core.calendar import ScheduledRun
from hwb_client.settings import ScheduleSettings
from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess
from hwb_synth.generate import MisData, generate
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


# The demo's summer (2025/26, the built-in Welsh term dates): the summer term ends on Monday 20 July.
FIRST_RUN = dt.date(2026, 6, 15)
LEAVING_ENTERED = dt.date(2026, 7, 1)  # leaving dates are entered weeks before the last day
LAST_DAY = dt.date(2026, 7, 20)  # the Year 6 leaving date: the last day on roll
EOY_FINISHED = dt.date(2026, 8, 7)  # end-of-year procedures finished (8 August in 2025)
FIRST_DAY_OF_TERM = dt.date(2026, 9, 1)


def run_now(lab: Lab, sandbox: SandboxProcess, day: dt.date, *extra: str, quiet: bool = False) -> int:
    """``hwb-client --run-now --as-of DAY``: a real run, dated (allowed against a sandbox on loopback),
    with the sandbox's national calendar set to the same day."""
    sandbox.set_today(day)
    result = lab.cli("--run-now", "--as-of", day.isoformat(), *extra)
    if not quiet or result.returncode not in (0, 1):
        show(result.stdout)
    if result.returncode not in (0, 1):
        show(result.stderr[-2000:])
    if not quiet:
        print(f"  (exit code {result.returncode})", flush=True)
    return result.returncode


def summer_runs() -> list[ScheduledRun]:
    """The schedule's runs from the last day of term to the first day of the new term (inclusive)."""
    zone = ZoneInfo(ScheduleSettings().timezone)
    after = dt.datetime.combine(LAST_DAY, dt.time(0, 0), tzinfo=zone)
    runs = calendar.next_runs(ScheduleSettings(), after, 20)
    return [r for r in runs if r.at.date() <= FIRST_DAY_OF_TERM]


def with_leaving_dates(data: MisData, rolled: MisData) -> MisData:
    """The MIS mid-way through end-of-year procedures: the old year, with Year 6 leaving dates entered."""
    leaving = {lr.pupil_id: lr.leaving_date for lr in rolled.learners if lr.leaving_date == LAST_DAY}
    learners = [
        dataclasses.replace(lr, leaving_date=leaving[lr.pupil_id])
        if lr.pupil_id in leaving and lr.year_group == "6"
        else lr
        for lr in data.learners
    ]
    return dataclasses.replace(data, learners=learners)


def state(record: dict[str, str]) -> str:
    """A record's state at the national side on its calendar's today (protocol 2), else its status."""
    return record.get("state") or record["status"]


def _counted(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def year6_state(lab: Lab, movers: tuple[str, ...] | list[str]) -> str:
    """How the movers' accounts stand at each school, counted from the national manifests."""
    hasher = load_national_key(lab.national_key_file)
    keys = {hasher(upn) for upn in movers}
    primary = Counter(
        state(r) for k, r in learner_accounts(lab, DEMO_PRIMARY.dfes_number).items() if k in keys
    )
    secondary = Counter(
        state(r) for k, r in learner_accounts(lab, DEMO_SECONDARY.dfes_number).items() if k in keys
    )
    return f"Year 6 at the primary: {_counted(primary)}; at the secondary: {_counted(secondary)}"


def learner_accounts(lab: Lab, dfes: str) -> dict[str, dict[str, str]]:
    api = lab.api(dfes)
    try:
        records = api.manifest_document(dfes)["records"]  # as sent: protocol 2's calendar fields too
    finally:
        api.close()
    return {r["key"]: r for r in records if r["kind"] == "learner"}


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
        dry = lab.cli(
            "--run-now", "--dry-run", "--as-of", FIRST_RUN.isoformat(), "--school", DEMO_PRIMARY.dfes_number
        )
        show(dry.stdout)

        say(f"5. First run, {FIRST_RUN:%d %B %Y} (summer term 2025/26): every record is new")
        run_now(lab, sandbox, FIRST_RUN)

        say("6. Second run the next night with no MIS change: no batch is sent")
        run_now(lab, sandbox, FIRST_RUN + dt.timedelta(days=1))
        before = {s.dfes_number: learner_accounts(lab, s.dfes_number) for s in schools}

        say(f"7. {LEAVING_ENTERED:%d %B}: end-of-year procedures - the primary enters Year 6 leaving dates")
        rollover = summer_rollover(
            data, DEMO_PRIMARY.dfes_number, DEMO_SECONDARY.dfes_number, leaving_date=LAST_DAY, seed=SEED
        )
        summary = rollover.summary
        load_mis(lab, with_leaving_dates(data, rollover.data))
        show(
            f"Year 6 leaving date (the last day of the summer term): {LAST_DAY:%d %B %Y}; "
            f"{summary.y6_leavers} Year 6 learners, {len(summary.y6_movers)} of them going to the secondary"
        )
        show(
            lab.cli(
                "--run-now",
                "--dry-run",
                "--as-of",
                LEAVING_ENTERED.isoformat(),
                "--school",
                DEMO_PRIMARY.dfes_number,
            ).stdout.split("  held-back records")[0]
        )
        timeline: list[tuple[dt.date, str]] = [(LEAVING_ENTERED, "leaving dates entered")]
        codes = [run_now(lab, sandbox, LEAVING_ENTERED, quiet=True)]

        say("8. The summer on the schedule's own dates (hwb-client schedule), each run with --as-of")
        loaded_rollover = False
        for run in summer_runs():
            day = run.at.date()
            if not loaded_rollover and day >= EOY_FINISHED:
                load_mis(lab, rollover.data)  # end-of-year procedures finished: the new year's MIS
                loaded_rollover = True
                timeline.append(
                    (EOY_FINISHED, "end-of-year procedures finished: Year 7 admitted for September")
                )
            codes.append(run_now(lab, sandbox, day, quiet=True))
            timeline.append((day, f"{run.rule}: " + year6_state(lab, summary.y6_movers)))
        show("\n".join(f"{day:%a %d %b %Y}  {what}" for day, what in timeline))
        show(
            "(states from the national manifests: 'leaving' = on roll until the leaving date, or left and "
            "kept active by the national calendar until Year 6 are released on 31 August)"
        )

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
            left = state(primary_after.get(key, {"status": ""})) == "left"
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
        code = max(codes)

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

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

from hwb_client import i18n
from hwb_client.adapters.national_key import load_national_key
from hwb_client.core import calendar
from hwb_client.core.calendar import ScheduledRun
from hwb_client.i18n import N_, _, ngettext
from hwb_client.settings import ScheduleSettings
from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess
from hwb_synth.generate import MisData, generate
from hwb_synth.load import replace_school_data_sqlite
from hwb_synth.mutate import summer_rollover
from hwb_synth.scales import DEMO_PRIMARY, DEMO_SECONDARY

SEED = 2026
#: A record's state at the national side, as the demo's timeline counts them.
STATES = {"active": N_("active"), "leaving": N_("leaving"), "left": N_("left")}
PHASES = {"primary": N_("primary"), "secondary": N_("secondary")}
#: Where the client's dry-run plan starts naming held-back people (the demo shows the counts only).
DESCRIPTION = N_("The demo: a primary and a secondary school through a summer rollover, against the sandbox.")
HELD_BACK_LIST = N_(
    "held-back records (this list names people: it is for the school's administrators only,\n"
    "  and is never logged or sent):"
)


def long_date(day: dt.date, *, year: bool = True) -> str:
    """``15 June 2026`` (``01 July`` without the year); in Welsh ``15 Mehefin 2026``."""
    if i18n.language() == i18n.DEFAULT_LANGUAGE:
        return f"{day:%d %B %Y}" if year else f"{day:%d %B}"
    from babel.dates import format_date

    return str(format_date(day, "d MMMM y" if year else "d MMMM", locale=i18n.language()))


def short_date(day: dt.date) -> str:
    """``Mon 20 Jul 2026``; in Welsh ``Llun 20 Gorff 2026``."""
    if i18n.language() == i18n.DEFAULT_LANGUAGE:
        return f"{day:%a %d %b %Y}"
    from babel.dates import format_date

    return str(format_date(day, "EEE dd MMM y", locale=i18n.language()))


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
        print("  " + _("(exit code {code})").format(code=result.returncode), flush=True)
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
    return ", ".join(
        f"{n} {_(STATES[status]) if status in STATES else status}" for status, n in sorted(counts.items())
    ) or _("none")


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
    return _("Year 6 at the primary: {primary}; at the secondary: {secondary}").format(
        primary=_counted(primary), secondary=_counted(secondary)
    )


def learner_accounts(lab: Lab, dfes: str) -> dict[str, dict[str, str]]:
    api = lab.api(dfes)
    try:
        records = api.manifest_document(dfes)["records"]  # as sent: protocol 2's calendar fields too
    finally:
        api.close()
    return {r["key"]: r for r in records if r["kind"] == "learner"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hwb_demo", description=_(DESCRIPTION))
    parser.add_argument(
        "--output", type=Path, default=Path("demo-output"), help=_("working directory (recreated)")
    )
    parser.add_argument(
        "--keep-running", action="store_true", help=_("keep the sandbox up at the end (Ctrl-C)")
    )
    parser.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        help=_("the language of the demo and of every hwb-client command it runs: cy or en (default: LANG)"),
    )
    return parser


def _schools(root: Path, data: MisData) -> list[LabSchool]:
    say(_("1. Two school MIS databases (SQLite, read over ODBC)"))
    for spec in (DEMO_PRIMARY, DEMO_SECONDARY):
        learners = sum(1 for lr in data.learners if lr.dfes_number == spec.dfes_number)
        staff = sum(1 for s in data.staff if s.dfes_number == spec.dfes_number)
        show(
            _("{dfes} {name} ({phase}): {learners}, {staff}").format(
                dfes=spec.dfes_number,
                name=spec.name,
                phase=_(PHASES[spec.phase]) if spec.phase in PHASES else spec.phase,
                learners=ngettext("{count} learner", "{count} learners", learners).format(count=learners),
                staff=ngettext("{count} staff", "{count} staff", staff).format(count=staff),
            )
        )
    broken = Counter(b.expected_reason for b in data.broken)
    reasons = ", ".join(f"{r}={n}" for r, n in sorted(broken.items()))
    show(_("records broken on purpose: {reasons}").format(reasons=reasons))
    return [
        LabSchool(DEMO_PRIMARY.dfes_number, DEMO_PRIMARY.name, root / "mis-primary.sqlite3"),
        LabSchool(DEMO_SECONDARY.dfes_number, DEMO_SECONDARY.name, root / "mis-secondary.sqlite3"),
    ]


def main(argv: list[str] | None = None) -> int:
    i18n.activate(i18n.choose(_language_asked(argv)))  # before the parser: its --help is translated
    args = _parser().parse_args(argv)

    root: Path = args.output.resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    data = generate(SEED, [DEMO_PRIMARY, DEMO_SECONDARY], academic_year=2025, broken=True)
    schools = _schools(root, data)

    with SandboxProcess(root / "sandbox.sqlite3") as sandbox:
        lab = Lab(root, schools, sandbox.url, lang=i18n.language())
        load_mis(lab, data)
        lab.write_config()
        say(_("2. The sandbox national API is listening on {url}").format(url=sandbox.url))
        show(
            _("configuration: {path}\nportal:        {url}/portal").format(
                path=lab.config_path, url=sandbox.url
            )
        )

        say(_("3. Enrol both schools (one-time codes issued by the national side)"))
        for school in schools:
            enrolment_code = sandbox.issue_code(school.dfes_number, school.name)
            result = lab.cli("enrol", "--school", school.dfes_number, "--code", enrolment_code)
            show(result.stdout or result.stderr)
            if result.returncode != 0:
                return result.returncode

        say(_("4. What the primary's administrator sees first: hwb-client --run-now --dry-run"))
        dry = lab.cli(
            "--run-now", "--dry-run", "--as-of", FIRST_RUN.isoformat(), "--school", DEMO_PRIMARY.dfes_number
        )
        show(dry.stdout)

        say(
            _("5. First run, {date} (summer term 2025/26): every record is new").format(
                date=long_date(FIRST_RUN)
            )
        )
        run_now(lab, sandbox, FIRST_RUN)

        say(_("6. Second run the next night with no MIS change: no batch is sent"))
        run_now(lab, sandbox, FIRST_RUN + dt.timedelta(days=1))
        before = {s.dfes_number: learner_accounts(lab, s.dfes_number) for s in schools}

        say(
            _("7. {date}: end-of-year procedures - the primary enters Year 6 leaving dates").format(
                date=long_date(LEAVING_ENTERED, year=False)
            )
        )
        rollover = summer_rollover(
            data, DEMO_PRIMARY.dfes_number, DEMO_SECONDARY.dfes_number, leaving_date=LAST_DAY, seed=SEED
        )
        summary = rollover.summary
        load_mis(lab, with_leaving_dates(data, rollover.data))
        show(
            _(
                "Year 6 leaving date (the last day of the summer term): {date}; {leavers} Year 6 learners, "
                "{movers} of them going to the secondary"
            ).format(date=long_date(LAST_DAY), leavers=summary.y6_leavers, movers=len(summary.y6_movers))
        )
        show(
            lab.cli(
                "--run-now",
                "--dry-run",
                "--as-of",
                LEAVING_ENTERED.isoformat(),
                "--school",
                DEMO_PRIMARY.dfes_number,
            ).stdout.split("  " + _(HELD_BACK_LIST).split(" (", 1)[0])[0]
        )
        timeline: list[tuple[dt.date, str]] = [(LEAVING_ENTERED, _("leaving dates entered"))]
        codes = [run_now(lab, sandbox, LEAVING_ENTERED, quiet=True)]

        say(_("8. The summer on the schedule's own dates (hwb-client schedule), each run with --as-of"))
        loaded_rollover = False
        for run in summer_runs():
            day = run.at.date()
            if not loaded_rollover and day >= EOY_FINISHED:
                load_mis(lab, rollover.data)  # end-of-year procedures finished: the new year's MIS
                loaded_rollover = True
                timeline.append(
                    (EOY_FINISHED, _("end-of-year procedures finished: Year 7 admitted for September"))
                )
            codes.append(run_now(lab, sandbox, day, quiet=True))
            timeline.append((day, f"{run.rule}: " + year6_state(lab, summary.y6_movers)))
        show("\n".join(f"{short_date(day)}  {what}" for day, what in timeline))
        show(
            _(
                "(states from the national manifests: 'leaving' = on roll until the leaving date, or left and "
                "kept active by the national calendar until Year 6 are released on 31 August)"
            )
        )

        say(_("9. Year 6 -> Year 7: the same national accounts"))
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
            _("{key}...  primary {old} (left)  ->  secondary {new} (Year 7)").format(
                key=hasher(u)[:22],
                old=primary_before[hasher(u)]["account_id"],
                new=secondary_after[hasher(u)]["account_id"],
            )
            for u in sorted(summary.y6_movers)[:3]
            if hasher(u) in primary_before and hasher(u) in secondary_after
        ]
        show("\n".join(examples))
        show(
            ngettext(
                "{matched} of {count} Year 6 learner holds the same national account in Year 7",
                "{matched} of {count} Year 6 learners hold the same national account in Year 7",
                len(summary.y6_movers),
            ).format(matched=matched, count=len(summary.y6_movers))
        )
        code = max(codes)

        say(_("10. Last-run status, as the national portal shows it"))
        for school in schools:
            api = lab.api(school.dfes_number)
            try:
                status = api.status(school.dfes_number)
            finally:
                api.close()
            last = status.get("last_run") or {}
            show(
                _("{dfes} {name}: last run {finished} {outcome} - {message}").format(
                    dfes=school.dfes_number,
                    name=school.name,
                    finished=last.get("finished_at"),
                    outcome=last.get("outcome"),
                    message=last.get("message"),
                )
                + "\n  "
                + _("held back: {records}").format(
                    records=json.dumps(last.get("held_back", {}), sort_keys=True)
                )
            )
        say(_("11. hwb-client status (local)"))
        show(lab.cli("status").stdout)

        if args.keep_running:
            print(
                "\n" + _("The sandbox stays up at {url}/portal - Ctrl-C to stop.").format(url=sandbox.url),
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)

    ok = not mismatched and matched == len(summary.y6_movers) and matched > 0 and code in (0, 1)
    say(_("Result: {result}").format(result=_("OK") if ok else _("FAILED")))
    if not ok:
        show(_("accounts not matched: {keys}").format(keys=mismatched))
    show(_("Everything the demo wrote is in {root}").format(root=root))
    return 0 if ok else 1


def _language_asked(argv: list[str] | None) -> str | None:
    """``--lang`` read ahead of the parser (whose help is in the language it names)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--lang")
    known, _rest = early.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.lang if isinstance(known.lang, str) else None


if __name__ == "__main__":
    sys.exit(main())

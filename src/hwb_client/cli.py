"""The command line: argument parsing, exit codes, and turning errors into one clear line. Nothing else.

    hwb-client --run-now [--school DFES] [--dry-run] [--as-of DATE] [--allow-mass-removal]
                         [--allow-mass-update] [--wait SECONDS] [--verify]
    hwb-client enrol --school DFES --code CODE
    hwb-client rotate-key --school DFES
    hwb-client status [--school DFES] [--json | --nagios]
    hwb-client history [--school DFES] [--last N] [--json]
    hwb-client why --school DFES (--upn UPN | --staff-code CODE | --mis-id ID | --name TEXT)
    hwb-client report --school DFES --output FILE
    hwb-client daemon
    hwb-client schedule [--next N] [--from DATE]
    hwb-client check-config

Every command takes ``--config PATH`` (default: the platform's config file, or ``HWB_CONFIG``).
Exit codes are listed in ``errors.py`` and the README.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog

from hwb_client import __version__, i18n, logs
from hwb_client.errors import ConfigError, HwbClientError
from hwb_client.i18n import N_, _, ngettext
from hwb_client.settings import Settings, load_settings
from hwb_client.terminal import printable

EXIT_OK, EXIT_WARNING, EXIT_USAGE = 0, 1, 2
log = structlog.get_logger("hwb_client.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwb-client",
        description=_("Hwb provisioning client: reads the school MIS over ODBC and provisions Hwb accounts."),
        epilog=_(
            "Exit codes: 0 ok, 1 records held back/refused, 2 usage, 3 configuration, 4 MIS, 5 national API, "
            "6 blocked by the safety guard, 7 run in progress, 8 local state, 9 enrolment; "
            "status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"hwb-client {__version__}",
        help=_("show program's version number and exit"),
    )
    parser.add_argument(
        "--lang",
        choices=i18n.LANGUAGES,
        help=_(
            "the language of what this command prints: cy (Cymraeg) or en (English); default: "
            "client.language in the configuration, then the locale (LANG)"
        ),
    )
    parser.add_argument(
        "--config", type=Path, help=_("configuration file (default: platform path or HWB_CONFIG)")
    )
    parser.add_argument("--run-now", action="store_true", help=_("run now, for every school or --school"))
    parser.add_argument("--school", metavar="DFES", help=_("only this school (7-digit DfES number)"))
    parser.add_argument(
        "--dry-run", action="store_true", help=_("with --run-now: print the plan; send nothing")
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help=_("with --run-now: compare the acknowledged state with the national manifest and repair it"),
    )
    parser.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help=_(
            "with --run-now: allow this one run past the guard's removal and hold-back rules (after "
            "checking the MIS); recorded in the run report with your user name"
        ),
    )
    parser.add_argument(
        "--allow-mass-update",
        action="store_true",
        help=_(
            "with --run-now: allow this one run past the guard's mass-update rule (after checking the "
            "query profile's mapping); recorded in the run report with your user name"
        ),
    )
    parser.add_argument(
        "--as-of",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help=_(
            "with --run-now --dry-run: plan the run as it would be on that day (leaving and start "
            "dates, the summer rules); a real run with --as-of is only allowed against a sandbox on loopback"
        ),
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=_("with --run-now: wait this long for a run already in progress"),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    enrol = sub.add_parser("enrol", help=_("register this school's signing key with the national API"))
    enrol.add_argument("--school", dest="enrol_school", metavar="DFES", required=True)
    enrol.add_argument("--code", required=True, help=_("the one-time enrolment code issued nationally"))
    rotate = sub.add_parser(
        "rotate-key", help=_("replace this school's signing key (the old one is retired)")
    )
    rotate.add_argument("--school", dest="rotate_school", metavar="DFES", required=True)
    status = sub.add_parser(
        "status", help=_("show each school's last run; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    )
    status.add_argument("--school", dest="status_school", metavar="DFES")
    status.add_argument("--json", action="store_true", help=_("machine-readable output"))
    status.add_argument("--nagios", action="store_true", help=_("one line and performance data (a plugin)"))
    _add_operator_commands(sub)
    sub.add_parser("daemon", help=_("run on the academic-calendar schedule until stopped (the service)"))
    schedule = sub.add_parser("schedule", help=_("print the coming scheduled runs and the rule for each"))
    schedule.add_argument("--next", type=int, default=10, metavar="N")
    schedule.add_argument("--from", dest="start", type=_iso_date, metavar="YYYY-MM-DD")
    check = sub.add_parser(
        "check-config",
        help=_("check this server is ready to run (keys, enrolment, ODBC, directories, terms)"),
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help=_("also open each MIS, count each query's rows, ask the API's /healthz"),
    )
    return parser


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text} is not a date: write it as YYYY-MM-DD").format(text=repr(text))
        ) from None


def _add_operator_commands(sub: Any) -> None:
    history = sub.add_parser("history", help=_("each run of each school: outcome, counts, holds, version"))
    history.add_argument("--school", dest="history_school", metavar="DFES")
    history.add_argument("--last", type=int, metavar="N", help=_("only the last N runs of each school"))
    history.add_argument("--json", action="store_true", help=_("machine-readable output"))
    why = sub.add_parser("why", help=_("why has this person no account? (MIS, local state, national side)"))
    why.add_argument("--school", dest="why_school", metavar="DFES", required=True)
    who = why.add_mutually_exclusive_group(required=True)
    who.add_argument("--upn", help=_("a learner's UPN (hashed here; never logged, stored or sent)"))
    who.add_argument("--staff-code", metavar="CODE")
    who.add_argument("--mis-id", metavar="ID", help=_("the MIS's own id (the profile's mis_id column)"))
    who.add_argument("--name", metavar="TEXT", help=_("part of a legal forename or surname"))
    report = sub.add_parser("report", help=_("the school's report for its MIS administrator (names people)"))
    report.add_argument("--school", dest="report_school", metavar="DFES", required=True)
    report.add_argument("--output", type=Path, required=True, metavar="FILE", help=_("FILE.html or FILE.csv"))


def _load(args: argparse.Namespace, *, reading_only: bool = False) -> Settings:
    follow = getattr(args, "lang", None) is None  # --lang, when given, was activated before parsing
    settings = load_settings(args.config, follow_language=follow)  # an error in the file: in its language
    if follow and settings.client.language is not None:
        i18n.activate(settings.client.language)
    try:
        logs.configure(
            fmt=settings.client.log_format,
            level=settings.client.log_level,
            log_file=settings.client.log_file,
            quiet_console=bool(getattr(args, "run_now", False)) and sys.stdout.isatty(),
        )
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL byte in the path
        if reading_only:  # a monitoring account may not write the service's log: log to stderr only
            logs.configure(fmt=settings.client.log_format, level="error", log_file=None)
            return settings
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            N_(
                "client.log_file: cannot write the log file {path} ({reason}); "
                "give a file path the service user may write, or remove the setting"
            ),
            path=settings.client.log_file,
            reason=reason,
        ) from None
    return settings


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        stop.set()
        log.warning("stop_requested", signal=signal.Signals(signum).name)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop


def _tally(tally: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"{kind} " + " ".join(f"{name}={n}" for name, n in sorted(names.items()))
        for kind, names in sorted(tally.items())
    ) or i18n._("none")


#: Records whose state changes on a coming day, per kind and event.
_UPCOMING = {
    ("learner", "starts"): i18n.N_("learner starts on {date}: {count}"),
    ("learner", "leaves"): i18n.N_("learner leaves on {date}: {count}"),
    ("staff", "starts"): i18n.N_("staff starts on {date}: {count}"),
    ("staff", "leaves"): i18n.N_("staff leaves on {date}: {count}"),
}


def _print_result(result: Any, out: TextIO) -> None:
    from hwb_client.run_result import outcome_text, shown_message

    _ = i18n._
    as_of = " " + _("(as of {date})").format(date=i18n.format_date(result.as_of)) if result.as_of else ""
    outcome = outcome_text(result.outcome).upper()
    out.write(f"{result.dfes_number}: {outcome}{as_of} - {printable(shown_message(result))}\n")
    out.write("  " + _("planned: {changes}").format(changes=_tally(result.planned)) + "\n")
    if not result.dry_run:
        out.write("  " + _("sent: {changes}").format(changes=_tally(result.sent)) + "\n")
    if result.held_back_by_kind:
        out.write("  " + _("held back: {records}").format(records=_tally(result.held_back_by_kind)) + "\n")
    if result.refused_by_kind:
        out.write("  " + _("refused by Hwb: {records}").format(records=_tally(result.refused_by_kind)) + "\n")
    for upcoming in result.upcoming:
        template = _UPCOMING.get((upcoming.kind.value, upcoming.event))
        date = i18n.format_date(upcoming.date)
        line = (
            _(template).format(date=date, count=upcoming.count)
            if template
            else f"{upcoming.kind.value} {upcoming.event} {date}: {upcoming.count}"
        )
        out.write(f"  {line}\n")
    _print_holds(result, out)
    if result.dry_run and result.held_back_details:
        _print_held_back(result.held_back_details, out)


def _print_holds(result: Any, out: TextIO) -> None:
    from hwb_client.core.guard import hold_report_message

    for hold in result.holds:
        text = i18n._("HELD by {rule}: {message}").format(
            rule=hold["rule"], message=hold_report_message(hold, i18n._)
        )
        out.write(f"  {text}\n")
    for override in result.overrides:
        text = i18n._("allowed past {rule} ({count} > limit {limit}) with {flag} by {user}").format(
            rule=override["rule"],
            count=override["count"],
            limit=override["limit"],
            flag=override["flag"],
            user=override["user"],
        )
        out.write(f"  {text}\n")


def _held_label(label: str) -> str:
    """The school's label of a held-back row (``learner row 5 (MIS id 60) Name``, made in English by the
    snapshot) with its head said in the language of the process."""
    import re

    head = re.match(r"(learner|staff|group) row (\d+)(?: \(MIS id ([^)]*)\))?", label)
    if head is None:
        return label
    kind = {"learner": i18n._("learner"), "staff": i18n._("staff"), "group": i18n._("group")}[head.group(1)]
    text = i18n._("{kind} row {row}").format(kind=kind, row=head.group(2))
    if head.group(3) is not None:
        text += " " + i18n._("(MIS id {mis_id})").format(mis_id=head.group(3))
    return text + label[head.end() :]


def _print_held_back(details: list[tuple[str, str, str]], out: TextIO) -> None:
    from hwb_client.core.validate import ADVICE, Reason

    _ = i18n._
    out.write(
        "  "
        + _(
            "held-back records (this list names people: it is for the school's administrators only,\n"
            "  and is never logged or sent):"
        )
        + "\n"
    )
    memberships: Counter[str] = Counter()
    for kind, label, reason in details:
        if kind == "membership":
            memberships[reason] += 1
            continue
        out.write(f"    - {printable(_held_label(label))}: {reason} ({_(ADVICE[Reason(reason)])})\n")
    for reason, count in sorted(memberships.items()):
        what = i18n.ngettext("{count} class membership", "{count} class memberships", count).format(
            count=count
        )
        out.write(f"    - {what}: {reason} ({_(ADVICE[Reason(reason)])})\n")


def _exit_code(results: Sequence[Any]) -> int:
    code = EXIT_OK
    for result in results:
        if result.outcome in {"failed", "blocked"}:
            return result.error_code or 5
        if result.outcome == "partial":
            code = EXIT_WARNING
    return code


def _progress(out: TextIO, total: int, workers: int) -> Any:
    """A live progress line when the output is a terminal; None for services and pipes."""
    if not (hasattr(out, "isatty") and out.isatty()):
        return None
    from hwb_client.operator.progress import Progress

    return Progress(out, total, workers)


def _print_summary(progress: Any, out: TextIO, *, dry_run: bool) -> None:
    from hwb_client.operator.progress import attention, summary_table

    out.write(summary_table(progress.done, time.monotonic() - progress.started_at))
    if not dry_run:
        for result in attention(progress.done):
            out.write("\n")
            _print_result(result, out)


def cmd_run_now(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.operator import monitoring
    from hwb_client.workers import close_idle, largest_first, school_runner, tune_gc_for_runs

    settings = _load(args)
    if args.as_of is not None and not args.dry_run:
        from hwb_client.rehearsal import require_sandbox

        require_sandbox(settings)
    allow = frozenset(
        flag
        for flag, given in (
            ("--allow-mass-removal", args.allow_mass_removal),
            ("--allow-mass-update", args.allow_mass_update),
        )
        if given
    )
    tune_gc_for_runs()
    schools = [settings.school(args.school)] if args.school else [s for s in settings.schools if s.enabled]
    schools = largest_first(settings.client.state_dir, schools)
    stop = _stop_on_signals()
    printing = threading.Lock()
    workers = min(settings.schedule.max_concurrent_schools, len(schools)) or 1
    run_school = school_runner(workers)  # worker processes when schools run side by side (Linux)
    progress = _progress(out, len(schools), workers)

    def run_one(school: Any) -> Any:
        if stop.is_set():
            return None
        started = time.monotonic()
        if progress is not None:
            progress.started()
        result = run_school(
            settings,
            school,
            dry_run=args.dry_run,
            allow=allow,
            stop=stop,
            lock_wait_seconds=args.wait,
            today=args.as_of,
            verify_state=args.verify,
        )
        if progress is not None:
            progress.finished(result, school.name, time.monotonic() - started)
        if progress is None or args.dry_run:  # a dry run's plan is printed whole, even on a terminal
            with printing:
                text = io.StringIO()
                _print_result(result, text)
                (progress.write if progress else out.write)(text.getvalue())
        return result

    # Schools run side by side (schedule.max_concurrent_schools, as the daemon does), each in a worker
    # process: one school's per-row Python work runs on another core than the other's, its MIS query or
    # API round trip overlaps the other's work, and a slow school holds up no other. Each result is
    # printed as its school finishes.
    with (
        monitoring.coalesced(),  # the status and Prometheus files: at most every 2 s, and at the end
        concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="hwb-school") as pool,
    ):
        futures = [pool.submit(run_one, school) for school in schools]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            # A school that could not even start (its lock is held, a bad setting): schools not yet
            # started are not started, those running finish; the error decides the exit code.
            for future in futures:
                future.cancel()
            raise
        finally:
            close_idle(run_school)
            if progress is not None:
                progress.close()
    if progress is not None:
        _print_summary(progress, out, dry_run=args.dry_run)
    if stop.is_set():
        return 143
    return _exit_code([result for result in results if result is not None])


def cmd_enrol(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.enrolment import enrol

    settings = _load(args)
    school = settings.school(args.enrol_school)
    key_id, path = enrol(settings, school, args.code)
    out.write(
        _("{dfes}: enrolled, key id {key_id} (key file {path})").format(
            dfes=school.dfes_number, key_id=key_id, path=path
        )
        + "\n"
    )
    return EXIT_OK


def cmd_rotate_key(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.enrolment import rotate_key

    settings = _load(args)
    school = settings.school(args.rotate_school)
    old_id, new_id = rotate_key(settings, school)
    out.write(
        _("{dfes}: signing key rotated: {old_id} retired, now {new_id}").format(
            dfes=school.dfes_number, old_id=old_id, new_id=new_id
        )
        + "\n"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.operator import status

    try:
        settings = _load(args, reading_only=True)
        schools = [settings.school(args.status_school)] if args.status_school else list(settings.schools)
        now = dt.datetime.now(dt.UTC)
        entries = [status.school_status(settings, school, now) for school in schools]
    except HwbClientError as exc:  # whatever stops status is UNKNOWN to a monitoring system
        if args.nagios:
            out.write(f"HWB UNKNOWN - {exc.message.splitlines()[0]}\n")
        else:
            sys.stderr.write(_error_line(exc))
        return status.UNKNOWN
    if args.nagios:
        out.write(status.nagios_line(entries, now) + "\n")
    elif args.json:
        out.write(json.dumps({"schools": entries}, indent=2, default=str) + "\n")
    else:
        out.write(status.format_text(entries))
    return status.overall(entries)


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.operator import history

    settings = _load(args, reading_only=True)
    schools = [settings.school(args.history_school)] if args.history_school else list(settings.schools)
    runs = [run for school in schools for run in history.school_history(settings, school, args.last)]
    out.write(history.history_json(runs) if args.json else history.format_history(runs))
    return EXIT_OK


def cmd_why(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.operator import why

    settings = _load(args)
    query = why.Query(upn=args.upn, staff_code=args.staff_code, mis_id=args.mis_id, name=args.name)
    out.write(why.format_answer(why.explain(settings, settings.school(args.why_school), query)))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.operator import report

    settings = _load(args)
    written = report.write_report(settings, settings.school(args.report_school), args.output)
    out.write(
        _("{path}: written, readable by you only (it names people; do not send it on)").format(path=written)
        + "\n"
    )
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.readiness import check

    settings = _load(args)
    report = check(settings, connect=args.connect, today=dt.date.today())
    for line in [*report.problems, *report.notes]:
        out.write(f"{line}\n")
    if report.problems:
        count = len(report.problems)
        verdict = ngettext("NOT READY ({count} problem)", "NOT READY ({count} problems)", count)
        out.write(f"{settings.config_path}: {verdict.format(count=count)}\n")
        return ConfigError.exit_code
    count = len(settings.schools)
    verdict = ngettext("READY ({count} school)", "READY ({count} schools)", count)
    out.write(f"{settings.config_path}: {verdict.format(count=count)}\n")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.service_commands import cmd_daemon as run_daemon_command

    return int(run_daemon_command(_load(args)))


def cmd_schedule(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.service_commands import cmd_schedule as schedule_command

    settings = _load(args)
    start = None
    if args.start is not None:
        start = dt.datetime.combine(args.start, dt.time(0, 0))
    return int(schedule_command(settings, args.next, start))


COMMANDS = {
    "enrol": cmd_enrol,
    "status": cmd_status,
    "rotate-key": cmd_rotate_key,
    "daemon": cmd_daemon,
    "schedule": cmd_schedule,
    "check-config": cmd_check_config,
    "history": cmd_history,
    "why": cmd_why,
    "report": cmd_report,
}


def _language_asked(argv: Sequence[str] | None) -> str | None:
    """``--lang`` read ahead of the full parser (which is built in the language it names)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--lang")
    known, _rest = early.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return known.lang if isinstance(known.lang, str) else None


def _error_line(exc: HwbClientError) -> str:
    return _("hwb-client: error: {message}").format(message=exc.message) + "\n"


#: argparse's own words (usage, section titles, its errors), in the catalogue: argparse looks ``_`` and
#: ``ngettext`` up in its module at call time, and ``_use_our_catalogue`` points them at ours.
ARGPARSE_TEXT = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("ignored explicit argument %r"),
    N_("unexpected option string: %s"),
)


def _use_our_catalogue() -> None:
    """argparse translates through the ``_`` and ``ngettext`` of its own module: make them ours."""
    vars(argparse)["_"] = i18n._
    vars(argparse)["ngettext"] = i18n.ngettext


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    _use_our_catalogue()
    i18n.activate(i18n.choose(_language_asked(argv)))  # before the parser: its --help is translated
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.run_now:
            if args.command:
                parser.error(_("--run-now runs on its own; do not give a command with it"))
            return cmd_run_now(args, out)
        if args.command is None:
            parser.print_help(out)
            return EXIT_USAGE
        return int(COMMANDS[args.command](args, out))
    except HwbClientError as exc:
        sys.stderr.write(_error_line(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as other tools do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe until exit
        return 141
    except Exception:  # a traceback is a bug: log it, show one line
        detail = traceback.format_exc()
        log.error("unexpected_error", traceback=detail)
        sys.stderr.write(_("hwb-client: internal error (a bug): see the log for the traceback") + "\n")
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

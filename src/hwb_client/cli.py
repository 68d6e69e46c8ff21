"""The command line: argument parsing, exit codes, and turning errors into one clear line. Nothing else.

    hwb-client --run-now [--school DFES] [--dry-run] [--as-of DATE] [--allow-mass-removal]
                         [--allow-mass-update] [--wait SECONDS] [--verify]
    hwb-client enrol --school DFES --code CODE
    hwb-client rotate-key --school DFES
    hwb-client status [--school DFES] [--json]
    hwb-client daemon
    hwb-client schedule [--next N] [--from DATE]
    hwb-client check-config

Every command takes ``--config PATH`` (default: the platform's config file, or ``HWB_CONFIG``).
Exit codes are listed in ``errors.py`` and the README.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import gc
import json
import signal
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog

from hwb_client import __version__, logs
from hwb_client.errors import ConfigError, HwbClientError, UsageError
from hwb_client.settings import Settings, is_loopback_url, load_settings
from hwb_client.terminal import printable

EXIT_OK, EXIT_WARNING, EXIT_USAGE, EXIT_STATUS = 0, 1, 2, 10
log = structlog.get_logger("hwb_client.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwb-client",
        description="Hwb provisioning client: reads the school MIS over ODBC and provisions Hwb accounts.",
        epilog="Exit codes: 0 ok, 1 records held back/refused, 2 usage, 3 configuration, 4 MIS, 5 national API, "
        "6 blocked by the safety guard, 7 run in progress, 8 local state, 9 enrolment, 10 status unhealthy.",
    )
    parser.add_argument("--version", action="version", version=f"hwb-client {__version__}")
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: platform path or HWB_CONFIG)"
    )
    parser.add_argument("--run-now", action="store_true", help="run now, for every school or --school")
    parser.add_argument("--school", metavar="DFES", help="only this school (7-digit DfES number)")
    parser.add_argument("--dry-run", action="store_true", help="with --run-now: print the plan; send nothing")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="with --run-now: compare the acknowledged state with the national manifest and repair it",
    )
    parser.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="with --run-now: allow this one run past the guard's removal and hold-back rules (after "
        "checking the MIS); recorded in the run report with your user name",
    )
    parser.add_argument(
        "--allow-mass-update",
        action="store_true",
        help="with --run-now: allow this one run past the guard's mass-update rule (after checking the "
        "query profile's mapping); recorded in the run report with your user name",
    )
    parser.add_argument(
        "--as-of",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="with --run-now --dry-run: plan the run as it would be on that day (leaving and start "
        "dates, the summer rules); a real run with --as-of is only allowed against a sandbox on loopback",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --run-now: wait this long for a run already in progress",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    enrol = sub.add_parser("enrol", help="register this school's signing key with the national API")
    enrol.add_argument("--school", dest="enrol_school", metavar="DFES", required=True)
    enrol.add_argument("--code", required=True, help="the one-time enrolment code issued nationally")
    rotate = sub.add_parser("rotate-key", help="replace this school's signing key (the old one is retired)")
    rotate.add_argument("--school", dest="rotate_school", metavar="DFES", required=True)
    status = sub.add_parser("status", help="show each school's last run; non-zero exit when unhealthy")
    status.add_argument("--school", dest="status_school", metavar="DFES")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("daemon", help="run on the academic-calendar schedule until stopped (the service)")
    schedule = sub.add_parser("schedule", help="print the coming scheduled runs and the rule for each")
    schedule.add_argument("--next", type=int, default=10, metavar="N")
    schedule.add_argument("--from", dest="start", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    sub.add_parser("check-config", help="check the configuration and query profiles; read and send nothing")
    return parser


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write it as YYYY-MM-DD") from None


def _load(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    try:
        logs.configure(
            fmt=settings.client.log_format, level=settings.client.log_level, log_file=settings.client.log_file
        )
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"client.log_file: cannot write the log file {settings.client.log_file!s} ({reason}); "
            "give a file path the service user may write, or remove the setting"
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
    return (
        ", ".join(
            f"{kind} " + " ".join(f"{name}={n}" for name, n in sorted(names.items()))
            for kind, names in sorted(tally.items())
        )
        or "none"
    )


def _print_result(result: Any, out: TextIO) -> None:
    as_of = f" (as of {result.as_of.isoformat()})" if result.as_of else ""
    out.write(f"{result.dfes_number}: {result.outcome.upper()}{as_of} - {printable(result.message)}\n")
    out.write(f"  planned: {_tally(result.planned)}\n")
    if not result.dry_run:
        out.write(f"  sent: {_tally(result.sent)}\n")
    if result.held_back_by_kind:
        out.write(f"  held back: {_tally(result.held_back_by_kind)}\n")
    if result.refused_by_kind:
        out.write(f"  refused by Hwb: {_tally(result.refused_by_kind)}\n")
    for upcoming in result.upcoming:
        out.write(
            f"  {upcoming.kind.value} {upcoming.event} on {upcoming.date.isoformat()}: {upcoming.count}\n"
        )
    for hold in result.holds:
        out.write(f"  HELD by {hold['rule']}: {hold['message']}\n")
    for override in result.overrides:
        out.write(
            f"  allowed past {override['rule']} ({override['count']} > limit {override['limit']}) "
            f"with {override['flag']} by {override['user']}\n"
        )
    if result.dry_run and result.held_back_details:
        _print_held_back(result.held_back_details, out)


def _print_held_back(details: list[tuple[str, str, str]], out: TextIO) -> None:
    from hwb_client.core.validate import ADVICE, Reason

    out.write(
        "  held-back records (this list names people: it is for the school's administrators only,\n"
        "  and is never logged or sent):\n"
    )
    memberships: Counter[str] = Counter()
    for kind, label, reason in details:
        if kind == "membership":
            memberships[reason] += 1
            continue
        out.write(f"    - {printable(label)}: {reason} ({ADVICE[Reason(reason)]})\n")
    for reason, count in sorted(memberships.items()):
        out.write(f"    - {count} class membership(s): {reason} ({ADVICE[Reason(reason)]})\n")


def _exit_code(results: Sequence[Any]) -> int:
    code = EXIT_OK
    for result in results:
        if result.outcome in {"failed", "blocked"}:
            return result.error_code or 5
        if result.outcome == "partial":
            code = EXIT_WARNING
    return code


def _tune_gc_for_runs() -> None:
    """A run builds hundreds of thousands of small dicts and records that live until its school is done;
    with the default thresholds the cyclic collector rescans them over and over (about a sixth of an LA
    run's CPU). Objects from start-up are frozen out of its way and it runs less often; cycles are
    still collected."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def cmd_run_now(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.run import run_school

    settings = _load(args)
    if args.as_of is not None and not args.dry_run and not is_loopback_url(str(settings.api.base_url)):
        raise UsageError(
            f"--as-of without --dry-run is only allowed against a sandbox on loopback, not {settings.api.base_url}: "
            "add --dry-run to see what a run on that day would send"
        )
    allow = frozenset(
        flag
        for flag, given in (
            ("--allow-mass-removal", args.allow_mass_removal),
            ("--allow-mass-update", args.allow_mass_update),
        )
        if given
    )
    _tune_gc_for_runs()
    schools = [settings.school(args.school)] if args.school else [s for s in settings.schools if s.enabled]
    stop = _stop_on_signals()
    printing = threading.Lock()

    def run_one(school: Any) -> Any:
        if stop.is_set():
            return None
        if sys.stderr.isatty():
            sys.stderr.write(f"running {school.dfes_number} {school.name}...\n")
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
        with printing:
            _print_result(result, out)
        return result

    # Schools run side by side (schedule.max_concurrent_schools, as the daemon does): one school's MIS
    # query or API round trip overlaps another's validation, and a slow school holds up no other. Each
    # result is printed as its school finishes.
    workers = min(settings.schedule.max_concurrent_schools, len(schools)) or 1
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="hwb-school") as pool:
        futures = [pool.submit(run_one, school) for school in schools]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            # A school that could not even start (its lock is held, a bad setting): schools not yet
            # started are not started, those running finish; the error decides the exit code.
            for future in futures:
                future.cancel()
            raise
    if stop.is_set():
        return 143
    return _exit_code([result for result in results if result is not None])


def cmd_enrol(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.enrolment import enrol

    settings = _load(args)
    school = settings.school(args.enrol_school)
    key_id, path = enrol(settings, school, args.code)
    out.write(f"{school.dfes_number}: enrolled, key id {key_id} (key file {path})\n")
    return EXIT_OK


def cmd_rotate_key(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.enrolment import rotate_key

    settings = _load(args)
    school = settings.school(args.rotate_school)
    old_id, new_id = rotate_key(settings, school)
    out.write(f"{school.dfes_number}: signing key rotated: {old_id} retired, now {new_id}\n")
    return EXIT_OK


def school_status(settings: Settings, school: Any, now: dt.datetime) -> dict[str, Any]:
    from hwb_client.adapters.state import StateStore

    store = StateStore.open(settings.client.state_dir, school.dfes_number, read_only=True)
    try:
        last = store.last_run()
        last_success = store.last_success_at()
        pending = store.count_pending()
    finally:
        store.close()
    entry: dict[str, Any] = {
        "dfes_number": school.dfes_number,
        "name": school.name,
        "last_run": last.report if last else None,
        "last_success_at": last_success,
        "pending_batches": pending,
    }
    try:
        from hwb_client.service_commands import schedule_health

        success_at = dt.datetime.fromisoformat(last_success.replace("Z", "+00:00")) if last_success else None
        entry["schedule"] = schedule_health(settings, success_at, now)
    except (ImportError, HwbClientError) as exc:
        entry["schedule"] = {"error": str(exc)}
    healthy = bool(last and last.outcome in {"success", "partial"}) and not entry["schedule"].get(
        "overdue", False
    )
    entry["healthy"] = healthy
    return entry


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    settings = _load(args)
    schools = [settings.school(args.status_school)] if args.status_school else list(settings.schools)
    now = dt.datetime.now(dt.UTC)
    entries = [school_status(settings, school, now) for school in schools]
    if args.json:
        out.write(json.dumps({"schools": entries}, indent=2, default=str) + "\n")
    else:
        for entry in entries:
            last = entry["last_run"]
            state = "OK" if entry["healthy"] else "ATTENTION"
            out.write(f"{entry['dfes_number']} {entry['name']}: {state}\n")
            if last is None:
                out.write("  last run: never\n")
            else:
                out.write(
                    f"  last run: {last['finished_at']} {last['outcome']} - {last.get('message', '')}\n"
                )
                if last.get("held_back"):
                    reasons = ", ".join(f"{r}={n}" for r, n in sorted(last["held_back"].items()))
                    out.write(f"  held back: {reasons}\n")
                for hold in last.get("holds") or []:
                    out.write(
                        f"  held by {hold['rule']}: {hold['count']} > limit {hold['limit']} ({hold['flag']})\n"
                    )
                for override in last.get("overrides") or []:
                    out.write(
                        f"  allowed past {override['rule']} ({override['count']} > limit {override['limit']}) "
                        f"with {override['flag']} by {override.get('user') or 'unknown'}\n"
                    )
            out.write(f"  last success: {entry['last_success_at'] or 'never'}\n")
            if entry["pending_batches"]:
                out.write(f"  batches waiting to be resent: {entry['pending_batches']}\n")
            schedule = entry.get("schedule") or {}
            if "next_run" in schedule:
                out.write(
                    f"  next run: {schedule['next_run']} ({schedule.get('next_rule', '')})"
                    + (" - OVERDUE" if schedule.get("overdue") else "")
                    + "\n"
                )
    return EXIT_OK if all(e["healthy"] for e in entries) else EXIT_STATUS


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    from hwb_client.adapters.odbc_source import load_profile

    settings = _load(args)
    base = settings.config_path.parent if settings.config_path else None
    for school in settings.schools:
        load_profile(school.profile, base_dir=base)
        school.connection_string()
    out.write(f"{settings.config_path}: OK ({len(settings.schools)} school(s))\n")
    from hwb_client.adapters import national_key

    for line in national_key.describe(settings.client.national_key_file, dt.date.today()):
        out.write(line + "\n")
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
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.run_now:
            if args.command:
                parser.error("--run-now runs on its own; do not give a command with it")
            return cmd_run_now(args, out)
        if args.command is None:
            parser.print_help(out)
            return EXIT_USAGE
        return int(COMMANDS[args.command](args, out))
    except HwbClientError as exc:
        sys.stderr.write(f"hwb-client: error: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # a traceback is a bug: log it, show one line
        detail = traceback.format_exc()
        log.error("unexpected_error", traceback=detail)
        sys.stderr.write("hwb-client: internal error (a bug): see the log for the traceback\n")
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``hwb-sandbox``: run the sandbox national API and look after its schools from the command line.

Commands: ``serve``, ``issue-code``, ``schools``, ``accounts``, ``clock``, ``openapi``. Exit codes: 0 ok, 2 usage,
3 bad argument value (for example a DfES number that is not Welsh), 4 school unknown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwb_sandbox import openapi
from hwb_sandbox.schemas import DFES_PATTERN
from hwb_sandbox.server import ConnectionLimits, ServeOptionError, TlsFiles, configure_logging, serve
from hwb_sandbox.signatures import ResponseKeyring
from hwb_sandbox.store import DEFAULT_CODE_VALID_DAYS, SandboxStore

EXIT_OK = 0
EXIT_BAD_VALUE = 3
EXIT_SCHOOL_UNKNOWN = 4
MAX_APPLY_WORKERS = 16


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwb-sandbox", description="Sandbox Hwb national API (protocol v1)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser(
        "serve", help="serve the API over HTTP (or HTTPS) until SIGTERM or Ctrl-C"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one")
    serve_cmd.add_argument("--db", type=Path, required=True, help="SQLite database file (created if missing)")
    serve_cmd.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    serve_cmd.add_argument(
        "--apply-workers",
        type=int,
        default=1,
        metavar="N",
        help="apply batches in N worker processes, so that several schools' batches are applied at once"
        " on several cores, as by the national service (default 1: in the server's own process)",
    )
    serve_cmd.add_argument(
        "--public-url",
        help="scheme://host[:port] clients use when a proxy sits in front (signatures cover the URL)",
    )
    serve_cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve_cmd.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help="fix the sandbox calendar's today at this date (kept in the database; see the clock command)",
    )
    _add_serve_limits(serve_cmd)

    issue = commands.add_parser(
        "issue-code", help="register a school if new and print a one-time enrolment code"
    )
    issue.add_argument("--db", type=Path, required=True)
    issue.add_argument("--dfes", required=True, help="the school's 7-digit DfES number")
    issue.add_argument("--name", help="the school's name (sets or renames it)")
    issue.add_argument(
        "--valid-days", type=float, default=DEFAULT_CODE_VALID_DAYS, help="code lifetime in days"
    )

    schools = commands.add_parser("schools", help="list schools with their last run")
    schools.add_argument("--db", type=Path, required=True)
    schools.add_argument("--json", action="store_true", help="print JSON instead of a table")

    accounts = commands.add_parser(
        "accounts", help="list a school's learner and staff accounts (keys, no names)"
    )
    accounts.add_argument("--db", type=Path, required=True)
    accounts.add_argument("--dfes", required=True)
    accounts.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rotate = commands.add_parser(
        "rotate-response-key",
        help="make a new national response key; the old one only vouches for it (restart serve)",
    )
    rotate.add_argument("--db", type=Path, required=True)

    clock = commands.add_parser(
        "clock",
        help="show or set the sandbox calendar's today (a running server reads it on every request)",
        description="The national calendar (leavers, the summer rules, purges) runs on this date. A set"
        " date stays fixed until set again; --real follows the real date in Wales. Signatures, nonces"
        " and timestamps always use real time.",
    )
    clock.add_argument("--db", type=Path, required=True)
    setting = clock.add_mutually_exclusive_group()
    setting.add_argument("--set", type=_date, metavar="YYYY-MM-DD", help="fix today at this date")
    setting.add_argument("--real", action="store_true", help="follow the real date again")
    clock.add_argument("--json", action="store_true", help="print JSON instead of a line")

    commands.add_parser("openapi", help="print the OpenAPI 3.1 document (the copy in docs/openapi.json)")
    return parser


def _date(text: str) -> dt.date:
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _add_serve_limits(serve_cmd: argparse.ArgumentParser) -> None:
    """Connection limits, timeouts and TLS: what keeps idle, slow or hostile clients from stopping others."""
    default = ConnectionLimits()
    limits = serve_cmd.add_argument_group("connections and TLS")
    limits.add_argument(
        "--connection-limit",
        type=_positive,
        default=default.connection_limit,
        help=f"open connections kept at once; beyond it new ones wait (default {default.connection_limit})",
    )
    limits.add_argument(
        "--channel-timeout",
        type=_positive,
        default=default.channel_timeout,
        help=f"seconds an idle connection is kept (default {default.channel_timeout})",
    )
    limits.add_argument(
        "--request-timeout",
        type=_positive,
        default=default.request_timeout,
        help="seconds a request (line, headers and body) may take to arrive from its first byte"
        f" (default {default.request_timeout})",
    )
    limits.add_argument(
        "--backlog",
        type=_positive,
        default=default.backlog,
        help=f"connections the kernel queues before they are accepted (default {default.backlog})",
    )
    limits.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate chain")
    limits.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-cert")


def _serve(args: argparse.Namespace) -> int:
    if (args.tls_cert is None) != (args.tls_key is None):
        _err("--tls-cert and --tls-key go together: give both to serve HTTPS, or neither")
        return EXIT_BAD_VALUE
    if not 1 <= args.apply_workers <= MAX_APPLY_WORKERS:
        _err(
            f"--apply-workers {args.apply_workers}: give 1 to {MAX_APPLY_WORKERS} (1: in the server's process)"
        )
        return EXIT_BAD_VALUE
    configure_logging(args.log_level)
    _set_clock_for_serve(args.db, args.today)
    limits = ConnectionLimits(args.connection_limit, args.channel_timeout, args.request_timeout, args.backlog)
    tls = TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        return serve(
            args.db,
            host=args.host,
            port=args.port,
            threads=args.threads,
            public_url=args.public_url,
            limits=limits,
            tls=tls,
            apply_workers=args.apply_workers,
        )
    except ServeOptionError as exc:
        _err(str(exc))
        return EXIT_BAD_VALUE


def _valid_dfes(dfes: str) -> bool:
    return re.fullmatch(DFES_PATTERN, dfes) is not None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(f"hwb-sandbox: {text}\n")


def _issue_code(args: argparse.Namespace) -> int:
    if not _valid_dfes(args.dfes):
        _err(f"{args.dfes!r} is not a Welsh DfES number (7 digits, LA 660-681)")
        return EXIT_BAD_VALUE
    store = SandboxStore(args.db)
    try:
        code = store.issue_code(args.dfes, args.name, valid_days=args.valid_days)
    finally:
        store.close()
    _out(code)
    return EXIT_OK


def _schools(args: argparse.Namespace) -> int:
    store = SandboxStore(args.db)
    try:
        rows: list[dict[str, Any]] = []
        for school in store.schools():
            run = store.last_run(school.dfes_number)
            rows.append(
                {
                    "dfes_number": school.dfes_number,
                    "school_name": school.name,
                    "last_run_finished_at": run["finished_at"] if run else None,
                    "last_run_outcome": run["outcome"] if run else None,
                    "last_success_at": store.last_success_at(school.dfes_number),
                    "records": store.record_counts(school.dfes_number),
                    "active_keys": store.active_keys(school.dfes_number),
                }
            )
    finally:
        store.close()
    if args.json:
        _out(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for row in rows:
        _out(
            f"{row['dfes_number']}  {row['school_name']}  last run: {row['last_run_finished_at'] or 'never'}"
            f" ({row['last_run_outcome'] or '-'})  last success: {row['last_success_at'] or 'never'}"
            f"  keys: {len(row['active_keys'])}"
        )
    return EXIT_OK


def _state_text(row: dict[str, Any]) -> str:
    """``active``, ``starts on D``, ``leaving on D`` (the last day on roll) or ``left on D``."""
    if row["state"] == "starting":
        return f"starts on {row['starts_on']}"
    if row["state"] in ("leaving", "left") and row["on_roll_until"]:
        return f"{row['state']} on {row['on_roll_until']}"
    return str(row["state"])


def _accounts(args: argparse.Namespace) -> int:
    store = SandboxStore(args.db)
    try:
        if store.school(args.dfes) is None:
            _err(f"no school {args.dfes} in {args.db}")
            return EXIT_SCHOOL_UNKNOWN
        rows = store.accounts(args.dfes)
    finally:
        store.close()
    if args.json:
        _out(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for row in rows:
        active = "active" if row["account_active"] else "inactive"
        _out(
            f"{row['kind']:<8} {row['account_id']}  {active:<8} at school: {row['status_at_school']:<7}"
            f" {_state_text(row):<24} {row['key']}"
        )
    return EXIT_OK


def _clock(args: argparse.Namespace) -> int:
    store = SandboxStore(args.db)
    try:
        if args.set is not None or args.real:
            store.set_today(args.set)
        setting, today = store.clock_setting(), store.today()
    finally:
        store.close()
    if args.json:
        _out(json.dumps({"today": today.isoformat(), "set": setting is not None}))
    else:
        _out(f"today: {today.isoformat()} ({'set' if setting is not None else 'the real date'})")
    return EXIT_OK


def _set_clock_for_serve(db: Path, today: dt.date | None) -> None:
    if today is None:
        return
    store = SandboxStore(db)
    try:
        store.set_today(today)
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "issue-code":
        return _issue_code(args)
    if args.command == "schools":
        return _schools(args)
    if args.command == "accounts":
        return _accounts(args)
    if args.command == "rotate-response-key":
        _out(ResponseKeyring.rotate(args.db).key_id)
        return EXIT_OK

    if args.command == "clock":
        return _clock(args)
    _out(json.dumps(openapi.document(), ensure_ascii=False, indent=2))
    return EXIT_OK

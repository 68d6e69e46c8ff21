"""``python -m hwb_synth``: write a synthetic reference-MIS data set into SQLite, PostgreSQL or MariaDB.

    python -m hwb_synth generate --seed 1 --scale la --sqlite /tmp/la.sqlite
    python -m hwb_synth generate --seed 1 --scale national --postgres hwb_national
    python -m hwb_synth generate --seed 1 --scale demo --broken 5 --mariadb hwb_demo

Prints row counts and timings only (never personal data). A server database is created when missing and
its reference tables are replaced.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from hwb_synth.dbservers import ServerKind, ServerSettings, ServerUnavailable, ensure_database
from hwb_synth.generate import DEFAULT_ACADEMIC_YEAR, generate
from hwb_synth.load import LoadReport, load_server, load_sqlite
from hwb_synth.scales import schools_for


def _say(line: str, *, error: bool = False) -> None:
    (sys.stderr if error else sys.stdout).write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hwb_synth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="generate a data set and load it into a database")
    gen.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data; default 1)")
    gen.add_argument(
        "--scale",
        choices=("demo", "small", "la", "national"),
        default="demo",
        help="demo: 2 schools; small: 4; la: 120 schools / 60,000 learners; national: ~1,470 / 470,000",
    )
    gen.add_argument("--academic-year", type=int, default=DEFAULT_ACADEMIC_YEAR, help="2025 for 2025/26")
    gen.add_argument("--broken", type=int, default=0, help="damage this many records (declared reasons)")
    target = gen.add_mutually_exclusive_group(required=True)
    target.add_argument("--sqlite", metavar="PATH", help="SQLite file (created with the schema)")
    target.add_argument("--postgres", metavar="DBNAME", help="database on PostgreSQL 127.0.0.1:5432")
    target.add_argument("--mariadb", metavar="DBNAME", help="database on MariaDB 127.0.0.1:3306")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 3 when the database cannot be reached or written."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    data = generate(
        args.seed,
        schools_for(args.scale, args.seed),
        academic_year=args.academic_year,
        broken=args.broken,
    )
    generated = time.perf_counter() - started
    counts = data.counts()
    _say(
        f"generated {args.scale} scale, seed {args.seed}, {args.academic_year}/{(args.academic_year + 1) % 100:02d}"
        f" in {generated:.1f}s: " + ", ".join(f"{value:,} {name}" for name, value in counts.items())
    )
    try:
        report: LoadReport
        if args.sqlite:
            report = load_sqlite(data, args.sqlite)
            where = args.sqlite
        else:
            kind: ServerKind = "postgres" if args.postgres else "mariadb"
            settings = ServerSettings.from_env(kind)
            target = ensure_database(settings, args.postgres or args.mariadb)
            report = load_server(data, target)
            where = f"{settings.label}, database {target.database}"
    except (ServerUnavailable, RuntimeError, OSError, ValueError) as error:
        _say(f"error: {error}", error=True)
        return 3
    _say(f"loaded into {where} with {report.method} in {report.seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

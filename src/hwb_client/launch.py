"""The ``hwb-client`` command's entry point: what it does before it imports the client.

A ``--run-now`` of many schools runs them in worker processes forked from a ``forkserver`` that imports
the client's modules once (``hwb_client.workers``). Started when the first school needs it, that import
came after the command's own (the parser, the settings, logging), one after the other on one core, about
0.4 s each, while the other core had nothing to do. Started here, before the command imports anything of
the client, the two imports run side by side.

Whether to start it is read from the command line and the configuration file without the client's
settings (which are the import it would wait for): ``--run-now`` without ``--school``, more than one
enabled school and ``schedule.max_concurrent_schools`` above 1 (2 unless set; the environment's
``HWB_SCHEDULE__MAX_CONCURRENT_SCHOOLS`` counts too). It is a guess, never a decision: the command
reads and checks the configuration as always and runs schools side by side only if that says so; a
wrong guess costs a forkserver that forks nothing (it exits with the command) or, the other way, the
wait it always had. A one-school run, most of what IT support starts by hand, starts none.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

#: what the forkserver imports before it forks a worker (``hwb_client.workers`` sets the same list)
PRELOAD = ["hwb_client.workers", "hwb_client.run"]


def default_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "HwbClient" / "hwb-client.toml"
    return Path("/etc/hwb-client/hwb-client.toml")


def main() -> int:
    """``hwb-client``: start the forkserver if this command will want it, then run the command."""
    if runs_schools_side_by_side(sys.argv[1:], os.environ):
        start_forkserver()
    from hwb_client.cli import main as command

    return command()


def start_forkserver() -> bool:
    """Start the shared ``forkserver`` with ``PRELOAD`` (not waiting for its imports); False where
    there is none (Windows)."""
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    return True


def runs_schools_side_by_side(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this command line, with its configuration file, looks like a run of schools side by side
    (see the module's text). Any doubt (no such file, not TOML, an odd value) answers no."""
    args = list(argv)
    if "--run-now" not in args or any(a == "--school" or a.startswith("--school=") for a in args):
        return False
    try:
        raw = tomllib.loads(_config_path(args, environ).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError):
        return False
    schools = raw.get("schools")
    if not isinstance(schools, list):
        return False
    enabled = sum(1 for s in schools if isinstance(s, dict) and s.get("enabled", True) is not False)
    schedule = raw.get("schedule")
    concurrent = schedule.get("max_concurrent_schools", 2) if isinstance(schedule, dict) else 2
    overridden = {k.upper(): v for k, v in environ.items()}.get("HWB_SCHEDULE__MAX_CONCURRENT_SCHOOLS")
    if overridden is not None:
        concurrent = int(overridden) if overridden.strip().isdigit() else 1
    return isinstance(concurrent, int) and concurrent > 1 and enabled > 1


def _config_path(args: list[str], environ: Mapping[str, str]) -> Path:
    """The file ``load_settings`` will read: ``--config PATH``, else ``HWB_CONFIG``, else the platform's."""
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    env_path = environ.get("HWB_CONFIG")
    return Path(env_path) if env_path else default_config_path()

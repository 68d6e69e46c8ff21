"""Write the hwb-client(1) manual page (roff) from the argument parser itself, so it cannot drift.

    python installers/deb/manpage.py SRC_DIR > hwb-client.1

``SRC_DIR`` holds the ``hwb_client`` package to describe (the build's copy of ``src``). The date is
``SOURCE_DATE_EPOCH`` (reproducible builds), the version ``hwb_client.__version__``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and a leading dot or apostrophe."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in {".", "'"} else text


def options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:  # the parser's own list; argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction) or not action.option_strings:
            continue
        flags = ", ".join(f"\\fB{esc(flag)}\\fR" for flag in action.option_strings)
        if action.nargs != 0:
            flags += f" \\fI{esc(action.metavar or action.dest.upper())}\\fR"
        lines += [".TP", flags, esc(action.help or "")]
    return lines


def commands(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            usage = " ".join(sub.format_usage().removeprefix("usage: ").split())
            lines += [".TP", f"\\fB{esc(name)}\\fR", esc(helps.get(name) or ""), ".br", f"\\fI{esc(usage)}\\fR"]
            lines += [".RS", *options(sub), ".RE"] if options(sub) else []
    return lines


def manpage(parser: argparse.ArgumentParser, version: str, date: dt.date) -> str:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines = [
        f'.TH HWB\\-CLIENT 1 "{date:%Y-%m-%d}" "hwb-client {esc(version)}" "User Commands"',
        ".SH NAME",
        "hwb\\-client \\- " + esc(parser.description or ""),
        ".SH SYNOPSIS",
        esc(" ".join(usage.split())),
        ".SH DESCRIPTION",
        "Run as root, \\fBhwb\\-client\\fR runs itself as the \\fBhwb\\-client\\fR service user, so that the",
        "files it writes keep the owner the service needs.",
        ".SH OPTIONS",
        *options(parser),
        ".SH COMMANDS",
        *commands(parser),
        ".SH EXIT STATUS",
        esc(parser.epilog or ""),
        ".SH FILES",
        ".TP",
        "\\fI/etc/hwb\\-client/hwb\\-client.toml\\fR",
        "the configuration (root:hwb\\-client 0640); an example is in /usr/share/doc/hwb\\-client.",
        ".TP",
        "\\fI/etc/hwb\\-client/national\\-key.json\\fR",
        "the national UPN hashing key (root:hwb\\-client 0640), or a systemd credential.",
        ".TP",
        "\\fI/var/lib/hwb\\-client\\fR",
        "state databases and signing keys (hwb\\-client:hwb\\-client 0750).",
        ".TP",
        "\\fI/var/log/hwb\\-client/hwb\\-client.log\\fR",
        "the log file (rotated by logrotate; SIGHUP reopens it).",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5), \\fBlogrotate\\fR(8)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.path.insert(0, sys.argv[1])
    from hwb_client import __version__
    from hwb_client.cli import build_parser

    parser = build_parser()
    parser.prog = "hwb-client"
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    sys.stdout.write(manpage(parser, __version__, dt.datetime.fromtimestamp(epoch, dt.UTC).date()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reliability and security scenarios: shared fixtures, the privacy scan, and the report they write.

- ``national``: one sandbox national API (a real subprocess) for the whole session; every lab uses fresh
  DfES numbers, so scenarios never see each other's schools.
- ``rlab``: makes a lab (configuration, national key, MIS files, state) on that sandbox. After the test,
  every log file, state database (and set-aside copy), error output and run report the lab produced is
  scanned for the raw UPNs, names, dates of birth and addresses in its MIS, and for its key material:
  a hit fails the test.
- ``scenario``: every test here records its outcome and key figures (retries, seconds to give up,
  batches applied); when a session ran all of ``tests/reliability``, ``docs/reliability.md`` is written
  from them. Regenerate with ``./scripts/test tests/reliability``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from reliability_support import OdbcSchool, RLab, next_dfes, privacy_scan

from hwb_demo.lab import Lab
from hwb_sandbox.testing import SandboxProcess

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "reliability.md"


# -- the sandbox and labs -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def national(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox national API process for all reliability scenarios."""
    with SandboxProcess(tmp_path_factory.mktemp("national") / "sandbox.db") as process:
        yield process


@dataclass
class Scenario:
    """What one scenario did, for docs/reliability.md."""

    area: str
    name: str
    doc: str
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"
    seconds: float = 0.0
    total_seconds: float = 0.0  # with set-up and tear-down (the privacy scan)
    detail: str = ""


_SCENARIOS: dict[str, Scenario] = {}
_STATE: dict[str, Any] = {"deselected": 0, "collected": []}


def _in_here(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


@pytest.fixture(autouse=True)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """The current scenario's record: tests put their key figures in ``scenario.figures``."""
    module = request.module
    area = getattr(module, "AREA", module.__name__)
    doc = (request.function.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    record = Scenario(area, request.node.name, " ".join(doc.split()))
    _SCENARIOS[request.node.nodeid] = record
    return record


@pytest.fixture
def rlab(tmp_path: Path, national: SandboxProcess, scenario: Scenario) -> Iterator[Callable[..., RLab]]:
    """``rlab(schools=1, batches=None, api={...}, guard="", enrol=True, connections=None, base_url=None)``
    makes a lab of fresh schools on the shared sandbox; each is privacy-scanned after the test."""
    made: list[RLab] = []

    def make(
        schools: int = 1,
        *,
        batches: int | None = None,
        api: dict[str, object] | None = None,
        guard: str = "",
        enrol: bool = True,
        connections: list[str] | None = None,
        base_url: str | None = None,
    ) -> RLab:
        root = tmp_path / f"lab{len(made)}"
        root.mkdir()
        lab_schools = []
        for i in range(schools):
            dfes = next_dfes()
            school = OdbcSchool(dfes, f"Ysgol Prawf {dfes}", root / f"mis-{dfes}.sqlite3")
            if connections:
                school.connection = connections[i]
            lab_schools.append(school)
        lab = RLab(Lab(root, lab_schools, base_url or national.url), national)
        lab.write_config(batches=batches, api=api, guard=guard)
        if enrol:
            lab.enrol()
        made.append(lab)
        return lab

    yield make
    scanned = [privacy_scan(lab) for lab in made]
    if scanned:
        files = sum(s[0] for s in scanned)
        values = sum(s[1] for s in scanned)
        scenario.figures["privacy scan"] = f"{files} files, {values} values, 0 leaks"


# -- the privacy scan ----------------------------------------------------------------------------------


# -- outcomes and the report -----------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _STATE["collected"] = [item.nodeid for item in items if _in_here(item)]


def pytest_deselected(items: list[pytest.Item]) -> None:
    _STATE["deselected"] += sum(1 for item in items if _in_here(item))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    record = _SCENARIOS.get(item.nodeid)
    if record is None:
        return
    record.total_seconds += report.duration
    if report.when == "call":
        record.outcome = report.outcome
        record.seconds = report.duration
        if report.failed:
            record.detail = str(getattr(report.longrepr, "reprcrash", "") or "")[:300]
    elif report.skipped:
        record.outcome = "skipped"
        longrepr = report.longrepr
        record.detail = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)[:300]
    elif report.failed:
        record.outcome = "error" if report.when == "setup" else "failed"
        record.detail = str(getattr(report.longrepr, "reprcrash", "") or "")[:300]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    collected: list[str] = _STATE["collected"]
    if not collected or _STATE["deselected"]:
        return
    ran = {nodeid for nodeid, s in _SCENARIOS.items() if s.outcome != "not run"}
    if set(collected) - ran:
        return  # stopped early (-x, Ctrl-C) or a subset was run: keep the committed report
    every_file = {path.name for path in HERE.glob("test_*.py")}
    if every_file - {nodeid.split("::")[0].rsplit("/", 1)[-1] for nodeid in collected}:
        return  # only some of the files were named on the command line
    ordered = sorted(collected, key=lambda nodeid: (_order(nodeid), collected.index(nodeid)))
    DOC.write_text(render([_SCENARIOS[n] for n in ordered]), encoding="utf-8")


_AREA_ORDER = [
    "test_crash_matrix",
    "test_network_faults",
    "test_hostile_server",
    "test_mis_faults",
    "test_lost_state",
    "test_properties",
    "test_hostile_input",
    "test_security",
    "test_sandbox_abuse",
    "test_sandbox_tls",
    "test_local_files",
    "test_state_storage",
    "test_national_key_rotation",
    "test_secrets_and_addresses",
    "test_keyed_state_upgrade",
    "test_response_key_rotation",
]


def _order(nodeid: str) -> int:
    module = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    return _AREA_ORDER.index(module) if module in _AREA_ORDER else 99


def _figures(figures: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in figures.items()) or "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(scenarios: list[Scenario]) -> str:
    counts: dict[str, int] = {}
    for s in scenarios:
        counts[s.outcome] = counts.get(s.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    elapsed = sum(s.total_seconds for s in scenarios)
    lines = [
        "# Reliability and security: what was tried, and what happened",
        "",
        "<!-- Generated by tests/reliability/conftest.py at the end of a test run; do not edit by hand. -->",
        "",
        "Every row below is a test in `tests/reliability/` that ran the real parts: the `hwb-client` command "
        "in a subprocess (killed with SIGKILL at named failpoints), the SQLite and PostgreSQL ODBC drivers, "
        "the sandbox national API in its own process over loopback, and a fault-injecting proxy between them. "
        "After each scenario the sandbox is compared with what the MIS says (every record's digest and "
        "status, the client's acknowledged state, a fresh dry run with 0 changes) and the sandbox's batch "
        "ledger shows each change applied once. Every log file, state database, error output and run report "
        "of each scenario is scanned for its raw UPNs, names, dates of birth, addresses and key material.",
        "",
        f"**Last run:** {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {len(scenarios)} scenarios in {elapsed:.0f} s: {summary}.",
        "",
        "**Regenerate:** `./scripts/test tests/reliability` (or `.venv/bin/pytest tests/reliability`). The file "
        "is rewritten only when the whole of `tests/reliability` ran (no `-k`, no early stop).",
        "",
    ]
    areas: dict[str, list[Scenario]] = {}
    for s in scenarios:
        areas.setdefault(s.area, []).append(s)
    for area, rows in areas.items():
        lines += [f"## {area}", "", "| scenario | what it shows | result | figures |", "|---|---|---|---|"]
        for s in rows:
            result = s.outcome + (f" ({s.seconds:.1f} s)" if s.outcome in {"passed", "failed"} else "")
            if s.detail and s.outcome != "passed":
                result += f": {s.detail}"
            lines.append(
                f"| `{_cell(s.name)}` | {_cell(s.doc)} | {_cell(result)} | {_cell(_figures(s.figures))} |"
            )
        lines.append("")
    examples = os.environ.get("HWB_RELIABILITY_EXAMPLES", "15")
    lines += [line.rstrip() for line in _STATIC.replace("{examples}", examples).strip("\n").splitlines()]
    lines.append("")
    return "\n".join(lines)


_STATIC = f"""
## Covered elsewhere

- Tampered, replayed and stale requests, unknown and retired keys, a key of another school, a wrong
  `Content-Digest`: refused by the sandbox with `401` (`tests/sandbox/test_signatures.py`,
  `tests/sandbox/test_enrolment_and_keys.py`); the exactly-once batch ledger and idempotency-key reuse
  (`tests/sandbox/test_batches.py`); key files written owner-only (`tests/sandbox/test_key_files.py`).
- Log redaction as a second line of defence (`tests/unit/test_state_and_logs.py`); URL credentials,
  the loopback rule, reply checking, bounded gzip inflation, keyed digests and the anti-entropy
  comparison as pure functions (`tests/unit/test_trust_and_redaction.py`).
- The daemon surviving an outage and SIGTERM mid-run (`tests/e2e/test_daemon_end_to_end.py`).

## Bugs these tests found

| found by | what was wrong | fixed in |
|---|---|---|
| crash matrix | `HWB_FAILPOINT=while_reading` was never armed (the wrapper in `run.py` was unused), so a crash while reading the MIS could not be rehearsed | "Fix: the while_reading failpoint was never armed" |
| connection reset mid-body | `requests` raises `ChunkedEncodingError` (not `ConnectionError`) when the answer's body is cut; the transport treated it as final, so a batch the server had applied failed the run instead of being retried | "Fix: retry a batch whose answer was cut by a connection reset mid-body" |
| property test | a process killed between closing a cut-off run and marking it reported left a partial report (no `started_at`, no `client_version`) queued; the national API refuses it (422) and, as an undeliverable report fails the run, every later run of that school failed | "Fix: close a cut-off run in one transaction" |
| configuration fuzzing | `client.log_file` naming a directory (or a path that cannot be opened) ended in an internal error with a traceback on stderr, instead of exit 3 naming the setting | "Fix: an unwritable client.log_file is a configuration error" |
| property test | a leaver the national side never held was sent as `leave` (refused `not_found`), with their class memberships (`unknown_member`), on every run | fixed at the same time in "leavers the national side never held are not sent" |

## Reported, not fixed

- A run report the national API refuses for good (any 4xx) stays first in the queue: every later report
  waits behind it and every later run ends failed. Such a report should be set aside (logged), as a
  refused batch is.
- A connection lost during the first `FETCH` (inside `execute()`, with `UseDeclareFetch=1`) is reported as
  "the learners query failed ... check the query profile", which blames the profile for an outage.

## Not covered

- TLS faults beyond an unknown CA and a wrong name (an expired certificate, a TLS-inspecting proxy,
  client certificates); the sandbox serves TLS itself since 0.2.0 (`serve --tls-cert --tls-key`).
- Abuse beyond one process's bounds: thousands of connections at once (past `--connection-limit`, new
  ones wait in the backlog), floods from many addresses; a national service would put a rate limit and a
  load balancer in front.
- A power cut (as opposed to SIGKILL): SIGKILL loses what the process had not written, but not what the
  kernel had not flushed; the state database uses `synchronous=FULL` in WAL mode for that.
- The vulnerability audit needs a vulnerability database from the network: `pip-audit` is not run offline
  (the row above says skipped); run it with `HWB_AUDIT_ONLINE=1` and `pip-audit` installed.
- Hypothesis runs {{examples}} examples per property here (`HWB_RELIABILITY_EXAMPLES=N` for more), without
  shrinking (each example is several real runs); a failure prints its example.

Generated by `{Path(__file__).relative_to(HERE.parents[1])}` with Python {sys.version.split()[0]}.
"""

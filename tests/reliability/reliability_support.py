"""Helpers for the reliability tests: labs on a shared sandbox, what the MIS says, what the sandbox holds.

Everything here uses the real parts: the client's own ODBC source, snapshot builder and diff (in this
process) to say what the national side *should* hold, the signed API to ask what it *does* hold, and the
sandbox's own database (read only) for its per-batch ledger. Nothing is mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwb_client import trust
from hwb_client.adapters.national_key import load_national_key
from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.adapters.signing import generate_signing_key, public_key_b64
from hwb_client.adapters.state import StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.core.diff import diff
from hwb_client.core.model import Kind, Operation
from hwb_client.core.snapshot import Snapshot, build_snapshot
from hwb_client.run import run_school
from hwb_client.settings import load_settings
from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess
from mis_builder import Mis

#: Fresh DfES numbers for every school of the session (LA 660-669), so one sandbox serves many tests.
_DFES = itertools.count(1)


def next_dfes() -> str:
    return f"66{next(_DFES):05d}"


@dataclass
class OdbcSchool(LabSchool):
    """A lab school whose MIS is reached through any ODBC connection string (a server, not a file)."""

    connection: str = ""

    @property
    def odbc(self) -> str:
        return self.connection or f"Driver=SQLite3;Database={self.mis_path}"


@dataclass
class CliRun:
    """One finished ``hwb-client`` subprocess: what it printed, how it ended and how long it took."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    env: dict[str, str] = field(default_factory=dict)

    @property
    def killed(self) -> bool:
        return self.returncode == -9

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log events called ``name`` that this run wrote to stderr."""
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found


@dataclass
class RLab:
    """A rehearsal lab plus what the reliability checks need: every CLI run it made, and extra secrets."""

    lab: Lab
    sandbox: SandboxProcess
    runs: list[CliRun] = field(default_factory=list)
    #: values that must never appear in logs, state, errors or run reports (besides the MIS's own)
    secrets: set[str] = field(default_factory=set)

    @property
    def root(self) -> Path:
        return self.lab.root

    @property
    def schools(self) -> list[LabSchool]:
        return self.lab.schools

    @property
    def dfes(self) -> str:
        return self.lab.schools[0].dfes_number

    @property
    def env(self) -> dict[str, str]:
        return self.lab.env

    def cli(self, *args: str, timeout: float = 120, **env: str) -> CliRun:
        """Run the real ``hwb-client`` in a subprocess (``env`` adds variables for this run only)."""
        for school in self.lab.schools:  # what the MIS holds now, before this run may change anything
            self.secrets |= mis_secrets(school.mis_path)
        saved = dict(self.lab.env)
        self.lab.env.update(env)
        started = time.monotonic()
        try:
            # in the lab's folder: a relative path in a fuzzed setting (client.log_file = "25:61") is
            # made there, not in the working tree
            done: subprocess.CompletedProcess[str] = self.lab.cli(*args, timeout=timeout, cwd=self.root)
        finally:
            self.lab.env.clear()
            self.lab.env.update(saved)
        run = CliRun(
            tuple(args), done.returncode, done.stdout, done.stderr, time.monotonic() - started, dict(env)
        )
        self.runs.append(run)
        return run

    def run_now(self, **env: str) -> CliRun:
        return self.cli("--run-now", **env)

    def enrol(self) -> None:
        """Enrol every school as ``hwb-client enrol`` does (a new key file, the one-time code), in-process."""
        settings = load_settings(self.lab.config_path)
        for school in self.lab.schools:
            code = self.sandbox.issue_code(school.dfes_number, school.name)
            key = generate_signing_key(settings.signing_key_path(settings.school(school.dfes_number)))
            api = NationalApi(settings.api, signer=None)
            try:
                answer = api.enrol(school.dfes_number, code, public_key_b64(key))
            finally:
                api.close()
            trust.pin_from_enrolment(settings, settings.school(school.dfes_number), answer)

    def write_config(
        self, *, batches: int | None = None, api: dict[str, object] | None = None, guard: str = ""
    ) -> None:
        """The lab's configuration, with ``[api]`` settings replaced by ``api`` (TOML values)."""
        self.lab.extra_config = f"\n[batches]\nmax_operations = {batches}\n" if batches else ""
        path = self.lab.write_config(guard=guard)
        text = path.read_text(encoding="utf-8")
        for name, value in (api or {}).items():
            line = f"{name} = {json.dumps(value)}"
            text, found = re.subn(rf"(?m)^{name} = .*$", line, text)
            if not found:
                text = text.replace("[api]\n", f"[api]\n{line}\n", 1)
        path.write_text(text, encoding="utf-8")

    # -- what the MIS says, and what the client and the sandbox hold ---------------------------------

    def projection(self, dfes: str | None = None) -> Snapshot:
        """The records the client would compute from the MIS now (the real source, validation, hashing)."""
        dfes = dfes or self.dfes
        settings = load_settings(self.lab.config_path)
        school = settings.school(dfes)
        profile = load_profile(school.profile, base_dir=self.lab.root)
        hasher = load_national_key(settings.client.national_key_file)
        source = MisSource.connect(school.connection_string(), dfes, profile)
        try:
            return build_snapshot(
                source.source_rows(),
                hasher,
                dt.date.today(),
            )
        finally:
            source.close()

    def acknowledged(self, dfes: str | None = None) -> Any:
        store = StateStore.open(self.lab.state_dir, dfes or self.dfes, read_only=True)
        try:
            return store.acknowledged()
        finally:
            store.close()

    def stored_digest(self, dfes: str | None = None) -> Callable[[str], str]:
        """The school's state digest keying (``StateStore.stored_digest``), for comparing with its state."""
        store = StateStore.open(self.lab.state_dir, dfes or self.dfes, read_only=True)
        store.close()
        return store.stored_digest

    def pending_changes(self, dfes: str | None = None) -> list[Operation]:
        """What a run would send now: the diff of the MIS against the client's acknowledged state."""
        return diff(self.projection(dfes), self.acknowledged(dfes), self.stored_digest(dfes))

    def dry_run_changes(self, dfes: str | None = None) -> dict[str, dict[str, int]]:
        """The client's own dry run (read, validate, diff; sends and changes nothing): changes per kind."""
        settings = load_settings(self.lab.config_path)
        result = run_school(settings, settings.school(dfes or self.dfes), dry_run=True)
        assert result.outcome != "failed", result.message
        return result.counts

    def manifest(self, dfes: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        dfes = dfes or self.dfes
        api = self.lab.api(dfes)
        try:
            return {(r.kind, r.key): dataclasses.asdict(r) for r in api.manifest(dfes).records}
        finally:
            api.close()

    def assert_sandbox_matches_mis(self, dfes: str | None = None) -> int:
        """The national side holds exactly what the MIS says (digest and status of every record), the
        client's acknowledged state agrees, and a fresh dry run would send nothing. Returns the count.

        A leaver the national side never held (left before it was first sent) is rightly absent from
        both, and so are their class memberships: there is no account to release."""
        dfes = dfes or self.dfes
        snapshot = self.projection(dfes)
        expected = {
            (kind.value, key): (entry.digest, "left" if entry.left else "active")
            for kind in Kind
            for key, entry in snapshot.entries[kind].items()
        }
        held = {(kind.value, key) for kind, key in snapshot.held_keys}
        actual = {key: (r["digest"], r["status"]) for key, r in self.manifest(dfes).items()}
        acknowledged = {
            (kind.value, key): (entry.digest, entry.status)
            for kind, entries in self.acknowledged(dfes).items()
            for key, entry in entries.items()
        }
        never_held = {
            key
            for key, (_, status) in expected.items()
            if status == "left" and key not in actual and key not in acknowledged
        }
        for key in list(expected):
            record = snapshot.entries[Kind(key[0])][key[1]].record
            member = (record.get("member_kind"), record.get("member_key"))
            if key[0] == "membership" and member in never_held and key not in actual | acknowledged.keys():
                never_held.add(key)
        expected = {k: v for k, v in expected.items() if k not in never_held}
        missing = {k: v for k, v in expected.items() if actual.get(k) != v}
        extra = {k: v for k, v in actual.items() if k not in expected and k not in held}
        assert not missing, f"{dfes}: the sandbox lacks or differs on {len(missing)} record(s): {missing}"
        assert not extra, f"{dfes}: the sandbox holds {len(extra)} record(s) the MIS does not: {extra}"
        keyed = self.stored_digest(dfes)
        assert {k: v for k, v in acknowledged.items() if k not in held} == {
            k: (keyed(digest), status) for k, (digest, status) in expected.items()
        }
        assert self.dry_run_changes(dfes) == {}
        return len(expected)


# -- personal data in a lab, for the privacy scan ---------------------------------------------------------

_HEXISH = re.compile(r"^[0-9a-fA-F:]+$")


def distinctive(value: object) -> str | None:
    """A value worth scanning for: long enough not to occur by chance in JSON keys or, when it could be
    hexadecimal (a UPN whose check letter is A-F is), in the digests and ids of a state database."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) < 6 or (_HEXISH.match(value) and len(value) < 12):
        return None
    return value


def mis_secrets(path: Path, *, below_id: int = 90000) -> set[str]:
    """The personal data in a reference-schema SQLite MIS (rows with ids from ``below_id`` up are
    hypothesis's hostile values, too random to scan for)."""
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    found: set[str] = set()
    try:
        queries = [
            "SELECT upn, legal_forename, legal_surname, date_of_birth, home_address, preferred_forename"
            " FROM mis_pupil WHERE pupil_id < ?",
            "SELECT legal_forename, legal_surname, home_address, ni_number FROM mis_staff WHERE staff_id < ?",
        ]
        for sql in queries:
            try:
                rows = db.execute(sql, (below_id,)).fetchall()
            except sqlite3.Error:
                continue
            for row in rows:
                found.update(v for v in map(distinctive, row) if v)
    finally:
        db.close()
    return found


def _key_material(lab: RLab) -> set[str]:
    found: set[str] = set()
    for pem in (lab.root / "state" / "keys").glob("*.pem"):
        lines = pem.read_text().splitlines()
        found.update(line for line in lines if line and not line.startswith("-----"))
    national_key = lab.lab.national_key_file
    if national_key.exists():
        found.update(re.findall(r'"key": "([^"]+)"', national_key.read_text()))  # every key of a rotation
    return found


def privacy_scan(lab: RLab) -> tuple[int, int]:
    """Fail if any personal datum or secret of the lab appears where it must not; return (files, values)."""
    secrets = {s for s in map(distinctive, lab.secrets) if s} | _key_material(lab)
    for school in lab.schools:
        secrets |= mis_secrets(school.mis_path)
    mis_files = {s.mis_path.resolve() for s in lab.schools}
    blobs: dict[str, bytes] = {}
    for path in lab.root.rglob("*"):
        if not path.is_file() or path.resolve() in mis_files or path.name.startswith("mis-"):
            continue
        if path.suffix in {".pem", ".key", ".toml", ".sql"} or path.name == "national-key.json":
            continue  # the secrets themselves, and the configuration and profiles the LA wrote
        blobs[str(path.relative_to(lab.root))] = path.read_bytes()
    for i, run in enumerate(lab.runs):
        blobs[f"run {i} {' '.join(run.args)} stderr"] = run.stderr.encode()
        if "--dry-run" not in run.args:  # the dry-run plan names held-back records on purpose
            blobs[f"run {i} {' '.join(run.args)} stdout"] = run.stdout.encode()
    for school in lab.schools:
        db = sqlite3.connect(f"file:{lab.sandbox.db_path}?mode=ro", uri=True)
        try:
            reports = db.execute(
                "SELECT report_json FROM run_reports WHERE dfes_number = ?", (school.dfes_number,)
            ).fetchall()
        finally:
            db.close()
        blobs[f"sandbox run reports {school.dfes_number}"] = "\n".join(r[0] for r in reports).encode()
    if lab.sandbox.log_path.exists():
        blobs["sandbox log"] = lab.sandbox.log_path.read_bytes()
    leaks = sorted(
        {(where, secret) for where, blob in blobs.items() for secret in secrets if secret.encode() in blob}
    )
    assert not leaks, f"personal data or secrets leaked: {leaks[:10]}"
    return len(blobs), len(secrets)


# -- the sandbox's own ledger (read only) ----------------------------------------------------------------


def _sandbox_rows(sandbox: SandboxProcess, sql: str, *params: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{sandbox.db_path}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


@dataclass(frozen=True)
class Ledger:
    """The sandbox's batches for one school: one row per batch id, with its first (and only) answer."""

    batches: dict[str, dict[str, Any]]

    def since(self, before: Ledger) -> Ledger:
        return Ledger({k: v for k, v in self.batches.items() if k not in before.batches})

    @property
    def applied(self) -> int:
        return sum(int(b["applied"]) for b in self.batches.values())

    @property
    def unchanged(self) -> int:
        return sum(int(b["unchanged"]) for b in self.batches.values())

    @property
    def refused(self) -> int:
        return sum(int(b["refused"]) for b in self.batches.values())

    def __len__(self) -> int:
        return len(self.batches)


def ledger(sandbox: SandboxProcess, dfes: str) -> Ledger:
    rows = _sandbox_rows(sandbox, "SELECT batch_id, response_json FROM batches WHERE dfes_number = ?", dfes)
    return Ledger({batch_id: json.loads(body) for batch_id, body in rows})


def run_reports(sandbox: SandboxProcess, dfes: str) -> list[dict[str, Any]]:
    rows = _sandbox_rows(
        sandbox, "SELECT report_json FROM run_reports WHERE dfes_number = ? ORDER BY seq", dfes
    )
    return [json.loads(r[0]) for r in rows]


def learner_accounts(sandbox: SandboxProcess) -> int:
    return int(_sandbox_rows(sandbox, "SELECT count(*) FROM learner_accounts")[0][0])


def staff_accounts(sandbox: SandboxProcess, dfes: str) -> int:
    return int(
        _sandbox_rows(sandbox, "SELECT count(*) FROM staff_accounts WHERE dfes_number = ?", dfes)[0][0]
    )


def churn(mis: Mis, *, joiners: int = 25, first_new: int = 500) -> None:
    """A realistic change set on a ``small_school`` MIS (learners 1..N in group 6A): joiners with their
    class memberships, five leavers with leaving dates, three learners who vanished from the MIS, four
    edits (name, year group), a member of staff leaving, and one broken joiner (held back)."""
    for i in range(joiners):
        mis.add_learner(first_new + i, forename=f"Newydd{i}", surname="Ymunwr", year="5", reg="5B")
        mis.add_member(5000 + i, 1, pupil=first_new + i)
    mis.execute("UPDATE mis_pupil SET leaving_date = '2026-07-22' WHERE pupil_id BETWEEN 1 AND 5")
    mis.execute("DELETE FROM mis_group_member WHERE pupil_id BETWEEN 6 AND 8")
    mis.execute("DELETE FROM mis_pupil WHERE pupil_id BETWEEN 6 AND 8")
    mis.execute("UPDATE mis_pupil SET legal_forename = 'Elen' WHERE pupil_id IN (9, 10)")
    mis.execute("UPDATE mis_pupil SET year_group = '7' WHERE pupil_id IN (11, 12)")
    mis.execute("UPDATE mis_staff SET leaving_date = '2026-07-22' WHERE staff_id = 2")
    mis.add_learner(first_new + joiners, upn_value="K68123452501A", forename="Dros", surname="Dro")
    mis.commit()


def said(run: CliRun, limit: int = 110) -> str:
    """The run's one-line result message without the school prefix, shortened for a report figure."""
    line = run.stdout.split(" - ", 1)[-1].splitlines()[0] if run.stdout else run.stderr.strip()
    line = re.sub(r"^school \d{7}: ", "", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def counted(operations: Iterable[Operation]) -> dict[str, int]:
    out: dict[str, int] = {}
    for op in operations:
        out[op.op.value] = out.get(op.op.value, 0) + 1
    return out

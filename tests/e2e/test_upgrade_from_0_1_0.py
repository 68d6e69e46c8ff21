"""A school's state made by hwb-client 0.1.0 is migrated in place: nothing re-sent, nothing removed.

The fixture ``tests/fixtures/state-0.1.0`` was made by the 0.1.0 code (``make_state_0_1_0.py``): a school
sent to a sandbox, then a second run killed with one batch frozen in the outbox.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

from hwb_client.adapters.response_keys import pin_path
from hwb_client.adapters.state import MIGRATIONS
from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess

FIXTURE = Path(__file__).parent.parent / "fixtures" / "state-0.1.0"
DFES, NAME = "6612001", "Ysgol Gynradd Llanfair"


def test_a_0_1_0_state_is_migrated_in_place_and_resends_only_its_pending_batch(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "school")
    root = tmp_path / "school"
    for secret in (root / "lab" / "state").rglob("*"):  # git keeps no owner-only modes
        if secret.is_file() and secret.suffix in {".pem", ".key"}:
            secret.chmod(0o600)
    state_db = root / "lab" / "state" / f"{DFES}.sqlite3"
    before = sqlite3.connect(state_db)
    assert before.execute("SELECT max(version) FROM schema_migrations").fetchone() == (2,)
    acknowledged = before.execute(
        "SELECT kind, key, digest, status FROM acknowledged ORDER BY 1, 2"
    ).fetchall()
    before.close()
    with SandboxProcess(root / "sandbox.sqlite3") as sandbox:
        lab = Lab(root / "lab", [LabSchool(DFES, NAME, root / "mis.sqlite3")], sandbox.url)
        lab.write_config()
        # an administrator's first step after upgrading the package: a dry run, which migrates nothing
        dry = lab.cli("--run-now", "--dry-run", "--as-of", "2026-12-01")
        assert dry.returncode in (0, 1), dry.stdout + dry.stderr
        assert "1 batch from an earlier run is waiting to be resent" in dry.stdout
        first = lab.cli("--run-now", "--as-of", "2026-12-01")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "3 changes sent in 1 batch (3 from batches an earlier run left)" in first.stdout
        assert "planned: none" in first.stdout
        second = lab.cli("--run-now", "--as-of", "2026-12-02")
        assert second.returncode == 0 and "0 changes sent in 0 batches" in second.stdout
        verified = lab.cli("--run-now", "--verify", "--as-of", "2026-12-02")
        assert verified.returncode == 0 and "0 changes sent" in verified.stdout
        api = lab.api(DFES)
        try:
            records = [dataclasses.asdict(r) for r in api.manifest(DFES).records]
        finally:
            api.close()
    after = sqlite3.connect(state_db)
    assert after.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
    kept = after.execute("SELECT kind, key, status FROM acknowledged ORDER BY 1, 2").fetchall()
    assert kept == [(kind, key, status) for kind, key, _digest, status in acknowledged]
    assert after.execute(
        "SELECT count(*) FROM acknowledged WHERE stable IS NULL AND kind = 'learner'"
    ).fetchone() == (0,)
    # 0.1.0's plain record digests were keyed in place (the state alone gives nothing to guess against)
    assert after.execute(
        "SELECT count(*) FROM acknowledged WHERE digest NOT LIKE 'hmac-sha-256:%'"
    ).fetchone() == (0,)
    after.close()
    # the national response key, which 0.1.0 never learned, was pinned on the first run (no new code)
    assert pin_path(root / "lab" / "state" / "keys" / f"{DFES}.pem").exists()
    assert sum(1 for r in records if r["kind"] == "learner" and r["status"] == "active") == 30

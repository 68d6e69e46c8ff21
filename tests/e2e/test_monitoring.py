"""Monitoring through the real CLI: the Prometheus textfile, the status file read by an account that may
read neither keys nor state, journald priorities, held-back records logged on change, state migration 3."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hwb_client.adapters.state import MIGRATIONS
from hwb_demo.lab import Lab, LabSchool
from mis_builder import small_school

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")


def events(lab, name):
    lines = lab.log_file.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if f'"event": "{name}"' in line]


def test_every_run_rewrites_the_prometheus_textfile_with_per_school_metrics(make_lab, tmp_path):
    textfile = tmp_path / "textfile"
    lab = make_lab([PRIMARY])
    lab.extra_config = f'[monitoring]\ntextfile_dir = "{textfile}"\n'
    lab.write_config()
    mis = small_school(lab.schools[0].mis_path, "6612001")
    mis.add_staff(4, "NEW", start=None)
    mis.commit()
    assert lab.cli("--run-now").returncode == 1
    text = (textfile / "hwb_client.prom").read_text()
    assert "# TYPE hwb_client_last_success_timestamp_seconds gauge" in text
    assert re.search(r'^hwb_client_last_success_timestamp_seconds\{dfes="6612001"\} \d{10}$', text, re.M)
    assert 'hwb_client_last_run_outcome{dfes="6612001",outcome="partial"} 1' in text
    assert 'hwb_client_last_run_outcome{dfes="6612001",outcome="failed"} 0' in text
    assert 'hwb_client_held_back_records{dfes="6612001",reason="start_date_missing"} 1' in text
    assert 'hwb_client_pending_batches{dfes="6612001"} 0' in text
    assert re.search(r'^hwb_client_last_run_duration_seconds\{dfes="6612001"\} \d+$', text, re.M)
    assert sorted(p.name for p in textfile.iterdir()) == ["hwb_client.prom"]  # no temp file left behind
    mis.execute("UPDATE mis_staff SET start_date = '2026-09-01' WHERE staff_code = 'NEW'")
    mis.commit()
    assert lab.cli("--run-now").returncode == 0
    text = (textfile / "hwb_client.prom").read_text()
    assert 'outcome="success"} 1' in text and "hwb_client_held_back_records{" not in text


@pytest.fixture
def shared_root():
    """A lab root others may traverse (0711) but not list, outside pytest's owner-only temp tree."""
    root = Path(tempfile.mkdtemp(prefix="hwb-monitoring-", dir="/tmp"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_status_works_for_a_monitoring_account_that_can_read_neither_keys_nor_state(sandbox, shared_root):
    lab = Lab(shared_root / "lab", [LabSchool(*PRIMARY, shared_root / "mis.sqlite3")], sandbox.url)
    lab.root.mkdir()
    lab.root.chmod(0o711)
    monitor = shared_root / "monitor"
    monitor.mkdir(mode=0o755)
    lab.extra_config = (
        f'[monitoring]\nstatus_file = "{monitor / "status.json"}"\nstatus_file_group = "nogroup"\n'
    )
    lab.write_config()
    lab.enrol_all(sandbox)
    mis = small_school(lab.schools[0].mis_path, "6612001")
    mis.add_staff(4, "NEW", start=None)
    mis.commit()
    assert lab.cli("--run-now").returncode == 1
    lab.config_path.chmod(0o644)
    assert os.stat(lab.state_dir).st_mode & 0o077 == 0  # the state is the service's own
    assert oct(os.stat(monitor / "status.json").st_mode & 0o777) == "0o640"
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    command = [sys.executable, "-m", "hwb_client", "--config", str(lab.config_path), "status"]
    env = {key: value for key, value in os.environ.items() if key != "HWB_CONFIG"}
    denied = subprocess.run([*as_nobody, "cat", str(lab.state_dir / "6612001.sqlite3")], capture_output=True)
    assert denied.returncode != 0  # really cannot read the state
    text = subprocess.run([*as_nobody, *command], capture_output=True, text=True, env=env)
    assert "Traceback" not in text.stderr, text.stderr
    assert text.returncode == 1, text.stdout + text.stderr  # WARNING: a record held back
    assert "WARNING (records held back or refused)" in text.stdout
    assert "from the status file" in text.stdout and "start_date_missing=1" in text.stdout
    nagios = subprocess.run([*as_nobody, *command, "--nagios"], capture_output=True, text=True, env=env)
    assert nagios.returncode == 1 and nagios.stdout.startswith("HWB WARNING - 1 school, 1 need attention")
    (monitor / "status.json").unlink()
    unknown = subprocess.run([*as_nobody, *command, "--nagios"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 3 and unknown.stdout.startswith("HWB UNKNOWN"), unknown.stdout


def test_under_systemd_each_line_on_stderr_carries_its_journal_priority(make_lab):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    lab.env["JOURNAL_STREAM"] = "8:12345"
    ok = lab.cli("--run-now")
    lines = ok.stderr.splitlines()
    assert lines and all(re.match(r"^<[2-7]>\{", line) for line in lines), ok.stderr
    started_line = next(line for line in lines if '"run_started"' in line)
    started = json.loads(started_line[3:])
    assert started_line.startswith("<6>")
    assert started["dfes"] == "6612001" and started["run_id"]
    lab.schools[0].mis_path.unlink()
    sqlite3.connect(lab.schools[0].mis_path).close()
    failed = lab.cli("--run-now")
    assert any(line.startswith("<3>") and '"run_failed"' in line for line in failed.stderr.splitlines())


def test_a_record_held_back_run_after_run_is_logged_when_its_reason_changes(make_lab):
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=5)
    mis.add_learner(40, dob=None)
    mis.add_staff(4, "NEW", start=None)
    mis.commit()
    assert lab.cli("--run-now").returncode == 1
    assert len(events(lab, "record_held_back")) == 2
    for _ in range(2):
        assert lab.cli("--run-now").returncode == 1
    assert len(events(lab, "record_held_back")) == 2  # the same reasons: not logged again
    finished = events(lab, "run_finished")[-1]
    assert finished["held_back_reasons"] == {"date_of_birth_missing": 1, "start_date_missing": 1}
    mis.execute("UPDATE mis_pupil SET date_of_birth = '2015-01-01', year_group = 'Y99' WHERE pupil_id = 40")
    mis.commit()
    assert lab.cli("--run-now").returncode == 1
    held = events(lab, "record_held_back")
    assert len(held) == 3 and held[-1]["reason"] == "year_group_invalid"


def test_a_0_1_0_state_migrates_in_place_with_nothing_resent_or_removed(make_lab, sandbox):
    lab = make_lab([PRIMARY])
    small_school(lab.schools[0].mis_path, "6612001").close()
    assert lab.cli("--run-now").returncode == 0
    path = lab.state_dir / "6612001.sqlite3"
    db = sqlite3.connect(path)  # back to the 0.1.0 schema: migrations 1 and 2 only
    db.executescript(
        "DROP TABLE record_results; DROP TABLE held_back_records; DROP TABLE settled_classes;"
        "DROP TRIGGER acknowledged_insert_unsettles; DROP TRIGGER acknowledged_update_unsettles;"
        "DROP TRIGGER acknowledged_delete_unsettles;"
        "ALTER TABLE acknowledged DROP COLUMN stable; ALTER TABLE outbox_ops DROP COLUMN stable;"
        "ALTER TABLE outbox DROP COLUMN ops;"
        "DELETE FROM schema_migrations WHERE version > 2;"
    )
    acknowledged = db.execute("SELECT count(*) FROM acknowledged").fetchone()[0]
    db.close()
    again = lab.cli("--run-now")
    assert again.returncode == 0 and "0 changes sent in 0 batches" in again.stdout
    db = sqlite3.connect(path)
    assert db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("SELECT count(*) FROM acknowledged").fetchone()[0] == acknowledged
    db.close()
    history = lab.cli("history", "--json")
    assert [run["outcome"] for run in json.loads(history.stdout)["runs"]] == ["success", "success"]

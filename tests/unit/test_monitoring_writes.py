"""When the monitoring files are written during a run of many schools (``monitoring.coalesced``).

Each write of the status file and the Prometheus textfile reads and renders every school's entry, so a
write after each school's run of the 1,470 schools of the national set was quadratic: about a third of
a no-change run's CPU.
Within a run of many schools the files are written at most every ``WRITE_EVERY_SECONDS``; what a
monitoring system relies on must still hold: a finished school is in both files within that time, even
when no other school finishes, and every school is in them when the run ends."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from hwb_client.operator import monitoring
from hwb_client.settings import Settings


def _settings(tmp_path: Path, schools: int) -> Settings:
    (tmp_path / "state").mkdir(exist_ok=True)
    return Settings(
        client={"state_dir": tmp_path / "state"},
        monitoring={"textfile_dir": tmp_path / "prom"},
        schools=[{"dfes_number": f"66{n:05d}", "odbc": "DSN=nowhere"} for n in range(1, schools + 1)],
    )


def _in_status_file(tmp_path: Path) -> set[str]:
    path = tmp_path / "state" / "status.json"
    return set(json.loads(path.read_text())["schools"]) if path.exists() else set()


def _in_textfile(tmp_path: Path) -> set[str]:
    path = tmp_path / "prom" / monitoring.PROM_FILE
    return set(re.findall(r'dfes="(\d+)"', path.read_text())) if path.exists() else set()


def test_outside_a_run_of_many_schools_each_run_is_written_at_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 2)
    monitoring.record_run(settings, settings.schools[0])
    assert _in_status_file(tmp_path) == {"6600001"} == _in_textfile(tmp_path)
    monitoring.record_run(settings, settings.schools[1])
    assert _in_status_file(tmp_path) == {"6600001", "6600002"}


def test_within_a_run_every_school_is_written_by_its_end(tmp_path: Path, monkeypatch) -> None:
    """200 schools finishing at once: far fewer writes than schools, and all 200 in both files when the
    run ends."""
    settings = _settings(tmp_path, 200)
    writes: list[float] = []
    real = monitoring._write
    monkeypatch.setattr(monitoring, "_write", lambda path: (writes.append(time.monotonic()), real(path)))
    with monitoring.coalesced():
        for school in settings.schools:
            monitoring.record_run(settings, school)
        assert len(_in_status_file(tmp_path)) < 200  # not yet: written together, soon
    everyone = {school.dfes_number for school in settings.schools}
    assert _in_status_file(tmp_path) == everyone == _in_textfile(tmp_path)
    assert len(writes) <= 3


def test_within_a_run_a_finished_school_is_written_soon_even_if_no_other_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    """The second school finishes just after a write; no other school finishes for a long time (a slow
    one is still running): its entry is written within ``WRITE_EVERY_SECONDS`` anyway."""
    monkeypatch.setattr(monitoring, "WRITE_EVERY_SECONDS", 0.3)
    settings = _settings(tmp_path, 3)
    with monitoring.coalesced():
        monitoring.record_run(settings, settings.schools[0])
        assert _in_status_file(tmp_path) == {"6600001"}  # the first write is at once
        monitoring.record_run(settings, settings.schools[1])
        assert _in_status_file(tmp_path) == {"6600001"}
        deadline = time.monotonic() + 5
        both = {"6600001", "6600002"}
        # the timer writes the status file, then the textfile: wait for the second too
        while (
            not (_in_status_file(tmp_path) == both == _in_textfile(tmp_path)) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert _in_status_file(tmp_path) == {"6600001", "6600002"} == _in_textfile(tmp_path)
        assert time.monotonic() < deadline

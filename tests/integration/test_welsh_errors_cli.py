"""Through the real CLI with ``--lang cy``: a failure a person reads is in Welsh, its log line in English."""

from __future__ import annotations

import json
from collections.abc import Callable

from hwb_demo.lab import Lab
from mis_builder import small_school


def test_a_run_without_the_national_key_file_fails_in_welsh_and_logs_in_english(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab([("6612001", "Ysgol Gynradd Llanfair")])
    small_school(lab.schools[0].mis_path, "6612001").close()
    lab.national_key_file.unlink()
    result = lab.cli("--lang", "cy", "--run-now")
    assert result.returncode == 3, result.stdout + result.stderr
    path = lab.national_key_file
    assert f"client.national_key_file: nid yw {path} yn bodoli; gosodwch yno" in result.stdout
    assert "does not exist" not in result.stdout
    [failed] = [
        event
        for event in (json.loads(line) for line in result.stderr.splitlines() if line.startswith("{"))
        if event["event"] == "run_failed"
    ]
    assert failed["error"].startswith(f"client.national_key_file: {path} does not exist; install the")

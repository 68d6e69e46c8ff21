"""The commands that talk to the national API speak Welsh with ``--lang cy``: enrol, rotate-key, a refused
enrolment, and check-config on a server that is ready (through the real CLI, against the sandbox)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from hwb_demo.lab import Lab
from hwb_sandbox.testing import SandboxProcess
from mis_builder import small_school

SCHOOL = ("6612001", "Ysgol Gynradd Llanfair")


def terms_around_today() -> str:
    today = dt.date.today()
    start, end = today - dt.timedelta(days=30), today + dt.timedelta(days=300)
    return f"[[schedule.terms]]\nstart = {start}\nend = {end}\n"


def test_enrol_and_rotate_key_in_welsh(make_lab: Callable[..., Lab], sandbox: SandboxProcess) -> None:
    lab = make_lab([SCHOOL], enrol=False, schedule=terms_around_today())
    refused = lab.cli("--lang", "cy", "enrol", "--school", "6612001", "--code", "WRONG-CODE")
    assert refused.returncode == 9
    assert refused.stderr.startswith("hwb-client: gwall: ysgol 6612001: gwrthodwyd yr ymrestru: ")

    code = sandbox.issue_code(*SCHOOL)
    enrolled = lab.cli("--lang", "cy", "enrol", "--school", "6612001", "--code", code)
    assert enrolled.returncode == 0, enrolled.stderr
    assert re.fullmatch(
        r"6612001: wedi ymrestru, id yr allwedd \S+ \(ffeil yr allwedd \S+\.pem\)\n", enrolled.stdout
    )

    rotated = lab.cli("--lang", "cy", "rotate-key", "--school", "6612001")
    assert rotated.returncode == 0, rotated.stderr
    assert re.fullmatch(
        r"6612001: allwedd lofnodi wedi'i newid: \S+ wedi'i hymddeol, bellach \S+\n", rotated.stdout
    )


def test_check_config_says_ready_in_welsh_with_welsh_dates(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab([SCHOOL], schedule=terms_around_today())
    small_school(lab.schools[0].mis_path, "6612001").close()
    result = lab.cli("--lang", "cy", "check-config")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{lab.config_path}: YN BAROD (1 ysgol)"
    assert any(re.fullmatch(r"dyddiadau tymor tan \d{1,2} \w+ \d{4} \(300 diwrnod\)", line) for line in lines)

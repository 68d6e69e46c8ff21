"""Secrets and addresses: a proxy password never leaves the configuration, and plain HTTP goes only to a
loopback address (parsed as an IP address; only the literal name ``localhost`` besides)."""

from __future__ import annotations

import sqlite3

from reliability_support import run_reports

from mis_builder import small_school

AREA = "Secrets and addresses"

PASSWORD = "Pr0xy-Passw0rd-Never-Shown"


def test_a_proxy_password_is_never_printed_logged_stored_or_reported(rlab, scenario):
    """``api.proxy = "http://user:PASSWORD@127.0.0.1:badport"``: the run fails (exit 5) with a clear
    message, and the password is in none of stdout, stderr, the log file, the state database's run
    message, or the run report the sandbox receives once the proxy is fixed (the privacy scan also checks
    every file of the lab for it)."""
    lab = rlab()
    lab.write_config(api={"proxy": f"http://hwb:{PASSWORD}@127.0.0.1:badport", "max_attempts": 1})
    lab.secrets.add(PASSWORD)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    failed = lab.run_now()
    assert failed.returncode == 5, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    fixed = lab.run_now(HWB_API__PROXY="")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    reports = run_reports(lab.sandbox, lab.dfes)
    assert [r["outcome"] for r in reports] == ["failed", "success"]
    db = sqlite3.connect(lab.root / "state" / f"{lab.dfes}.sqlite3")
    try:
        stored = " ".join(str(row) for row in db.execute("SELECT message, report FROM runs"))
    finally:
        db.close()
    log_text = lab.lab.log_file.read_text(encoding="utf-8")
    for where, text in {
        "stdout": failed.stdout,
        "stderr": failed.stderr,
        "log file": log_text,
        "state database": stored,
        "run reports": str(reports),
    }.items():
        assert PASSWORD not in text, where
    scenario.figures["message"] = failed.stdout.splitlines()[0][:110]


def test_plain_http_to_a_name_that_starts_with_127_is_refused_before_anything_is_read(rlab, scenario):
    """``api.base_url = "http://127.attacker.example/"`` looks like loopback to a prefix test but is a
    name anyone can point anywhere: exit 3 naming the setting, nothing read or sent."""
    lab = rlab(enrol=False)
    small_school(lab.schools[0].mis_path, lab.dfes, learners=3).close()
    refused = lab.run_now(HWB_API__BASE_URL="http://127.attacker.example/")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 3, said
    assert "api.base_url" in said and "loopback" in said and "Traceback" not in said
    scenario.figures["message"] = said.strip().splitlines()[-1][:110]

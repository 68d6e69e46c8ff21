"""Records in time and the guard, through the real CLI against the sandbox (dates moved with --as-of)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from hwb_client.adapters.national_key import load_national_key
from mis_builder import Mis, small_school, upn

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")
DAY = dt.date(2026, 11, 2)


def learner_record(lab, n):
    key = load_national_key(lab.national_key_file)(upn(n))
    api = lab.api("6612001")
    try:
        records = {
            r.key: dataclasses.asdict(r) for r in api.manifest("6612001").records if r.kind == "learner"
        }
    finally:
        api.close()
    return records.get(key)


def run(lab, day, *extra, sandbox=None):
    if sandbox is not None:
        sandbox.set_today(day)
    return lab.cli("--run-now", "--as-of", day.isoformat(), *extra)


def test_a_leaving_date_60_days_ahead_keeps_the_learner_active_until_the_first_run_after_it(
    make_lab, sandbox
) -> None:
    """Both clocks move: the client's day with --as-of, the national calendar with the sandbox clock."""
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001")
    leaving = DAY + dt.timedelta(days=60)
    mis.execute("UPDATE mis_pupil SET leaving_date = ? WHERE pupil_id = 1", leaving.isoformat())
    mis.commit()
    first = run(lab, DAY, sandbox=sandbox)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"learner leaves on {(leaving + dt.timedelta(days=1)).isoformat()}: 1" in first.stdout
    assert learner_record(lab, 1)["status"] == "active"
    on_the_day = run(lab, leaving, sandbox=sandbox)
    assert "0 changes sent" in on_the_day.stdout and learner_record(lab, 1)["status"] == "active"
    after = run(lab, leaving + dt.timedelta(days=1), sandbox=sandbox)  # no MIS change in between
    assert after.returncode == 0 and "learner leave=1" in after.stdout, after.stdout
    assert learner_record(lab, 1)["status"] == "left"


def test_a_new_teacher_starting_in_september_is_sent_in_july_and_shown_as_starting(make_lab) -> None:
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001")
    mis.add_staff(9, "NEW", forename="Non", surname="Newydd", start="2026-09-01")
    mis.commit()
    dry = run(lab, dt.date(2026, 7, 10), "--dry-run")
    assert "staff starts on 2026-09-01: 1" in dry.stdout
    assert run(lab, dt.date(2026, 7, 10)).returncode == 0


def test_a_primary_of_40_losing_12_learners_is_held_with_the_defaults_and_its_dry_run_exits_6(
    make_lab,
) -> None:
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=40)
    assert run(lab, DAY).returncode == 0
    mis.execute("DELETE FROM mis_group_member WHERE pupil_id <= 12")
    mis.execute("DELETE FROM mis_pupil WHERE pupil_id <= 12")
    mis.commit()
    dry = run(lab, DAY, "--dry-run")
    assert dry.returncode == 6, dry.stdout + dry.stderr
    assert "HELD by mass_removal: 12 of 40 active learner records vanished" in dry.stdout
    assert "(limit 4)" in dry.stdout and "--allow-mass-removal" in dry.stdout
    held = run(lab, DAY)
    assert held.returncode == 6
    allowed = run(lab, DAY, "--allow-mass-removal")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "allowed past mass_removal (12 > limit 4) with --allow-mass-removal by" in allowed.stdout
    status = json.loads(lab.cli("status", "--json").stdout)["schools"][0]["last_run"]
    assert status["overrides"][0]["rule"] == "mass_removal" and status["overrides"][0]["user"]
    assert status["counts"]["learner"] == {"remove": 12}


def test_renaming_every_registration_group_in_term_is_held_until_allowed(make_lab) -> None:
    lab = make_lab([PRIMARY])
    mis = small_school(lab.schools[0].mis_path, "6612001", learners=30)
    assert run(lab, DAY).returncode == 0
    mis.execute("UPDATE mis_pupil SET registration_group = '6Z'")
    mis.commit()
    held = run(lab, DAY)
    assert held.returncode == 6 and "HELD by mass_update: 30 of 30 active learner" in held.stdout
    blocked_report = json.loads(lab.cli("status", "--json").stdout)["schools"][0]["last_run"]
    assert blocked_report["counts"] == {} and blocked_report["planned"]["learner"] == {"upsert": 30}
    assert run(lab, DAY, "--allow-mass-removal").returncode == 6  # the other flag does not allow it
    assert run(lab, DAY, "--allow-mass-update").returncode == 0


def test_a_real_run_with_as_of_is_refused_unless_the_api_is_a_loopback_sandbox(make_lab) -> None:
    lab = make_lab([PRIMARY], enrol=False)
    config = lab.config_path.read_text().replace(lab.sandbox_url, "https://provisioning.example.wales/")
    lab.config_path.write_text(config)
    refused = run(lab, DAY)
    assert refused.returncode == 2
    assert "--as-of without --dry-run is only allowed against a sandbox on loopback" in refused.stderr


def test_control_characters_from_the_mis_are_escaped_in_the_plan(make_lab) -> None:
    lab = make_lab([PRIMARY])
    mis = Mis(lab.schools[0].mis_path, "6612001")
    mis.add_learner(1, forename="Evil\x1b[2J\u202e", surname="Name")
    mis.commit()
    dry = run(lab, DAY, "--dry-run")
    assert "\x1b" not in dry.stdout and "\u202e" not in dry.stdout
    assert "Evil\\x1b[2J\\u202e" in dry.stdout


def test_a_real_run_with_as_of_is_refused_by_a_loopback_api_that_is_not_a_sandbox(make_lab) -> None:
    """A loopback proxy to the national service is on loopback too: the API must say it is a sandbox."""
    import http.server
    import threading

    class NotASandbox(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotASandbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lab = make_lab([PRIMARY], enrol=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        lab.config_path.write_text(lab.config_path.read_text().replace(lab.sandbox_url, url))
        refused = run(lab, DAY)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "does not say it is one" in refused.stderr
    finally:
        server.shutdown()
        server.server_close()

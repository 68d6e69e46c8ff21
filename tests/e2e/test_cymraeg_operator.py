"""The operator's commands in Welsh, through the real CLI against the sandbox: the dry-run plan of two
schools, status, history, why and the school's report (looked at in a browser); and no English sentence
of the catalogue left in what they print with ``--lang cy``."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from headless_browser import run_chromium
from i18n_checks import catalogue_path, read_catalogue
from mis_builder import Mis, small_school

PRIMARY = ("6612001", "Ysgol Gynradd Llanfair")
SECONDARY = ("6614001", "Ysgol Uwchradd Bro Taf")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\(\w+\)[sd]")


def english_sentences() -> set[str]:
    """The English of the catalogue that Welsh output must not show: each stretch of 3 or more words
    between placeholders of a msgid (both plural forms) whose Welsh differs."""
    catalogue = read_catalogue(catalogue_path("hwb_client", "cy"), "cy")
    found: set[str] = set()
    for message in catalogue:
        if not message.id:
            continue
        ids = (message.id,) if isinstance(message.id, str) else tuple(message.id)
        forms = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
        welsh = " ".join(forms)
        for msgid in ids:
            for stretch in _PLACEHOLDER.split(msgid):
                for line in stretch.splitlines():
                    text = line.strip(" :;,.-()")
                    if len(text.split()) >= 3 and text not in welsh:
                        found.add(text)
    return found


def english_left(output: str) -> list[str]:
    return sorted(sentence for sentence in english_sentences() if sentence in output)


@pytest.fixture
def two_schools(make_lab, sandbox):
    """A primary that has run, and a secondary with a teacher without a start date (held back), a
    learner with no date of birth and a staff member whose leave the national side refuses."""
    lab = make_lab([PRIMARY, SECONDARY])
    small_school(lab.schools[0].mis_path, "6612001", learners=6).close()
    secondary = small_school(lab.schools[1].mis_path, "6614001", learners=4, first=300)
    secondary.add_staff(4, "NEW", start=None, forename="Elin", surname="Rowlands")
    secondary.commit()
    assert lab.cli("--run-now").returncode == 1
    db = sqlite3.connect(sandbox.db_path)
    db.execute(
        "DELETE FROM school_records WHERE dfes_number = '6614001' AND kind = 'staff' AND record_key = 'SJE'"
    )
    db.commit()
    db.close()
    secondary.execute("UPDATE mis_staff SET leaving_date = '2026-07-22' WHERE staff_code = 'SJE'")
    secondary.add_learner(61, dob=None, forename="Gwenllïan", surname="Huws", year="7")
    secondary.commit()
    assert lab.cli("--run-now", "--school", "6614001").returncode == 1
    return lab


def test_the_dry_run_plan_of_two_schools_is_in_welsh(two_schools):
    plan = two_schools.cli("--lang", "cy", "--run-now", "--dry-run", "--as-of", "2026-07-01")
    assert plan.returncode == 1, plan.stderr
    out = plan.stdout
    assert "6612001: LLWYDDIANT (fel ar 1 Gorffennaf 2026) - rhediad prawf: byddai " in out, out
    assert "6614001: RHANNOL (fel ar 1 Gorffennaf 2026) - rhediad prawf: " in out
    assert (
        "wedi'u cynllunio: " in out
        and "wedi'u dal yn ôl: learner date_of_birth_missing=1, staff start_date_missing=1" in out
    )
    assert "ni anfonwyd na newidiwyd dim" in out
    assert "cofnodion wedi'u dal yn ôl (mae'r rhestr hon yn enwi pobl" in out
    assert "start_date_missing (rhowch ddyddiad dechrau'r aelod o staff" in out
    assert (
        "- dysgwr, rhes 1 (dynodydd MIS 61) Gwenllïan Huws: date_of_birth_missing (rhowch ddyddiad geni'r"
        in out
    )
    assert "- staff, rhes 3 (dynodydd MIS 4) NEW, Elin Rowlands: start_date_missing" in out
    assert "staff yn gadael ar 23 Gorffennaf 2026: 1" in out  # the day after the last day on roll
    assert english_left(out) == [], out
    english = two_schools.cli("--run-now", "--dry-run", "--as-of", "2026-07-01").stdout
    assert "6614001: PARTIAL (as of 2026-07-01) - dry run: " in english
    assert "staff leaves on 2026-07-23: 1" in english


def test_status_history_and_why_are_in_welsh(two_schools):
    status = two_schools.cli("--lang", "cy", "status")
    assert status.returncode == 1, status.stderr
    assert "6614001 Ysgol Uwchradd Bro Taf: RHYBUDD (cofnodion wedi'u dal yn ôl neu wedi'u gwrthod)" in (
        status.stdout
    )
    assert "rhediad diwethaf: " in status.stdout and " rhannol - " in status.stdout
    assert "wedi'i anfon mewn" in status.stdout or "wedi'u hanfon mewn" in status.stdout
    assert "llwyddiant diwethaf: " in status.stdout and "rhediad nesaf: " in status.stdout
    history = two_schools.cli("--lang", "cy", "history")
    assert history.returncode == 0, history.stderr
    assert "RHANNOL (cleient 0." in history.stdout and "wedi'u gwrthod gan Hwb: 1 person" in history.stdout
    why = two_schools.cli("--lang", "cy", "why", "--school", "6614001", "--staff-code", "NEW")
    assert why.returncode == 0, why.stderr
    assert (
        "staff, rhes 3 (dynodydd MIS 4): Elin Rowlands, cod staff NEW" in why.stdout
        and "WEDI'I DDAL YN ÔL (start_date_missing)" in why.stdout
    )
    assert "cywirwch yn y MIS: rhowch ddyddiad dechrau'r aelod o staff" in why.stdout
    assert "ochr genedlaethol: dim cofnod o'r person hwn yn yr ysgol hon" in why.stdout
    refused = two_schools.cli("--lang", "cy", "why", "--school", "6614001", "--staff-code", "SJE")
    assert "WEDI'I WRTHOD gan Hwb: not_found" in refused.stdout and "beth i'w wneud: " in refused.stdout
    nobody = two_schools.cli("--lang", "cy", "why", "--school", "6614001", "--name", "Neb")
    assert "HEB EI GANFOD YN Y MIS" in nobody.stdout
    for result in (status, history, why, refused, nobody):
        assert english_left(result.stdout) == [], result.stdout
    nagios = two_schools.cli("--lang", "cy", "status", "--nagios")
    assert nagios.stdout.startswith("HWB WARNING - 2 ysgol, 1 angen sylw: 6614001 cofnodion wedi'u dal")
    assert "| '6612001_success_age'=" in nagios.stdout  # the plugin's grammar stays


def test_the_completeness_check_catches_an_english_sentence_left_in_welsh_output(two_schools):
    out = two_schools.cli("--lang", "cy", "status").stdout
    planted = out + "\n  last success: never\n  batches waiting to be resent: 2\n"
    assert english_left(planted) == ["batches waiting to be resent"]


def screenshot(html: Path, png: Path) -> None:
    run_chromium(f"--screenshot={png}", "--window-size=1200,1400", html.as_uri())


def test_the_school_report_in_welsh_renders_in_a_browser(two_schools, tmp_path):
    mis = Mis(two_schools.schools[1].mis_path, "6614001")
    mis.add_member(500, 1, pupil=61)  # a membership of the held-back learner: held back too
    mis.commit()
    html = tmp_path / "adroddiad.html"
    result = two_schools.cli("--lang", "cy", "report", "--school", "6614001", "--output", str(html))
    assert result.returncode == 0, result.stderr
    text = html.read_text(encoding="utf-8")
    assert '<html lang="cy">' in text
    assert "Mae&#39;r adroddiad hwn yn enwi pobl." in text or "Mae'r adroddiad hwn yn enwi pobl." in text
    assert "Y rhediad diwethaf" in text and "rhannol" in text and "Aelodaethau dosbarth" in text
    assert re.search(r"\d{1,2} [A-Z][a-z]+ 20\d\d \d\d:\d\d UTC", text)  # a Welsh date: 1 Rhagfyr 2026
    assert "rhowch ddyddiad dechrau" in text.replace("&#39;", "'") and "Elin Rowlands" in text
    shown = re.sub(r"<style>.*?</style>|<[^>]+>", " ", text, flags=re.DOTALL).replace("&#39;", "'")
    assert english_left(shown) == [], shown
    png = tmp_path / "adroddiad.png"
    screenshot(html, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    english = two_schools.cli("report", "--school", "6614001", "--output", str(tmp_path / "en.html"))
    assert english.returncode == 0
    assert '<html lang="en">' in (tmp_path / "en.html").read_text(encoding="utf-8")

"""Real failures read in Welsh: the sentence is translated, its placeholders (paths, settings, dates) are
filled, ``.english`` stays English for the logs and the reports, and nothing personal is in either."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_client import errors, i18n
from hwb_client.adapters import odbc_source
from hwb_client.adapters.national_key import keys_in_use, load_national_keys, write_national_keys
from hwb_client.adapters.state import StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.core import calendar as cal
from hwb_client.errors import (
    ApiError,
    ConfigError,
    KeyFileError,
    MisError,
    Phrase,
    StateError,
    UnsafeFileError,
)
from hwb_client.i18n import N_
from hwb_client.settings import ApiSettings, ScheduleSettings, Term

DFES = "6612001"
UPN = "A123456789012"  # a learner's UPN: never in an error
PASSWORD = "S3cret-odbc-pw"


@pytest.fixture
def welsh() -> Iterator[None]:
    i18n.activate("cy")
    yield
    i18n.activate("en")


def _no_personal_data(exc: errors.HwbClientError) -> None:
    for text in (exc.message, exc.english):
        assert UPN not in text and PASSWORD not in text
        assert "{" not in text.replace("{{", "")  # every placeholder filled


def test_a_missing_national_key_file_is_said_in_welsh_with_its_path(welsh: None, tmp_path: Path) -> None:
    path = tmp_path / "national-key.json"
    with pytest.raises(KeyFileError) as caught:
        load_national_keys(path)
    exc = caught.value
    assert exc.message.startswith(f"client.national_key_file: nid yw {path} yn bodoli; gosodwch yno")
    assert f"KEYFILE {path})" in exc.message and "allwedd stwnsio UPN genedlaethol" in exc.message
    assert exc.english.startswith(f"client.national_key_file: {path} does not exist; install the national")
    assert str(exc) == exc.message
    _no_personal_data(exc)


def test_a_key_file_without_a_key_for_today_names_the_day_in_welsh(welsh: None, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_national_keys(path, [("nat-2026", bytes(range(32)), dt.date(2026, 9, 1), None)])
    with pytest.raises(KeyFileError) as caught:
        keys_in_use(path, dt.date(2026, 8, 30))
    assert caught.value.message == (
        f"client.national_key_file: {path}: nid oes allwedd genedlaethol yn cael ei defnyddio ar "
        "30 Awst 2026; gosodwch y ffeil allweddi a roddwyd ar gyfer newid yr allwedd"
    )
    assert caught.value.english == (
        f"client.national_key_file: {path}: no national key is in use on 2026-08-30; install the key file "
        "issued for the changeover"
    )


def test_a_damaged_state_database_is_said_in_welsh(welsh: None, tmp_path: Path) -> None:
    database = tmp_path / f"{DFES}.sqlite3"
    database.write_bytes(b"this is not a database " * 200)
    database.chmod(0o600)
    with pytest.raises(StateError) as caught:
        StateStore.open(tmp_path, DFES)
    exc = caught.value
    assert exc.message.startswith(f"ysgol {DFES}: mae cronfa ddata'r cyflwr {database} wedi'i difrodi (")
    assert exc.message.endswith(
        "caiff ei rhoi o'r neilltu a'i hailadeiladu o'r maniffest cenedlaethol yn y rhediad nesaf"
    )
    assert exc.english.startswith(f"school {DFES}: the state database {database} is damaged (")
    _no_personal_data(exc)


def test_a_state_file_that_is_a_symbolic_link_is_refused_in_welsh(welsh: None, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"")
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / f"{DFES}.sqlite3").symlink_to(elsewhere)
    with pytest.raises(UnsafeFileError) as caught:
        StateStore.open(state_dir, DFES)
    link = state_dir / f"{DFES}.sqlite3"
    assert caught.value.message == (
        f"mae {link} yn gyswllt symbolaidd; nid yw'r cleient yn dilyn cysylltiadau yn ei gyflwr (ni chafodd "
        f"ei darged ei ddarllen na'i ysgrifennu); tynnwch y cyswllt ({link}) a rhedwch eto"
    )
    assert caught.value.english.startswith(f"{link} is a symbolic link; the client does not follow links")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("attempts", "welsh_count", "english_count"),
    [(1, "1 cynnig", "1 attempt"), (2, "2 gynnig", "2 attempts"), (3, "3 chynnig", "3 attempts")],
)
def test_an_unreachable_national_api_is_said_in_welsh_with_the_right_plural(
    welsh: None, attempts: int, welsh_count: str, english_count: str
) -> None:
    settings = ApiSettings(
        base_url=f"http://127.0.0.1:{_closed_port()}/", max_attempts=attempts, connect_timeout_seconds=2
    )
    api = NationalApi(settings, signer=None, sleep=lambda _seconds: None, stop=threading.Event())
    with pytest.raises(ApiError) as caught:
        api.health()
    api.close()
    exc = caught.value
    assert exc.message.startswith(
        f"gwiriad iechyd: nid oedd modd cyrraedd yr API cenedlaethol ar ôl {welsh_count} dros "
    )
    assert exc.message.endswith("(yr olaf: ConnectionError); caiff y rhediad ei ailgynnig")
    assert exc.english.startswith(
        f"health check: the national API could not be reached after {english_count} over "
    )
    assert exc.english.endswith("(last: ConnectionError); the run will be retried")
    _no_personal_data(exc)


def test_a_bad_odbc_connection_string_is_said_in_welsh_without_its_password(welsh: None) -> None:
    profile = odbc_source.load_profile("reference")
    with pytest.raises(MisError) as caught:
        odbc_source.MisSource.connect(f"DRIVER={{No Such Driver}};UID=hwb;PWD={PASSWORD}", DFES, profile)
    exc = caught.value
    assert exc.message.startswith(f"ysgol {DFES}: nid oes modd cysylltu â'r MIS dros ODBC: ")
    assert exc.message.endswith(
        "gwiriwch osodiad `odbc` yr ysgol, y gyrrwr (odbcinst -q -d) a bod y gronfa ddata ar waith"
    )
    assert exc.english.startswith(f"school {DFES}: cannot connect to the MIS over ODBC: ")
    _no_personal_data(exc)


def test_a_calendar_config_error_from_core_names_the_setting_and_welsh_dates(welsh: None) -> None:
    schedule = ScheduleSettings(terms=[Term(start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 23))])
    with pytest.raises(ConfigError) as caught:
        cal.rule_for_day(schedule, dt.date(2026, 10, 24))
    exc = caught.value
    assert exc.message.startswith(
        "schedule.terms: mae [[schedule.terms]] y ffurfweddiad yn dod i ben ar 23 Hydref 2026, felly nid "
        "yw'r amserlen ar gyfer 24 Hydref 2026 yn hysbys; ychwanegwch flwyddyn academaidd 2026/27"
    )
    assert "  start = 2027-09-01\n  end = 2027-10-22" in exc.message  # the TOML example stays as written
    assert exc.english.startswith(
        "schedule.terms: the configured [[schedule.terms]] end on 2026-10-23, so the schedule for 2026-10-24"
    )


def test_a_query_profile_with_several_problems_lists_each_in_welsh(welsh: None, tmp_path: Path) -> None:
    reference = (Path(odbc_source.__file__).parent.parent / "profiles" / "reference.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(reference.replace("upn =", "favourite_colour =", 1))
    with pytest.raises(ConfigError) as caught:
        odbc_source.load_profile(str(bad))
    lines = caught.value.message.splitlines()
    assert lines[0] == f"proffil ymholiadau {bad}:"
    assert any(line.startswith("  rhaid i [learners.columns] fapio upn") for line in lines[1:])
    assert any("nid yw'r rheini ym model y cofnodion" in line for line in lines[1:])
    assert caught.value.english.splitlines()[0] == f"query profile {bad}:"
    assert "  [learners.columns] must map upn" in caught.value.english.splitlines()


def test_phrases_plurals_and_nested_errors_follow_the_language_of_the_message(welsh: None) -> None:
    batch = Phrase(N_("batch {batch_id}"), batch_id="b-1")
    inner = UnsafeFileError(N_("{path} is not a regular file; move it away and run again"), path="/x")
    outer = KeyFileError(N_("signing key file {problem}"), problem=inner)
    refused = ApiError(N_("{what} refused by the national API: {failure}"), what=batch, failure="HTTP 409")
    assert batch == "batch b-1" and batch.message == "swp b-1"  # a str (logs, event fields): English
    assert (
        outer.message
        == "ffeil yr allwedd lofnodi: nid yw /x yn ffeil gyffredin; symudwch hi o'r ffordd a rhedwch eto"
    )
    assert outer.english == "signing key file /x is not a regular file; move it away and run again"
    assert refused.message == "swp b-1: wedi'i wrthod gan yr API cenedlaethol: HTTP 409"
    assert refused.english == "batch b-1 refused by the national API: HTTP 409"
    many = errors.ngettext("{n} national key", "{n} national keys", 3)
    assert many == "{n} national keys"


def test_english_is_unchanged_when_no_language_is_active(tmp_path: Path) -> None:
    i18n.activate("en")
    with pytest.raises(KeyFileError) as caught:
        load_national_keys(tmp_path / "missing.json")
    assert caught.value.message == caught.value.english
    assert "does not exist; install the national UPN hashing key" in caught.value.message


def test_a_truncated_gzip_reply_is_said_in_welsh_inside_the_api_error(welsh: None) -> None:
    import gzip

    from hwb_client.adapters.bounded_http import inflate
    from hwb_client.adapters.replies import MANIFEST

    with pytest.raises(ValueError) as caught:
        inflate(gzip.compress(b'{"records": []}' * 100)[:-12], "gzip", 1 << 20)
    exc = ApiError(
        N_("{what}: the national API's reply cannot be read: {problem}"), what=MANIFEST, problem=caught.value
    )
    assert (
        exc.message
        == "y maniffest: nid oes modd darllen ateb yr API cenedlaethol: mae'r ateb gzip wedi'i dorri'n fyr"
    )
    assert exc.english == "manifest: the national API's reply cannot be read: the gzip reply is truncated"

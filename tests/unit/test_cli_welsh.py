"""The command line speaks Welsh when asked (--lang, client.language, LANG) and English otherwise:
its help (argparse's own words too), its usage errors, its error lines and its commands' output."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_client import cli, i18n

CONFIG = """
[client]
state_dir = "{state}"
national_key_file = "{state}/national-key.json"
{client}
[api]
base_url = "http://127.0.0.1:9999/"
[[schools]]
dfes_number = "{dfes}"
odbc = "Driver=SQLite3;Database={state}/mis.sqlite3"
"""


@pytest.fixture(autouse=True)
def plain_locale(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No language from the machine running the tests: LANG=C, nothing else set."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "HWB_CONFIG", "HWB_CLIENT__LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C")
    yield
    i18n.activate("en")


def config(tmp_path: Path, *, language: str | None = None, dfes: str = "6612001", extra: str = "") -> Path:
    path = tmp_path / "hwb-client.toml"
    client = f'language = "{language}"' if language else ""
    path.write_text(CONFIG.format(state=tmp_path, client=client, dfes=dfes) + extra, encoding="utf-8")
    return path


def flat(text: str) -> str:
    """The text with argparse's wrapping undone (it wraps help at the terminal's width)."""
    return " ".join(text.split())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``hwb-client ARGV``: the exit code, stdout and stderr."""
    out = io.StringIO()
    try:
        code = cli.main(list(argv), out)
    except SystemExit as exit_:  # --help, --version and usage errors end in argparse
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, out.getvalue() + captured.out, captured.err


def test_help_in_welsh_has_welsh_usage_sections_and_option_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "--lang", "cy", "--help")
    assert code == 0
    assert out.startswith("defnydd: hwb-client ")
    assert "\nopsiynau:\n" in out and "\ndadleuon safle:\n" in out
    text = flat(out)
    assert "dangos y neges gymorth hon a gadael" in text
    assert "dangos rhif fersiwn y rhaglen a gadael" in text
    assert "ymrestru allwedd lofnodi'r ysgol hon gyda'r API cenedlaethol" in text
    assert "Codau gadael: 0 iawn" in text
    for english in ("usage:", "options:", "show this help message", "the national API", "Exit codes"):
        assert english not in text
    assert "--run-now" in out and "--allow-mass-removal" in out  # option names stay as they are


def test_help_without_lang_under_lang_c_is_english_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: hwb-client ")
    assert "\noptions:\n" in out and "show this help message and exit" in out
    assert "register this school's signing key with the national API" in flat(out)
    assert "defnydd" not in out


def test_a_welsh_locale_picks_welsh(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "cy_GB.UTF-8")
    _code, out, _err = run(capsys, "--help")
    assert out.startswith("defnydd: hwb-client ")


def test_a_subcommand_help_and_its_usage_errors_are_welsh(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "--lang", "cy", "enrol", "--help")
    assert code == 0 and out.startswith("defnydd: hwb-client enrol ")
    assert "y cod ymrestru untro a roddwyd yn genedlaethol" in out
    code, _out, err = run(capsys, "--lang", "cy", "enrol")
    assert code == 2
    assert "hwb-client enrol: gwall: mae angen y dadleuon canlynol: --school, --code" in err
    assert err.startswith("defnydd: hwb-client enrol ")


def test_argparse_errors_keep_the_option_and_value_and_say_the_rest_in_welsh(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _out, err = run(capsys, "--lang", "cy", "--run-now", "--as-of", "30/08/2026")
    assert code == 2
    assert (
        "hwb-client: gwall: dadl --as-of: nid yw '30/08/2026' yn ddyddiad: ysgrifennwch ef ar y ffurf YYYY-MM-DD"
        in err
    )
    code, _out, err = run(capsys, "--lang", "cy", "why", "--school", "6612001", "--upn", "X", "--name", "Y")
    assert code == 2 and "dadl --name: ni chaniateir gyda'r ddadl --upn" in err
    code, _out, err = run(capsys, "--lang", "cy", "--frobnicate")
    assert code == 2 and "gwall: dadleuon anhysbys: --frobnicate" in err
    code, _out, err = run(capsys, "--lang", "cy", "--run-now", "status")
    assert code == 2 and "mae --run-now yn rhedeg ar ei ben ei hun" in err


def test_the_same_usage_errors_in_english(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "enrol")
    assert (
        code == 2 and "hwb-client enrol: error: the following arguments are required: --school, --code" in err
    )
    code, _out, err = run(capsys, "--run-now", "--as-of", "30/08/2026")
    assert "error: argument --as-of: '30/08/2026' is not a date: write it as YYYY-MM-DD" in err


def test_a_broken_configuration_with_lang_cy_is_a_welsh_error_naming_the_setting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = config(tmp_path, dfes="1234567", extra="[guard]\nmax_removal_share = 3\nfrobnicate = 1\n")
    code, _out, err = run(capsys, "--lang", "cy", "--config", str(path), "check-config")
    assert code == 3
    lines = err.splitlines()
    assert lines[0] == f"hwb-client: gwall: mae gan {path} 3 problem:"
    assert "  guard.max_removal_share: rhaid i'r gwerth fod yn llai na 1 neu'n hafal iddo" in lines
    assert (
        "  guard.frobnicate: gosodiad anhysbys; gwiriwch ei sillafu yn erbyn config/hwb-client.example.toml"
        in lines
    )
    assert "  schools[1234567].dfes_number: rhaid iddo fod yn rhif DfES 7 digid yr ysgol" in err


def test_the_same_broken_configuration_in_english_is_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = config(tmp_path, dfes="1234567", extra="[guard]\nmax_removal_share = 3\n")
    code, _out, err = run(capsys, "--config", str(path), "check-config")
    assert code == 3
    assert err.splitlines() == [
        f"hwb-client: error: {path} has 2 problems:",
        "  guard.max_removal_share: Input should be less than or equal to 1",
        "  schools[1234567].dfes_number: must be the school's 7-digit DfES number: a Welsh LA number (660-681) "
        "then 4 digits",
    ]


def test_a_configuration_in_welsh_speaks_welsh_about_its_own_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = config(tmp_path, language="cy", extra='[schedule]\ntimezone = "Europe/Cardiff"\n')
    code, _out, err = run(capsys, "--config", str(path), "schedule")
    assert code == 3
    assert "schedule.timezone: cylchfa amser anhysbys 'Europe/Cardiff': defnyddiwch enw IANA" in err
    assert err.startswith("hwb-client: gwall: ")


def test_a_missing_configuration_file_is_a_welsh_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.toml"
    code, _out, err = run(capsys, "--lang", "cy", "--config", str(missing), "check-config")
    assert code == 3
    assert err == (
        f"hwb-client: gwall: ni chafwyd hyd i'r ffeil ffurfweddu {missing}; copïwch "
        "config/hwb-client.example.toml yno neu rhowch --config PATH\n"
    )


def test_schedule_in_welsh_has_welsh_headings_days_and_dates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _err = run(
        capsys,
        "--lang",
        "cy",
        "--config",
        str(config(tmp_path)),
        "schedule",
        "--from",
        "2026-08-29",
        "--next",
        "3",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("# dyddiadau'r tymhorau: rhagosodiadau Cymreig adeiledig")
    assert "1 Medi 2025 i 20 Gorffennaf 2027; cylchfa amser Europe/London" in lines[0]
    assert lines[1].split() == ["dyddiad", "amser", "dydd", "rheol"]
    assert lines[2:] == [
        "2026-08-30 02:00 Sul  august_30",  # rule names are codes: they stay
        "2026-08-31 02:00 Llun day_before_term",
        "2026-09-01 02:00 Maw  first_week_daily",
    ]


def test_client_language_picks_welsh_and_lang_en_overrides_it_and_the_locale(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    welsh = config(tmp_path, language="cy")
    _code, out, _err = run(capsys, "--config", str(welsh), "schedule", "--from", "2026-08-29", "--next", "1")
    assert out.startswith("# dyddiadau'r tymhorau: ")
    monkeypatch.setenv("LANG", "cy_GB.UTF-8")
    _code, out, _err = run(
        capsys, "--lang", "en", "--config", str(welsh), "schedule", "--from", "2026-08-29", "--next", "1"
    )
    assert out.splitlines() == [
        "# term dates: built-in Welsh defaults (replace with your LA's dates), 2025-09-01 to 2027-07-20; "
        "time zone Europe/London",
        "date       time  day rule",
        "2026-08-30 02:00 Sun august_30",
    ]


def test_check_config_in_welsh_names_each_problem_and_counts_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = config(tmp_path)
    code, out, _err = run(capsys, "--lang", "cy", "--config", str(path), "check-config")
    assert code == 3
    lines = out.splitlines()
    key = tmp_path / "keys" / "6612001.pem"
    assert (
        f"schools[6612001].signing_key_file: nid yw ysgol 6612001 wedi ymrestru (dim allwedd lofnodi yn {key}); "
        "rhedwch `hwb-client enrol --school 6612001 --code CODE` gyda'i chod ymrestru untro"
    ) in lines
    assert any(line.startswith("schedule.terms: dim dyddiadau tymor wedi'u ffurfweddu") for line in lines)
    assert lines[-1] == f"{path}: DDIM YN BAROD ({len(lines) - 1} problem)"


def test_check_config_in_english_says_problems_properly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = config(tmp_path)
    code, out, _err = run(capsys, "--config", str(path), "check-config")
    lines = out.splitlines()
    assert code == 3 and lines[-1] == f"{path}: NOT READY ({len(lines) - 1} problems)"
    assert "schools[6612001].signing_key_file: school 6612001 is not enrolled" in out


def test_welsh_term_notes_count_days_and_write_dates_in_welsh(tmp_path: Path) -> None:
    from hwb_client.readiness import check
    from hwb_client.settings import load_settings

    terms = "[[schedule.terms]]\nstart = 2026-09-01\nend = 2026-12-18\n"
    settings = load_settings(config(tmp_path, extra=f"[schedule]\n{terms}"))
    i18n.activate("cy")
    report = check(settings, today=dt.date(2026, 12, 17))
    assert "dyddiadau tymor tan 18 Rhagfyr 2026 (1 diwrnod)" in report.notes
    i18n.activate("en")
    assert "term dates until 2026-12-18 (1 day)" in check(settings, today=dt.date(2026, 12, 17)).notes
    assert "term dates until 2026-12-18 (2 days)" in check(settings, today=dt.date(2026, 12, 16)).notes


def test_the_daemon_status_line_in_welsh_and_english(tmp_path: Path) -> None:
    """What ``systemctl status`` shows: the next run with a Welsh date, and how many school runs are on."""
    import random
    import threading

    from hwb_client.daemon import _Daemon
    from hwb_client.settings import load_settings

    settings = load_settings(config(tmp_path))
    daemon = _Daemon(
        settings,
        stop=threading.Event(),
        run_school=lambda *args, **kwargs: None,
        clock=lambda: dt.datetime(2026, 8, 29, 12, tzinfo=dt.UTC),
        rng=random.Random(0),
    )
    try:
        assert daemon.status_line() == "next run 2026-08-30 02:00 BST (august_30); 0 school runs in progress"
        daemon.in_flight.add("6612001")
        assert daemon.status_line().endswith("; 1 school run in progress")
        i18n.activate("cy")
        assert (
            daemon.status_line()
            == "rhediad nesaf 30 Awst 2026 02:00 BST (august_30); 1 rhediad ysgol ar waith"
        )
    finally:
        daemon.pool.shutdown()

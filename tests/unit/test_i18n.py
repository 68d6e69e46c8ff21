"""The language is chosen as documented (--lang, client.language, the locale, English) and Welsh dates
read as Welsh people write them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from hwb_client import i18n


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    yield
    i18n.activate("en")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("cy", "cy"),
        ("CY", "cy"),
        ("cy_GB.UTF-8", "cy"),
        ("cy-GB", "cy"),
        ("cy_GB@euro", "cy"),
        ("en_GB.UTF-8", "en"),
        ("en", "en"),
        ("fr_FR.UTF-8", None),
        ("C", None),
        ("POSIX", None),
        ("C.UTF-8", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_reduces_a_locale_name_to_a_language_we_speak(value: str | None, code: str | None) -> None:
    assert i18n.normalise(value) == code


@pytest.mark.parametrize(
    ("environ", "code"),
    [
        ({"LANG": "cy_GB.UTF-8"}, "cy"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "C"}, None),
        ({}, None),
        ({"LANGUAGE": "fr:cy:en", "LANG": "en_GB.UTF-8"}, "cy"),  # the first language we speak in the list
        ({"LANGUAGE": "fr:de", "LANG": "cy_GB.UTF-8"}, "cy"),  # none we speak: the locale decides
        ({"LC_ALL": "C", "LANG": "cy_GB.UTF-8"}, None),  # LC_ALL overrides LANG, even with C
        ({"LC_ALL": "cy_GB.UTF-8", "LANG": "en_GB.UTF-8"}, "cy"),
        ({"LC_MESSAGES": "cy_GB.UTF-8", "LANG": "en_GB.UTF-8"}, "cy"),
        ({"LC_ALL": "", "LANG": "cy_GB.UTF-8"}, "cy"),  # set but empty counts as unset
        ({"LANG": "fr_FR.UTF-8"}, None),
    ],
)
def test_from_environment_reads_the_locale_as_gettext_does(environ: dict[str, str], code: str | None) -> None:
    assert i18n.from_environment(environ) == code


def test_choose_prefers_the_option_then_the_configuration_then_the_locale() -> None:
    welsh_locale = {"LANG": "cy_GB.UTF-8"}
    assert i18n.choose("en", "cy", welsh_locale) == "en"
    assert i18n.choose(None, "en", welsh_locale) == "en"
    assert i18n.choose(None, None, welsh_locale) == "cy"
    assert i18n.choose(None, "cy", {"LANG": "C"}) == "cy"


def test_choose_falls_back_to_english_for_languages_we_do_not_speak() -> None:
    assert i18n.choose("fr", "de", {"LANG": "ga_IE.UTF-8"}) == "en"
    assert i18n.choose(None, None, {}) == "en"


def test_welsh_dates_are_long_and_welsh_english_ones_iso() -> None:
    day = dt.date(2026, 8, 30)
    assert i18n.format_date(day, "cy") == "30 Awst 2026"
    assert i18n.format_date(day, "en") == "2026-08-30"
    assert i18n.format_date(dt.date(2027, 1, 4), "cy") == "4 Ionawr 2027"


def test_format_date_follows_the_active_language() -> None:
    day = dt.date(2026, 8, 30)
    assert i18n.format_date(day) == "2026-08-30"
    i18n.activate("cy")
    assert i18n.format_date(day) == "30 Awst 2026"


def test_activate_speaks_welsh_from_the_catalogue_and_english_from_the_source() -> None:
    assert i18n.activate("cy_GB.UTF-8") == "cy" and i18n.language() == "cy"
    assert i18n._("usage: ") == "defnydd: "
    assert i18n.ngettext("READY ({count} school)", "READY ({count} schools)", 2) == "YN BAROD ({count} ysgol)"
    assert i18n.activate("xx") == "en"
    assert i18n._("usage: ") == "usage: "
    assert i18n.ngettext("READY ({count} school)", "READY ({count} schools)", 2) == "READY ({count} schools)"

"""The language people read: gettext catalogues (English and Welsh), chosen once per process.

Mark text where a person reads it: ``_("...")`` for a sentence, ``ngettext(singular, plural, n)`` for
one that has a number in it (Welsh has six plural forms; never glue ``"(s)"`` on), and ``N_("...")``
for a sentence kept in a table and translated later, where it is shown (``_(ADVICE[reason])``).
Placeholders are named and filled after translation: ``_("school {dfes}: no state").format(dfes=...)``.

What is never translated: log event names and their keys, reason codes, exit codes, JSON field names,
the wire protocol. They are identifiers that machines and people grep.

The language comes from ``--lang``, then ``client.language`` in the configuration, then the locale
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``, as gettext reads them); English is the fallback.
The catalogues are ``locale/<lang>/LC_MESSAGES/hwb_client.po`` in this package, compiled to ``.mo`` by
the build (and by ``scripts/bootstrap`` for a working tree); ``scripts/i18n`` extracts and updates them.
"""

from __future__ import annotations

import datetime as dt
import gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "hwb_client"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "cy")
DEFAULT_LANGUAGE = "en"

_active: gettext.NullTranslations = gettext.NullTranslations()
_language = DEFAULT_LANGUAGE


def N_(message: str) -> str:  # the gettext name for "marked, translated later"
    """Mark ``message`` for the catalogue without translating it now."""
    return message


def _(message: str) -> str:
    """``message`` in the active language (itself when there is no translation)."""
    return _active.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of ``singular``/``plural`` for ``n`` in the active language (Welsh has six)."""
    return _active.ngettext(singular, plural, n)


def language() -> str:
    """The active language's code: ``en`` or ``cy``."""
    return _language


def normalise(value: str | None) -> str | None:
    """``cy``, ``cy_GB.UTF-8``, ``cy-GB`` → ``cy``; ``en_GB`` → ``en``; anything else → ``None``."""
    if not value:
        return None
    code = value.split(".", 1)[0].split("@", 1)[0].replace("-", "_").split("_", 1)[0].lower()
    return code if code in LANGUAGES else None


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the locale asks for, read as gettext does (``LANGUAGE`` may list several)."""
    environ = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if not value:
            continue
        for part in value.split(":"):
            code = normalise(part)
            if code is not None:
                return code
        if name != "LANGUAGE":
            return None  # the first of LC_ALL, LC_MESSAGES, LANG that is set decides, as in gettext
    return None


def choose(
    cli: str | None = None, configured: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """``--lang``, then ``client.language``, then the locale, then English."""
    for candidate in (normalise(cli), normalise(configured), from_environment(environ)):
        if candidate is not None:
            return candidate
    return DEFAULT_LANGUAGE


def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``lang`` (English: no catalogue, the source text itself)."""
    if lang == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang], fallback=True)


def activate(lang: str) -> str:
    """Make ``lang`` the language of this process from now on; returns the code used."""
    global _active, _language
    code = normalise(lang) or DEFAULT_LANGUAGE
    _active, _language = translations(code), code
    return code


def format_date(day: dt.date, lang: str | None = None) -> str:
    """A date as text shows it: ``30 Awst 2026`` in Welsh; ISO 8601 (``2026-08-30``) in English, the
    form the English screens, logs and reports have always used."""
    code = lang or _language
    if code == DEFAULT_LANGUAGE:
        return day.isoformat()
    from babel.dates import format_date as babel_format_date

    return str(babel_format_date(day, format="long", locale=code))

"""The sandbox's languages: its portal page and its problem documents in English or Welsh, per request.

The sandbox has its own gettext catalogue (domain ``hwb_sandbox``, ``locale/cy/LC_MESSAGES/`` in this
package; ``scripts/i18n`` extracts and compiles it). Unlike the client, which runs in one language, the
sandbox answers requests in both languages at the same time: nothing here is process-wide. Each request
gets a :class:`Language` from its ``Accept-Language`` header (English when it sends none, or asks for
neither language) and the text is translated through that object: ``lang._("...")``,
``lang.ngettext("{count} key", "{count} keys", n).format(count=n)``. Text kept in a table is marked
``N_("...")`` and translated where it is shown.

What is never translated: problem ``type`` URIs and slugs, status codes, JSON field names, reason and
outcome codes: the wire protocol.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

DOMAIN: Final = "hwb_sandbox"
LOCALE_DIR: Final = Path(__file__).parent / "locale"
LANGUAGES: Final = ("en", "cy")
DEFAULT_LANGUAGE: Final = "en"


def N_(message: str) -> str:  # the gettext name for "marked, translated later"
    """Mark ``message`` for the catalogue without translating it now."""
    return message


@functools.cache
def translations(code: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``code`` (English: none, the source text itself); loaded once."""
    if code == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[code], fallback=True)


@dataclass(frozen=True, slots=True)
class Language:
    """One request's language: its code (``en``/``cy``) and the catalogue that translates into it."""

    code: str

    @property
    def _catalogue(self) -> gettext.NullTranslations:
        return translations(self.code)

    def _(self, message: str) -> str:
        """``message`` in this language (itself when it has no translation)."""
        return self._catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of ``singular``/``plural`` for ``n`` in this language (Welsh has six)."""
        return self._catalogue.ngettext(singular, plural, n)

    def format_date(self, day: dt.date) -> str:
        """A date as text shows it: ``30 Awst 2026`` in Welsh; ISO 8601 (``2026-08-30``) in English."""
        if self.code == DEFAULT_LANGUAGE:
            return day.isoformat()
        from babel.dates import format_date as babel_format_date

        return str(babel_format_date(day, format="long", locale=self.code))


ENGLISH: Final = Language(DEFAULT_LANGUAGE)


def negotiate(accept_language: str | None) -> Language:
    """The language an ``Accept-Language`` header asks for: the first of ``en``/``cy`` by quality, a
    regional tag counting for its language (``cy-GB`` is Welsh, ``en-GB`` English); English otherwise.

    Werkzeug's ``best_match`` prefers an exact tag anywhere in the list to a regional one however much
    higher its quality (``cy-GB, en;q=0.5`` would be English), so the tags are read here in order.
    """
    if not accept_language:
        return ENGLISH
    for value, quality in parse_accept_header(accept_language, LanguageAccept):
        if quality <= 0:
            continue
        if value == "*":
            return ENGLISH
        code = value.replace("_", "-").split("-", 1)[0].lower()
        if code in LANGUAGES:
            return Language(code)
    return ENGLISH

"""Names the national side refuses: invisible control and formatting characters.

The same rule as the client's validation (``hwb_client.core.validate.clean_text``): a name with a
character of Unicode category Cc (C0 and C1 controls, NUL, DEL), Cf (format characters, among them the
bidi embeddings and overrides U+202A-U+202E and isolates U+2066-U+2069), Cs or Co is refused, per
operation, with the reason ``text_control_characters``. Such a name can look like another on a screen
(a right-to-left override reverses what follows) or break the systems that print it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Final

REASON: Final = "text_control_characters"
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co"})
#: The record fields a person reads: learners' and staff's legal names, groups' names.
NAME_FIELDS: Final = ("legal_forename", "legal_surname", "name")


def has_control_characters(text: str) -> bool:
    """True if ``text`` holds a control, format (bidi), surrogate or private-use character."""
    return not text.isprintable() and any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text)


def refused_name(record: Mapping[str, object]) -> bool:
    """True if any name field of ``record`` holds a character the national side refuses."""
    return any(
        isinstance(value, str) and has_control_characters(value)
        for value in (record.get(field) for field in NAME_FIELDS)
    )

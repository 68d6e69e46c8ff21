"""Text from the MIS made safe for a terminal: control characters (escape sequences, bidi overrides,
NUL) are shown as escapes, never written raw."""

from __future__ import annotations

import unicodedata

_UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: object) -> str:
    """``text`` with every control, format or unassigned character replaced by its ``\\x``/``\\u`` escape."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(ch if unicodedata.category(ch) not in _UNSAFE else ascii(ch)[1:-1] for ch in value)

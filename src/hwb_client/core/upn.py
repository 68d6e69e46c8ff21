"""Unique Pupil Number (UPN): format and check letter.

The algorithm is the Department for Education's, published in the GovTalk "Unique Pupil Number"
data standard (v2.0), and used unchanged in Wales:

- 13 characters: a check letter, the 3-digit LA number, the 4-digit establishment number,
  the 2-digit year of allocation and a 3-digit serial number.
- A *temporary* UPN ends in two digits and a letter (A-Z without I, O and S) instead of the
  serial's last digit; it is replaced later by a permanent UPN.
- Check letter: multiply characters 2..13 by the weights 2..13, a temporary UPN's final letter
  counting as its index in the check-letter table; sum, take the remainder modulo 23 and index into
  ``ABCDEFGHJKLMNPQRTUVWXYZ``.

Worked examples (checked by the tests): ``J681234525017``, ``K68123452501A``, ``P207000016049``
(some vendors publish ``Q207000016049``; ``P`` is correct).

Welsh LA numbers are 660-681; ``python-stdnum`` checks against England's list only, hence this module.
"""

from __future__ import annotations

import enum
import re

CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
_PERMANENT = re.compile(r"^[A-Z][0-9]{12}$")
_TEMPORARY = re.compile(r"^[A-Z][0-9]{11}[A-HJ-NP-RT-Z]$")
WELSH_LA_NUMBERS = range(660, 682)


class UpnStatus(enum.Enum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    BAD_FORMAT = "bad_format"
    BAD_CHECK_LETTER = "bad_check_letter"


def normalise(upn: str) -> str:
    """Upper-case and strip the surrounding and embedded spaces an MIS export may carry."""
    return "".join(upn.split()).upper()


def check_letter(body: str) -> str:
    """The check letter for the 12 characters after it (a temporary body ends in a letter)."""
    if len(body) != 12:
        raise ValueError("a UPN body has 12 characters")
    total = 0
    for weight, char in enumerate(body, start=2):
        value = CHECK_LETTERS.index(char) if char.isalpha() else int(char)
        total += weight * value
    return CHECK_LETTERS[total % 23]


def classify(upn: str) -> UpnStatus:
    """Say whether an already normalised UPN is permanent, temporary or invalid (and why)."""
    if _PERMANENT.match(upn):
        status = UpnStatus.PERMANENT
    elif _TEMPORARY.match(upn):
        status = UpnStatus.TEMPORARY
    else:
        return UpnStatus.BAD_FORMAT
    if upn[0] not in CHECK_LETTERS or check_letter(upn[1:]) != upn[0]:
        return UpnStatus.BAD_CHECK_LETTER
    return status


def make_upn(la_number: int, establishment: int, year: int, serial: int) -> str:
    """Build a valid permanent UPN (used by the demo and test data generators)."""
    body = f"{la_number:03d}{establishment:04d}{year % 100:02d}{serial:03d}"
    return check_letter(body) + body

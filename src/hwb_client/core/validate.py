"""Validation: every MIS row is checked before anything else, and a broken one is held back with a reason.

A held-back record is never sent and never counts as removed; the rest of the run goes on. The reason
codes are a stable, documented enum (README, "Held-back reasons"): the portal and the operator both read
them, so a code is never renamed or reused.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from hwb_client.core import upn as upn_mod
from hwb_client.core.model import Kind

MAX_NAME_LENGTH: Final = 100
MAX_GROUP_NAME_LENGTH: Final = 120
YEAR_GROUPS: Final = frozenset({"N1", "N2", "R", *(str(n) for n in range(1, 15))})
GROUP_TYPES: Final = frozenset({"registration", "teaching"})
_STAFF_CODE = re.compile(r"^[A-Za-z0-9._-]{1,16}$")
_GROUP_ID = re.compile(r"^[^/\x00-\x1f\x7f]{1,64}$")
_OLDEST_DATE_OF_BIRTH: Final = dt.date(1900, 1, 1)


class Reason(enum.StrEnum):
    """Why a record was held back. Stable codes: add new ones, never rename."""

    UPN_MISSING = "upn_missing"
    UPN_BAD_FORMAT = "upn_bad_format"
    UPN_BAD_CHECK_LETTER = "upn_bad_check_letter"
    UPN_TEMPORARY = "upn_temporary"
    UPN_DUPLICATE = "upn_duplicate"
    LEGAL_FORENAME_MISSING = "legal_forename_missing"
    LEGAL_SURNAME_MISSING = "legal_surname_missing"
    DATE_OF_BIRTH_MISSING = "date_of_birth_missing"
    DATE_OF_BIRTH_INVALID = "date_of_birth_invalid"
    DATE_OF_BIRTH_IN_FUTURE = "date_of_birth_in_future"
    YEAR_GROUP_MISSING = "year_group_missing"
    YEAR_GROUP_INVALID = "year_group_invalid"
    DATE_INVALID = "date_invalid"
    LEAVING_BEFORE_START = "leaving_before_start"
    TEXT_TOO_LONG = "text_too_long"
    TEXT_CONTROL_CHARACTERS = "text_control_characters"
    STAFF_CODE_MISSING = "staff_code_missing"
    STAFF_CODE_INVALID = "staff_code_invalid"
    STAFF_CODE_DUPLICATE = "staff_code_duplicate"
    START_DATE_MISSING = "start_date_missing"
    GROUP_ID_MISSING = "group_id_missing"
    GROUP_ID_INVALID = "group_id_invalid"
    GROUP_ID_DUPLICATE = "group_id_duplicate"
    GROUP_TYPE_INVALID = "group_type_invalid"
    GROUP_UNKNOWN = "group_unknown"
    MEMBER_KIND_INVALID = "member_kind_invalid"
    MEMBER_UNKNOWN = "member_unknown"
    MEMBER_HELD_BACK = "member_held_back"
    REGISTRATION_GROUP_INVALID = "registration_group_invalid"


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue (core imports no i18n state); shown as ``_(ADVICE[reason])``."""
    return message


#: What an MIS administrator should do about each reason (shown by `status` and the dry-run plan), in
#: English: translated where it is shown, ``_(ADVICE[reason])``.
ADVICE: Final[Mapping[Reason, str]] = {
    Reason.UPN_MISSING: N_("record the learner's permanent UPN in the MIS"),
    Reason.UPN_BAD_FORMAT: N_("correct the UPN: a check letter then 12 characters"),
    Reason.UPN_BAD_CHECK_LETTER: N_("the UPN's check letter does not match: correct the UPN in the MIS"),
    Reason.UPN_TEMPORARY: N_("replace the temporary UPN with the learner's permanent UPN"),
    Reason.UPN_DUPLICATE: N_("two learners share this UPN: correct the wrong one in the MIS"),
    Reason.LEGAL_FORENAME_MISSING: N_("enter the learner's or staff member's legal forename"),
    Reason.LEGAL_SURNAME_MISSING: N_("enter the legal surname"),
    Reason.DATE_OF_BIRTH_MISSING: N_("enter the learner's date of birth"),
    Reason.DATE_OF_BIRTH_INVALID: N_("correct the date of birth"),
    Reason.DATE_OF_BIRTH_IN_FUTURE: N_("the date of birth is in the future: correct it"),
    Reason.YEAR_GROUP_MISSING: N_("put the learner in a year group"),
    Reason.YEAR_GROUP_INVALID: N_("use a year group N1, N2, R or 1-14 (or adapt the query profile)"),
    Reason.DATE_INVALID: N_("correct the start or leaving date"),
    Reason.LEAVING_BEFORE_START: N_(
        "the leaving date is before the start/admission date: correct one of them"
    ),
    Reason.TEXT_TOO_LONG: N_("shorten the name (it is longer than Hwb accepts)"),
    Reason.TEXT_CONTROL_CHARACTERS: N_("remove the invisible control characters from the name"),
    Reason.STAFF_CODE_MISSING: N_(
        "give the staff member a staff code: without one no Hwb account is created"
    ),
    Reason.STAFF_CODE_INVALID: N_("use a staff code of up to 16 letters, digits, '.', '_' or '-'"),
    Reason.STAFF_CODE_DUPLICATE: N_("two staff members share this staff code: make each unique"),
    Reason.START_DATE_MISSING: N_(
        "enter the staff member's start date: without one no Hwb account is created"
    ),
    Reason.GROUP_ID_MISSING: N_("the group has no id: check the query profile"),
    Reason.GROUP_ID_INVALID: N_("the group id is over 64 characters or contains '/' or control characters"),
    Reason.GROUP_ID_DUPLICATE: N_("two groups share this id: check the query profile"),
    Reason.GROUP_TYPE_INVALID: N_(
        "group_type must be 'registration' or 'teaching' (adapt the query profile)"
    ),
    Reason.GROUP_UNKNOWN: N_("the membership names a group that was not read (or was held back)"),
    Reason.MEMBER_KIND_INVALID: N_("member_kind must be 'learner' or 'staff' (adapt the query profile)"),
    Reason.MEMBER_UNKNOWN: N_("the membership names a learner or staff member who is not on roll"),
    Reason.MEMBER_HELD_BACK: N_("the member is held back; fix their record first"),
    Reason.REGISTRATION_GROUP_INVALID: N_(
        "the learner's registration group is over 40 characters or has control characters: "
        "correct the registration group in the MIS (or adapt the query profile)"
    ),
}


@dataclass(frozen=True, slots=True)
class HeldBack:
    """A record that was not sent, and why. ``ref`` is a local reference for the school's own report
    (the MIS row number); it is never logged with personal data."""

    kind: Kind
    ref: str
    reason: Reason
    #: the record's key when it has one (upn_hash, staff code, group id), and its MIS id when the profile
    #: maps one: stable references for the operator's console (never logged as such)
    key: str | None = None
    mis_id: str | None = None


class Invalid(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def clean_text(value: object, *, missing: Reason, max_length: int = MAX_NAME_LENGTH) -> str:
    """Trim and NFC-normalise a name; refuse a missing, over-long or control-character value."""
    if value is None:
        raise Invalid(missing)
    text = unicodedata.normalize("NFC", str(value)).strip()
    if not text:
        raise Invalid(missing)
    # isprintable() is False for every Cc/Cf/Cs/Co character (and for some harmless ones, such as a
    # no-break space): the per-character check runs only for the rare name it does not clear.
    if not text.isprintable() and any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co"} for ch in text):
        raise Invalid(Reason.TEXT_CONTROL_CHARACTERS)
    if len(text) > max_length:
        raise Invalid(Reason.TEXT_TOO_LONG)
    return text


def parse_date(
    value: object, *, missing: Reason | None, invalid: Reason = Reason.DATE_INVALID
) -> dt.date | None:
    """Accept a date, a datetime or an ISO ``YYYY-MM-DD`` string (drivers differ); ``None`` if allowed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if missing is not None:
            raise Invalid(missing)
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise Invalid(invalid) from None


def parse_year_group(value: object) -> str:
    if value is None or not str(value).strip():
        raise Invalid(Reason.YEAR_GROUP_MISSING)
    text = str(value).strip().upper()
    if text.isdigit():
        text = str(int(text))
    if text not in YEAR_GROUPS:
        raise Invalid(Reason.YEAR_GROUP_INVALID)
    return text


def parse_upn(value: object) -> str:
    """Return the normalised permanent UPN, or raise with the reason it cannot be used."""
    if value is None or not str(value).strip():
        raise Invalid(Reason.UPN_MISSING)
    upn = upn_mod.normalise(str(value))
    status = upn_mod.classify(upn)
    if status is upn_mod.UpnStatus.PERMANENT:
        return upn
    raise Invalid(
        {
            upn_mod.UpnStatus.TEMPORARY: Reason.UPN_TEMPORARY,
            upn_mod.UpnStatus.BAD_FORMAT: Reason.UPN_BAD_FORMAT,
            upn_mod.UpnStatus.BAD_CHECK_LETTER: Reason.UPN_BAD_CHECK_LETTER,
        }[status]
    )


def _check_dates(start: dt.date | None, leaving: dt.date | None) -> None:
    if start is not None and leaving is not None and leaving < start:
        raise Invalid(Reason.LEAVING_BEFORE_START)


@dataclass(frozen=True, slots=True)
class ValidLearner:
    upn: str  # normalised, permanent; only ever held in memory, hashed before it goes anywhere
    legal_forename: str
    legal_surname: str
    date_of_birth: dt.date
    year_group: str
    registration_group: str | None
    leaving_date: dt.date | None
    start_date: dt.date | None = None  # the admission date: checked and shown, never sent


@dataclass(frozen=True, slots=True)
class ValidStaff:
    staff_code: str
    legal_forename: str
    legal_surname: str
    start_date: dt.date
    leaving_date: dt.date | None


@dataclass(frozen=True, slots=True)
class ValidGroup:
    group_id: str
    name: str
    group_type: str
    year_group: str | None


@dataclass(frozen=True, slots=True)
class ValidMembership:
    group_id: str
    member_kind: Kind
    member_ref: str  # a normalised UPN (learners) or a staff code; the UPN is hashed before sending


def learner(
    row: Mapping[str, object], today: dt.date, *, upn_parser: Callable[[object], str] = parse_upn
) -> ValidLearner:
    upn = upn_parser(row.get("upn"))
    forename = clean_text(row.get("legal_forename"), missing=Reason.LEGAL_FORENAME_MISSING)
    surname = clean_text(row.get("legal_surname"), missing=Reason.LEGAL_SURNAME_MISSING)
    dob = parse_date(
        row.get("date_of_birth"), missing=Reason.DATE_OF_BIRTH_MISSING, invalid=Reason.DATE_OF_BIRTH_INVALID
    )
    assert dob is not None
    if dob > today:
        raise Invalid(Reason.DATE_OF_BIRTH_IN_FUTURE)
    if dob < _OLDEST_DATE_OF_BIRTH:
        raise Invalid(Reason.DATE_OF_BIRTH_INVALID)
    year_group = parse_year_group(row.get("year_group"))
    start = parse_date(row.get("start_date"), missing=None)
    leaving = parse_date(row.get("leaving_date"), missing=None)
    _check_dates(start, leaving)
    registration_group = _registration_group(row.get("registration_group"))
    return ValidLearner(upn, forename, surname, dob, year_group, registration_group, leaving, start)


def _registration_group(value: object) -> str | None:
    """An optional registration group; a broken one holds the learner back with its own reason."""
    if value is None or not str(value).strip():
        return None
    try:
        return clean_text(value, missing=Reason.REGISTRATION_GROUP_INVALID, max_length=40)
    except Invalid:
        raise Invalid(Reason.REGISTRATION_GROUP_INVALID) from None


def staff(row: Mapping[str, object]) -> ValidStaff:
    code_value = row.get("staff_code")
    if code_value is None or not str(code_value).strip():
        raise Invalid(Reason.STAFF_CODE_MISSING)
    code = str(code_value).strip()
    if not _STAFF_CODE.match(code):
        raise Invalid(Reason.STAFF_CODE_INVALID)
    forename = clean_text(row.get("legal_forename"), missing=Reason.LEGAL_FORENAME_MISSING)
    surname = clean_text(row.get("legal_surname"), missing=Reason.LEGAL_SURNAME_MISSING)
    start = parse_date(row.get("start_date"), missing=Reason.START_DATE_MISSING)
    assert start is not None
    leaving = parse_date(row.get("leaving_date"), missing=None)
    _check_dates(start, leaving)
    return ValidStaff(code, forename, surname, start, leaving)


def group(row: Mapping[str, object]) -> ValidGroup:
    gid_value = row.get("group_id")
    if gid_value is None or not str(gid_value).strip():
        raise Invalid(Reason.GROUP_ID_MISSING)
    gid = str(gid_value).strip()
    if not _GROUP_ID.match(gid):
        raise Invalid(Reason.GROUP_ID_INVALID)
    name_value = row.get("name")
    name = (
        clean_text(name_value, missing=Reason.GROUP_ID_MISSING, max_length=MAX_GROUP_NAME_LENGTH)
        if name_value is not None and str(name_value).strip()
        else gid
    )
    group_type = str(row.get("group_type") or "").strip().lower()
    if group_type not in GROUP_TYPES:
        raise Invalid(Reason.GROUP_TYPE_INVALID)
    year = row.get("year_group")
    year_group = parse_year_group(year) if year is not None and str(year).strip() else None
    return ValidGroup(gid, name, group_type, year_group)


_LEARNER: Final = Kind.LEARNER.value
_STAFF: Final = Kind.STAFF.value


def membership(
    row: Mapping[str, object], *, upn_parser: Callable[[object], str] = parse_upn
) -> ValidMembership:
    """``upn_parser`` is ``parse_upn`` or a memo of it (a school's memberships repeat each learner's UPN)."""
    gid = membership_group(row.get("group_id"))
    if not gid:
        raise Invalid(Reason.GROUP_ID_MISSING)
    return ValidMembership(gid, *membership_member(row, upn_parser=upn_parser))


def membership_group(value: object) -> str:
    """The group id a membership row names (empty when it names none: ``membership`` says why)."""
    return str(value or "").strip()


def membership_member(
    row: Mapping[str, object], *, upn_parser: Callable[[object], str] = parse_upn
) -> tuple[Kind, str]:
    """The member a membership row names, its group aside: the kind and the UPN or staff code."""
    kind_text = str(row.get("member_kind") or "").strip().lower()
    if kind_text == _LEARNER:
        return Kind.LEARNER, upn_parser(row.get("upn"))
    if kind_text == _STAFF:
        code = str(row.get("staff_code") or "").strip()
        if not code:
            raise Invalid(Reason.STAFF_CODE_MISSING)
        return Kind.STAFF, code
    raise Invalid(Reason.MEMBER_KIND_INVALID)

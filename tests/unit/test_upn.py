"""The UPN check letter and format, from the GovTalk UPN data standard (v2.0)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwb_client.core.upn import UpnStatus, check_letter, classify, make_upn, normalise


@pytest.mark.parametrize(
    ("upn", "status"),
    [
        ("J681234525017", UpnStatus.PERMANENT),
        ("K68123452501A", UpnStatus.TEMPORARY),
        ("P207000016049", UpnStatus.PERMANENT),
    ],
)
def test_worked_examples_from_the_standard_are_valid(upn: str, status: UpnStatus) -> None:
    assert classify(upn) is status


def test_vendor_example_with_wrong_check_letter_is_refused() -> None:
    """Some vendors publish Q207000016049; the check letter is P."""
    assert classify("Q207000016049") is UpnStatus.BAD_CHECK_LETTER
    assert check_letter("207000016049") == "P"


@pytest.mark.parametrize(
    "upn", ["", "J68123452501", "J6812345250177", "1681234525017", "J68123452501I", "J6812345X5017"]
)
def test_malformed_upns_are_bad_format(upn: str) -> None:
    assert classify(upn) is UpnStatus.BAD_FORMAT


def test_temporary_upn_cannot_end_in_i_o_or_s() -> None:
    for letter in "IOS":
        body = "68123452501" + letter
        assert classify("A" + body) is UpnStatus.BAD_FORMAT


def test_normalise_strips_spaces_and_upper_cases() -> None:
    assert normalise(" j681 2345 25017 ") == "J681234525017"


@given(st.integers(660, 681), st.integers(0, 9999), st.integers(0, 99), st.integers(0, 999))
def test_generated_upns_are_permanent_and_any_single_digit_change_is_caught(la, est, year, serial) -> None:
    upn = make_upn(la, est, year, serial)
    assert classify(upn) is UpnStatus.PERMANENT
    for position in range(1, 13):
        digit = int(upn[position])
        changed = upn[:position] + str((digit + 1) % 10) + upn[position + 1 :]
        assert classify(changed) is UpnStatus.BAD_CHECK_LETTER

"""``core.hmac256``: the same bytes as the standard library's HMAC-SHA256, for any key and message."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwb_client.core.anti_entropy import keyed_digest
from hwb_client.core.hmac256 import HmacSha256
from hwb_client.core.pseudonymise import UpnHasher


@given(key=st.binary(max_size=200), message=st.binary(max_size=300))
def test_it_gives_what_hmac_gives_for_any_key_and_message(key: bytes, message: bytes) -> None:
    mac = HmacSha256(key)
    assert mac.digest(message) == hmac.new(key, message, hashlib.sha256).digest()
    assert mac.hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 128])
def test_keys_at_the_block_size_edges(length: int) -> None:
    key = bytes(range(length))
    mac = HmacSha256(key)
    for message in (b"", b"a", b"x" * 1000):
        assert mac.hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert key.hex() not in repr(mac) or not key


def test_the_keyed_state_digest_and_the_upn_pseudonym_are_unchanged() -> None:
    """What states and the national side already hold must still match."""
    key = b"k" * 32
    digest = "sha-256:" + "ab" * 32
    assert keyed_digest(key, digest) == "hmac-sha-256:" + hmac.new(key, digest.encode(), "sha256").hexdigest()
    upn = UpnHasher("national-test", b"n" * 32)
    expected = hmac.new(b"n" * 32, b"hwb-upn-v1:A123456789012", "sha256").hexdigest()
    assert upn("A123456789012") == f"national-test:{expected}"

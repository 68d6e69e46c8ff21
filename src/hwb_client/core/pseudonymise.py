"""Pseudonymising the UPN: HMAC-SHA256 under the national hashing key, computed locally.

A salted plain hash of a UPN can be reversed by brute force in under a second once the salt is known
(a school has tens of thousands of candidate UPNs), so the identifier is a keyed MAC (ENISA's
pseudonymisation guidance; NIST SP 800-53 SI-19(4)). Every school hashes with the same national key, so
the national service matches a learner across schools without ever seeing a UPN. The message carries a
domain-separation prefix, and the key id travels with the value (``KID:HEX``), so a key rotation is
visible in every identifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwb_client.core.hmac256 import HmacSha256

DOMAIN_PREFIX = b"hwb-upn-v1:"


@dataclass(frozen=True)
class UpnHasher:
    """Hashes validated, normalised permanent UPNs. Holds the key; never prints it."""

    key_id: str
    key: bytes = field(repr=False)
    _mac: HmacSha256 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) < 32:
            raise ValueError("the national hashing key must be at least 256 bits")
        if not self.key_id or ":" in self.key_id:
            raise ValueError("the national hashing key id must be non-empty and contain no ':'")
        object.__setattr__(self, "_mac", HmacSha256(self.key))

    def __call__(self, upn: str) -> str:
        digest = self._mac.hexdigest(DOMAIN_PREFIX + upn.encode("ascii"))
        return f"{self.key_id}:{digest}"

"""Request bodies with bounds: read at most N bytes, inflate gzip at most M bytes, per endpoint.

Nothing here holds more than the endpoint's bound in memory, whatever the client sends: the raw body is
read in chunks and refused (``413``) as soon as it passes ``raw``; a gzip body is inflated in chunks and
refused as soon as its output passes ``inflated``, so a 32 KB body that would expand to 32 MiB costs at
most ``inflated`` bytes (4 KiB at the enrolment endpoint) and one small read, never the 32 MiB.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import IO, Final

from hwb_sandbox.i18n import N_
from hwb_sandbox.problems import Problem

_CHUNK: Final = 64 * 1024
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The most an endpoint accepts: ``raw`` bytes as sent, ``inflated`` bytes after gzip."""

    raw: int
    inflated: int


KIB: Final = 1024
MIB: Final = 1024 * KIB

#: An enrolment or a new key is a few hundred bytes; a signed GET or DELETE has no body at all.
SMALL: Final = BodyLimit(raw=4 * KIB, inflated=4 * KIB)
#: A run report: counts, held-back reasons (at most 64) and a 500-character message.
RUN_REPORT: Final = BodyLimit(raw=64 * KIB, inflated=64 * KIB)
#: A batch of up to 5,000 operations (protocol v1's limits, unchanged).
BATCH: Final = BodyLimit(raw=8 * MIB, inflated=32 * MIB)


def read_capped(stream: IO[bytes], declared_length: int | None, limit: int) -> bytes:
    """The body bytes as sent, at most ``limit``: a larger declared or actual body is ``413``."""
    if declared_length is not None and declared_length > limit:
        raise Problem(
            "body-too-large",
            N_("the body is {length} bytes; the limit is {limit}"),
            length=declared_length,
            limit=limit,
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise Problem("body-too-large", N_("the body exceeds the limit of {limit} bytes"), limit=limit)


def inflate_gzip(body: bytes, limit: int) -> bytes:
    """Undo one gzip member, stopping as soon as the output passes ``limit`` (``413``).

    The input is fed in chunks and each step may produce at most what is left of the bound, so the
    memory used is the bound plus a chunk, however far the body would expand.
    """
    inflater = zlib.decompressobj(_GZIP_WBITS)
    pieces: list[bytes] = []
    size = 0
    view = memoryview(body)
    for start in range(0, len(body) or 1, _CHUNK):
        pending = view[start : start + _CHUNK].tobytes()
        while pending and not inflater.eof:
            try:
                piece = inflater.decompress(pending, limit + 1 - size)
            except zlib.error as exc:
                raise Problem(
                    "body-malformed", N_("the gzip body cannot be decompressed: {error}"), error=exc
                ) from exc
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise Problem(
                    "body-too-large", N_("the body exceeds {limit} bytes after decompression"), limit=limit
                )
            pending = inflater.unconsumed_tail
        if inflater.eof:
            if inflater.unused_data or start + _CHUNK < len(body):
                raise Problem("body-malformed", N_("the gzip body has trailing data after its end"))
            return b"".join(pieces)
    raise Problem("body-malformed", N_("the gzip body is truncated"))

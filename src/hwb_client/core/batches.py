"""Batches: operations cut into bounded, frozen request bodies.

A batch is frozen once built: its id, sequence and exact body bytes go to the outbox before it is sent,
and every retry sends the same bytes, so the server can apply it exactly once.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from hwb_client.core.model import Operation

#: Bytes a batch body costs besides its operations (ids, commas, brackets): a generous bound.
_ENVELOPE_BYTES = 400


def academic_year(today: dt.date) -> str:
    """``2026/27`` from 1 August 2026 (MIS end-of-year procedures finish by early August)."""
    start = today.year if today.month >= 8 else today.year - 1
    return f"{start}/{(start + 1) % 100:02d}"


#: One encoder for every value (``json.dumps`` with options builds a new one per call).
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: object) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


@dataclass(frozen=True)
class Batch:
    batch_id: str
    run_id: str
    sequence: int
    operations: tuple[Operation, ...]
    body: bytes  # exactly what is sent (gzip-compressed when ``content_encoding`` is "gzip")
    content_encoding: str | None


def cut(operations: Sequence[Operation], *, max_operations: int, max_bytes: int) -> Iterator[list[Operation]]:
    """Group operations in order into chunks of at most ``max_operations`` and about ``max_bytes``."""
    for chunk in _cut_encoded(operations, max_operations=max_operations, max_bytes=max_bytes):
        yield [operation for operation, _encoded in chunk]


def _cut_encoded(
    operations: Sequence[Operation], *, max_operations: int, max_bytes: int
) -> Iterator[list[tuple[Operation, bytes]]]:
    """``cut``, keeping each operation's JSON: every operation is encoded once, to size it and send it."""
    chunk: list[tuple[Operation, bytes]] = []
    size = _ENVELOPE_BYTES
    for operation in operations:
        encoded = _dumps(operation.to_wire())
        op_size = len(encoded) + 1
        if chunk and (len(chunk) >= max_operations or size + op_size > max_bytes):
            yield chunk
            chunk, size = [], _ENVELOPE_BYTES
        chunk.append((operation, encoded))
        size += op_size
    if chunk:
        yield chunk


def build_batches(
    operations: Sequence[Operation],
    *,
    run_id: str,
    upn_key_id: str,
    today: dt.date,
    new_id: Callable[[], str],
    max_operations: int,
    max_bytes: int,
    gzip_level: int,
    first_sequence: int = 1,
) -> list[Batch]:
    batches: list[Batch] = []
    year = academic_year(today)
    for sequence, chunk in enumerate(
        _cut_encoded(operations, max_operations=max_operations, max_bytes=max_bytes), start=first_sequence
    ):
        batch_id = new_id()
        # The body is {"batch_id":...,"upn_key_id":...,"operations":[...]}: the envelope encoded with an
        # empty list, and the operations' JSON (already made by the cut) put inside the brackets.
        envelope = _dumps(
            {
                "batch_id": batch_id,
                "run_id": run_id,
                "sequence": sequence,
                "academic_year": year,
                "upn_key_id": upn_key_id,
                "operations": [],
            }
        )
        assert envelope.endswith(b"[]}")
        raw = envelope[:-2] + b",".join(encoded for _op, encoded in chunk) + b"]}"
        if gzip_level > 0:
            body, encoding = gzip.compress(raw, compresslevel=gzip_level, mtime=0), "gzip"
        else:
            body, encoding = raw, None
        batches.append(Batch(batch_id, run_id, sequence, tuple(op for op, _encoded in chunk), body, encoding))
    return batches

"""Delivery: frozen batches through the transport into the state, and the state rebuilt when lost.

A batch goes to the outbox (id, sequence, exact body bytes) before it is sent; the acknowledged index
advances only after a 2xx, in the transaction that clears it from the outbox; a stop is honoured between
batches. What a 2xx means (one result per operation) is checked before anything advances.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import structlog

from hwb_client.adapters.replies import OperationResult
from hwb_client.adapters.state import PendingBatch, PendingOp, StateStore
from hwb_client.adapters.transport import NationalApi
from hwb_client.core.batches import Batch
from hwb_client.core.diff import ACTIVE, LEFT
from hwb_client.core.model import Kind
from hwb_client.core.plan import Plan
from hwb_client.core.snapshot import RowChunks, SourceRows
from hwb_client.errors import ApiError, Interrupted
from hwb_client.i18n import N_
from hwb_client.platform.failpoints import failpoint
from hwb_client.run_result import RunResult, add

log = structlog.get_logger("hwb_client.delivery")


def freeze(batch: Batch, decided: Plan) -> PendingBatch:
    """A batch as the outbox keeps it. An operation on a record read in full (every upsert and leave)
    binds that row's fingerprint when acknowledged, so the state is written once per record."""
    entries = decided.snapshot.entries
    ops = []
    for op in batch.operations:
        entry = entries[op.kind].get(op.key)
        bind = entry is not None and entry.record is not None and op.record is not None
        ops.append(
            PendingOp(
                op.op,
                op.kind,
                op.key,
                op.digest,
                op.record.get("year_group") if op.record is not None else None,
                entry.stable if entry is not None else None,
                bind,
                entry.fingerprint if bind and entry is not None else None,
            )
        )
    return PendingBatch(
        batch.batch_id, batch.run_id, batch.sequence, batch.body, batch.content_encoding, tuple(ops)
    )


def send(
    api: NationalApi, state: StateStore, batch: PendingBatch, result: RunResult, stop: threading.Event
) -> None:
    """Send one frozen batch and advance the state by what the national side acknowledged."""
    bound = log.bind(dfes=result.dfes_number, run_id=result.run_id)
    if stop.is_set():
        raise Interrupted(N_("stopped between batches; the rest is resent on the next run"))
    state.note_attempt(batch.batch_id)
    sent_at = time.monotonic()
    try:
        ack = api.post_batch(
            result.dfes_number, batch.batch_id, batch.body, batch.content_encoding, len(batch.ops)
        )
    except ApiError as exc:
        if exc.permanent:
            # The server will never take these bytes: drop the batch (state did not advance, so the next
            # run's diff rebuilds what it held) rather than retrying it forever.
            state.discard(batch.batch_id)
            bound.error("batch_discarded", batch_id=batch.batch_id, status=exc.status)
        raise
    api_seconds = time.monotonic() - sent_at
    failpoint("after_server_ack")
    tally = state.acknowledge(batch, ack.results)
    _count_results(result, batch, ack.results)
    bound.info(
        "batch_acknowledged",
        batch_id=batch.batch_id,
        batch_seq=batch.sequence,
        operations=len(batch.ops),
        body_bytes=len(batch.body),
        api_seconds=round(api_seconds, 4),
        applied=tally.get("applied", 0),
        unchanged=tally.get("unchanged", 0),
        refused=tally.get("refused", 0),
        replayed=ack.replayed,
    )


def _count_results(result: RunResult, batch: PendingBatch, results: Sequence[OperationResult]) -> None:
    for pending, answer in zip(batch.ops, results, strict=True):
        if answer.status == "refused":
            add(result.refused_by_kind, pending.kind._value_, answer.reason or "unknown")
        else:
            add(result.sent, pending.kind._value_, pending.op._value_)  # per operation: see ``model``


def reconcile(api: NationalApi, state: StateStore, dfes: str) -> int:
    """Rebuild lost local state from the national manifest, so nothing is re-sent or duplicated."""
    records = [
        (Kind(r.kind), r.key, r.digest, LEFT if r.status == LEFT else ACTIVE, r.account_id)
        for r in api.manifest(dfes).records
    ]
    count = state.replace_acknowledged(records)
    log.info("state_reconciled", dfes=dfes, records=count)
    return count


def with_reading_failpoint(rows: SourceRows) -> SourceRows:
    """The same streams, with the ``while_reading`` crash point after the first learner row (fetched
    chunks stay chunks: the first one is cut after its first row)."""
    source = rows.learners
    if isinstance(source, RowChunks):
        return dataclasses.replace(rows, learners=RowChunks(source.fields, _chunks_with_failpoint(source)))

    def learners() -> Iterator[Mapping[str, object]]:
        for index, row in enumerate(source):
            if index == 1:
                failpoint("while_reading")
            yield row

    return dataclasses.replace(rows, learners=learners())


def _chunks_with_failpoint(source: RowChunks) -> Iterator[Sequence[Sequence[object]]]:
    seen = 0
    for chunk in source.chunks:
        before, seen = seen, seen + len(chunk)
        if before <= 1 < seen:  # the second row is in this chunk: the crash point goes just before it
            cut = 1 - before
            if cut:
                yield chunk[:cut]
            failpoint("while_reading")
            yield chunk[cut:]
        else:
            yield chunk

"""Batches applied in worker processes, so that the sandbox applies two schools' batches at once.

The national service is many servers; the sandbox is one process, whose batch work (parsing, validating
and applying each operation in Python) the interpreter lock holds to one core. A client running two
schools at once then waits, both workers, on that one core while the other core idles, and a rehearsal
measures the sandbox rather than the client. ``serve --apply-workers N`` hands each batch, once its
signature is verified, to one of N worker processes with their own connection to the database: what is
not the write itself runs side by side, and SQLite's write lock (``BEGIN IMMEDIATE``, in
``national.apply_batch``) still applies each batch exactly once and in one transaction, whichever process
takes it. With N = 1 (the default) a batch is applied in the serving thread, as before.

A refusal (``Problem``) crosses back as its slug, its detail in every language and its errors, so the
client gets the same problem document, in its own language, as from the serving process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hwb_sandbox import national
from hwb_sandbox.bodies import parse_json, validate
from hwb_sandbox.i18n import LANGUAGES, N_, Language
from hwb_sandbox.problems import Problem
from hwb_sandbox.schemas import MAX_OPERATIONS, Batch
from hwb_sandbox.store import SandboxStore

#: the worker process's own store, opened when it starts
_store: SandboxStore | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """A batch's answer, and what the serving process logs of it."""

    answer: national.BatchAnswer
    batch_id: str
    run_id: str
    sequence: int
    operations: int


@dataclass(frozen=True, slots=True)
class _Refusal:
    slug: str
    details: Mapping[str, str]
    errors: Sequence[Mapping[str, object]] | None
    headers: Mapping[str, str]

    def problem(self) -> Problem:
        details = dict(self.details)
        return Problem(self.slug, lambda lang: details[lang.code], errors=self.errors, headers=self.headers)


class BatchAppliers:
    """Apply batches in ``workers`` processes (``apply``); ``workers=1``: in the calling thread."""

    def __init__(self, store: SandboxStore, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.store = store
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),  # no thread of the server is copied
                initializer=_open_store,
                initargs=(str(store.path),),
            )
            # Started now, all of them, and ready before the server listens (the pool would otherwise
            # start one at a time, as batches arrive): none can answer before the last is asked for.
            for started in [self._pool.submit(_ready) for _ in range(workers)]:
                started.result()

    def apply(self, dfes: str, batch_key: str, body: bytes) -> Applied:
        """Validate and apply an inflated batch body; raises ``Problem`` for what is refused."""
        if self._pool is None:
            return answer_batch(self.store, dfes, batch_key, body)
        outcome = self._pool.submit(_apply, dfes, batch_key, body).result()
        if isinstance(outcome, _Refusal):
            raise outcome.problem()
        return outcome

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def answer_batch(store: SandboxStore, dfes: str, batch_key: str, body: bytes) -> Applied:
    """A batch body (its signature verified, inflated) parsed, validated and applied once."""
    value = parse_json(body)
    if isinstance(value, dict):
        if "batch_id" in value and value["batch_id"] != batch_key:
            raise Problem(
                "idempotency-key-mismatch", N_("the body's batch_id differs from the Idempotency-Key")
            )
        operations = value.get("operations")
        if isinstance(operations, list) and len(operations) > MAX_OPERATIONS:
            raise Problem(
                "body-too-large",
                N_("{count} operations; the limit is {limit}"),
                count=len(operations),
                limit=MAX_OPERATIONS,
            )
    batch = validate(Batch, value)
    fingerprint = hashlib.sha256(national.canonical_json(value)).hexdigest()
    try:
        answer = national.apply_batch(store, dfes, batch, fingerprint)
    except national.IdempotencyKeyReused as exc:
        raise Problem(
            "idempotency-key-reused", N_("this batch_id was already applied with a different body")
        ) from exc
    return Applied(answer, batch.batch_id, batch.run_id, batch.sequence, len(batch.operations))


def _open_store(path: str) -> None:
    global _store
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its workers
    _store = SandboxStore(Path(path))


def _ready() -> bool:
    return _store is not None


def _apply(dfes: str, batch_key: str, body: bytes) -> Applied | _Refusal:
    assert _store is not None, "the worker's store is opened by its initializer"
    try:
        return answer_batch(_store, dfes, batch_key, body)
    except Problem as problem:
        details = {code: problem.detail_in(Language(code)) for code in LANGUAGES}
        return _Refusal(problem.slug, details, problem.errors, problem.headers)

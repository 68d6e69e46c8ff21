"""The ``while_reading`` crash point comes after the first learner row, however the rows were fetched."""

import pytest

from hwb_client import delivery
from hwb_client.core.snapshot import RowChunks, SourceRows


def _read(learners, monkeypatch):
    """Every learner row as the snapshot would take it, with where the crash point fell among them."""
    events = []
    monkeypatch.setattr(delivery, "failpoint", lambda name: events.append(name))
    wrapped = delivery.with_reading_failpoint(SourceRows(learners, [], [], []))
    if isinstance(wrapped.learners, RowChunks):
        for chunk in wrapped.learners.chunks:
            events.extend(values[0] for values in chunk)
    else:
        events.extend(row["n"] for row in wrapped.learners)
    return events


@pytest.mark.parametrize("sizes", [[1, 1, 1], [3], [1, 2], [2, 1], [1, 1, 1, 1]])
def test_fetched_chunks_crash_after_the_first_row_and_lose_none(sizes, monkeypatch) -> None:
    numbers = iter(range(1, 100))
    chunks = [[(next(numbers),) for _ in range(size)] for size in sizes]
    events = _read(RowChunks(("n",), chunks), monkeypatch)
    assert events == [1, "while_reading", *range(2, sum(sizes) + 1)]


def test_rows_one_by_one_crash_after_the_first_row(monkeypatch) -> None:
    assert _read([{"n": 1}, {"n": 2}, {"n": 3}], monkeypatch) == [1, "while_reading", 2, 3]


@pytest.mark.parametrize("learners", [RowChunks(("n",), [[(1,)]]), [{"n": 1}]])
def test_a_school_of_one_learner_never_reaches_it(learners, monkeypatch) -> None:
    assert _read(learners, monkeypatch) == [1]

"""What crosses the pipe from a school's worker process to the ``hwb-client`` a person is watching.

A worker sends its run's result, or the error the run raised, to its parent (``hwb_client.workers``):
the parent must be able to say it as the worker would have, in the person's language, with the same
exit code; and a worker that died must be reported as failed, saying that nothing is lost."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_client import errors, i18n, workers
from hwb_client.errors import ApiError, ConfigError, Joined, Phrase, RunInProgress
from hwb_client.i18n import N_
from hwb_client.run_result import RunResult, shown_message
from hwb_client.settings import SchoolSettings


@pytest.fixture
def welsh() -> Iterator[None]:
    i18n.activate("cy")
    yield
    i18n.activate("en")


def _round_trip(value: object) -> object:
    return pickle.loads(pickle.dumps(value))


def _api_error() -> ApiError:
    attempts = errors.ngettext(
        "the national API could not be reached after {n} attempt",
        "the national API could not be reached after {n} attempts",
        3,
    )
    return ApiError(
        N_("{what}: {detail}; what was not acknowledged is resent next run"),
        what=Phrase(N_("batch {batch_id}"), batch_id="b-1"),
        detail=Joined("; ", [Phrase(attempts, n=3), "HTTP 503"]),
        status=503,
    )


def test_an_error_with_phrases_plurals_and_joins_is_said_the_same_after_crossing(welsh):
    """The parent says the worker's error in Welsh, word for word as the worker would, and keeps its
    English text (for the logs and the national API), its exit code and its HTTP status."""
    sent = _api_error()
    received = _round_trip(sent)
    assert type(received) is ApiError
    assert received.message == sent.message
    assert "swp b-1" in received.message  # translated, not the English sentence
    assert received.english == sent.english
    assert received.english.startswith("batch b-1: the national API could not be reached after 3 attempts")
    assert (received.status, received.exit_code) == (503, 5)


def test_a_run_result_keeps_the_error_it_ended_on():
    """A failed run's result crosses with its error: shown in the reader's language, same exit code."""
    result = RunResult("6612001", "run-1")
    result.fail(_api_error())
    received = _round_trip(workers._portable(result))
    assert received.error_code == 5
    assert shown_message(received) == shown_message(result)
    i18n.activate("cy")
    try:
        assert shown_message(received) == shown_message(result) != result.message
    finally:
        i18n.activate("en")


def test_an_error_that_cannot_cross_whole_crosses_as_its_english_text():
    """An error holding something a pipe cannot carry still reaches the parent: the same kind of error
    (so the same exit code) with its English text."""
    unpicklable = ConfigError(N_("{setting}: {detail}"), setting="odbc", detail=lambda: None)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(unpicklable)
    received = _round_trip(workers._portable_error(unpicklable))
    assert type(received) is ConfigError and received.exit_code == 3
    assert received.english == unpicklable.english
    held = RunInProgress(N_("another run of school {dfes} is in progress"), dfes="6612001")
    assert workers._portable_error(held) is held  # what can cross, crosses as it is


def test_a_worker_that_died_is_a_failed_run_that_says_nothing_is_lost(welsh, tmp_path: Path):
    """Killed by a signal: exit code 70, the signal named, and that the next run recovers, in Welsh for
    a Welsh reader and in English in what is stored and sent upstream."""
    school = SchoolSettings(dfes_number="6612001", name="Ysgol Prawf", odbc="Driver=SQLite3;Database=x")
    result = workers._died(school, {"dry_run": False}, -9)
    assert (result.outcome, result.error_code) == ("failed", 70)
    assert result.message.startswith("the process running this school was killed by signal 9 before it")
    assert "nothing is lost" in result.message
    welsh_text = shown_message(result)
    assert "fe'i lladdwyd gan signal 9" in welsh_text and "does dim wedi'i golli" in welsh_text
    exited = workers._died(school, {}, 70)
    assert "exited with code 70" in exited.message


def test_schools_start_largest_first_by_their_state_and_new_schools_keep_the_config_order(tmp_path: Path) -> None:
    """Side by side, a large school listed last would run alone at the end while the other core idles:
    the schools start largest first (by what their state holds), ties and new schools in config order."""
    schools = [
        SchoolSettings(dfes_number=dfes, name=dfes, odbc="Driver=SQLite3;Database=x")
        for dfes in ("6612001", "6612002", "6612003", "6612004", "6612005")
    ]
    for dfes, size in (("6612002", 10), ("6612004", 5000), ("6612005", 10)):
        (tmp_path / f"{dfes}.sqlite3").write_bytes(b"x" * size)
    ordered = workers.largest_first(tmp_path, schools)
    assert [s.dfes_number for s in ordered] == ["6612004", "6612002", "6612005", "6612001", "6612003"]
    assert schools[0].dfes_number == "6612001"  # the config's list itself is left alone

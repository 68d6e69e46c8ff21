"""What a run says, in English for the run report sent upstream and in the process's language on screen:
the summary, the guard's holds and the held-back advice, said again from their fields."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hwb_client import i18n
from hwb_client.core.guard import Rule, hold_message, hold_report_message
from hwb_client.core.model import Kind
from hwb_client.core.validate import ADVICE, Reason
from hwb_client.run_result import RunResult, report_message, shown_message


@pytest.fixture
def welsh() -> Iterator[None]:
    i18n.activate("cy")
    yield
    i18n.activate("en")


def result() -> RunResult:
    return RunResult(
        "6612001",
        "r1",
        outcome="partial",
        sent={"learner": {"upsert": 2}, "membership": {"upsert": 3}},
        batches=1,
        held_back_by_kind={"staff": {"start_date_missing": 1}},
    )


def test_the_summary_sent_upstream_stays_english_whatever_the_language(welsh: None) -> None:
    run = result()
    assert run.summary() == "5 changes sent in 1 batch; held back: 1 person"
    assert run.summary_text() == "5 o newidiadau wedi'u hanfon mewn 1 swp; wedi'u dal yn ôl: 1 person"


def test_a_stored_report_is_shown_in_welsh_and_an_unknown_message_as_it_is(welsh: None) -> None:
    run = result()
    run.pending_batches = 2
    run.message = run.summary()
    assert run.message.endswith("; 2 batches from an earlier run are waiting to be resent")
    assert shown_message(run).endswith("; mae 2 swp o rediad cynharach yn aros i'w hailanfon")
    report = {**run.report(), "message": "8 change(s) sent in 1 batch(es)"}  # written by 0.1.0
    assert report_message("6612001", report) == "8 change(s) sent in 1 batch(es)"


def test_a_hold_is_stored_in_english_and_shown_in_welsh(welsh: None) -> None:
    english = hold_message(Rule.MASS_REMOVAL, Kind.LEARNER, 35, 4, 40)
    assert english.startswith("35 of 40 active learner records vanished from the MIS without a leaving date")
    report = {"rule": "mass_removal", "kind": "learner", "count": 35, "limit": 4, "active": 40}
    shown = hold_report_message(report, i18n._)
    assert shown.startswith("cofnodion dysgwyr gweithredol: diflannodd 35 o 40 o'r MIS heb ddyddiad gadael")
    assert shown.endswith("rhedwch unwaith gyda --allow-mass-removal")
    assert hold_report_message({"rule": "removals", "message": "held"}, i18n._) == "held"  # an old report


def test_held_back_advice_is_kept_in_english_and_translated_where_shown(welsh: None) -> None:
    assert ADVICE[Reason.UPN_MISSING] == "record the learner's permanent UPN in the MIS"
    assert i18n._(ADVICE[Reason.UPN_MISSING]) == "cofnodwch UPN parhaol y dysgwr yn y MIS"


def test_a_failed_run_stores_and_sends_english_and_shows_welsh(welsh: None) -> None:
    from hwb_client.errors import ApiError, ConfigError

    run = result()
    run.fail(
        ConfigError(
            i18n.N_("{setting}: {path} is not a directory; give a directory path"),
            setting="client.state_dir",
            path="/srv/x",
        )
    )
    assert run.outcome == "failed" and run.error_code == ConfigError.exit_code
    assert run.report()["message"] == "client.state_dir: /srv/x is not a directory; give a directory path"
    assert shown_message(run) != run.message and shown_message(run) == "client.state_dir: nid yw /srv/x yn gyfeiriadur; rhowch lwybr cyfeiriadur"

    delivered = result()
    delivered.message = delivered.summary()
    delivered.not_delivered(ApiError(i18n.N_("{text} is not a date: write it as YYYY-MM-DD"), text="x"))
    assert delivered.outcome == "failed" and delivered.error_code == ApiError.exit_code
    assert delivered.report()["message"].endswith(
        "; the run report could not be delivered (x is not a date: write it as YYYY-MM-DD)"
    )
    assert "could not be delivered" not in shown_message(delivered)
    assert shown_message(delivered).startswith("5 o newidiadau")

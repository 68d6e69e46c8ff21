"""The operator's views as pure functions: history of old and new run reports, status levels, the Nagios
line, the Prometheus text, the closing summary table."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from hwb_client.adapters.state import RunRow
from hwb_client.operator import history, monitoring, progress, status

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
V010 = {
    "run_id": "r1",
    "outcome": "partial",
    "started_at": "2026-12-01T02:00:00Z",
    "finished_at": "2026-12-01T02:01:40Z",
    "client_version": "0.1.0",
    "counts": {"learner": {"upsert": 3}, "staff": {"upsert": 1}, "membership": {"upsert": 4}},
    "held_back": {"start_date_missing": 1},
    "batches": 1,
    "message": "8 change(s) sent in 1 batch(es); 1 record(s) held back",
}
V020 = {
    **V010,
    "client_version": "0.2.0",
    "as_of": "2026-12-01",
    "planned": {"learner": {"upsert": 3}},
    "held_back_by_kind": {"staff": {"start_date_missing": 1}, "membership": {"member_held_back": 2}},
    "refused": {"learner": {"not_found": 1}},
    "resent_batches": 2,
    "resent_operations": 9,
    "holds": [
        {"rule": "removals", "kind": "learner", "count": 50, "limit": 6, "active": 60, "message": "held"}
    ],
    "overrides": [{"rule": "removals", "flag": "--allow-mass-removal", "user": "root"}],
}


def row(report):
    return RunRow(
        report["run_id"], report["started_at"], report["finished_at"], report["outcome"], "", report, True
    )


def test_a_0_1_0_report_reads_without_the_newer_keys():
    summary = history.summarise("6612001", row(V010))
    assert (summary.sent_people, summary.sent_other) == (4, 4)
    assert summary.held_back_people is None and summary.resent_batches is None and summary.holds == []
    text = "\n".join(history.format_run(summary))
    assert "sent: 4 people, 4 groups/memberships in 1 batch" in text and "client 0.1.0" in text


def test_a_0_2_0_report_shows_people_and_memberships_apart_with_holds_overrides_and_resent_batches():
    summary = history.summarise("6612001", row(V020))
    text = "\n".join(history.format_run(summary))
    assert "held back: 1 (1 person, 2 groups/memberships): start_date_missing=1" in text
    assert "refused by Hwb: 1 person, 0 groups/memberships" in text
    assert "2 batches resent (9 operations)" in text and "as of 2026-12-01)" in text
    assert (
        "hold: removals learner - held" in text
        and "override: removals by --allow-mass-removal (root)" in text
    )


def entry(outcome, *, overdue=False, pending=0, success="2026-12-01T02:01:40Z"):
    last = {**V010, "outcome": outcome} if outcome else None
    return {
        "dfes_number": "6612001",
        "last_run": last,
        "last_success_at": success,
        "pending_batches": pending,
        "schedule": {"overdue": overdue},
    }


def test_status_levels_follow_the_monitoring_plugin_convention():
    assert status.severity(entry("success")) == (status.OK, "ok")
    assert status.severity(entry("success", pending=1))[0] == status.WARNING
    assert status.severity(entry("partial"))[0] == status.WARNING
    assert status.severity(entry("failed")) == (status.CRITICAL, "last run failed")
    assert status.severity(entry("blocked")) == (status.CRITICAL, "last run blocked")
    assert status.severity(entry("success", overdue=True)) == (status.CRITICAL, "overdue")
    assert status.severity(entry(None)) == (status.CRITICAL, "never run")
    assert status.severity({**entry("success"), "unreadable": "no access"}) == (status.UNKNOWN, "no access")


def test_the_nagios_line_is_one_line_with_performance_data_and_the_worst_school_decides():
    good = {**entry("success"), "exit_code": status.OK, "reason": "ok"}
    bad = {
        **entry("failed"),
        "dfes_number": "6613001",
        "exit_code": status.CRITICAL,
        "reason": "last run failed",
    }
    unknown = {**entry(None), "dfes_number": "6614001", "exit_code": status.UNKNOWN, "reason": "x"}
    assert status.overall([good, unknown]) == status.UNKNOWN
    assert status.overall([good, unknown, bad]) == status.CRITICAL
    line = status.nagios_line([good, bad], NOW)
    assert line.startswith("HWB CRITICAL - 2 schools, 1 need attention: 6613001 last run failed | ")
    assert "'6612001_success_age'=10.0h '6612001_held_back'=1;;;0" in line and "\n" not in line


def test_prometheus_text_has_one_sample_per_school_and_reason_and_escapes_labels():
    text = monitoring.prometheus_text({"6612001": {**entry("partial"), "pending_batches": 2}})
    assert 'hwb_client_last_run_outcome{dfes="6612001",outcome="partial"} 1' in text
    assert 'hwb_client_held_back_records{dfes="6612001",reason="start_date_missing"} 1' in text
    assert 'hwb_client_pending_batches{dfes="6612001"} 2' in text
    assert 'hwb_client_last_run_duration_seconds{dfes="6612001"} 100' in text
    assert monitoring._label('a"b\\c') == 'a\\"b\\\\c'


@dataclass
class FakeResult:
    dfes_number: str
    outcome: str
    counts: dict = field(default_factory=dict)
    held_back: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    rows_read: int = 0
    held_back_by_kind: dict = field(default_factory=dict)


def test_the_summary_table_lists_every_school_in_order_with_totals():
    done = [
        progress.Finished(
            FakeResult(
                "6613001",
                "partial",
                {"learner": {"upsert": 2}},
                Counter(a=1, member_held_back=3),
                held_back_by_kind={"learner": {"a": 1}, "membership": {"member_held_back": 3}},
            ),
            "B",
            3.2,
        ),
        progress.Finished(FakeResult("6612001", "success", {"learner": {"upsert": 1200}}), "A", 75),
    ]
    table = progress.summary_table(done, 80)
    lines = table.splitlines()
    assert lines[0].split() == [
        "school",
        "name",
        "outcome",
        "changes",
        "people",
        "held",
        "classes",
        "held",
        "refused",
        "time",
    ]
    assert lines[2].startswith("6612001  A     success") and "1,200" in lines[2] and "1 min 15 s" in lines[2]
    assert lines[3].startswith("6613001  B     partial") and lines[3].split()[4:6] == ["1", "3"]
    assert lines[-1] == (
        "2 schools: 1 partial, 1 success; 1,202 changes, 1 person and 3 class records held back; 1 min 20 s"
    )
    assert [r.dfes_number for r in progress.attention(done)] == ["6613001"]


def test_time_left_is_estimated_from_the_schools_done():
    import io

    ticks = iter([0.0, 10.0, 10.0, 10.0, 10.0])
    bar = progress.Progress(io.StringIO(), total=5, workers=1, clock=lambda: next(ticks, 10.0))
    bar.finished(FakeResult("6612001", "success", rows_read=100), "A", 10.0)
    bar.close()
    assert "schools 1/5 done" in bar.line() and "about 40 s left" in bar.line()

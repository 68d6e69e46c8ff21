"""National UPN key rotation: which keys are in use on a day, what check-config says, how the
acknowledged index follows, and the key file's rotation form."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from hwb_client.adapters.national_key import (
    describe,
    keys_in_use,
    load_national_key,
    write_national_key,
    write_national_keys,
)
from hwb_client.core import key_rotation
from hwb_client.core.diff import Acknowledged
from hwb_client.core.key_rotation import KeyPeriod, KeyScheduleError
from hwb_client.core.model import Kind
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.core.snapshot import SourceRows, build_snapshot
from hwb_client.core.upn import make_upn
from hwb_client.errors import KeyFileError

OLD = UpnHasher("nat-1", b"o" * 32)
NEW = UpnHasher("nat-2", b"n" * 32)
OPENS = dt.date(2026, 9, 1)
CLOSES = dt.date(2026, 10, 31)
PERIODS = [KeyPeriod(OLD, None, CLOSES), KeyPeriod(NEW, OPENS, None)]
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("today", "current", "previous"),
    [
        (OPENS - DAY, "nat-1", None),
        (OPENS, "nat-2", "nat-1"),
        (CLOSES, "nat-2", "nat-1"),
        (CLOSES + DAY, "nat-2", None),
    ],
    ids=["day-before-window", "window-opens", "window-last-day", "day-after-window"],
)
def test_the_new_key_is_current_through_the_window_with_the_old_one_beside_it(today, current, previous):
    using = key_rotation.keys_in_use(PERIODS, today)
    assert using.current.key_id == current
    assert (using.previous.key_id if using.previous else None) == previous


def test_a_day_without_any_key_and_three_keys_at_once_are_refused():
    with pytest.raises(KeyScheduleError, match="no national key is in use on 2026-11-01"):
        key_rotation.keys_in_use([KeyPeriod(OLD, None, CLOSES)], CLOSES + DAY)
    third = KeyPeriod(UpnHasher("nat-3", b"t" * 32), OPENS, None)
    with pytest.raises(KeyScheduleError, match="3 national keys"):
        key_rotation.keys_in_use([*PERIODS, third], OPENS)


def test_check_config_says_which_keys_are_in_use_and_when_a_changeover_is_due():
    before = key_rotation.describe(PERIODS, OPENS - DAY)
    assert before[0] == "national UPN key: nat-1 in use on 2026-08-31"
    assert "national key changeover due: nat-2 replaces nat-1 from 2026-09-01" in before
    during = key_rotation.describe(PERIODS, OPENS)
    assert during[0] == "national UPN key: nat-2 + nat-1 in use on 2026-09-01"
    assert any("changeover in progress: nat-1 -> nat-2 until 2026-10-31" in line for line in during)
    after = key_rotation.describe(PERIODS, CLOSES + DAY)
    assert after[0] == "national UPN key: nat-2 in use on 2026-11-01"
    assert any("nat-1 retired after 2026-10-31" in line for line in after)


def _learner(n: int) -> dict[str, str]:
    return {
        "upn": make_upn(661, 2001, 20, n),
        "legal_forename": "Elen",
        "legal_surname": "Huws",
        "date_of_birth": "2015-01-01",
        "year_group": "6",
        "registration_group": "6A",
    }


def test_in_the_window_records_carry_both_pseudonyms_and_outside_it_only_one():
    rows = SourceRows([_learner(1)], [], [], [])
    (inside,) = build_snapshot(rows, NEW, OPENS, previous_hasher=OLD).entries[Kind.LEARNER].values()
    upn = make_upn(661, 2001, 20, 1)
    assert inside.record is not None
    assert inside.record["upn_hash"] == NEW(upn) and inside.record["upn_hash_previous"] == OLD(upn)
    (outside,) = (
        build_snapshot(SourceRows([_learner(1)], [], [], []), OLD, OPENS).entries[Kind.LEARNER].values()
    )
    assert outside.record is not None and "upn_hash_previous" not in outside.record


def test_the_acknowledged_index_is_rekeyed_without_a_removal_or_a_duplicate():
    upn_a, upn_b, gone = (make_upn(661, 2001, 20, n) for n in (1, 2, 3))
    ack = {
        Kind.LEARNER: {OLD(u): Acknowledged("d", "active", "6") for u in (upn_a, upn_b, gone)},
        Kind.STAFF: {},
        Kind.GROUP: {"6A": Acknowledged("g", "active", None)},
        Kind.MEMBERSHIP: {f"6A/learner/{OLD(u)}": Acknowledged("m", "active", None) for u in (upn_a, gone)},
    }
    learners = {NEW(u): {"upn_hash": NEW(u), "upn_hash_previous": OLD(u)} for u in (upn_a, upn_b)}
    moves = key_rotation.rekey_moves(learners, ack)
    assert sorted(moves) == sorted(
        [
            (Kind.LEARNER, OLD(upn_a), NEW(upn_a)),
            (Kind.LEARNER, OLD(upn_b), NEW(upn_b)),
            (Kind.MEMBERSHIP, f"6A/learner/{OLD(upn_a)}", f"6A/learner/{NEW(upn_a)}"),
        ]
    )
    index = key_rotation.apply_moves(ack, moves)
    assert set(index[Kind.LEARNER]) == {NEW(upn_a), NEW(upn_b), OLD(gone)}  # the leaver keeps its key
    assert len(index[Kind.MEMBERSHIP]) == 2
    assert key_rotation.rekey_moves(learners, index) == []  # once only


def test_a_rotation_key_file_loads_and_check_config_reads_it(tmp_path: Path):
    path = tmp_path / "national-key.json"
    write_national_keys(path, [("nat-1", b"o" * 32, None, CLOSES), ("nat-2", b"n" * 32, OPENS, None)])
    assert load_national_key(path, OPENS - DAY) == OLD
    using = keys_in_use(path, OPENS)
    assert using.current == NEW and using.previous == OLD
    assert describe(path, OPENS)[0] == "national UPN key: nat-2 + nat-1 in use on 2026-09-01"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_one_key_file_of_0_1_0_is_in_use_on_every_day(tmp_path: Path):
    path = tmp_path / "national-key.json"
    write_national_key(path, "nat-1", b"o" * 32)
    assert keys_in_use(path, dt.date(1999, 1, 1)) == keys_in_use(path, dt.date(2099, 1, 1))
    assert describe(path, OPENS) == ["national UPN key: nat-1 in use on 2026-09-01"]


@pytest.mark.parametrize(
    "content",
    [
        {"keys": []},
        {"keys": [{"key_id": "a", "key": "A" * 44}, {"key_id": "a", "key": "B" * 44}]},
        {"keys": [{"key_id": "a", "key": "A" * 44, "use_from": "2026-02-30"}]},
    ],
    ids=["no-keys", "same-key-id-twice", "impossible-date"],
)
def test_a_malformed_rotation_file_is_refused_with_its_format(tmp_path: Path, content):
    path = tmp_path / "national-key.json"
    path.write_text(json.dumps(content))
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a valid key file"):
        load_national_key(path, OPENS)


def test_a_day_outside_every_key_names_the_file_and_the_fix(tmp_path: Path):
    path = tmp_path / "national-key.json"
    write_national_keys(path, [("nat-1", b"o" * 32, None, CLOSES)])
    with pytest.raises(KeyFileError, match="no national key is in use on 2026-11-01; install the key file"):
        load_national_key(path, CLOSES + DAY)

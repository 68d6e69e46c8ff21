"""Pure pieces of the network-trust work: URL credentials redacted, the loopback rule, reply checking,
bounded inflation, keyed digests and the anti-entropy comparison."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging

import pytest
import structlog

from hwb_client import logs
from hwb_client.adapters import replies
from hwb_client.adapters.bounded_http import ExchangeCut, inflate
from hwb_client.core.anti_entropy import (
    Held,
    differences,
    keyed_digest,
    kind_digest,
    mismatched_kinds,
    verify_due,
)
from hwb_client.errors import ApiError, ConfigError
from hwb_client.redaction import without_credentials
from hwb_client.settings import ApiSettings, is_loopback_host

PASSWORD = "S3cret-Proxy-Passw0rd"


def test_credentials_in_any_url_are_redacted_and_the_rest_is_kept() -> None:
    text = f"cannot reach http://user:{PASSWORD}@proxy.example:badport/x and https://a@b.example/"
    assert without_credentials(text) == (
        "cannot reach http://[redacted]@proxy.example:badport/x and https://[redacted]@b.example/"
    )
    assert without_credentials("user@example.org wrote http://proxy:3128/") == (
        "user@example.org wrote http://proxy:3128/"
    )


def test_an_error_message_never_holds_a_url_password() -> None:
    assert PASSWORD not in ApiError(f"proxy http://u:{PASSWORD}@p:1 refused").message
    assert PASSWORD not in str(ConfigError(f"api.proxy http://u:{PASSWORD}@p:x is wrong"))


def test_the_log_redaction_step_masks_url_credentials_in_every_value() -> None:
    stream = io.StringIO()
    logs.configure(fmt="json", stream=stream)
    structlog.get_logger("t").warning("request_retry", failure=f"ProxyError http://u:{PASSWORD}@p:3128")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert PASSWORD not in stream.getvalue() and "http://[redacted]@p:3128" in line["failure"]
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("127.attacker.example", False),
        ("localhost.attacker.example", False),
        ("10.0.0.1", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_only_loopback_addresses_and_localhost_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_plain_http_to_a_name_starting_with_127_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ApiSettings(base_url="http://127.attacker.example/")  # type: ignore[arg-type]  # pydantic parses it
    assert ApiSettings(base_url="http://127.0.0.1:8080/")  # type: ignore[arg-type]  # pydantic parses it


def _ack(**changes: object) -> bytes:
    answer = {
        "batch_id": "b1",
        "results": [{"index": 0, "status": "applied", "account_id": "acc-" + "a" * 32}],
    }
    return json.dumps({**answer, **changes}).encode()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<html>login</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_ack(batch_id="b2"), "batch_id is not the batch"),
        (_ack(results=[]), "one result per operation"),
        (_ack(results=[7]), "results[0] is not an object"),
        (_ack(results=[{"status": "maybe"}]), "not applied/unchanged/refused"),
        (_ack(results=[{"status": "refused"}]), "without a reason code"),
    ],
)
def test_an_acknowledgement_not_matching_the_protocol_is_an_api_error(body: bytes, said: str) -> None:
    with pytest.raises(ApiError, match=said.replace("[", r"\[").replace("]", r"\]")):
        replies.batch_ack(body, batch_id="b1", operations=1, replayed=False)


def test_a_well_formed_acknowledgement_becomes_typed_results() -> None:
    ack = replies.batch_ack(_ack(), batch_id="b1", operations=1, replayed=True)
    assert ack.replayed and ack.results[0].status == "applied" and ack.results[0].reason is None


def test_manifest_records_are_checked_one_by_one() -> None:
    good = {
        "kind": "staff",
        "key": "S1",
        "digest": "sha-256:" + "0" * 64,
        "status": "active",
        "account_id": None,
    }
    assert replies.manifest(
        json.dumps({"dfes_number": "6601234", "records": [good]}).encode(), "6601234"
    ).records
    for bad in ("learner", {**good, "digest": "md5:x"}, {**good, "status": "gone"}):
        with pytest.raises(ApiError, match="records\\[0\\]"):
            replies.manifest(json.dumps({"dfes_number": "6601234", "records": [bad]}).encode(), "6601234")


def test_gzip_is_inflated_only_up_to_the_cap() -> None:
    assert inflate(gzip.compress(b"x" * 1000), "gzip", 1000) == b"x" * 1000
    with pytest.raises(ExchangeCut, match="after decompression"):
        inflate(gzip.compress(bytes(10_000_000)), "gzip", 1_000_000)
    with pytest.raises(ValueError, match="only gzip"):
        inflate(b"x", "br", 10)


def test_keyed_digests_are_stable_idempotent_and_depend_on_the_key() -> None:
    plain = "sha-256:" + "ab" * 32
    once = keyed_digest(b"k" * 32, plain)
    assert once.startswith("hmac-sha-256:") and keyed_digest(b"k" * 32, once) == once
    assert keyed_digest(b"j" * 32, plain) != once and plain[8:] not in once


def test_only_kinds_whose_summary_differs_are_fetched_and_the_repair_follows_the_national_side() -> None:
    local = {
        "learner": {"a": Held("active", "d1"), "b": Held("active", "d2")},
        "staff": {"s": Held("left", "d3")},
    }
    national = {
        "learner": (1, kind_digest({"a": Held("active", "d1")})),
        "staff": (1, kind_digest(local["staff"])),
        "group": (0, kind_digest({})),
        "membership": (0, kind_digest({})),
    }
    assert mismatched_kinds(local, national) == ["learner"]
    repair = differences(
        "learner", local["learner"], [("a", Held("active", "d9")), ("c", Held("left", "d4"))]
    )
    assert repair.forget == ("b",)
    assert repair.adopt == (("a", Held("active", "d9")), ("c", Held("left", "d4")))


def test_the_scheduled_check_is_due_weekly_on_both_sides_of_the_boundary() -> None:
    last = dt.datetime(2026, 9, 1, 2, 0, tzinfo=dt.UTC)
    assert not verify_due(last, last + dt.timedelta(days=7) - dt.timedelta(seconds=1), 7)
    assert verify_due(last, last + dt.timedelta(days=7), 7)
    assert verify_due(None, last, 7) and not verify_due(None, last, 0)

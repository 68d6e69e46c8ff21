"""The bounded inflate (exactly at the bound, one byte over, truncated, trailing data) and the serve options.

``serve --tls-cert`` without ``--tls-key``, or a certificate file that does not load, stops with exit 3
and a message naming the option, before anything listens.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from hwb_sandbox.bounded import SMALL, inflate_gzip
from hwb_sandbox.problems import Problem


def test_a_body_inflating_to_exactly_the_bound_is_accepted() -> None:
    body = b"x" * SMALL.inflated

    assert inflate_gzip(gzip.compress(body), SMALL.inflated) == body


def test_one_byte_over_the_bound_is_413() -> None:
    with pytest.raises(Problem) as refused:
        inflate_gzip(gzip.compress(b"x" * (SMALL.inflated + 1)), SMALL.inflated)

    assert refused.value.slug == "body-too-large"


def test_a_bomb_is_refused_after_inflating_no_more_than_the_bound() -> None:
    """64 MiB of zeros in about 64 KB of gzip: refused at 4 KiB (the test would run out of time, not
    memory, if the whole were inflated)."""
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)

    with pytest.raises(Problem) as refused:
        inflate_gzip(bomb, SMALL.inflated)

    assert refused.value.slug == "body-too-large"
    assert len(bomb) < 100_000


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(gzip.compress(b"{}")[:-4], id="truncated"),
        pytest.param(gzip.compress(b"{}") + b"more", id="trailing-data"),
        pytest.param(gzip.compress(b"{}") * 2, id="two-members"),
        pytest.param(b"", id="empty"),
        pytest.param(b"not gzip at all", id="not-gzip"),
    ],
)
def test_a_broken_gzip_body_is_malformed(body: bytes) -> None:
    with pytest.raises(Problem) as refused:
        inflate_gzip(body, SMALL.inflated)

    assert refused.value.slug == "body-malformed"


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hwb_sandbox", "serve", "--port", "0", "--db", str(tmp_path / "s.db"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tls_cert_without_tls_key_is_refused_with_exit_3(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--tls-cert", str(tmp_path / "cert.pem"))

    assert done.returncode == 3
    assert "--tls-cert and --tls-key go together" in done.stderr


def test_a_certificate_file_that_does_not_load_is_refused_with_exit_3(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")

    done = _serve(tmp_path, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))

    assert done.returncode == 3
    assert "cannot be used" in done.stderr and "Traceback" not in done.stderr
    assert "listening on" not in done.stdout


@pytest.mark.parametrize(
    "option", ["--connection-limit", "--channel-timeout", "--request-timeout", "--backlog"]
)
def test_a_limit_below_one_is_a_usage_error(tmp_path: Path, option: str) -> None:
    done = _serve(tmp_path, option, "0")

    assert done.returncode == 2
    assert "must be 1 or more" in done.stderr

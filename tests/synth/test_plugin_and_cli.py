"""The pytest plugin skips (or, under CI, fails) without a server; the CLI writes a data set and says so."""

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hwb_synth import pytest_plugin
from hwb_synth.dbservers import ServerSettings, ServerUnavailable, create_database, fresh_database, probe

SRC = Path(__file__).resolve().parents[2] / "src"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWB_TEST_PG_PORT", str(closed_port()))
    monkeypatch.setattr(pytest_plugin, "_probed", {})


def test_unreachable_server_skips_with_where_and_why(
    no_postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match=r"PostgreSQL not reachable on 127\.0\.0\.1:\d+: cannot connect"
    ):
        pytest_plugin._require("postgres")


def test_unreachable_server_fails_under_ci(no_postgres: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL not reachable"):
        pytest_plugin._require("postgres")


def test_fresh_database_raises_when_the_server_is_down() -> None:
    settings = ServerSettings("mariadb", port=closed_port(), user="root")
    assert probe(settings) is not None
    with (
        pytest.raises(ServerUnavailable, match=r"MariaDB on 127\.0\.0\.1"),
        fresh_database("mariadb", settings),
    ):
        pass
    with pytest.raises(ServerUnavailable):
        create_database(settings)


class FakeItem:
    def __init__(self, *fixturenames: str) -> None:
        self.fixturenames = fixturenames
        self.marks: list[str] = []

    def add_marker(self, mark: pytest.MarkDecorator) -> None:
        self.marks.append(mark.name)


def test_server_fixtures_mark_their_tests() -> None:
    """A test using ``postgres_database`` gets the ``postgres`` marker (so ``-m "not postgres"`` works)."""
    items = [
        FakeItem("postgres_database", "tmp_path"),
        FakeItem("mariadb_module_database"),
        FakeItem("tmp_path"),
    ]
    pytest_plugin.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.marks for item in items] == [["postgres"], ["mariadb"], []]


def test_cli_writes_an_sqlite_data_set_and_prints_counts(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hwb_synth",
            "generate",
            "--seed",
            "1",
            "--scale",
            "demo",
            "--broken",
            "3",
            "--sqlite",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "770 learners" in result.stdout and "3 broken" in result.stdout and "loaded into" in result.stdout
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM mis_pupil").fetchone()[0] == 770
    db.close()


def test_cli_reports_an_unreachable_server_with_exit_code_3() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HWB_TEST_PG_PORT": str(closed_port())}
    result = subprocess.run(
        [sys.executable, "-m", "hwb_synth", "generate", "--scale", "demo", "--postgres", "hwb_test_cli"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 3
    assert "PostgreSQL on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr

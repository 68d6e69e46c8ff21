"""The Windows service wrapper (hwb_client.platform.windows_service), with stand-ins for pywin32.

This is the one place a platform API is faked: pywin32 does not exist on Linux. The daemon behind it
is the real one (APScheduler, threads); only the school run is a recording fake.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog


class FakeServiceFramework:
    """Just enough of win32serviceutil.ServiceFramework: records status reports."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.reports: list[tuple[int, int]] = []

    def ReportServiceStatus(self, status: int, waitHint: int = 5000, **_: Any) -> None:
        self.reports.append((status, waitHint))


@pytest.fixture
def fake_pywin32(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    calls: dict[str, list[Any]] = {
        "LogMsg": [],
        "LogErrorMsg": [],
        "LogWarningMsg": [],
        "HandleCommandLine": [],
    }
    servicemanager = types.ModuleType("servicemanager")
    servicemanager.EVENTLOG_INFORMATION_TYPE = 4  # type: ignore[attr-defined]
    servicemanager.PYS_SERVICE_STARTED = 1  # type: ignore[attr-defined]
    servicemanager.PYS_SERVICE_STOPPED = 2  # type: ignore[attr-defined]
    servicemanager.LogMsg = lambda *a: calls["LogMsg"].append(a)  # type: ignore[attr-defined]
    servicemanager.LogErrorMsg = lambda m: calls["LogErrorMsg"].append(m)  # type: ignore[attr-defined]
    servicemanager.LogWarningMsg = lambda m: calls["LogWarningMsg"].append(m)  # type: ignore[attr-defined]
    win32service = types.ModuleType("win32service")
    win32service.SERVICE_STOP_PENDING = 3  # type: ignore[attr-defined]
    win32serviceutil = types.ModuleType("win32serviceutil")
    win32serviceutil.ServiceFramework = FakeServiceFramework  # type: ignore[attr-defined]
    win32serviceutil.HandleCommandLine = lambda *a, **k: calls["HandleCommandLine"].append((a, k))  # type: ignore[attr-defined]
    for name, module in [("servicemanager", servicemanager), ("win32service", win32service),
                         ("win32serviceutil", win32serviceutil)]:  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    import hwb_client.platform.windows_service as windows_service

    importlib.reload(windows_service)
    root = logging.getLogger()
    handlers, level, structlog_config = list(root.handlers), root.level, structlog.get_config()
    yield calls
    for handler in list(root.handlers):  # the service configured logging for itself: put it back
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(**structlog_config)
    monkeypatch.undo()
    importlib.reload(windows_service)  # back to the plain Linux class


def write_config(program_data: Path, **schedule: Any) -> None:
    folder = program_data / "HwbClient"
    folder.mkdir(parents=True)
    extra = "".join(f"{k} = {v}\n" for k, v in schedule.items())
    (folder / "hwb-client.toml").write_text(
        f'[client]\nstate_dir = "{(folder / "state").as_posix()}"\n'
        f"[schedule]\ntest_interval_seconds = 1\njitter_seconds = 0\n{extra}"
        '[[schools]]\ndfes_number = "6600001"\nodbc = "DSN=x"\n',
        encoding="utf-8",
    )


def test_module_imports_on_linux_without_pywin32() -> None:
    from hwb_client.platform import windows_service

    assert windows_service.win32serviceutil is None
    assert windows_service.main(["x", "install"]) == 2


def test_service_stop_sets_the_event_and_the_daemon_returns(
    fake_pywin32: dict[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hwb_client.platform import windows_service

    monkeypatch.setenv("PROGRAMDATA", str(tmp_path))
    monkeypatch.delenv("HWB_CONFIG", raising=False)
    write_config(tmp_path)
    started = threading.Event()
    saw_stop: list[bool] = []

    def run_school(settings: Any, school: Any, *, stop: threading.Event, lock_wait_seconds: float) -> Any:
        started.set()
        saw_stop.append(stop.wait(30))
        return types.SimpleNamespace(run_id="r", outcome="partial")

    monkeypatch.setattr(windows_service.HwbClientService, "run_school", staticmethod(run_school))
    service = windows_service.HwbClientService(["HwbClient"])
    runner = threading.Thread(target=service.SvcDoRun, daemon=True)
    runner.start()
    assert started.wait(15), "the daemon never ran the school"

    service.SvcStop()
    runner.join(15)

    assert not runner.is_alive()
    assert service.stop_event.is_set()
    assert service.exit_code == 0
    assert saw_stop == [True]  # the running school was handed the same event
    assert service.reports[0] == (3, windows_service.STOP_WAIT_HINT_MS)
    assert [c[1] for c in fake_pywin32["LogMsg"]] == [1, 2]  # started, stopped in the Event Log
    assert (tmp_path / "HwbClient" / "logs" / "hwb-client.log").exists()
    assert (tmp_path / "HwbClient" / "state" / "daemon-state.json").exists()


def test_configuration_error_goes_to_the_event_log_and_stops_the_service(
    fake_pywin32: dict[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hwb_client.platform import windows_service

    monkeypatch.setenv("PROGRAMDATA", str(tmp_path))
    monkeypatch.delenv("HWB_CONFIG", raising=False)
    service = windows_service.HwbClientService(["HwbClient"])
    began = time.monotonic()
    service.SvcDoRun()  # no configuration file at all
    assert time.monotonic() - began < 5
    assert service.exit_code == 3
    assert "hwb-client.toml" in fake_pywin32["LogErrorMsg"][0]


def test_warnings_reach_the_event_log(fake_pywin32: dict[str, list[Any]]) -> None:
    from hwb_client.platform import windows_service

    handler = windows_service.EventLogHandler(level=logging.WARNING)
    handler.handle(logging.makeLogRecord({"msg": "schedule_terms_ending", "levelno": logging.WARNING}))
    handler.handle(logging.makeLogRecord({"msg": "school_run_failed", "levelno": logging.ERROR}))
    assert fake_pywin32["LogWarningMsg"] == ["schedule_terms_ending"]
    assert fake_pywin32["LogErrorMsg"] == ["school_run_failed"]


def test_install_command_registers_the_class_by_its_import_path(fake_pywin32: dict[str, list[Any]]) -> None:
    from hwb_client.platform import windows_service

    assert windows_service.main(["x", "--startup", "delayed", "install"]) == 0
    (args, kwargs) = fake_pywin32["HandleCommandLine"][0]
    assert args[0].__name__ == "HwbClientService"
    assert kwargs["serviceClassString"] == "hwb_client.platform.windows_service.HwbClientService"
    assert kwargs["argv"] == ["x", "--startup", "delayed", "install"]

"""The Windows service: the same ``run_daemon`` as on Linux, stopped by the service stop handler.

Windows stops a service by calling ``SvcStop`` on another thread (no signal reaches the process, and
``TerminateProcess`` runs no handler), so ``SvcStop`` sets the daemon's ``stop`` event; running
schools stop between batches and ``SvcDoRun`` returns. Configuration and state live under
``%ProgramData%\\HwbClient`` (``hwb-client.toml``, ``state\\``, ``logs\\``); logs go to a rotating JSON
file there and, from warning up, to the Windows Event Log (``servicemanager.LogMsg``).

Install (as Administrator, from the venv; ``installers/windows/install.ps1`` does this)::

    python -m hwb_client.platform.windows_service --startup delayed install

pywin32's ``pythonservice.exe`` hosts the class; the imports are guarded so this module imports on
Linux (for tests and type checks), where ``HwbClientService`` is a plain class.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

from hwb_client import logs
from hwb_client.daemon import RunSchool, run_daemon
from hwb_client.errors import HwbClientError
from hwb_client.i18n import _
from hwb_client.settings import load_settings

try:  # pragma: no cover - pywin32 exists on Windows only; tests provide stand-ins
    import servicemanager
    import win32service
    import win32serviceutil
except ImportError:  # Linux: the module still imports
    servicemanager = None
    win32service = None
    win32serviceutil = None

SERVICE_NAME = "HwbClient"
CLASS_STRING = "hwb_client.platform.windows_service.HwbClientService"
STOP_WAIT_HINT_MS = 300_000  # schools stop at a batch boundary; tell the SCM to allow for it

_ServiceBase: Any = win32serviceutil.ServiceFramework if win32serviceutil is not None else object
log = structlog.get_logger("hwb_client.service")


def program_data_dir() -> Path:
    """``%ProgramData%\\HwbClient``: configuration, state and logs of the service."""
    return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "HwbClient"


def config_path() -> Path:
    """The configuration file the service reads (``HWB_CONFIG`` overrides, as for the CLI)."""
    override = os.environ.get("HWB_CONFIG")
    return Path(override) if override else program_data_dir() / "hwb-client.toml"


class EventLogHandler(logging.Handler):
    """Sends warnings and errors (already redacted JSON lines) to the Windows Event Log."""

    def emit(self, record: logging.LogRecord) -> None:
        if servicemanager is None:
            return
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                servicemanager.LogErrorMsg(message)
            else:
                servicemanager.LogWarningMsg(message)
        except Exception:  # a full or unavailable Event Log must not stop the service
            self.handleError(record)


class _Discard(io.TextIOBase):
    """A service has no console: the stream handler's output goes nowhere (the file and Event Log keep it)."""

    def write(self, text: str) -> int:
        return len(text)


def _configure_logging(log_file: Path | None, level: str) -> None:
    logs.configure(fmt="json", level=level, log_file=log_file, stream=_Discard())
    handler = EventLogHandler(level=logging.WARNING)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[structlog.stdlib.add_log_level],
        )
    )
    logging.getLogger().addHandler(handler)


class HwbClientService(_ServiceBase):  # type: ignore[misc]  # pywin32 has no type hints
    """The ``HwbClient`` Windows service."""

    _svc_name_ = SERVICE_NAME
    _svc_display_name_ = "Hwb provisioning client"
    _svc_description_ = (
        "Reads each school's MIS over ODBC and provisions Hwb accounts on the academic-calendar schedule."
    )
    #: for tests and rehearsals: the run function handed to the daemon (default: hwb_client.run)
    run_school: RunSchool | None = None

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.stop_event = threading.Event()
        self.exit_code: int | None = None

    def SvcStop(self) -> None:
        """The SCM asks us to stop: no new runs; running schools stop between batches."""
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)
        self.stop_event.set()

    def SvcShutdown(self) -> None:
        """Windows is shutting down: stop as for SvcStop."""
        self.SvcStop()

    def SvcDoRun(self) -> None:
        """Run the daemon until SvcStop; a configuration error is reported and stops the service."""
        servicemanager.LogMsg(
            servicemanager.EVENTLOG_INFORMATION_TYPE,
            servicemanager.PYS_SERVICE_STARTED,
            (self._svc_name_, ""),
        )
        try:
            settings = load_settings(config_path())
            _configure_logging(
                settings.client.log_file or program_data_dir() / "logs" / "hwb-client.log",
                settings.client.log_level,
            )
            self.exit_code = run_daemon(settings, stop=self.stop_event, run_school=type(self).run_school)
        except HwbClientError as exc:
            servicemanager.LogErrorMsg(f"{self._svc_name_}: {exc.english}")  # the Event Log keeps English
            self.exit_code = exc.exit_code
        servicemanager.LogMsg(
            servicemanager.EVENTLOG_INFORMATION_TYPE,
            servicemanager.PYS_SERVICE_STOPPED,
            (self._svc_name_, ""),
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m hwb_client.platform.windows_service [--startup delayed] install|remove|start|stop``."""
    if win32serviceutil is None:
        sys.stderr.write(
            "hwb-client: "
            + _("the Windows service needs Windows and pywin32 (pip install hwb-client[windows])")
            + "\n"
        )
        return 2
    win32serviceutil.HandleCommandLine(
        HwbClientService, serviceClassString=CLASS_STRING, argv=argv or sys.argv
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

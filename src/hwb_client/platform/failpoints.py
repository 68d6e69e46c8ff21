"""Named crash points for the crash-matrix tests (``HWB_FAILPOINT=NAME`` kills the process there).

Failpoints are how storage engines prove crash safety: the tests run the real client in a subprocess
and have it die, as if by SIGKILL or a power cut, at an exact stage of a run; the next run must recover
by itself. Unset (always, in production), a failpoint is one string comparison.

Names: ``while_reading``, ``after_diff``, ``after_outbox``, ``after_server_ack`` (the server applied a
batch, local state has not advanced), ``mid_push`` (after the first batch is acknowledged),
``while_reporting``.
"""

from __future__ import annotations

import os
import signal
import sys

_ARMED = os.environ.get("HWB_FAILPOINT", "")


def arm_from_environment() -> None:
    """Read ``HWB_FAILPOINT`` again (a worker process, forked from one started before it was set)."""
    global _ARMED
    _ARMED = os.environ.get("HWB_FAILPOINT", "")


def failpoint(name: str) -> None:
    """Die at once, without cleanup, if this failpoint is armed."""
    if _ARMED and name == _ARMED:
        sys.stderr.flush()
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # pragma: no cover - Windows

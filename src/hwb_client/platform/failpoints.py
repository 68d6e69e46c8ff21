"""Named crash points for the crash-matrix tests (``HWB_FAILPOINT=NAME`` kills the process there).

Failpoints are how storage engines prove crash safety: the tests run the real client in a subprocess
and have it die, as if by SIGKILL or a power cut, at an exact stage of a run; the next run must recover
by itself. Unset (always, in production), a failpoint is one string comparison.

Names: ``while_reading``, ``after_diff``, ``after_outbox``, ``after_server_ack`` (the server applied a
batch, local state has not advanced, nothing else in flight), ``batch_in_flight`` (the server applied a
batch and the next one, sent while the first one's acknowledgement was to be written; neither is written),
``mid_push`` (the first batch's acknowledgement written, the second one answered and not),
``while_reporting``. Where a request is in flight at a crash point, ``settle`` waits for its answer
first, so each point leaves one exact state behind.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

_ARMED = os.environ.get("HWB_FAILPOINT", "")


def arm_from_environment() -> None:
    """Read ``HWB_FAILPOINT`` again (a worker process, forked from one started before it was set)."""
    global _ARMED
    _ARMED = os.environ.get("HWB_FAILPOINT", "")


def failpoint(name: str, settle: Callable[[], object] | None = None) -> None:
    """Die at once, without cleanup, if this failpoint is armed (after ``settle()``, if given)."""
    if _ARMED and name == _ARMED:
        if settle is not None:
            settle()
        sys.stderr.flush()
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # pragma: no cover - Windows

"""One run per school at a time: an OS file lock shared by the daemon and ``--run-now``.

The lock is held on an open file (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), so the
operating system releases it when the process dies, even on SIGKILL: a stale lock never blocks a run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from hwb_client.errors import RunInProgress
from hwb_client.i18n import N_
from hwb_client.platform.filesystem import ensure_private_dir, open_private, storage_problem


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def school_lock(state_dir: Path, dfes_number: str, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the school's run lock, waiting up to ``wait_seconds``; raise ``RunInProgress`` if taken."""
    ensure_private_dir(state_dir)
    path = state_dir / f"{dfes_number}.lock"
    try:
        fd = open_private(path, os.O_RDWR | os.O_CREAT)  # a symbolic link here is refused, never followed
    except OSError as exc:
        raise storage_problem(exc, state_dir) or exc from None
    try:
        deadline = time.monotonic() + wait_seconds
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise RunInProgress(
                    N_(
                        "school {dfes}: another run is in progress (lock {path}); "
                        "wait for it to finish, or check `hwb-client status`"
                    ),
                    dfes=dfes_number,
                    path=path,
                )
            time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            raise storage_problem(exc, state_dir) or exc from None
        yield
    finally:
        os.close(fd)

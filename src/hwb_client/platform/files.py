"""Files written atomically and privately (temp file, fsync, ``os.replace``, directory sync)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (a no-op on Windows)."""
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_secret_file(path: Path, data: bytes) -> None:
    """Write a key or secret readable by the owner only (0600; on Windows the directory's ACL applies)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, data, mode=0o600)


def world_accessible(path: Path) -> bool:
    """True when users outside the file's owner and group may read or write ``path`` (always False on
    Windows, where ACLs rather than modes apply)."""
    if sys.platform == "win32":  # pragma: no cover
        return False
    return bool(path.stat().st_mode & 0o007)

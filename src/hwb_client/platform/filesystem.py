"""Files and directories the client owns, safe whatever the umask (in the spirit of certbot's
``compat/filesystem.py``): the only module that knows file modes, no-follow opens and the Windows
difference.

The rules, and why:

* What the client creates is owner-only, explicitly (directories 0700, files 0600), never left to the
  umask: the state database holds digests next to hashed UPNs, the logs name schools and runs, the keys
  are secrets.
* An existing directory of the client's own (the state directory) that others may write to, or that
  anyone but its group may enter, is **fixed with a warning** when this process owns it (the usual cause
  is an operator's ``chmod 777``; the files inside are owner-only, so closing the directory is the whole
  fix), and **refused** when another user owns it (someone else controls what appears in it). Group
  read and search (0750, as the service unit's ``StateDirectoryMode`` and the package set it) is fine.
* An existing file of the client's own (state database, its ``-wal``/``-shm``, the outbox key) open to
  others is fixed to 0600 with a warning; one owned by another user is refused.
* Files whose target an attacker could choose (the lock file, keys) are opened with ``O_NOFOLLOW``: a
  symbolic link is refused with an error naming it, and its target is never read or written.

On Windows the modes mean nothing (every file reports 0o666): there the installer gives the state
directory an ACL for the service account only, and the checks here are skipped. That branch is small and
untested on this Linux build machine.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.handlers
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import structlog

from hwb_client.errors import StateError, StateStorageError, UnsafeFileError
from hwb_client.i18n import N_

log = structlog.get_logger("hwb_client.files")

DIR_MODE = 0o700
FILE_MODE = 0o600
#: the national key file as documented: root:hwb-client 0640
GROUP_READ_FILE_MODE = 0o640
#: bits an existing directory of ours must not have: group write, anything for others
_UNSAFE_DIR_BITS = 0o027
#: bits an existing file of ours must not have: anything for group or others
_UNSAFE_FILE_BITS = 0o077

WINDOWS = sys.platform == "win32"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
#: a FIFO planted where a key is expected must not block the open (no effect on regular files)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


# -- errors that mean "the disk", not "the code" -------------------------------------------------------

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
#: below this much free space, a failed write in the state directory is taken for a full disk
_NEARLY_FULL_BYTES = 256 * 1024


def _nearly_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _not_writable(directory: Path) -> bool:
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY) if not WINDOWS else False
        return read_only or not os.access(directory, os.W_OK)
    except OSError:
        return False


def storage_problem(exc: BaseException, directory: Path) -> StateStorageError | None:
    """A ``StateStorageError`` naming ``directory`` and the fix when ``exc`` comes from a full disk or a
    read-only (or not writable) directory; ``None`` for anything else. SQLite reports these as text
    only, and a full disk sometimes as a plain I/O error: the directory itself is asked as well."""
    text = str(exc).lower()
    code = exc.errno if isinstance(exc, OSError) else None
    if code in _FULL or "disk is full" in text or _nearly_full(directory):
        return StateStorageError(
            N_(
                "the state directory {directory} is full (no space left on its file system); free space "
                "there (or move client.state_dir to a larger disk), then run again: nothing was lost"
            ),
            directory=directory,
        )
    if code in _READ_ONLY or "readonly database" in text or _not_writable(directory):
        return StateStorageError(
            N_(
                "the state directory {directory} cannot be written (read-only file system or wrong "
                "permissions); make it writable by the service user (owner of the directory, mode 0700), "
                "then run again"
            ),
            directory=directory,
        )
    return None


# -- directories ---------------------------------------------------------------------------------------


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) mode 0700; check or fix an existing one (see module doc)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise storage_problem(exc, directory.parent) or StateError(
                N_("cannot create the directory {directory}: {reason}"),
                directory=directory,
                reason=exc.strerror or exc,
            ) from None
        if not WINDOWS:
            os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    _check_dir(path)


def _check_dir(path: Path) -> None:
    if WINDOWS:  # pragma: no cover - the installer's ACL applies
        return
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFileError(
            N_("{path} is not a directory; move it away, the client keeps its state there"), path=path
        )
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _UNSAFE_DIR_BITS:
        return
    if info.st_uid != os.geteuid():
        raise UnsafeFileError(
            N_(
                "the directory {path} (mode {mode}) is open to other users and owned by another user "
                "(uid {uid}); make it owned by the service user with mode 0700 (chown, chmod 700 {path})"
            ),
            path=path,
            mode=f"{mode:04o}",
            uid=info.st_uid,
        )
    fixed = mode & ~_UNSAFE_DIR_BITS
    os.chmod(path, fixed)
    log.warning("directory_permissions_fixed", path=str(path), mode_was=f"{mode:04o}", mode=f"{fixed:04o}")


# -- files ---------------------------------------------------------------------------------------------


def _refuse_link(path: Path) -> UnsafeFileError:
    return UnsafeFileError(
        N_(
            "{path} is a symbolic link; the client does not follow links in its state (its target was not "
            "read or written); remove the link ({path}) and run again"
        ),
        path=path,
    )


def _check_open_file(fd: int, path: Path, *, fix: bool | None) -> None:
    """The file open on ``fd`` is a regular file of ours with no access for others (fixed or refused;
    ``fix=None``: owner and modes not looked at, for read-only use such as ``status``)."""
    if WINDOWS:  # pragma: no cover
        return
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(N_("{path} is not a regular file; move it away and run again"), path=path)
    if fix is None:
        return
    if info.st_uid != os.geteuid() and os.geteuid() != 0:  # root may use the service user's files
        raise UnsafeFileError(
            N_(
                "{path} is owned by another user (uid {uid}); the client uses only files it owns: "
                "move it away, or run the client as its owner"
            ),
            path=path,
            uid=info.st_uid,
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & _UNSAFE_FILE_BITS:
        if not fix:
            raise UnsafeFileError(
                N_("{path} is accessible by other users (mode {mode}); run: chmod 600 {path}"),
                path=path,
                mode=f"{mode:04o}",
            )
        os.fchmod(fd, FILE_MODE)
        log.warning("file_permissions_fixed", path=str(path), mode_was=f"{mode:04o}", mode="0600")


def open_private(path: Path, flags: int, *, fix: bool | None = True) -> int:
    """``os.open`` without following a symbolic link; a created file is 0600 whatever the umask; an
    existing one must be a regular file of ours (modes fixed when ``fix``, else refused)."""
    if WINDOWS and path.is_symlink():  # pragma: no cover - no O_NOFOLLOW there; a check, not atomic
        raise _refuse_link(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _BINARY | _NONBLOCK, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse_link(path) from None
        raise
    try:
        _check_open_file(fd, path, fix=fix)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_private(path: Path, *, fix: bool | None = True) -> bytes:
    """Read a private file without following links (``FileNotFoundError`` when it does not exist)."""
    fd = open_private(path, os.O_RDONLY, fix=fix)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def create_private(path: Path) -> None:
    """Make sure ``path`` exists as a private regular file (0600) before another library opens it by
    name (SQLite gives a database's ``-wal`` and ``-shm`` the database file's own mode)."""
    os.close(open_private(path, os.O_RDWR | os.O_CREAT))


def secure_existing(path: Path) -> None:
    """Check (and fix) an existing private file by name without following a link; absent is fine."""
    try:
        os.close(open_private(path, os.O_RDONLY))
    except FileNotFoundError:
        return


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (a no-op on Windows)."""
    if WINDOWS:  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file. The new file
    is created 0600 (``mkstemp``) and given ``mode`` before it takes the name; a symbolic link at
    ``path`` is replaced, its target never written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
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


def write_secret_file(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write a key or secret readable by the owner only (0600; ``GROUP_READ_FILE_MODE`` for the national
    key; on Windows the directory's ACL applies)."""
    if not path.parent.exists():
        ensure_private_dir(path.parent)
    atomic_write(path, data, mode=mode)


def world_accessible(path: Path) -> bool:
    """True when users outside the file's owner and group may read or write ``path`` (always False on
    Windows, where ACLs rather than modes apply)."""
    if WINDOWS:  # pragma: no cover
        return False
    return bool(path.stat().st_mode & 0o007)


def remove_world_access(path: Path) -> None:
    """Take others' access away from ``path`` (``PermissionError`` when this user may not)."""
    if not WINDOWS:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o770)


# -- logs ----------------------------------------------------------------------------------------------


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created 0600 (every rotation too), in a directory created 0700."""

    def __init__(self, filename: Path, **kwargs: Any) -> None:
        if not filename.parent.exists():
            filename.parent.mkdir(parents=True, mode=DIR_MODE)
            if not WINDOWS:
                os.chmod(filename.parent, DIR_MODE)
        super().__init__(filename, **kwargs)

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, FILE_MODE)
        if not WINDOWS:
            with contextlib.suppress(OSError):  # a log file of another user's keeps its mode
                os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

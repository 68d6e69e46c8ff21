"""Minimal Debian chroots (``debootstrap --variant=minbase``), cached as one tarball per release.

The tarball is made once from the Debian registry (deb.debian.org) and kept outside the repository in
``HWB_CHROOT_CACHE`` (default ``/var/cache/hwb-client-tests``); later runs only unpack it. The Debian
packages that ``apt-get`` downloads inside the chroot are kept there too (``apt-RELEASE/``), so a cached
run downloads only the package lists.

    python tests/integration/debian_chroots.py bookworm trixie   # make the tarballs now (needs root)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("HWB_CHROOT_CACHE", "/var/cache/hwb-client-tests"))
MIRROR = os.environ.get("HWB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
RELEASES = {"bookworm": "12", "trixie": "13"}
#: In the tarball from the start: checks the tests run that are not the package's own dependencies.
EXTRA = ["debsums"]
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "DEBIAN_FRONTEND": "noninteractive",
}


def can_build() -> str | None:
    """Why the chroot tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount)"
    for tool in ("debootstrap", "chroot", "mount", "tar"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def run_in(root: Path, script: str, *, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a shell script inside the chroot with a clean environment."""
    result = subprocess.run(
        ["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in CHROOT_ENV.items()),
         "/bin/sh", "-c", script],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"in {root.name}: {script!r} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _prepare(root: Path) -> None:
    root.chmod(0o755)  # "/" of the chroot: made by mkdtemp (0700), and every user must traverse it
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    # No daemon may start inside the chroot (there is no init).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)


def base_tarball(release: str) -> Path:
    """The cached minbase tarball for ``release``, made first if missing (one process at a time)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{release}-minbase.tar"
    with open(CACHE / f".{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        work = Path(tempfile.mkdtemp(prefix=f"{release}-", dir=CACHE))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(EXTRA)}", release, str(work), MIRROR],
                capture_output=True, text=True, timeout=1800, check=True,
            )  # fmt: skip
            _prepare(work)
            run_in(work, "apt-get clean")
            partial = tarball.with_suffix(".tar.part")
            subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(partial), "."], check=True)
            partial.replace(tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball


@contextlib.contextmanager
def chroot(release: str, parent: Path) -> Iterator[Path]:
    """A fresh chroot of ``release`` under ``parent`` with /proc mounted and apt's archive cached."""
    tarball = base_tarball(release)
    root = parent / release
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True)
    _prepare(root)
    archives = CACHE / f"apt-{release}"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    mounts = [root / "proc", root / "var/cache/apt/archives"]
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(mounts[0])], check=True)
        mounted.append(mounts[0])
        subprocess.run(["mount", "--bind", str(archives), str(mounts[1])], check=True)
        mounted.append(mounts[1])
        yield root
    finally:
        for point in reversed(mounted):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], check=False)
        # Never delete through a mount point still in place (the apt cache is bound inside).
        if not any(os.path.ismount(p) for p in mounts):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    for name in sys.argv[1:] or list(RELEASES):
        print(base_tarball(name))

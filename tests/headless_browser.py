"""Headless Chromium for the tests that look at a page as its reader would (a screenshot, a PDF, the
DOM it was served): found on the PATH (skipped without it, failed under CI), run with a fresh profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/debian-packages.txt lists it)")
        pytest.skip("chromium is not installed")
    return found


def run_chromium(*args: str) -> str:
    """Run headless Chromium with ``args`` in a profile of its own; returns what it wrote on stdout."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

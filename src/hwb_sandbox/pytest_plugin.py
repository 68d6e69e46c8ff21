"""pytest fixtures for the sandbox. Load with ``pytest_plugins = ["hwb_sandbox.pytest_plugin"]``.

``sandbox``: a fresh sandbox subprocess with an empty database in ``tmp_path``, for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hwb_sandbox.testing import SandboxProcess


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    """A running sandbox (real subprocess over loopback) with its own fresh database."""
    with SandboxProcess(tmp_path / "sandbox" / "sandbox.db") as process:
        yield process

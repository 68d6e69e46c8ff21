"""Shared fixtures: the sandbox national API in its own process, and rehearsal labs of schools."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hwb_demo.lab import Lab, LabSchool
from hwb_sandbox.testing import SandboxProcess

pytest_plugins = ["hwb_sandbox.pytest_plugin", "hwb_synth.pytest_plugin"]


@pytest.fixture
def make_lab(tmp_path: Path, sandbox: SandboxProcess) -> Iterator[Callable[..., Lab]]:
    """Make a lab whose schools' MIS files live in tmp_path, configured against the running sandbox."""

    def make(schools: list[tuple[str, str]], *, enrol: bool = True, **config: str) -> Lab:
        lab = Lab(
            tmp_path / "lab",
            [LabSchool(dfes, name, tmp_path / f"mis-{dfes}.sqlite3") for dfes, name in schools],
            sandbox.url,
        )
        lab.root.mkdir(exist_ok=True)
        lab.write_config(**config)
        if enrol:
            lab.enrol_all(sandbox)
        return lab

    yield make

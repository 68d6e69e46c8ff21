"""Fixtures for the sandbox tests: a real ``hwb-sandbox serve`` subprocess and enrolled schools.

Every test talks real HTTP over loopback to the subprocess (the ``sandbox`` fixture), signing with the
client's own ``RequestSigner``.

The fixture is imported rather than loaded with ``pytest_plugins``: pytest refuses ``pytest_plugins`` in a
conftest below the top level when the whole suite runs (``tests/conftest.py`` may load the plugin for
everyone; this import then simply shadows it with the same fixture).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sandbox_helpers import PRIMARY, SECONDARY, SchoolClient, enrol

from hwb_sandbox.pytest_plugin import sandbox  # noqa: F401 - the fixture, see the module docstring
from hwb_sandbox.testing import SandboxProcess


@pytest.fixture
def primary(sandbox: SandboxProcess) -> Iterator[SchoolClient]:  # noqa: F811 - the imported fixture
    """An enrolled primary school."""
    client = enrol(sandbox, PRIMARY, "Ysgol Gynradd Prawf")
    yield client
    client.session.close()


@pytest.fixture
def secondary(sandbox: SandboxProcess) -> Iterator[SchoolClient]:  # noqa: F811 - the imported fixture
    """An enrolled secondary school in the same sandbox."""
    client = enrol(sandbox, SECONDARY, "Ysgol Uwchradd Prawf")
    yield client
    client.session.close()


_school_numbers = itertools.count(6700001)  # LA 670: never PRIMARY or SECONDARY


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox for a whole test module, for tests that only touch their own school (see ``school``)."""
    with SandboxProcess(tmp_path_factory.mktemp("sandbox") / "sandbox.db") as process:
        yield process


@pytest.fixture
def school(module_sandbox: SandboxProcess) -> Iterator[SchoolClient]:
    """A school of its own, freshly enrolled in the module's sandbox (a new DfES number per test)."""
    client = enrol(module_sandbox, str(next(_school_numbers)), "Ysgol Gynradd Prawf")
    yield client
    client.session.close()

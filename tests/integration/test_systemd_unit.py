"""The systemd unit (service/hwb-client.service), checked by systemd's own ``systemd-analyze``.

The unit's ExecStart binary exists only once the .deb is installed, so the unit is verified twice: as
shipped (the one complaint allowed is that missing binary) and as a copy whose ExecStart points at an
executable that exists (no complaint at all). A deliberately broken copy shows the check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "service" / "hwb-client.service"
EXEC = "/opt/hwb-client/venv/bin/hwb-client"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "hwb-client.service"
    path.write_text(unit_text, encoding="utf-8")
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def with_existing_exec(tmp_path: Path) -> str:
    return UNIT.read_text(encoding="utf-8").replace(f"ExecStart={EXEC}", "ExecStart=/bin/true")


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_as_shipped_only_lacks_the_installed_binary(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert complaints, "systemd-analyze should notice the binary is not installed here"
    assert all(f"{EXEC} is not executable" in line for line in complaints), complaints


def test_unit_with_an_existing_binary_verifies_cleanly(tmp_path: Path) -> None:
    result = verify(with_existing_exec(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@pytest.mark.parametrize(
    ("good", "bad", "complaint"),
    [
        ("ProtectSystem=strict", "ProtectSystem=very-strict", "very-strict"),
        ("NoNewPrivileges=yes", "NoNewPrivilege=yes", "Unknown key"),
    ],
)
def test_a_broken_unit_is_caught_by_the_same_check(
    tmp_path: Path, good: str, bad: str, complaint: str
) -> None:
    result = verify(with_existing_exec(tmp_path).replace(good, bad), tmp_path)
    assert complaint in result.stdout + result.stderr


def test_unit_exposure_score_is_low(tmp_path: Path) -> None:
    path = tmp_path / "hwb-client.service"
    path.write_text(with_existing_exec(tmp_path), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for hwb-client\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 2.0


def test_unit_runs_the_daemon_as_the_service_user_with_notify() -> None:
    unit = directives()
    assert unit["ExecStart"] == [f"{EXEC} --config /etc/hwb-client/hwb-client.toml daemon"]
    assert unit["Type"] == ["notify"]
    assert unit["User"] == ["hwb-client"]
    assert unit["StateDirectory"] == ["hwb-client"]
    assert unit["ConfigurationDirectory"] == ["hwb-client"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2 3"]  # a bad configuration is not retried in a loop
    assert unit["StandardError"] == ["journal"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("UMask", "0077"),
    ],
)
def test_unit_is_hardened(key: str, value: str) -> None:
    assert value in directives()[key]

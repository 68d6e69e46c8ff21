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
EXEC = "/usr/lib/hwb-client/hwb-client"
EXAMPLE = UNIT.parents[1] / "config" / "hwb-client.example.toml"

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
    assert float(match[1]) <= 1.4  # 1.4 before LogsDirectory/LoadCredential/PrivateUsers; keep it


def test_unit_runs_the_daemon_as_the_service_user_with_notify() -> None:
    unit = directives()
    assert unit["ExecStart"] == [f"{EXEC} --config /etc/hwb-client/hwb-client.toml daemon"]
    assert unit["Type"] == ["notify"]
    assert unit["User"] == ["hwb-client"]
    assert unit["StateDirectory"] == ["hwb-client"]
    assert unit["ConfigurationDirectory"] == ["hwb-client"]
    assert unit["LogsDirectory"] == ["hwb-client"]
    # Any unexpected end (a signal, exit 0 without `systemctl stop`) restarts; a bad configuration (3),
    # usage (2) or a missing credential (243) is not retried in a loop.
    assert unit["Restart"] == ["always"]
    assert unit["RestartPreventExitStatus"] == ["2 3 243"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP reopens the log file
    assert unit["LoadCredential"] == ["national-key.json:/etc/hwb-client/national-key.json"]
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
        ("PrivateUsers", "yes"),
        ("PrivateMounts", "yes"),
    ],
)
def test_unit_is_hardened(key: str, value: str) -> None:
    assert value in directives()[key]


def unit_writable_dirs() -> list[Path]:
    unit = directives()
    return [Path("/var/lib") / d for d in unit["StateDirectory"]] + [
        Path("/var/log") / d for d in unit["LogsDirectory"]
    ]


def test_every_path_the_shipped_example_writes_is_one_the_unit_makes_writable() -> None:
    """ProtectSystem=strict leaves only the unit's StateDirectory and LogsDirectory writable; the
    configuration directory is readable (the national key, the config)."""
    import tomllib

    config = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    client = config["client"]
    writable = unit_writable_dirs()
    assert any(Path(client["state_dir"]).is_relative_to(d) for d in writable), client["state_dir"]
    assert any(Path(client["log_file"]).is_relative_to(d) for d in writable), client["log_file"]
    readable = Path("/etc") / directives()["ConfigurationDirectory"][0]
    assert Path(client["national_key_file"]).is_relative_to(readable)
    assert client["national_key_credential"] == directives()["LoadCredential"][0].split(":")[0]
    for school in config["schools"]:
        for key in ("signing_key_file", "odbc_password_file"):
            if key in school:
                assert any(Path(school[key]).is_relative_to(d) for d in [*writable, readable]), key

"""The Debian package: built by installers/build-deb.sh, inspected with dpkg-deb, installed offline.

The maintainer scripts are run for real under ``DPKG_ROOT`` (a throwaway root): the venv is built
offline from the package's own wheels with the system ``python3``. Only the commands that would
change this machine itself (creating the system user, chown to it, systemd enablement) are replaced
by recording stand-ins on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]
SYSTEM_PYTHON = Path("/usr/bin/python3")
RECORDED = ("getent", "addgroup", "adduser", "chown", "dpkg-statoverride", "deb-systemd-helper",
            "deb-systemd-invoke", "systemctl")  # fmt: skip


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    began = time.monotonic()
    result = subprocess.run(
        ["sh", str(ROOT / "installers" / "build-deb.sh")],
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    print(f"built {path.name}: {path.stat().st_size / 2**20:.1f} MiB in {time.monotonic() - began:.0f} s")
    return path


@pytest.fixture(scope="module")
def contents(deb: Path) -> dict[str, str]:
    """Path in the package -> its ``ls -l`` style mode and owner."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    entries = {}
    for line in listing.splitlines():
        parts = line.split()
        entries[parts[-1].removeprefix(".")] = f"{parts[0]} {parts[1]}"
    return entries


@pytest.fixture(scope="module")
def control_dir(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(target)], check=True)
    return target


@pytest.fixture(scope="module")
def extracted(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "_", match[1]).lower()] = match[2]
    return found


# --- the archive -----------------------------------------------------------------------------------


def test_deb_is_named_after_version_and_architecture(deb: Path) -> None:
    version = field(deb, "Version")
    assert deb.name == f"hwb-client_{version}_{field(deb, 'Architecture')}.deb"
    assert field(deb, "Package") == "hwb-client"


def test_deb_depends_on_python_311_venv_unixodbc_and_one_odbc_driver(deb: Path) -> None:
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    assert "python3 (>= 3.11)" in depends
    assert "python3-venv" in depends
    assert "unixodbc" in depends
    assert "libsqliteodbc | odbc-postgresql | odbc-mariadb | tdsodbc" in depends


def test_deb_vendors_a_wheel_for_the_project_and_each_pinned_dependency(contents: dict[str, str]) -> None:
    wheels = {
        Path(p).name for p in contents if p.startswith("/opt/hwb-client/wheels/") and p.endswith(".whl")
    }
    by_name = {w.split("-")[0].lower(): w.split("-")[1] for w in wheels}
    for needed in ("hwb_client", "apscheduler", "pyodbc", "cryptography", "pydantic", "pydantic_settings",
                   "structlog", "requests", "http_message_signatures"):  # fmt: skip
        assert needed in by_name, f"no wheel for {needed}"
    pinned = pins()
    for name, version in by_name.items():
        if name in pinned:
            assert version == pinned[name], f"{name} {version} is not the pinned {pinned[name]}"


def test_deb_ships_the_unit_the_wrapper_and_a_private_example_config(contents: dict[str, str]) -> None:
    assert contents["/lib/systemd/system/hwb-client.service"].startswith("-rw-r--r-- root/root")
    assert contents["/etc/hwb-client/hwb-client.toml"].startswith("-rw-r----- root/root")
    assert contents["/etc/hwb-client/"].startswith("drwxr-x--- root/root")
    assert contents["/usr/bin/hwb-client"].startswith("-rwxr-xr-x root/root")
    assert "/usr/share/doc/hwb-client/copyright" in contents
    assert not [p for p in contents if "/venv/" in p or "__pycache__" in p]  # the venv is built on install


def test_the_example_config_is_the_only_conffile(control_dir: Path) -> None:
    assert (control_dir / "conffiles").read_text(encoding="utf-8").split() == [
        "/etc/hwb-client/hwb-client.toml"
    ]


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_executable_valid_sh(control_dir: Path, script: str) -> None:
    path = control_dir / script
    assert path.stat().st_mode & stat.S_IXUSR
    assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert "@VERSION@" not in path.read_text(encoding="utf-8")
    for shell in ("sh", "dash"):
        if shutil.which(shell):
            result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
            assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "sh", str(path)], check=True)


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_refuse_unknown_actions(control_dir: Path, script: str) -> None:
    result = subprocess.run(
        ["sh", str(control_dir / script), "bogus"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "unknown argument" in result.stderr


# --- installing ------------------------------------------------------------------------------------


def offline_env() -> dict[str, str]:
    """No index, and none of this machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}


def base_python() -> str:
    return str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else getattr(sys, "_base_executable", sys.executable)


def test_wheels_install_offline_into_a_fresh_venv_and_the_cli_runs(extracted: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
         "--find-links", str(extracted / "opt/hwb-client/wheels"), "hwb-client"],
        env=offline_env(), check=True, timeout=300,
    )  # fmt: skip
    help_text = subprocess.run(
        [str(venv / "bin" / "hwb-client"), "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "daemon" in help_text
    assert "schedule" in help_text
    schedule = subprocess.run(
        [str(venv / "bin" / "hwb-client"), "--config", str(extracted / "etc/hwb-client/hwb-client.toml"),
         "schedule", "--next", "3", "--from", "2026-08-29"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert schedule.returncode == 0, schedule.stderr
    assert "2026-08-30 02:00 Sun august_30" in schedule.stdout


def make_recording_path(tmp_path: Path, log: Path) -> str:
    """Stand-ins for the commands that would change this machine; each records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in RECORDED:
        exit_code = 2 if name == "getent" else 1 if name == "dpkg-statoverride" else 0
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {exit_code}\n', encoding="utf-8")
        script.chmod(0o755)
    (bin_dir / "python3").symlink_to(base_python())
    return f"{bin_dir}:{os.environ['PATH']}"


def run_script(control_dir: Path, script: str, action: str, root: Path, path: str) -> None:
    env = {**offline_env(), "DPKG_ROOT": str(root), "PATH": path}
    result = subprocess.run(
        ["sh", str(control_dir / script), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_postinst_builds_the_venv_offline_creates_the_user_and_enables_without_starting(
    deb: Path, control_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    log = tmp_path / "commands.log"
    path = make_recording_path(tmp_path, log)

    run_script(control_dir, "postinst", "configure", root, path)

    cli = root / "opt/hwb-client/venv/bin/hwb-client"
    assert subprocess.run([str(cli), "--version"], capture_output=True, check=False).returncode == 0
    assert stat.S_IMODE((root / "var/lib/hwb-client").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "etc/hwb-client").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "etc/hwb-client/hwb-client.toml").stat().st_mode) == 0o640
    commands = log.read_text(encoding="utf-8").splitlines()
    assert "addgroup --system --quiet hwb-client" in commands
    assert any(c.startswith("adduser --system") and c.endswith(" hwb-client") for c in commands)
    assert f"chown hwb-client:hwb-client {root}/var/lib/hwb-client" in commands
    assert f"chown root:hwb-client {root}/etc/hwb-client/hwb-client.toml" in commands
    assert "deb-systemd-helper enable hwb-client.service" in commands
    assert not [c for c in commands if " start " in f" {c} "]  # enabled, not started

    # Removing keeps the state; purging removes it.
    state_file = root / "var/lib/hwb-client/daemon-state.json"
    state_file.write_text("{}", encoding="utf-8")
    run_script(control_dir, "postrm", "remove", root, path)
    assert not (root / "opt/hwb-client/venv").exists()
    assert state_file.exists()
    run_script(control_dir, "postrm", "purge", root, path)
    assert not (root / "var/lib/hwb-client").exists()
    assert "deb-systemd-helper purge hwb-client.service" in log.read_text(encoding="utf-8")

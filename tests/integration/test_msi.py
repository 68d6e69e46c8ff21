"""The Windows MSI, built on Linux with wixl (installers/build-msi.sh) and read back with msitools.

Installing it needs Windows (see docs/windows.md); here the test checks what it would install. It uses
only the project's own wheel (WHEELS=...), so it needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("wixl") and shutil.which("msiinfo") and shutil.which("msiextract")),
        reason="needs wixl and msitools (scripts/debian-packages.txt)",
    ),
]


@pytest.fixture(scope="module")
def msi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    source = tmp_path_factory.mktemp("source")
    subprocess.run(  # a copy, so the working tree gets no build/ or *.egg-info
        ["tar", "-C", str(ROOT), "--exclude=./.venv", "--exclude=./.git", "--exclude=./dist", "-cf",
         str(source / "src.tar"), "."],
        check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-C", str(source), "-xf", str(source / "src.tar")], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        ["sh", str(ROOT / "installers" / "build-msi.sh")],
        env={**os.environ, "WHEELS": str(wheels), "OUT": str(out), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def table(msi: Path, name: str) -> list[list[str]]:
    text = subprocess.run(
        ["msiinfo", "export", str(msi), name], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("\t") for line in text.splitlines()[3:]]


def test_msi_is_named_after_the_version(msi: Path) -> None:
    assert msi.name == "hwb-client-0.1.0-x64.msi" or msi.name.startswith("hwb-client-")
    assert msi.stat().st_size > 10_000


def test_msi_installs_script_config_and_wheels_under_program_files(msi: Path, tmp_path: Path) -> None:
    subprocess.run(["msiextract", "-C", str(tmp_path), str(msi)], check=True, capture_output=True)
    installed = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert "HwbClient/install.ps1" in installed
    assert "HwbClient/hwb-client.example.toml" in installed
    assert any(p.startswith("HwbClient/wheels/hwb_client-") and p.endswith(".whl") for p in installed)
    assert (tmp_path / "HwbClient/install.ps1").read_bytes() == (
        ROOT / "installers/windows/install.ps1"
    ).read_bytes()


def test_msi_targets_64_bit_program_files(msi: Path) -> None:
    directories = {row[0]: row for row in table(msi, "Directory")}
    assert directories["INSTALLDIR"][1:] == ["ProgramFiles64Folder", "HwbClient"]
    summary = subprocess.run(
        ["msiinfo", "suminfo", str(msi)], capture_output=True, text=True, check=True
    ).stdout
    assert "Template: x64;1033" in summary


def test_msi_upgrades_in_place(msi: Path) -> None:
    upgrade = table(msi, "Upgrade")
    assert upgrade, "MajorUpgrade should add an Upgrade table"
    assert upgrade[0][0] == "{6F0B6A52-8C1E-4E0F-9B5B-3F1D2A7C9E41}"


WINDOWS_EXAMPLE = ROOT / "config" / "hwb-client.windows.toml"


def test_the_windows_example_parses_and_keeps_every_path_under_programdata() -> None:
    import tomllib
    from pathlib import PureWindowsPath

    from hwb_client.settings import load_settings

    settings = load_settings(WINDOWS_EXAMPLE)
    data = PureWindowsPath(r"C:\ProgramData\HwbClient")
    raw = tomllib.loads(WINDOWS_EXAMPLE.read_text(encoding="utf-8"))
    paths = [raw["client"][k] for k in ("state_dir", "national_key_file", "log_file")]
    paths += [school[k] for school in raw["schools"] for k in ("odbc_password_file",) if k in school]
    for path in paths:
        assert PureWindowsPath(path).is_relative_to(data), path
        assert "/" not in path
    assert str(settings.client.state_dir) == r"C:\ProgramData\HwbClient\state"


def test_the_msi_installs_the_windows_example_not_the_debian_one(msi: Path, tmp_path: Path) -> None:
    subprocess.run(["msiextract", "-C", str(tmp_path), str(msi)], check=True, capture_output=True)
    shipped = (tmp_path / "HwbClient/hwb-client.example.toml").read_bytes()
    assert shipped == WINDOWS_EXAMPLE.read_bytes()


# msidbServiceControlEvent bits: 0x1 start on install, 0x2 stop on install, 0x20 stop on uninstall,
# 0x80 delete on uninstall.
START_INSTALL, STOP_INSTALL, STOP_UNINSTALL, DELETE_UNINSTALL = 0x1, 0x2, 0x20, 0x80


def test_msi_starts_stops_and_removes_the_service(msi: Path) -> None:
    rows = [row for row in table(msi, "ServiceControl") if row[1] == "HwbClient"]
    events = 0
    for row in rows:
        events |= int(row[2])
    assert events & START_INSTALL, rows
    assert events & STOP_INSTALL and events & STOP_UNINSTALL, rows  # stopped before upgrade and removal
    assert events & DELETE_UNINSTALL, rows
    waits = {int(row[2]) & START_INSTALL: row[4] for row in rows}
    assert waits[0] == "1"  # the stop waits for running schools to reach a batch boundary


def test_msi_runs_install_ps1_and_refuses_without_python_311(msi: Path) -> None:
    conditions = {row[0]: row[1] for row in table(msi, "LaunchCondition")}
    refusal = conditions["Installed OR PYTHON311EXE"]
    assert "CPython 3.11 (64-bit)" in refusal and "python.org" in refusal
    [locator] = [row for row in table(msi, "RegLocator") if row[0] == "Python311Search"]
    assert locator[1:4] == ["2", r"SOFTWARE\Python\PythonCore\3.11\InstallPath", "ExecutablePath"]
    actions = {row[0]: row for row in table(msi, "CustomAction")}
    assert '-File "[INSTALLDIR]install.ps1" -Python "[PYTHON311EXE]"' in actions["RunInstallScript"][3]
    assert actions["RunUninstallScript"][3].endswith("-Uninstall")
    sequence = {row[0]: (row[1], int(row[2])) for row in table(msi, "InstallExecuteSequence")}
    assert sequence["SetPowerShell"][1] < sequence["InstallInitialize"][1]
    assert sequence["InstallFiles"][1] < sequence["RunInstallScript"][1] < sequence["StartServices"][1]
    assert sequence["RunUninstallScript"] == ('REMOVE="ALL"', sequence["RemoveFiles"][1] - 1)

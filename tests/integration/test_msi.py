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

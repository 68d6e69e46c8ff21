"""The Debian package: built by installers/build-deb.sh, checked by lintian, built twice and compared,
then installed for real in minimal Debian 12 (bookworm) and Debian 13 (trixie) chroots made with
``debootstrap --variant=minbase`` (cached as tarballs outside the repository: debian_chroots.py).

In each chroot: ``dpkg -i`` and ``apt-get -f install`` (the dependencies come from the Debian
registry), ``hwb-client --version``, ``check-config`` on the shipped example (it names what is
missing), a dry run against a SQLite MIS through the chroot's own SQLite3 ODBC driver as the service
user with the shipped example's paths, then remove and purge, and what is left is checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from debian_chroots import RELEASES, can_build, chroot, run_in

from hwb_client.adapters.national_key import write_national_key
from mis_builder import small_school

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]
UPSTREAM = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
PYTHONS = ("3.11", "3.12", "3.13")
LIB = "/usr/lib/hwb-client"


def build(out: Path) -> Path:
    began = time.monotonic()
    result = subprocess.run(
        ["sh", str(ROOT / "installers" / "build-deb.sh")],
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PIP_INDEX_URL": "http://leak.invalid/"},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    print(f"built {path.name}: {path.stat().st_size / 2**20:.1f} MiB in {time.monotonic() - began:.0f} s")
    return path


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # PIP_INDEX_URL above points nowhere: the build must clear the caller's PIP_* or it fails.
    return build(tmp_path_factory.mktemp("dist"))


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


def test_deb_is_named_after_the_debian_changelog_version(deb: Path) -> None:
    version = field(deb, "Version")
    top = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(ROOT / "installers/deb/changelog"), "-SVersion"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == top
    assert version.split("-")[0] == UPSTREAM
    assert deb.name == f"hwb-client_{version}_{field(deb, 'Architecture')}.deb"


def test_deb_depends_on_any_python_it_has_packages_for_and_one_odbc_driver(deb: Path) -> None:
    depends = [d.strip() for d in field(deb, "Depends").split(",")]
    assert "python3 (>= 3.11)" in depends
    assert "python3 (<< 3.14)" in depends  # 3.11 (Debian 12), 3.12 (Ubuntu 24.04), 3.13 (Debian 13)
    assert "unixodbc" in depends
    assert "libsqliteodbc | odbc-postgresql | odbc-mariadb | tdsodbc" in depends
    assert "python3-venv" not in depends  # nothing is built on the target


def test_deb_vendors_the_pinned_dependencies_for_each_python(contents: dict[str, str]) -> None:
    pinned = pins()
    for version in PYTHONS:
        prefix = f"{LIB}/python{version}/"
        dists = dict(
            Path(p).name.removesuffix(".dist-info").rsplit("-", 1)
            for p in contents
            if p.startswith(prefix) and p.endswith(".dist-info/") and p.count("/") == 6
        )
        for needed in ("hwb_client", "apscheduler", "pyodbc", "cryptography", "pydantic", "pydantic_settings",
                       "structlog", "requests", "http_message_signatures", "babel"):  # fmt: skip
            assert needed in dists, f"python{version}: no {needed}"
        assert f"{prefix}hwb_client/locale/cy/LC_MESSAGES/hwb_client.mo" in contents, "no Welsh catalogue"
        cldr = {Path(p).name for p in contents if p.startswith(f"{prefix}babel/locale-data/")}
        assert {"cy.dat", "cy_GB.dat", "en.dat", "en_GB.dat", "root.dat"} <= cldr
        assert len(cldr) < 12, f"python{version}: Babel's data for every language is shipped"
        for name, found in dists.items():
            assert found == pinned.get(name.lower(), found), f"python{version}: {name} {found} is not pinned"
    assert any(p.endswith("cpython-313-x86_64-linux-gnu.so") for p in contents)


def test_the_sandbox_and_its_web_server_stack_are_not_shipped(contents: dict[str, str]) -> None:
    shipped = [p for p in contents if re.search(r"/(hwb_sandbox|hwb_synth|hwb_demo|waitress|werkzeug)\b", p)]
    assert shipped == []


def test_deb_ships_the_unit_wrapper_man_page_and_private_config(contents: dict[str, str]) -> None:
    assert contents["/usr/lib/systemd/system/hwb-client.service"].startswith("-rw-r--r-- root/root")
    assert contents["/etc/hwb-client/hwb-client.toml"].startswith("-rw-r----- root/root")
    assert contents["/etc/hwb-client/"].startswith("drwxr-x--- root/root")
    assert contents["/usr/bin/hwb-client"].startswith("-rwxr-xr-x root/root")
    assert contents[f"{LIB}/hwb-client"].startswith("-rwxr-xr-x root/root")
    for doc in ("copyright", "changelog.Debian.gz", "changelog.gz"):
        assert f"/usr/share/doc/hwb-client/{doc}" in contents
    assert "/usr/share/man/man1/hwb-client.1.gz" in contents
    assert "/etc/logrotate.d/hwb-client" in contents
    assert not [p for p in contents if p.startswith("/opt") or "__pycache__" in p or "direct_url" in p]


def test_the_man_page_is_made_from_the_argument_parser(deb: Path, tmp_path: Path) -> None:
    from hwb_client.cli import build_parser

    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    page = subprocess.run(
        ["man", "--warnings", "-l", str(tmp_path / "usr/share/man/man1/hwb-client.1.gz")],
        capture_output=True, text=True, check=True, env={**os.environ, "MANWIDTH": "200"},
    )  # fmt: skip
    assert page.stderr == ""  # groff has nothing to say about the roff
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in [*commands, "--run-now", "--dry-run", "--allow-mass-removal"]:
        assert name in page.stdout, name


def test_conffiles_are_the_config_and_the_logrotate_snippet(control_dir: Path) -> None:
    assert (control_dir / "conffiles").read_text(encoding="utf-8").split() == [
        "/etc/hwb-client/hwb-client.toml",
        "/etc/logrotate.d/hwb-client",
    ]


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_executable_valid_sh(control_dir: Path, script: str) -> None:
    path = control_dir / script
    assert path.stat().st_mode & stat.S_IXUSR
    assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
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


@pytest.mark.skipif(shutil.which("lintian") is None, reason="needs lintian")
def test_lintian_finds_nothing_that_is_not_overridden_with_a_reason(deb: Path) -> None:
    result = subprocess.run(
        ["lintian", "--info", "--pedantic", "--tag-display-limit", "0", str(deb)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EWIP]: ", line)]
    assert tags == [], "\n".join(tags)
    assert result.returncode == 0, result.stdout + result.stderr
    overrides = (ROOT / "installers/deb/lintian-overrides").read_text(encoding="utf-8").split("\n\n")
    for block in overrides:
        lines = block.strip().splitlines()
        if any(line.startswith("hwb-client:") for line in lines):
            assert lines[0].startswith("#"), f"an override without a reason: {block}"


def test_two_builds_are_byte_identical(deb: Path, tmp_path: Path) -> None:
    again = build(tmp_path)
    assert again.read_bytes() == deb.read_bytes()


# --- installing in Debian 12 and 13 ----------------------------------------------------------------

DRY_RUN_MIS = "/srv/mis/6612001.db"


def prepare_dry_run(root: Path, tmp_path: Path) -> None:
    """What an administrator does: the national key, a MIS the service user may read, its connection."""
    key = root / "etc/hwb-client/national-key.json"
    write_national_key(key, "national-test")
    mis = root / DRY_RUN_MIS.lstrip("/")
    mis.parent.mkdir(parents=True)
    small_school(mis, "6612001", learners=12).close()
    mis.chmod(0o644)
    config = root / "etc/hwb-client/hwb-client.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('odbc = "DSN=SIMS_6612001;UID=hwb_reader"', f'odbc = "Driver=SQLite3;Database={DRY_RUN_MIS}"')
    text = text.replace('odbc_password_credential = "mis-6612001"\n', "")
    config.write_text(text, encoding="utf-8")


def left_behind(root: Path) -> set[str]:
    found = run_in(
        root,
        "find / -xdev \\( -path /proc -o -path /tmp -o -path /srv -o -path /var/cache/apt \\) -prune "
        "-o -name '*hwb*' -print; ls -A /etc/hwb-client 2>/dev/null | sed 's|^|/etc/hwb-client/|'",
    ).stdout.split()
    return set(found)


@pytest.mark.parametrize("release", list(RELEASES))
def test_install_dry_run_remove_and_purge_in_a_minimal_chroot(release: str, deb: Path, tmp_path: Path) -> None:
    missing = can_build()
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"the Debian chroot test must run in CI: it {missing}")
    if missing:
        pytest.skip(missing)
    began = time.monotonic()
    with chroot(release, tmp_path) as root:
        shutil.copy(deb, root / "tmp/hwb-client.deb")
        run_in(root, "apt-get update -qq")
        assert run_in(root, "dpkg -i /tmp/hwb-client.deb", check=False).returncode != 0  # minbase: no python3
        run_in(root, "apt-get -f install -y -qq --no-install-recommends")
        assert run_in(root, "dpkg-query -W -f='${Status}' hwb-client").stdout == "install ok installed"

        assert run_in(root, "hwb-client --version").stdout.strip() == f"hwb-client {UPSTREAM}"
        python = run_in(root, "python3 -c 'import sys; print(*sys.version_info[:2], sep=\".\")'").stdout.strip()
        assert python == {"bookworm": "3.11", "trixie": "3.13"}[release]
        owner = run_in(root, f"dpkg -S {LIB}/python{python}/pydantic_core/__init__.py").stdout
        assert owner.startswith("hwb-client: ")
        run_in(root, "debsums -s hwb-client")  # every file as shipped

        # The shipped example: the national key is missing, and check-config says so.
        check = run_in(root, "hwb-client check-config", check=False)
        assert check.returncode == 3, check.stdout + check.stderr
        assert "client.national_key_file" in check.stdout + check.stderr
        # In Welsh, from the shipped catalogue: by --lang, and by the locale alone.
        welsh = run_in(root, "hwb-client --lang cy --help").stdout
        assert welsh.startswith("defnydd: hwb-client") and "opsiynau:" in welsh, welsh
        check_cy = run_in(root, "LANG=cy_GB.UTF-8 hwb-client check-config", check=False)
        assert check_cy.returncode == 3 and "client.national_key_file" in check_cy.stdout + check_cy.stderr
        assert (check_cy.stdout + check_cy.stderr) != (check.stdout + check.stderr), "check-config is not in Welsh"

        # The shipped example's paths, as the service user, with a SQLite MIS instead of the DSN.
        prepare_dry_run(root, tmp_path)
        run_in(root, "chown root:hwb-client /etc/hwb-client/national-key.json; chmod 0640 /etc/hwb-client/national-key.json")
        run_in(root, "runuser -u hwb-client -- test -w /var/lib/hwb-client")
        run_in(root, "runuser -u hwb-client -- test -w /var/log/hwb-client")
        dry = run_in(root, "hwb-client --run-now --dry-run", check=False)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert re.search(r"6612001: SUCCESS - dry run: [1-9][0-9]* changes? would be sent", dry.stdout), dry.stdout
        log_owner = run_in(root, "stat -c %U /var/log/hwb-client/hwb-client.log").stdout.strip()
        assert log_owner == "hwb-client"
        events = [json.loads(line)["event"] for line in
                  (root / "var/log/hwb-client/hwb-client.log").read_text(encoding="utf-8").splitlines()]  # fmt: skip
        assert events, "the dry run logged nothing to the example's log file"
        # Even root running the launcher directly leaves no unowned __pycache__ in /usr/lib.
        run_in(root, f"{LIB}/hwb-client --version")
        assert run_in(root, f"find {LIB} -name __pycache__").stdout == ""
        # The shipped logrotate snippet rotates the example's log file as the service user.
        run_in(root, "apt-get install -y -qq --no-install-recommends logrotate")
        run_in(root, "logrotate -f /etc/logrotate.d/hwb-client")
        rotated = run_in(root, "stat -c '%U %a' /var/log/hwb-client/hwb-client.log.1 /var/log/hwb-client/hwb-client.log")
        old, new = rotated.stdout.splitlines()
        assert old.startswith("hwb-client ") and new == "hwb-client 640", rotated.stdout

        run_in(root, "apt-get remove -y -qq hwb-client")
        assert not (root / "usr/lib/hwb-client").exists()
        assert not (root / "usr/bin/hwb-client").exists()
        assert (root / "etc/hwb-client/hwb-client.toml").exists()  # a conffile stays until purge
        assert (root / "var/lib/hwb-client").exists()  # so does the state

        run_in(root, "apt-get purge -y -qq hwb-client")
        assert run_in(root, "dpkg-query -W -f='${Status}' hwb-client", check=False).stdout in {"", "unknown ok not-installed"}
        # Only what the administrator put there (the national key) and the system user remain.
        assert left_behind(root) == {"/etc/hwb-client", "/etc/hwb-client/national-key.json"}
        assert run_in(root, "getent passwd hwb-client").stdout.startswith("hwb-client:")
    print(f"{release}: install, dry run, remove and purge in {time.monotonic() - began:.0f} s")

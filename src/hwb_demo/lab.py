"""A rehearsal lab: a working directory with a configuration for some schools, the national key, and a
running sandbox national API in its own process. Used by the demo, the end-to-end tests and by LAs who
want to rehearse a rollover. ``Lab.cli`` runs the real ``hwb-client`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwb_client.adapters.national_key import write_national_key
from hwb_sandbox.testing import SandboxProcess

NATIONAL_KEY_ID = "nat-demo-1"


@dataclass
class LabSchool:
    dfes_number: str
    name: str
    mis_path: Path
    profile: str = "reference"

    @property
    def odbc(self) -> str:
        return f"Driver=SQLite3;Database={self.mis_path}"


@dataclass
class Lab:
    root: Path
    schools: list[LabSchool]
    sandbox_url: str
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    #: the language of every ``hwb-client`` command the lab runs (``--lang``); None: the client chooses
    lang: str | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "hwb-client.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "hwb-client.log"

    @property
    def national_key_file(self) -> Path:
        return self.root / "national-key.json"

    def write_config(self, *, api_overrides: str = "", guard: str = "", schedule: str = "") -> Path:
        if not self.national_key_file.exists():
            write_national_key(self.national_key_file, NATIONAL_KEY_ID)
        lines = [
            "[client]",
            f'state_dir = "{self.state_dir}"',
            f'national_key_file = "{self.national_key_file}"',
            f'log_file = "{self.log_file}"',
            'log_format = "json"',
            "",
            "[api]",
            f'base_url = "{self.sandbox_url}"',
            "connect_timeout_seconds = 2",
            "read_timeout_seconds = 10",
            "backoff_base_seconds = 0.1",
            "backoff_max_seconds = 1",
            "give_up_after_seconds = 10",
            api_overrides,
            "",
            "[guard]",
            guard,
            "",
            "[schedule]",
            schedule,
            self.extra_config,
        ]
        for school in self.schools:
            lines += [
                "",
                "[[schools]]",
                f'dfes_number = "{school.dfes_number}"',
                f'name = "{school.name}"',
                f'odbc = "{school.odbc}"',
                f'profile = "{school.profile}"',
            ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config_path

    def cli(
        self, *args: str, check: bool = False, timeout: float = 300, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``hwb-client --config LAB_CONFIG ARGS`` as a real subprocess."""
        env = {**os.environ, **self.env}
        env.pop("HWB_CONFIG", None)
        lang = ["--lang", self.lang] if self.lang else []
        return subprocess.run(
            [sys.executable, "-m", "hwb_client", *lang, "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=env,
            **kwargs,
        )

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``hwb-client ARGS`` in the background; its output goes to the lab's log file only."""
        env = {**os.environ, **self.env}
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(
            [sys.executable, "-m", "hwb_client", "--config", str(self.config_path), *args],
            text=True,
            env=env,
            **kwargs,
        )

    def enrol_all(self, sandbox: SandboxProcess) -> None:
        for school in self.schools:
            code = sandbox.issue_code(school.dfes_number, school.name)
            result = self.cli("enrol", "--school", school.dfes_number, "--code", code)
            if result.returncode != 0:
                raise RuntimeError(f"enrolment of {school.dfes_number} failed: {result.stderr.strip()}")

    def api(self, dfes_number: str) -> Any:
        """A signed client of the national API for one enrolled school (as the client itself uses)."""
        from hwb_client.adapters.transport import NationalApi
        from hwb_client.enrolment import signer_for
        from hwb_client.settings import load_settings

        settings = load_settings(self.config_path)
        school = settings.school(dfes_number)
        return NationalApi(settings.api, signer=signer_for(settings, school))

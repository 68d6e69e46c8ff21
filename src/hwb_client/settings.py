"""Configuration: one TOML file, overridable by ``HWB_...`` environment variables.

Built once in ``cli.py`` and passed in. A bad setting stops the program before anything is read or sent,
with a message that names the setting and says what to do (``errors.ConfigError``).

Environment overrides use ``__`` between levels, for example ``HWB_API__BASE_URL`` or
``HWB_GUARD__MAX_REMOVAL_SHARE``; the list of schools comes from the file only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import os
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hwb_client import i18n
from hwb_client.errors import ConfigError
from hwb_client.i18n import N_, _, ngettext
from hwb_client.launch import default_config_path
from hwb_client.platform.credentials import credential_path, missing_credential_fix

DFES_PATTERN = re.compile(r"^(6[6-7][0-9]|68[01])[0-9]{4}$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def default_state_dir() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "HwbClient" / "state"
    return Path("/var/lib/hwb-client")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientSettings(_Section):
    state_dir: Path = Field(default_factory=default_state_dir)
    national_key_file: Path = Path("/etc/hwb-client/national-key.json")
    #: a systemd credential (LoadCredential=) used instead of national_key_file when the service has it
    national_key_credential: str | None = None
    log_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: what the commands print, the report and the alert e-mails: "cy" (Cymraeg) or "en"; unset: the
    #: locale (LANG), then English. ``--lang`` overrides it for one command.
    language: Literal["en", "cy"] | None = None

    @model_validator(mode="after")
    def _credential_first(self) -> ClientSettings:
        found = credential_path(self.national_key_credential or "")
        if found is not None:
            object.__setattr__(self, "national_key_file", found)  # frozen; set once while validating
        return self


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (parsed, not a prefix test: ``127.example`` is a name)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urllib.parse.urlsplit(url).hostname or "")


class ApiSettings(_Section):
    base_url: AnyHttpUrl = AnyHttpUrl("https://provisioning.hwb.gov.wales/")
    ca_bundle: Path | None = None
    proxy: str | None = None
    connect_timeout_seconds: float = Field(10.0, gt=0, le=300)
    read_timeout_seconds: float = Field(60.0, gt=0, le=900)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_base_seconds: float = Field(1.0, ge=0, le=60)
    backoff_max_seconds: float = Field(60.0, ge=0, le=900)
    give_up_after_seconds: float = Field(600.0, gt=0, le=86400)
    #: the whole of one exchange (connect, send, every byte of the reply), whatever the server's pace
    request_deadline_seconds: float = Field(300.0, gt=0, le=3600)
    #: a reply's size cap, before and after decompression
    max_reply_bytes: int = Field(64 * 1024 * 1024, ge=65536, le=1024 * 1024 * 1024)
    #: compare the acknowledged state with the national manifest when the last check is this old (0: only
    #: on ``--run-now --verify``)
    verify_every_days: int = Field(7, ge=0, le=366)

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(
                _(
                    "no file at {path}: give the PEM file of the CA that issued the national API's "
                    "certificate, or remove the setting to use the system's CAs"
                ).format(path=path)
            )
        return path

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.scheme != "https" and not is_loopback_host(url.host or ""):
            raise ValueError(_("must be https:// (plain http:// is only allowed to a loopback address)"))
        return url


class GuardSettings(_Section):
    """The safety guard's limits (``core.guard``): removals scale with the school, updates exclude the
    summer rollover."""

    max_removal_share: float = Field(0.10, ge=0, le=1)
    min_removals: int = Field(3, ge=0)
    max_update_share: float = Field(0.75, ge=0, le=1)
    min_updates: int = Field(5, ge=0)


class BatchSettings(_Section):
    max_operations: int = Field(2000, ge=1, le=5000)
    max_bytes: int = Field(4_000_000, ge=10_000, le=8_000_000)
    gzip_level: int = Field(6, ge=0, le=9)


class Term(_Section):
    """One block of teaching between two holidays: its first and last day (inclusive).

    In Wales an academic year has six: autumn, spring and summer terms, each split by a half-term
    holiday. Days between two terms are holidays; the holiday that contains August is the summer.
    """

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.end < self.start:
            raise ValueError(
                _("term ends ({end}) before it starts ({start})").format(
                    end=i18n.format_date(self.end), start=i18n.format_date(self.start)
                )
            )
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ScheduleRule = Literal[
    "august_30",
    "day_before_term",
    "first_week_daily",
    "term_nightly",
    "summer_weekly",
    "holiday_weekly",
]


class ScheduleSettings(_Section):
    """When the daemon runs: the academic-calendar policy of ``hwb_client.core.calendar``.

    Weekly through the summer holidays (``summer_weekday``), on ``end_of_year_date`` (30 August), on
    the day before each term starts, daily in the first ``first_week_days`` school days of the
    academic year, nightly in term (``in_term_weekdays``) and weekly in shorter holidays
    (``holiday_weekday``); all at ``run_time`` (or ``rule_times[rule]``) in ``timezone``.
    """

    timezone: str = "Europe/London"
    run_time: dt.time = dt.time(2, 0)
    rule_times: dict[ScheduleRule, dt.time] = Field(
        default_factory=dict,
        description="per-rule run time overriding run_time, e.g. { day_before_term = 18:00:00 }",
    )
    summer_weekday: Weekday = "mon"
    first_week_days: int = Field(5, ge=1, le=10)
    in_term_weekdays: list[str] = Field(default_factory=lambda: list(_WEEKDAYS), min_length=1)
    holiday_weekday: Weekday = "mon"
    end_of_year_date: str = "08-30"
    jitter_seconds: int = Field(300, ge=0, le=3600)
    max_concurrent_schools: int = Field(2, ge=1, le=32)
    max_age_hours: float = Field(192, gt=0)
    overdue_grace_hours: float = Field(
        6, ge=0, le=168, description="how long after a scheduled run its success may still be missing"
    )
    catch_up_on_start: bool = True
    terms: list[Term] = Field(default_factory=list)
    test_interval_seconds: int | None = Field(
        None,
        ge=1,
        le=86400,
        description="FOR REHEARSALS AND TESTS ONLY: ignore the calendar and run every N seconds",
    )

    @field_validator("in_term_weekdays")
    @classmethod
    def _weekdays(cls, days: list[str]) -> list[str]:
        bad = [d for d in days if d not in _WEEKDAYS]
        if bad:
            text = ngettext(
                "unknown weekday {bad}: use {known}", "unknown weekdays {bad}: use {known}", len(bad)
            )
            raise ValueError(text.format(bad=bad, known=", ".join(_WEEKDAYS)))
        return days

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                _("unknown time zone {name}: use an IANA name such as Europe/London").format(name=repr(name))
            ) from None
        return name

    @field_validator("end_of_year_date")
    @classmethod
    def _month_day(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{2})-(\d{2})", value)
        try:
            if not match:
                raise ValueError
            dt.date(2024, int(match[1]), int(match[2]))  # a leap year accepts 02-29
        except ValueError:
            raise ValueError(
                _("{value} is not a month-day: write MM-DD, e.g. 08-30").format(value=repr(value))
            ) from None
        return value

    @field_validator("terms")
    @classmethod
    def _no_overlap(cls, terms: list[Term]) -> list[Term]:
        ordered = sorted(terms, key=lambda t: t.start)
        for before, after in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise ValueError(
                    _(
                        "terms {first} and {second} overlap; "
                        "each [[schedule.terms]] entry is one block of teaching between two holidays"
                    ).format(first=f"{before.start}..{before.end}", second=f"{after.start}..{after.end}")
                )
        return ordered


class SchoolSettings(_Section):
    dfes_number: str
    name: str = ""
    odbc: SecretStr = Field(description="ODBC connection string or DSN=NAME")
    odbc_password_env: str | None = None
    odbc_password_file: Path | None = None
    #: a systemd credential (LoadCredential=) holding the password; the recommended way under systemd
    odbc_password_credential: str | None = None
    profile: str = "reference"
    signing_key_file: Path | None = None
    enabled: bool = True

    @field_validator("dfes_number")
    @classmethod
    def _dfes(cls, value: str) -> str:
        if not DFES_PATTERN.match(value):
            raise ValueError(
                _("must be the school's 7-digit DfES number: a Welsh LA number (660-681) then 4 digits")
            )
        return value

    def connection_string(self) -> str:
        """The ODBC connection string with the password added from the environment or secrets file."""
        conn = self.odbc.get_secret_value()
        password: str | None = None
        credential = credential_path(self.odbc_password_credential or "")
        if credential is not None:
            password = credential.read_text(encoding="utf-8").strip()
        elif self.odbc_password_credential and not (self.odbc_password_env or self.odbc_password_file):
            raise ConfigError(
                N_("schools[{dfes}].odbc_password_credential: {fix}"),
                dfes=self.dfes_number,
                fix=missing_credential_fix(
                    self.odbc_password_credential,
                    "/etc/hwb-client/credentials/" + self.odbc_password_credential,
                ),
            )
        elif self.odbc_password_env:
            password = os.environ.get(self.odbc_password_env)
            if password is None:
                raise ConfigError(
                    N_(
                        "schools[{dfes}].odbc_password_env: the environment variable {variable} is not set; "
                        "set it for the service or use odbc_password_file"
                    ),
                    dfes=self.dfes_number,
                    variable=self.odbc_password_env,
                )
        elif self.odbc_password_file:
            try:
                password = self.odbc_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    N_(
                        "schools[{dfes}].odbc_password_file: cannot read {path} ({reason}); "
                        "check the path and that the service user may read it"
                    ),
                    dfes=self.dfes_number,
                    path=self.odbc_password_file,
                    reason=exc.strerror,
                ) from exc
        if password is not None:
            conn = conn.rstrip(";") + ";PWD={" + password.replace("}", "}}") + "}"
        return conn


class AlertSettings(_Section):
    """E-mail alerts (``hwb_client.operator.alerts``): to the LA's own SMTP relay, once per change of state."""

    smtp_host: str | None = Field(None, description="the relay; no alerts when unset")
    smtp_port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ca_bundle: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    mail_from: str = "hwb-client@localhost"
    mail_to: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _recipients(self) -> AlertSettings:
        if self.smtp_host and not self.mail_to:
            raise ValueError(_("smtp_host is set but mail_to lists nobody; add the LA's support address"))
        if self.username and not (self.password_file or self.password_env):
            raise ValueError(
                _("username is set: give password_file or password_env (never the password inline)")
            )
        return self


class MonitoringSettings(_Section):
    """Files for monitoring (``hwb_client.operator.monitoring``), written after every run."""

    textfile_dir: Path | None = Field(None, description="node_exporter textfile collector directory")
    status_file: Path | None = Field(None, description="default: STATE_DIR/status.json")
    status_file_group: str | None = Field(None, description="group that may read the status file")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HWB_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    client: ClientSettings = ClientSettings()
    api: ApiSettings = ApiSettings()
    guard: GuardSettings = GuardSettings()
    batches: BatchSettings = BatchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    alerts: AlertSettings = AlertSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    schools: Annotated[list[SchoolSettings], Field(min_length=1)]
    config_path: Path | None = None

    @field_validator("schools")
    @classmethod
    def _unique_schools(cls, schools: list[SchoolSettings]) -> list[SchoolSettings]:
        seen: set[str] = set()
        for school in schools:
            if school.dfes_number in seen:
                raise ValueError(
                    _("school {dfes} is listed twice; keep one [[schools]] entry").format(
                        dfes=school.dfes_number
                    )
                )
            seen.add(school.dfes_number)
        return schools

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first (it overrides), then what the file said (passed as init values).
        return (env_settings, init_settings)

    def school(self, dfes_number: str) -> SchoolSettings:
        for school in self.schools:
            if school.dfes_number == dfes_number:
                return school
        raise ConfigError(
            N_("--school {dfes}: no such school in {path}; configured: {configured}"),
            dfes=dfes_number,
            path=self.config_path,
            configured=", ".join(s.dfes_number for s in self.schools),
        )

    def signing_key_path(self, school: SchoolSettings) -> Path:
        return school.signing_key_file or self.client.state_dir / "keys" / f"{school.dfes_number}.pem"


def _describe(error: dict[str, Any], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = raw
    for loc in error["loc"]:
        if isinstance(loc, int) and isinstance(node, list) and loc < len(node):
            item = node[loc]
            label = item.get("dfes_number") if isinstance(item, dict) else None
            parts[-1] = f"{parts[-1]}[{label or loc}]" if parts else f"[{loc}]"
            node = item
            continue
        parts.append(str(loc))
        node = node.get(loc) if isinstance(node, dict) else None
    where = ".".join(parts) or _("(top level)")
    return _("{setting}: {problem}").format(setting=where, problem=_problem(error))


#: pydantic's own checks, by error type: its English sentences (the msgids), translated here (``ctx``
#: fills the placeholders); a type not listed keeps pydantic's English. Our validators' sentences arrive
#: already translated.
PYDANTIC_PROBLEMS = {
    "extra_forbidden": N_("unknown setting; check its spelling against config/hwb-client.example.toml"),
    "missing": N_("required setting is missing"),
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "literal_error": N_("Input should be {expected}"),
    "int_type": N_("Input should be a valid integer"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_type": N_("Input should be a valid number"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "bool_type": N_("Input should be a valid boolean"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "string_type": N_("Input should be a valid string"),
    "list_type": N_("Input should be a valid list"),
    "dict_type": N_("Input should be a valid dictionary"),
    "url_parsing": N_("Input should be a valid URL, {error}"),
    "url_scheme": N_("URL scheme should be {expected_schemes}"),
    "date_type": N_("Input should be a valid date"),
    "date_parsing": N_("Input should be a valid date in the format YYYY-MM-DD, {error}"),
    "date_from_datetime_parsing": N_("Input should be a valid date or datetime, {error}"),
    "time_type": N_("Input should be a valid time"),
    "time_parsing": N_("Input should be in a valid time format, {error}"),
}


def _ctx_text(value: object) -> str:
    """A limit as pydantic writes it: ``1``, not ``1.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _problem(error: dict[str, Any]) -> str:
    """What is wrong with one setting, in the active language."""
    kind = error["type"]
    ctx = {name: _ctx_text(value) for name, value in (error.get("ctx") or {}).items()}
    for name in ("expected", "expected_schemes"):  # "'en' or 'cy'"
        if name in ctx:
            ctx[name] = ctx[name].replace(" or ", " " + _("or") + " ")
    if kind == "too_short" and {"min_length", "actual_length", "field_type"} <= ctx.keys():
        count = int(ctx["min_length"])
        text = ngettext(
            "{field_type} should have at least {min_length} item after validation, not {actual_length}",
            "{field_type} should have at least {min_length} items after validation, not {actual_length}",
            count,
        )
        return text.format(**ctx)
    template = PYDANTIC_PROBLEMS.get(kind)
    if template is None:
        return str(error["msg"]).removeprefix("Value error, ")  # our validators' (already translated)
    try:
        return _(template).format(**ctx)
    except (KeyError, IndexError):  # a pydantic version with other context: its own sentence
        return str(error["msg"])


def _follow_configured_language(raw: dict[str, Any]) -> None:
    """Speak ``client.language`` (file or ``HWB_CLIENT__LANGUAGE``) while checking the rest of the file,
    so that an error in it is already in that language."""
    client = raw.get("client")
    configured = os.environ.get("HWB_CLIENT__LANGUAGE") or (
        client.get("language") if isinstance(client, dict) else None
    )
    language = i18n.normalise(configured) if isinstance(configured, str) else None
    if language is not None:
        i18n.activate(language)


def load_settings(path: Path | None = None, *, follow_language: bool = False) -> Settings:
    """Read and check the configuration; raise ``ConfigError`` naming every bad setting.

    With ``follow_language`` (no ``--lang`` given), a ``client.language`` the file sets is the language
    of the process from then on, and of the errors about the rest of the file."""
    env_path = os.environ.get("HWB_CONFIG")
    config_path = path or (Path(env_path) if env_path else default_config_path())
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            N_(
                "configuration file {path} not found; copy config/hwb-client.example.toml there "
                "or pass --config PATH"
            ),
            path=config_path,
        ) from exc
    except OSError as exc:
        raise ConfigError(
            N_("cannot read configuration file {path}: {reason}"), path=config_path, reason=exc.strerror
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(N_("{path} is not valid TOML: {reason}"), path=config_path, reason=exc) from exc
    if follow_language:
        _follow_configured_language(raw)
    raw.setdefault("config_path", str(config_path))
    try:
        return Settings(**raw)
    except ValidationError as exc:
        lines = [_describe(dict(err), raw) for err in exc.errors()]
        heading = ngettext("{path} has {count} problem:", "{path} has {count} problems:", len(lines))
        # The validators spoke the active language already: this message is translated and filled in.
        text = heading.format(path=config_path, count=len(lines)) + "\n  " + "\n  ".join(lines)
        raise ConfigError(text) from None

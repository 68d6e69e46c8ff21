"""``check-config``: is this server ready to run? Everything a run needs, checked without sending anything.

The national key file, each school's profile, password, signing key (enrolled or not) and ODBC
driver or DSN (resolvable through unixODBC), the state and log directories (writable by this user),
and the term dates. With ``connect``, also each MIS connection (each profile query counted, no rows
fetched) and the national API's ``/healthz``. Each problem is one line naming the school or setting
and the fix; ``cli.py`` prints them and exits 3 if there is any.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hwb_client import i18n
from hwb_client.errors import HwbClientError
from hwb_client.i18n import _, ngettext
from hwb_client.settings import SchoolSettings, Settings


@dataclass(frozen=True)
class Report:
    problems: list[str]
    notes: list[str]


def _first_line(exc: HwbClientError) -> str:
    return " ".join(exc.message.split())


def _writable_dir(path: Path, setting: str) -> Iterator[str]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # a missing directory is made by the first run if its parent allows it
    if not probe.is_dir():
        yield _("{setting}: {path} is not a directory; give a directory path").format(
            setting=setting, path=probe
        )
    elif not os.access(probe, os.W_OK | os.X_OK):
        yield _(
            "{setting}: {path} is not writable by this user (uid {uid}); "
            "make it owned by the service user (Debian: hwb-client:hwb-client 0750, made by the unit's "
            "StateDirectory=/LogsDirectory=) or run as that user"
        ).format(setting=setting, path=path, uid=os.getuid() if hasattr(os, "getuid") else "?")


def _national_key(settings: Settings, today: dt.date, notes: list[str]) -> Iterator[str]:
    from hwb_client.adapters.national_key import describe, load_national_key
    from hwb_client.platform.files import world_accessible

    path = settings.client.national_key_file
    if path.is_file() and world_accessible(path):  # reported, not fixed: check-config changes nothing
        yield _(
            "client.national_key_file: {path} is readable by every user on this server; restrict it "
            "(chmod o-rwx {path}; owner root, group of the service user, mode 0640)"
        ).format(path=path)
        return
    try:
        load_national_key(path, today)
        notes += describe(path, today)  # the key ids in use today, a changeover due
    except HwbClientError as exc:
        yield _first_line(exc)


def _odbc_target(conn: str) -> tuple[str, str] | None:
    """``("dsn", NAME)`` or ``("driver", NAME)`` from a connection string; None when it names neither."""
    for key in ("DSN", "Driver"):
        match = re.search(rf"(?:^|;)\s*{key}\s*=\s*(\{{[^}}]*\}}|[^;]*)", conn, re.IGNORECASE)
        if match:
            return key.lower(), match[1].strip().strip("{}")
    return None


def _odbc(school: SchoolSettings, conn: str) -> Iterator[str]:
    import pyodbc

    where = f"schools[{school.dfes_number}].odbc"
    target = _odbc_target(conn)
    if target is None:
        yield _(
            "{where}: names neither DSN= nor Driver=; write DSN=NAME (odbcinst -q -s) or Driver=NAME "
            "(odbcinst -q -d)"
        ).format(where=where)
        return
    kind, name = target
    if kind == "dsn" and name not in pyodbc.dataSources():
        known = ", ".join(sorted(pyodbc.dataSources())) or _("none")
        yield _(
            "{where}: the ODBC data source {name} does not exist (defined: {known}); add it to "
            "/etc/odbc.ini (odbcinst -q -s lists them) or use Driver=...;Server=... instead"
        ).format(where=where, name=repr(name), known=known)
    elif kind == "driver" and name not in pyodbc.drivers():
        known = ", ".join(pyodbc.drivers()) or _("none")
        yield _(
            "{where}: the ODBC driver {name} is not installed (installed: {known}); install its "
            "package (odbcinst -q -d lists them) or correct the name"
        ).format(where=where, name=repr(name), known=known)


def _signing_key(settings: Settings, school: SchoolSettings) -> Iterator[str]:
    from hwb_client.adapters.signing import load_signing_key

    path = settings.signing_key_path(school)
    setting = f"schools[{school.dfes_number}].signing_key_file"
    if not path.exists():
        yield _(
            "{setting}: school {dfes} is not enrolled (no signing key at {path}); run "
            "`hwb-client enrol --school {dfes} --code CODE` with its one-time code"
        ).format(setting=setting, dfes=school.dfes_number, path=path)
        return
    try:
        load_signing_key(path)
    except HwbClientError as exc:
        yield f"{setting}: {_first_line(exc)}"


def _connect(school: SchoolSettings, conn: str, base: Path | None) -> Iterator[str]:
    from hwb_client.adapters.odbc_source import KINDS, MisSource, load_profile

    profile = load_profile(school.profile, base_dir=base)
    try:
        source = MisSource.connect(conn, school.dfes_number, profile, login_timeout=15)
    except HwbClientError as exc:
        yield f"schools[{school.dfes_number}].odbc: {_first_line(exc)}"
        return
    try:
        for kind in KINDS:
            query = profile.query(kind)
            params = [school.dfes_number for _param in query.params]
            try:
                source.connection.execute(f"SELECT COUNT(*) FROM ({query.sql}) AS counted", params).fetchone()
            except Exception as exc:  # any driver error: report it, go on with the next query
                detail = " ".join(str(exc).split())[:200]
                yield _(
                    "schools[{dfes}].profile: the {kind} query fails on this MIS ({detail}); "
                    "fix the query profile or the MIS permissions"
                ).format(dfes=school.dfes_number, kind=kind, detail=detail)
    finally:
        source.close()


def _school(settings: Settings, school: SchoolSettings, *, connect: bool) -> Iterator[str]:
    from hwb_client.adapters.odbc_source import load_profile

    base = settings.config_path.parent if settings.config_path else None
    try:
        load_profile(school.profile, base_dir=base)
        conn = school.connection_string()
    except HwbClientError as exc:
        yield _first_line(exc)
        return
    yield from _signing_key(settings, school)
    odbc = list(_odbc(school, conn))
    yield from odbc
    if connect and not odbc:
        yield from _connect(school, conn, base)


def _terms(settings: Settings, today: dt.date) -> tuple[list[str], list[str]]:
    from hwb_client.core import calendar

    schedule = settings.schedule
    if schedule.test_interval_seconds is not None:
        return [], [_("schedule.test_interval_seconds is set: rehearsal mode, the calendar is ignored")]
    try:
        cal = calendar.academic_calendar(schedule)
    except HwbClientError as exc:
        return [_first_line(exc)], []
    if cal.uses_defaults:
        return [
            _(
                "schedule.terms: no term dates configured (the built-in Welsh defaults are not your LA's); "
                "add your LA's [[schedule.terms]] entries"
            )
        ], []
    if cal.last_day < today:
        return [
            _(
                "schedule.terms: the term dates ended on {last_day}; add the next academic year's "
                "[[schedule.terms]]"
            ).format(last_day=i18n.format_date(cal.last_day))
        ], []
    days = (cal.last_day - today).days
    note = ngettext(
        "term dates until {last_day} ({days} day)", "term dates until {last_day} ({days} days)", days
    )
    return [], [note.format(last_day=i18n.format_date(cal.last_day), days=days)]


def _api_health(settings: Settings) -> Iterator[str]:
    import requests

    url = str(settings.api.base_url).rstrip("/") + "/healthz"
    try:
        response = requests.get(
            url,
            timeout=(settings.api.connect_timeout_seconds, settings.api.read_timeout_seconds),
            verify=str(settings.api.ca_bundle) if settings.api.ca_bundle else True,
            proxies={"https": settings.api.proxy, "http": settings.api.proxy} if settings.api.proxy else None,
        )
    except requests.RequestException as exc:
        yield _(
            "api.base_url: cannot reach {url} ({error}); check the URL, api.proxy and the firewall"
        ).format(url=url, error=type(exc).__name__)
        return
    if response.status_code != 200:
        yield _("api.base_url: {url} answered HTTP {status}; check the URL (or try again later)").format(
            url=url, status=response.status_code
        )


def check(settings: Settings, *, connect: bool = False, today: dt.date) -> Report:
    """Every problem a run would meet, one line each, and notes for what is fine but worth knowing."""
    key_notes: list[str] = []
    problems = list(_national_key(settings, today, key_notes))
    problems += _writable_dir(settings.client.state_dir, "client.state_dir")
    if settings.client.log_file is not None:
        problems += _writable_dir(settings.client.log_file.parent, "client.log_file")
    for school in settings.schools:
        if school.enabled:
            problems += _school(settings, school, connect=connect)
    term_problems, notes = _terms(settings, today)
    problems += term_problems
    notes = key_notes + notes
    if connect:
        problems += _api_health(settings)
    return Report(problems, notes)

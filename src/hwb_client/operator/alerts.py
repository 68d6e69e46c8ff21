"""E-mail alerts to the LA's own SMTP relay when a school's run fails, is held (blocked) or is overdue.

One e-mail per change of state, not one per run: the last state alerted for each school is remembered
in ``STATE_DIR/alerts.json``, and is updated only once the relay has taken the message, so an alert the
relay refused (or a relay that is down) is tried again after the next run. The run itself is never
affected. The body is plain text without links and without personal data: the school, the reason (the
run's message, already free of personal data, with any address removed) and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import smtplib
import ssl
import threading
from email.message import EmailMessage
from typing import Any

import structlog

from hwb_client import i18n
from hwb_client.i18n import N_, _
from hwb_client.logs import redact
from hwb_client.operator.status import school_status
from hwb_client.platform.files import atomic_write
from hwb_client.run_result import report_message
from hwb_client.settings import AlertSettings, SchoolSettings, Settings

log = structlog.get_logger("hwb_client.alerts")
_LOCK = threading.Lock()
_ADDRESS = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)

FIX = {
    "failed": N_(
        "Check the reason above, fix the MIS connection or the national API access, then run "
        "'hwb-client --run-now --school {dfes}' on the server. What was not acknowledged is resent."
    ),
    "blocked": N_(
        "The safety guard held the run: nothing was sent. Check in the MIS that the records really "
        "left (end-of-year procedures finished?), then run 'hwb-client --run-now --school {dfes} "
        "--allow-mass-removal' once."
    ),
    "overdue": N_(
        "The client has not run successfully as the schedule requires. Check that the service is "
        "running ('systemctl status hwb-client') and 'hwb-client status --school {dfes}'."
    ),
    "ok": N_("Nothing to do: the school's runs succeed again."),
}
TITLE = {
    "failed": N_("run failed"),
    "blocked": N_("run held by the safety guard"),
    "overdue": N_("overdue"),
    "ok": N_("back to normal"),
}


def alert_state(entry: dict[str, Any]) -> tuple[str, str]:
    """The state an alert is about (``ok``, ``failed``, ``blocked``, ``overdue``) and its reason, in the
    language of the process (a run's message is said again from its report's fields)."""
    last = entry.get("last_run") or {}
    if last.get("outcome") in {"failed", "blocked"}:
        reason = report_message(str(entry.get("dfes_number") or ""), last) if last.get("message") else ""
        return str(last["outcome"]), reason
    if (entry.get("schedule") or {}).get("overdue") and entry.get("last_run") is not None:
        when = entry.get("last_success_at") or _("never")
        return "overdue", _("the last successful run was {when}").format(when=when)
    return "ok", ""


def _clean(text: str) -> str:
    scrubbed = str(redact(None, "", {"reason": text})["reason"])
    return _ADDRESS.sub(_("[address removed]"), scrubbed)[:1000]


def compose(
    alerts: AlertSettings, school: SchoolSettings, state: str, reason: str, now: dt.datetime
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = alerts.mail_from
    message["To"] = ", ".join(alerts.mail_to)
    title = _(TITLE[state])
    message["Subject"] = _("hwb-client: school {dfes} {title}").format(dfes=school.dfes_number, title=title)
    message["Date"] = now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    lines = [
        _("School: {dfes} {name}").format(dfes=school.dfes_number, name=school.name).rstrip(),
        _("State: {title} (at {when})").format(title=title, when=now.isoformat(timespec="minutes")),
    ]
    if reason:
        lines.append(_("Reason: {reason}").format(reason=_clean(reason)))
    lines += ["", _("What to do: {fix}").format(fix=_(FIX[state]).format(dfes=school.dfes_number)), ""]
    lines.append(_("This message is sent once when the state changes; it holds no personal data."))
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = i18n.language()  # after set_content, which clears Content-* headers
    return message


def _password(alerts: AlertSettings) -> str | None:
    if alerts.password_env:
        return os.environ.get(alerts.password_env)
    if alerts.password_file:
        return alerts.password_file.read_text(encoding="utf-8").strip()
    return None


def send(alerts: AlertSettings, message: EmailMessage) -> None:
    """Deliver through the relay (STARTTLS and login when configured); raises on any failure."""
    assert alerts.smtp_host is not None
    with smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=alerts.timeout_seconds) as smtp:
        smtp.ehlo()
        if alerts.starttls:
            context = ssl.create_default_context(cafile=str(alerts.ca_bundle) if alerts.ca_bundle else None)
            smtp.starttls(context=context)
            smtp.ehlo()
        if alerts.username:
            smtp.login(alerts.username, _password(alerts) or "")
        smtp.send_message(message)


def _memory_path(settings: Settings) -> Any:
    return settings.client.state_dir / "alerts.json"


def _remembered(settings: Settings) -> dict[str, Any]:
    try:
        value = json.loads(_memory_path(settings).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def check_school(settings: Settings, school: SchoolSettings, now: dt.datetime | None = None) -> str | None:
    """Alert when the school's state changed since the last alert; returns the state alerted, if any.
    Never raises: a relay that is down is logged and tried again next time."""
    alerts = settings.alerts
    if not alerts.smtp_host:
        return None
    now = now or dt.datetime.now(dt.UTC)
    try:
        state, reason = alert_state(school_status(settings, school, now))
        with _LOCK:
            memory = _remembered(settings)
            if memory.get(school.dfes_number, {}).get("state", "ok") == state:
                return None
            send(alerts, compose(alerts, school, state, reason, now))
            memory[school.dfes_number] = {"state": state, "alerted_at": now.isoformat(timespec="seconds")}
            atomic_write(_memory_path(settings), json.dumps(memory, indent=1).encode(), mode=0o600)
    except Exception as exc:  # the run must not be affected: say so, and try again after the next run
        log.error(
            "alert_not_sent", dfes=school.dfes_number, error=f"{type(exc).__name__}: {_clean(str(exc))}"
        )
        return None
    log.info("alert_sent", dfes=school.dfes_number, state=state)
    return state


def check_all(settings: Settings, now: dt.datetime | None = None) -> None:
    """Every enabled school (the daemon calls this once per round, to catch overdue schools)."""
    for school in settings.schools:
        if school.enabled:
            check_school(settings, school, now)

"""What happens after each live run of a school: the monitoring files, then the alerts. Never raises."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hwb_client.settings import SchoolSettings, Settings


def after_run(
    settings: Settings, school: SchoolSettings, result: Any, now: dt.datetime | None = None
) -> None:
    from hwb_client.operator import alerts, monitoring

    monitoring.record_run(settings, school, now)
    alerts.check_school(settings, school, now)

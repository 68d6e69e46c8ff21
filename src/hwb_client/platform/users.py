"""Who is running this: the OS user name recorded with a guard override (never a person's MIS data)."""

from __future__ import annotations

import getpass


def os_user() -> str:
    """The login name of this process's user, or ``unknown`` when the OS has none for its uid."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container, a service without a home)
        return "unknown"

"""Secrets that must never be printed, logged, stored or reported: credentials inside URLs.

``api.proxy = "http://user:password@proxy:3128"`` is a legitimate setting, but any error that quotes the
URL (a bad port, a refused tunnel) would carry the password to the screen, the log, the state database's
run message and the run report sent upstream. ``without_credentials`` replaces the user-info part of
every URL in a text by ``[redacted]``; the error tree applies it to every message and the log pipeline to
every value.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED_USERINFO: Final = "[redacted]"
# scheme://userinfo@ where userinfo is anything up to the first @ that holds no slash or white space
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@]+@")


def without_credentials(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``[redacted]``."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED_USERINFO}@", text)

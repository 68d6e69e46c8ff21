"""A tiny ``sd_notify``: tell systemd the daemon is ready, stopping, or what it is doing.

systemd (``Type=notify``) passes the path of an ``AF_UNIX`` datagram socket in ``NOTIFY_SOCKET``; a
leading ``@`` means the Linux abstract namespace. Without it (not under systemd, or on Windows) every
call is a no-op returning ``False``. No dependency: this is the whole protocol we need.
"""

from __future__ import annotations

import os
import socket


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``READY=1``, ``STOPPING=1``, ``STATUS=...`` lines; ``True`` if a socket was there to take them.

    Never raises: a lost status message must not stop the daemon.
    """
    path = (environ if environ is not None else dict(os.environ)).get("NOTIFY_SOCKET", "")
    if not path or not hasattr(socket, "AF_UNIX"):
        return False
    if path[0] not in ("/", "@"):
        return False
    address = "\0" + path[1:] if path[0] == "@" else path
    message = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError:
        return False
    return True


def ready(status: str = "") -> bool:
    """``READY=1`` (and a status line): the daemon has started."""
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping(status: str = "") -> bool:
    """``STOPPING=1``: the daemon is shutting down cleanly."""
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    """``STATUS=...``: one line shown by ``systemctl status``."""
    return notify(f"STATUS={text}")

"""systemd credentials (``LoadCredential=`` in the unit): files in ``$CREDENTIALS_DIRECTORY``.

systemd copies each credential into a private directory only the service can read and names it in
``$CREDENTIALS_DIRECTORY``; ``systemctl show`` never prints them (unlike ``Environment=``).
"""

from __future__ import annotations

import os
from pathlib import Path


def credential_path(name: str) -> Path | None:
    """The file of credential ``name`` when the service manager passed one, else None."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory or not name or "/" in name or name in {".", ".."}:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def missing_credential_fix(name: str, source: str) -> str:
    """The sentence that tells an administrator how to hand the service credential ``name``."""
    where = os.environ.get("CREDENTIALS_DIRECTORY")
    found = (
        f"$CREDENTIALS_DIRECTORY ({where}) has no {name}" if where else "$CREDENTIALS_DIRECTORY is not set"
    )
    return (
        f"{found}; add LoadCredential={name}:{source} to the unit (systemctl edit hwb-client), "
        "or set the file or environment setting as well for runs by hand"
    )

"""systemd credentials (``LoadCredential=`` in the unit): files in ``$CREDENTIALS_DIRECTORY``.

systemd copies each credential into a private directory only the service can read and names it in
``$CREDENTIALS_DIRECTORY``; ``systemctl show`` never prints them (unlike ``Environment=``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hwb_client.errors import Phrase
from hwb_client.i18n import N_


def credential_path(name: str) -> Path | None:
    """The file of credential ``name`` when the service manager passed one, else None."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory or not name or "/" in name or name in {".", ".."}:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def missing_credential_fix(name: str, source: str) -> Phrase:
    """The sentence that tells an administrator how to hand the service credential ``name`` (its English
    text as a string; put in an error's params, it is translated with the error)."""
    where = os.environ.get("CREDENTIALS_DIRECTORY")
    if where:
        return Phrase(
            N_(
                "$CREDENTIALS_DIRECTORY ({where}) has no {name}; add LoadCredential={name}:{source} to the "
                "unit (systemctl edit hwb-client), or set the file or environment setting as well for runs "
                "by hand"
            ),
            where=where,
            name=name,
            source=source,
        )
    return Phrase(
        N_(
            "$CREDENTIALS_DIRECTORY is not set; add LoadCredential={name}:{source} to the unit (systemctl "
            "edit hwb-client), or set the file or environment setting as well for runs by hand"
        ),
        name=name,
        source=source,
    )

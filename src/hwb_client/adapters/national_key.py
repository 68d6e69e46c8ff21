"""The national UPN hashing key: a JSON file ``{"key_id": "...", "key": "<base64 of 32+ bytes>"}``.

It is issued nationally and is the same for every school, so that learners match across schools. It is
a secret: owner root and the service user's group (mode 0640) is right; if every user may read it, the
client removes that access with a warning, or refuses to start when it may not.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

import structlog

from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.errors import KeyFileError
from hwb_client.platform.files import world_accessible, write_secret_file

log = structlog.get_logger("hwb_client.keys")


def load_national_key(path: Path) -> UpnHasher:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(
            f"client.national_key_file: {path} does not exist; install the national UPN hashing key "
            "issued for Hwb provisioning there (owner root, group of the service user, mode 0640; Debian: "
            f"install -o root -g hwb-client -m 0640 KEYFILE {path})"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"client.national_key_file: cannot read {path} ({exc.strerror})") from None
    if world_accessible(path):
        try:
            path.chmod(path.stat().st_mode & 0o770)
        except OSError:
            raise KeyFileError(
                f"client.national_key_file: {path} is readable by every user on this server; "
                f"restrict it (chmod o-rwx {path}; owner root, group of the service user, mode 0640)"
            ) from None
        log.warning("key_file_permissions_fixed", file=str(path), removed="other users' access")
    try:
        data = json.loads(text)
        key = base64.b64decode(data["key"], validate=True)
        hasher = UpnHasher(str(data["key_id"]), key)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyFileError(
            f"client.national_key_file: {path} is not a valid key file ({type(exc).__name__}); it must be "
            'JSON {"key_id": "...", "key": "<base64 of at least 32 bytes>"}'
        ) from None
    return hasher


def write_national_key(path: Path, key_id: str, key: bytes | None = None) -> None:
    """Create a national key file (for the sandbox, the demo and tests; production keys are issued)."""
    secret = key if key is not None else os.urandom(32)
    body = json.dumps({"key_id": key_id, "key": base64.b64encode(secret).decode()})
    write_secret_file(path, body.encode())

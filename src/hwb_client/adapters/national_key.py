"""The national UPN hashing key file, as distributed nationally.

One key (the 0.1.0 form)::

    {"key_id": "nat-2025", "key": "<base64 of 32+ bytes>"}

or, for a rotation, the keys with the days each is in use (the changeover window is from the new key's
``use_from`` to the old key's ``retire_after``, both inclusive; see ``core.key_rotation``)::

    {"keys": [
        {"key_id": "nat-2025", "key": "...", "retire_after": "2026-10-31"},
        {"key_id": "nat-2026", "key": "...", "use_from": "2026-09-01"}]}

It is issued nationally and is the same for every school, so that learners match across schools. It is
a secret: owner root and the service user's group (mode 0640) is right; if every user may read it, the
client removes that access with a warning, or refuses to start when it may not.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from hwb_client.core import key_rotation
from hwb_client.core.key_rotation import KeyPeriod, KeysInUse
from hwb_client.core.pseudonymise import UpnHasher
from hwb_client.errors import KeyFileError
from hwb_client.i18n import N_
from hwb_client.platform.filesystem import remove_world_access, world_accessible, write_secret_file

log = structlog.get_logger("hwb_client.keys")


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(
            N_(
                "client.national_key_file: {path} does not exist; install the national UPN hashing key "
                "issued for Hwb provisioning there (owner root, group of the service user, mode 0640; "
                "Debian: install -o root -g hwb-client -m 0640 KEYFILE {path})"
            ),
            path=path,
        ) from None
    except OSError as exc:
        raise KeyFileError(
            N_("client.national_key_file: cannot read {path} ({reason})"), path=path, reason=exc.strerror
        ) from None
    if world_accessible(path):
        try:
            remove_world_access(path)
        except OSError:
            raise KeyFileError(
                N_(
                    "client.national_key_file: {path} is readable by every user on this server; "
                    "restrict it (chmod o-rwx {path}; owner root, group of the service user, mode 0640)"
                ),
                path=path,
            ) from None
        log.warning("key_file_permissions_fixed", file=str(path), removed="other users' access")
    return text


def _date(entry: dict[str, Any], name: str) -> dt.date | None:
    value = entry.get(name)
    return None if value is None else dt.date.fromisoformat(str(value))


def _period(entry: dict[str, Any]) -> KeyPeriod:
    key = base64.b64decode(entry["key"], validate=True)
    return KeyPeriod(
        UpnHasher(str(entry["key_id"]), key), _date(entry, "use_from"), _date(entry, "retire_after")
    )


def load_national_keys(path: Path) -> list[KeyPeriod]:
    """Every key in the file with its days of use (``KeyFileError`` naming the file and the format)."""
    text = _read(path)
    try:
        data = json.loads(text)
        entries = data["keys"] if isinstance(data, dict) and "keys" in data else [data]
        periods = [_period(entry) for entry in entries]
        if not periods or len({p.key_id for p in periods}) != len(periods):
            raise ValueError("key ids must be present and distinct")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyFileError(
            N_(
                "client.national_key_file: {path} is not a valid key file ({problem}); it must be "
                'JSON {{"key_id": "...", "key": "<base64 of at least 32 bytes>"}}, or {{"keys": [...]}} '
                'of such objects with optional "use_from" and "retire_after" dates (YYYY-MM-DD)'
            ),
            path=path,
            problem=type(exc).__name__,
        ) from None
    return periods


def keys_in_use(path: Path, today: dt.date) -> KeysInUse:
    """The current key and, during a changeover window, the previous one."""
    try:
        return key_rotation.keys_in_use(load_national_keys(path), today)
    except key_rotation.KeyScheduleError as exc:
        raise KeyFileError(
            N_("client.national_key_file: {path}: {problem}; install the key file issued for the changeover"),
            path=path,
            problem=exc.error,
        ) from None


def load_national_key(path: Path, today: dt.date | None = None) -> UpnHasher:
    """The key that makes ``upn_hash`` on ``today`` (today's date when not given)."""
    return keys_in_use(path, today or dt.date.today()).current


def describe(path: Path, today: dt.date) -> list[str]:
    """Lines for ``check-config``: the key ids in use on ``today`` and when a changeover is due."""
    periods = load_national_keys(path)
    try:
        return key_rotation.describe(periods, today)
    except key_rotation.KeyScheduleError as exc:
        raise KeyFileError(
            N_("client.national_key_file: {path}: {problem}"), path=path, problem=exc.error
        ) from None


def write_national_key(path: Path, key_id: str, key: bytes | None = None) -> None:
    """Create a national key file (for the sandbox, the demo and tests; production keys are issued)."""
    secret = key if key is not None else os.urandom(32)
    body = json.dumps({"key_id": key_id, "key": base64.b64encode(secret).decode()})
    write_secret_file(path, body.encode())


def write_national_keys(
    path: Path, keys: Sequence[tuple[str, bytes, dt.date | None, dt.date | None]]
) -> None:
    """Create a rotation key file: (key id, key, use_from, retire_after) per key (tests, rehearsals)."""
    entries = []
    for key_id, key, use_from, retire_after in keys:
        entry: dict[str, str] = {"key_id": key_id, "key": base64.b64encode(key).decode()}
        if use_from is not None:
            entry["use_from"] = use_from.isoformat()
        if retire_after is not None:
            entry["retire_after"] = retire_after.isoformat()
        entries.append(entry)
    write_secret_file(path, json.dumps({"keys": entries}, indent=2).encode())

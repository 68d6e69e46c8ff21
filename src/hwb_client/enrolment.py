"""A school's signing key: enrolment with a one-time code, rotation, and the signer a run uses."""

from __future__ import annotations

from pathlib import Path

from hwb_client.adapters.signing import (
    RequestSigner,
    generate_signing_key,
    key_id_for,
    load_signing_key,
    public_key_b64,
)
from hwb_client.adapters.transport import NationalApi
from hwb_client.errors import ApiError, EnrolmentError
from hwb_client.i18n import N_
from hwb_client.settings import SchoolSettings, Settings
from hwb_client.trust import pin_from_enrolment


def signer_for(settings: Settings, school: SchoolSettings) -> RequestSigner:
    """The school's request signer, from its enrolled key file (``KeyFileError`` if missing or unsafe)."""
    key = load_signing_key(settings.signing_key_path(school))
    return RequestSigner(key, key_id_for(school.dfes_number, key.public_key()))


def enrol(settings: Settings, school: SchoolSettings, code: str) -> tuple[str, Path]:
    """Create the school's key (if it has none) and register it; returns the key id and the key file."""
    path = settings.signing_key_path(school)
    if not path.exists():
        generate_signing_key(path)
    key = load_signing_key(path)
    api = NationalApi(settings.api, signer=None)
    try:
        answer = api.enrol(school.dfes_number, code.strip(), public_key_b64(key))
    except ApiError as exc:
        raise EnrolmentError(
            N_("school {dfes}: enrolment refused: {reason}"), dfes=school.dfes_number, reason=exc
        ) from None  # the reason is read in the language of whoever reads it (``exc.message``)
    finally:
        api.close()
    pin_from_enrolment(settings, school, answer)  # the national response key (protocol 2)
    return str(answer.get("key_id") or key_id_for(school.dfes_number, key.public_key())), path


def rotate_key(settings: Settings, school: SchoolSettings) -> tuple[str, str]:
    """Enrol a new key signed by the current one, switch to it, then retire the old one; returns the
    old and the new key ids."""
    path = settings.signing_key_path(school)
    old = load_signing_key(path)
    old_id = key_id_for(school.dfes_number, old.public_key())
    staged = path.with_name(path.name + ".new")
    if staged.exists():
        staged.unlink()  # a rotation cut off before: the staged key was never used
    new = generate_signing_key(staged)
    new_id = key_id_for(school.dfes_number, new.public_key())
    api = NationalApi(settings.api, signer=RequestSigner(old, old_id))
    try:
        api.add_key(school.dfes_number, public_key_b64(new))
    finally:
        api.close()
    staged.replace(path)  # from here on the client signs with the new key
    api = NationalApi(settings.api, signer=RequestSigner(new, new_id))
    try:
        api.retire_key(school.dfes_number, old_id)
    finally:
        api.close()
    return old_id, new_id

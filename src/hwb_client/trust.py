"""The school's pinned national response keys: learned at enrolment, or on a 0.1.0 school's first 0.2.0 run.

Trust argument for the upgrade path (a school enrolled by 0.1.0 has no pinned key and no new enrolment
code): the key is fetched from ``GET /v1/response-keys`` of the configured national API, over the same
channel the school's enrolment trusted (HTTPS, the server authenticated by its certificate against the
system's or ``api.ca_bundle``'s CAs; plain HTTP only to loopback), and its answer must be signed by the
key it lists. From then on it is pinned: an answer signed by any other key is refused, so a later
interception (a rogue proxy CA, a hostile server on the path) cannot fake an acknowledgement. What the
upgrade cannot protect against is an attacker already in the middle at that first fetch; the weekly
anti-entropy check against the real national API (``--verify``) would then fail loudly (exit 5), since
its answers are not signed by the pinned key. Deleting the pinned file re-learns the key the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from hwb_client.adapters.response_keys import ResponseKey, load_pinned, pin_path, save_pinned
from hwb_client.adapters.transport import NationalApi
from hwb_client.settings import SchoolSettings, Settings

log = structlog.get_logger("hwb_client.trust")


def pin_from_enrolment(settings: Settings, school: SchoolSettings, answer: Mapping[str, Any]) -> str | None:
    """Pin the response key the enrolment answer carried; return its key id (None: no key offered)."""
    key = answer.get("response_key")
    if not isinstance(key, ResponseKey):
        return None
    save_pinned(pin_path(settings.signing_key_path(school)), [key])
    log.info("response_key_pinned", dfes=school.dfes_number, key_id=key.key_id, learned_at="enrolment")
    return key.key_id


def pin_response_keys(settings: Settings, school: SchoolSettings, api: NationalApi) -> None:
    """Make ``api`` check every answer against the school's pinned keys (learned now for a school
    enrolled by 0.1.0), and keep the file up to date when a pinned key vouches for a rotated one."""
    path = pin_path(settings.signing_key_path(school))
    api.response_keys = response_keys(settings, school, api)
    api.on_keys_rotated = lambda keys: save_pinned(path, keys)


def response_keys(settings: Settings, school: SchoolSettings, api: NationalApi) -> tuple[ResponseKey, ...]:
    """The pinned keys; for a school enrolled by 0.1.0, learned now (trust on first use) and pinned."""
    path = pin_path(settings.signing_key_path(school))
    keys = load_pinned(path)
    if keys:
        return keys
    learned = api.fetch_response_keys()
    save_pinned(path, learned)
    log.warning(
        "response_key_pinned",
        dfes=school.dfes_number,
        key_id=learned[0].key_id,
        learned_at="first_use",
    )
    return learned

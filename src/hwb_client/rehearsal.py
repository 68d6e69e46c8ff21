"""Rehearsing a day (``--as-of``): a dry run anywhere; a real run only against a sandbox on loopback.

A real run dated otherwise than today would tell the national service something false, so it is sent
only where no account is real: the national API must be on this machine (a loopback address, parsed) and
must say that it is a sandbox (``GET /healthz`` answers ``"sandbox": true``). A loopback proxy to the
national service is on loopback too, which is why the second check is there.
"""

from __future__ import annotations

from hwb_client.adapters.transport import NationalApi
from hwb_client.errors import ApiError, UsageError
from hwb_client.i18n import N_
from hwb_client.settings import Settings, is_loopback_url


def require_sandbox(settings: Settings) -> None:
    """Raise ``UsageError`` (exit 2) unless the national API is a sandbox on loopback."""
    url = str(settings.api.base_url)
    if not is_loopback_url(url):
        raise UsageError(
            N_(
                "--as-of without --dry-run is only allowed against a sandbox on loopback, not {url}: "
                "add --dry-run to see what a run on that day would send"
            ),
            url=url,
        )
    api = NationalApi(settings.api, signer=None)
    try:
        answer = api.health()
    except ApiError as exc:
        raise UsageError(
            N_(
                "--as-of without --dry-run: could not ask {url} whether it is a sandbox ({reason}); "
                "start the sandbox, or add --dry-run"
            ),
            url=url,
            reason=exc,
        ) from None
    finally:
        api.close()
    if answer.get("sandbox") is not True:
        raise UsageError(
            N_(
                "--as-of without --dry-run is only allowed against a sandbox, and {url} does not say it is "
                "one: add --dry-run to see what a run on that day would send"
            ),
            url=url,
        )

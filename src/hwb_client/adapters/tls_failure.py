"""A TLS failure with the national API, said so that an operator knows which setting to change.

``requests`` reports every TLS failure as ``SSLError`` inside a long chain of wrappers; a certificate
the client cannot verify will not verify on a retry either. This turns it into one line: not trusted
(set ``api.ca_bundle``) or issued for another name (check ``api.base_url``). Other TLS failures (a
handshake cut short) are retried like a connection reset.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from hwb_client.errors import ApiError
from hwb_client.i18n import N_

_VERIFY: Final = re.compile(r"certificate verify failed: (.*?)\.?\s*(?:\(_ssl\.c|'\)|\"\)|$)")


def certificate_refused(error: BaseException) -> bool:
    """True if the failure is the server's certificate not verifying (final, unlike a cut handshake)."""
    return _VERIFY.search(str(error)) is not None


def tls_failure_error(what: str, error: BaseException, base_url: str, ca_bundle: Path | None) -> ApiError:
    """The error for a certificate that did not verify (names settings, the host and OpenSSL's reason)."""
    text = str(error)
    host = urlsplit(base_url).hostname or base_url
    verify = _VERIFY.search(text)
    if verify and "mismatch" in verify.group(1):
        return ApiError(
            N_(
                "{what}: the national API's TLS certificate is not valid for {host} ({reason}); "
                "api.base_url must use a host name the certificate was issued for"
            ),
            what=what,
            host=host,
            reason=verify.group(1),
        )
    reason = verify.group(1) if verify else "certificate verify failed"
    if ca_bundle:
        return ApiError(
            N_(
                "{what}: the national API's TLS certificate is not trusted by the CA file api.ca_bundle = "
                "{ca_bundle} ({reason}); set api.ca_bundle to the PEM file of the CA that issued it"
            ),
            what=what,
            ca_bundle=ca_bundle,
            reason=reason,
        )
    return ApiError(
        N_(
            "{what}: the national API's TLS certificate is not trusted by the system's CAs ({reason}); "
            "set api.ca_bundle to the PEM file of the CA that issued it"
        ),
        what=what,
        reason=reason,
    )

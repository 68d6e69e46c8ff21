"""One error tree. Each class is a failure a person can act on, with a fixed exit code.

Exit codes (documented in the README; only ``cli.py`` maps errors to them):

== =========================================================================
0  success
1  warning: the run finished but records were held back or refused (partial)
2  usage: bad command-line arguments
3  configuration error: nothing was read or sent
4  MIS (ODBC) error: the run failed, nothing was sent as removed
5  national API error: the run failed, what was not acknowledged is resent next run
6  run blocked by the safety guard (use --allow-mass-removal after checking)
7  another run for the same school is in progress
8  local state error (state database unreadable or damaged)
9  enrolment failed
   status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the monitoring plugin range; 0.1.0 exited 10)
130/143 interrupted (SIGINT/SIGTERM)
== =========================================================================
"""

from __future__ import annotations

from hwb_client import i18n
from hwb_client.redaction import without_credentials


class HwbClientError(Exception):
    """Something went wrong that a person can act on.

    ``message`` is a sentence marked for translation with named placeholders, filled from ``params``
    when it is read: ``ConfigError(N_("{setting}: not a date; write YYYY-MM-DD"), setting=name)``.
    ``.message`` is in the language of the process (``i18n``), ``.english`` in English (for the logs
    and the reports sent upstream). A message already translated and filled in works too.
    """

    exit_code = 70

    def __init__(self, message: str, /, **params: object) -> None:
        self.template = message
        self.params = params
        super().__init__(self.english)

    def _render(self, template: str) -> str:
        text = template.format(**self.params) if self.params else template
        return without_credentials(text)  # a proxy URL's password never reaches a person or a log

    @property
    def message(self) -> str:
        return self._render(i18n._(self.template))

    @property
    def english(self) -> str:
        return self._render(self.template)

    def __str__(self) -> str:
        return self.message


class UsageError(HwbClientError):
    """The command line asks for something that cannot be done as given; nothing was read or sent."""

    exit_code = 2


class ConfigError(HwbClientError):
    """The configuration is wrong; the message names the setting and the fix."""

    exit_code = 3


class MisError(HwbClientError):
    """Reading the MIS over ODBC failed."""

    exit_code = 4


class ProfileError(MisError):
    """The query profile is wrong (missing column, bad SQL, unknown field)."""


class ApiError(HwbClientError):
    """The national API refused a request or could not be reached."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem_type: str | None = None,
        permanent: bool = False,
        **params: object,
    ) -> None:
        super().__init__(message, **params)
        self.status = status
        self.problem_type = problem_type
        #: the request's bytes are refused for good (a batch or report so refused is set aside)
        self.permanent = permanent


class RunBlocked(HwbClientError):
    """The safety guard stopped a run that would remove too many records."""

    exit_code = 6


class RunInProgress(HwbClientError):
    """Another run for the same school holds its lock."""

    exit_code = 7


class StateError(HwbClientError):
    """The local state database cannot be used."""

    exit_code = 8


class StateStorageError(StateError):
    """The state directory is full or cannot be written: a person frees space or fixes permissions; the
    state itself is sound (never set aside for this)."""


class UnsafeFileError(StateError):
    """A file or directory of the client's state is a symbolic link, not ours, or open to others."""


class EnrolmentError(HwbClientError):
    """Enrolling the school's signing key failed."""

    exit_code = 9


class KeyFileError(ConfigError):
    """A key file is missing, unreadable, malformed or readable by other users."""


class Interrupted(HwbClientError):
    """The process was asked to stop (SIGTERM, SIGINT or a service stop)."""

    exit_code = 143

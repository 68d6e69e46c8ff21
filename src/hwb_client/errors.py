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

import datetime as dt
from collections.abc import Iterable

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

    def _render(self, template: str, *, english: bool) -> str:
        text = _fill(template, self.params, english=english)
        return without_credentials(text)  # a proxy URL's password never reaches a person or a log

    @property
    def message(self) -> str:
        return self._render(_translated(self.template), english=False)

    @property
    def english(self) -> str:
        return self._render(self.template, english=True)

    def __str__(self) -> str:
        return self.message


class Phrase(str):
    """A part of a message that is itself text to translate: a noun such as the request an error is
    about (``Phrase(N_("batch {batch_id}"), batch_id=...)``). It is its English text wherever a string is
    used (logs, event fields); put in an error's params, it is translated with the error's message.
    """

    template: str
    params: dict[str, object]

    def __new__(cls, template: str, /, **params: object) -> Phrase:
        phrase = super().__new__(cls, _fill(template, params, english=True))
        phrase.template, phrase.params = template, params
        return phrase

    def __reduce__(self) -> tuple[object, ...]:  # to cross a pipe to a worker's parent whole
        return (_phrase, (type(self), self.template, self.params))

    @property
    def message(self) -> str:
        """The phrase in the language of the process."""
        return _fill(_translated(self.template), self.params, english=False)

    @property
    def english(self) -> str:
        return str.__str__(self)


class Joined(Phrase):
    """Phrases (or plain text) joined by ``separator``, each put in in the language of the message."""

    separator: str
    parts: tuple[object, ...]

    def __new__(cls, separator: str, parts: Iterable[object]) -> Joined:
        items = tuple(parts)
        joined = str.__new__(cls, separator.join(str(part) for part in items))
        joined.template, joined.params = str(joined), {}
        joined.separator, joined.parts = separator, items
        return joined

    def __reduce__(self) -> tuple[object, ...]:
        return (Joined, (self.separator, self.parts))

    @property
    def message(self) -> str:
        return self.separator.join(str(_in_language(part, False)) for part in self.parts)


class Plural(str):
    """A template with a count: its English form for ``n`` as a string; ``i18n.ngettext``'s form in the
    language the text is read in (Welsh has six)."""

    singular: str
    plural: str
    n: int

    def __new__(cls, singular: str, plural: str, n: int) -> Plural:
        form = super().__new__(cls, singular if n == 1 else plural)
        form.singular, form.plural, form.n = singular, plural, n
        return form

    def __reduce__(self) -> tuple[object, ...]:
        return (Plural, (self.singular, self.plural, self.n))


def _phrase(cls: type[Phrase], template: str, params: dict[str, object]) -> Phrase:
    return cls(template, **params)


def ngettext(singular: str, plural: str, n: int) -> Plural:
    """``i18n.ngettext`` for an error's template or a phrase, chosen when it is read (``.message`` in the
    process's language, ``.english`` in English): ``ApiError(errors.ngettext("... {n} attempt ...",
    "... {n} attempts ...", n), n=n)``. Call it as ``errors.ngettext`` so that extraction finds it."""
    return Plural(singular, plural, n)


def _translated(template: str) -> str:
    if isinstance(template, Plural):
        return i18n.ngettext(template.singular, template.plural, template.n)
    return i18n._(template)


def _in_language(value: object, english: bool) -> object:
    """A param that is a phrase, another error (or an exception whose text is a phrase) or a date is put
    in in the language of the message."""
    if isinstance(value, BaseException) and len(value.args) == 1 and isinstance(value.args[0], Phrase):
        value = value.args[0]
    if isinstance(value, Phrase | HwbClientError):
        return value.english if english else value.message
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat() if english else i18n.format_date(value)
    return value


def _fill(template: str, params: dict[str, object], *, english: bool) -> str:
    if not params:
        return template
    return template.format(**{name: _in_language(value, english) for name, value in params.items()})


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


class WorkerDied(HwbClientError):
    """The worker process running a school died before it sent its result (killed, out of memory)."""

    exit_code = 70


class Interrupted(HwbClientError):
    """The process was asked to stop (SIGTERM, SIGINT or a service stop)."""

    exit_code = 143

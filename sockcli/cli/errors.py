"""Exit codes, and the one place where library errors become them.

Every failure leaves as one line on stderr and a documented exit status (README, man page):

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      success (send: every message acknowledged by the hub)
1      any other failure (for example: a hub for the event is already running)
2      bad command-line usage
64     no EVENT given and not exactly one hub running to pick (EX_USAGE)
65     input that is not a JSON object, or too large a message (EX_DATAERR)
66     ``send``: stdin is closed or cannot be read; ``get``: the hub holds no retained
       message (of that type) (EX_NOINPUT)
68     ``send --to NAME``: no listener of that name is connected (EX_NOHOST)
69     no hub is running for the event, or it is full (EX_UNAVAILABLE)
74     stdout is closed, or writing to it failed (full disk, /dev/full) (EX_IOERR)
75     the hub went away before acknowledging a message; retry (EX_TEMPFAIL)
77     not allowed: the hub refuses messages from clients, or refuses this client (token,
       peer credentials, TLS), or could not prove it is the hub, or cannot do what was asked
       (``send --retain-only`` to a hub that retains nothing; ``--retain-only``, ``--clear``
       or ``get`` with a hub too old for them) (EX_NOPERM)
78     invalid configuration: a settings file, variable or option (EX_CONFIG)
124    ``listen --timeout`` ran out before ``--count`` messages arrived
130    interrupted (Ctrl-C)
=====  ==========================================================================
"""

from __future__ import annotations

import sys

from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    MessageError,
    SocketError,
    TimeoutError,
    ValidationError,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "CliError",
    "ConfigError",
    "DataError",
    "InputError",
    "NoEventError",
    "NoHubError",
    "NoRecipientError",
    "NotAcknowledgedError",
    "NotAllowedError",
    "NothingRetainedError",
    "OutputError",
    "TimedOutError",
    "UsageError",
    "from_library",
    "say",
]

EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user can act on: printed as one ``sockcli: error: ...`` line.

    Not a ``click.ClickException``, on purpose: ``sockcli send`` can run without importing
    click at all (see :mod:`sockcli.cli.sendcore`), and :func:`sockcli.cli.main` prints these
    itself, whether click ran or not.
    """

    exit_code = 1

    def __init__(self, message: str, *, reported: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: True when the failure was already reported line by line (``send --lines``): then
        #: only the exit status is left to give.
        self.reported = reported

    def format_message(self) -> str:
        return self.message

    def show(self) -> None:
        if not self.reported:
            say(f"sockcli: error: {self.message}\n")


class UsageError(CliError):
    """Bad usage that only the settings reveal (a ``--type`` they do not configure), found
    by the fast path of ``send`` after parsing: :func:`sockcli.cli.main` then has click parse
    the line, to report it in click's words like any other usage error."""

    exit_code = 2


class NoEventError(CliError):
    exit_code = 64  # EX_USAGE


class DataError(CliError):
    exit_code = 65  # EX_DATAERR


class InputError(CliError):
    """Standard input is closed (``<&-``) or cannot be read (a directory)."""

    exit_code = 66  # EX_NOINPUT


class NothingRetainedError(CliError):
    """``sockcli get``: the hub holds no retained message (of the type asked for)."""

    exit_code = 66  # EX_NOINPUT: there is nothing to read


class NoRecipientError(CliError):
    exit_code = 68  # EX_NOHOST


class NoHubError(CliError):
    exit_code = 69  # EX_UNAVAILABLE


class OutputError(CliError):
    """Standard output is closed (``>&-``) or a write to it failed (``>/dev/full``): the
    command cannot give its output. Not a broken pipe (``| head -1``): its reader left, and
    there is nothing to report."""

    exit_code = 74  # EX_IOERR

    @classmethod
    def closed(cls) -> OutputError:
        """Descriptor 1 was not open when sockcli started (Python's ``sys.stdout`` is None)."""
        return cls("stdout is closed: redirect it to a file, or to /dev/null to discard the "
                   "output")

    @classmethod
    def failed(cls, exc: OSError) -> OutputError:
        return cls(f"cannot write to stdout: {exc.strerror or exc}")


class NotAcknowledgedError(CliError):
    exit_code = 75  # EX_TEMPFAIL


class NotAllowedError(CliError):
    exit_code = 77  # EX_NOPERM


class ConfigError(CliError):
    exit_code = 78  # EX_CONFIG


class TimedOutError(CliError):
    exit_code = 124  # as timeout(1)


def say(text: str) -> None:
    """Write ``text`` on stderr as it is, and flush it: if stderr is closed or full there is
    nobody to tell, and the exit status still says what happened."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


_MESSAGE_CODES: dict[str, type[CliError]] = {
    "send_not_allowed": NotAllowedError,
    "not_retaining": NotAllowedError,
    "unknown_recipient": NoRecipientError,
    "invalid_message": DataError,
    "frame_too_large": DataError,
}


def from_library(exc: SocketError, *, sending: bool = False) -> CliError:
    """The CLI error for a library error; ``sending`` once messages may have gone out."""
    if isinstance(exc, MaxConnectionsError):
        return NoHubError(f"{exc}; try again later or raise max_connections")
    if isinstance(exc, AuthenticationError):
        return NotAllowedError(str(exc))
    if isinstance(exc, MessageError):
        return _MESSAGE_CODES.get(exc.code, CliError)(str(exc))
    if isinstance(exc, ConnectionError | TimeoutError):
        if sending:
            return NotAcknowledgedError(f"{exc}; the message was not acknowledged, send it again")
        return NoHubError(str(exc))
    if isinstance(exc, ValidationError):
        return ConfigError(str(exc))
    return CliError(str(exc))

"""The error hierarchy: everything sockcli raises on purpose is a :class:`SocketError`.

Transports translate :class:`OSError` into these at the boundary (``raise ... from exc``), so a
caller never has to know errno values. :class:`ConnectionError` and :class:`TimeoutError` also
derive from the built-ins of the same name, so ``except TimeoutError`` works whichever one the
caller had in mind.
"""

from __future__ import annotations

import builtins

__all__ = [
    "AuthenticationError",
    "ConnectionError",
    "HubAbsentError",
    "MaxConnectionsError",
    "MessageError",
    "SocketError",
    "TimeoutError",
    "UnsafePathError",
    "ValidationError",
]


class SocketError(Exception):
    """Base class of every error sockcli raises on purpose."""


class ConnectionError(SocketError, builtins.ConnectionError):
    """No hub to talk to: not running, refused, or the connection was lost."""


class MessageError(SocketError):
    """A frame or message was malformed, too large, or refused by the hub."""

    def __init__(self, message: str, *, code: str = "invalid_message") -> None:
        super().__init__(message)
        #: Machine-readable reason, the ``code`` of the protocol's error frame.
        self.code = code


class ValidationError(SocketError, ValueError):
    """A name, setting or argument breaks a documented rule; the text states the rule."""


class UnsafePathError(ValidationError):
    """The socket directory, or a socket or hub record in it, is not safe to use: a symbolic
    link, not a directory, another user's, or writable by group or others
    (docs/SECURITY.md). Raised with the same text wherever it is found (hub start, discovery,
    connect); a configuration error, so the command line exits 78."""


class TimeoutError(SocketError, builtins.TimeoutError):
    """An operation did not complete within its timeout."""


class HubAbsentError(ConnectionError):
    """No hub listens yet (no socket, no record, or refused): worth retrying until a timeout."""


class MaxConnectionsError(ConnectionError):
    """The hub already holds ``max_connections`` clients and refused this one."""


class AuthenticationError(ConnectionError):
    """The hub refused who this client is, or one side could not prove who it is: a wrong or
    missing token, a peer the hub does not admit, TLS required or failed (docs/SECURITY.md).

    Retrying does not help: the configuration must change.
    """

    def __init__(self, message: str, *, code: str = "auth_failed") -> None:
        super().__init__(message)
        #: ``auth_failed``, ``peer_not_allowed`` or ``tls_required`` (the hub's error codes),
        #: or ``tls_failed`` when this client's TLS handshake failed.
        self.code = code

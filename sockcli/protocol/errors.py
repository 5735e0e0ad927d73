"""The protocol's error codes, and the refusals of one message that the hub survives.

Pure data, like the frames: :mod:`sockcli.protocol.frames` re-exports every name here, so
``frames.ErrorCode`` and ``frames.RefusedMessageError`` keep working for their importers.
docs/protocol.md ("Errors") says what each code means and which are fatal.
"""

from __future__ import annotations

from sockcli.exceptions import MessageError

__all__ = ["ErrorCode", "RefusedMessageError", "UnknownMessageTypeError"]


class ErrorCode:
    """The ``code`` values of error frames (docs/protocol.md lists what each means)."""

    MALFORMED = "malformed_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID_MESSAGE = "invalid_message"
    HANDSHAKE_REQUIRED = "handshake_required"
    UNSUPPORTED_VERSION = "unsupported_version"
    MAX_CONNECTIONS = "max_connections"
    SEND_NOT_ALLOWED = "send_not_allowed"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    UNKNOWN_KIND = "unknown_kind"
    SLOW_CONSUMER = "slow_consumer"
    SHUTTING_DOWN = "shutting_down"
    # Access control (docs/SECURITY.md); all three are fatal and sent before any welcome.
    PEER_NOT_ALLOWED = "peer_not_allowed"
    AUTH_FAILED = "auth_failed"
    TLS_REQUIRED = "tls_required"
    #: A message with ``"retain": "only"`` to a hub that keeps no retained messages (its
    #: ``retain`` setting is off), or (raised by a client, never sent) to a hub that does not
    #: list the ``retain`` feature: the value would be lost, so it is refused, not relayed.
    NOT_RETAINING = "not_retaining"


class RefusedMessageError(MessageError):
    """A sound frame whose message this side refuses alone (a type it does not know, a
    ``timestamp_iso`` that is no date): the hub refuses it with its ``seq`` and goes on."""

    def __init__(self, message: str, *, seq: int | None, count: int = 1) -> None:
        super().__init__(message, code=ErrorCode.INVALID_MESSAGE)
        #: The refused message's sequence number, if it had a valid one (a batch's: its
        #: first message's).
        self.seq = seq
        #: How many messages are refused: a batch's, all of them (seq, seq + 1, ...).
        self.count = count


class UnknownMessageTypeError(RefusedMessageError):
    """A message of a type this side does not know (another deployment's custom type)."""

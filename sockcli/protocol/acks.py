"""The acknowledgement ledger of a sending client, written once for both clients.

A client numbers its messages 1, 2, 3, ... (the ``seq`` of the message frame), across
reconnections. The hub answers with ``ack`` frames ("everything up to N is handled") and with
error frames that carry the ``seq`` of one refused message. A message is *settled* once it is
acknowledged or refused, and *lost* when the connection it was written on ended before it was
settled. A lost message stays lost: the ack of a later connection (whose hub never saw it)
does not settle it, and each loss is reported once, like each refusal. The ledger is pure
bookkeeping: no I/O, no lock, no clock. The threaded client calls it under its own lock; the
one-shot sender from its only thread.
"""

from __future__ import annotations

from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr

__all__ = ["AckLedger"]


class AckLedger:
    """Which sequence numbers were sent, acknowledged, refused or lost."""

    __slots__ = ("_lost", "_refused", "acked", "lost_upto", "sent")

    def __init__(self) -> None:
        #: The last sequence number given out (0: none yet).
        self.sent = 0
        #: The highest sequence number an ack covered, on whichever connection.
        self.acked = 0
        #: The highest sequence number ever lost (0: none).
        self.lost_upto = 0
        self._lost: list[tuple[int, int]] = []  # lost ranges (first, last), not yet reported
        self._refused: dict[int, MessageError] = {}

    @property
    def next_seq(self) -> int:
        """The number the next message will carry: commit it with :meth:`sent_one` once the
        frame is encoded, so that a frame refused before sending leaves no gap."""
        return self.sent + 1

    def sent_one(self) -> int:
        """Record that the message numbered :attr:`next_seq` went out; return its number."""
        self.sent += 1
        return self.sent

    def sent_many(self, count: int) -> int:
        """Record that the ``count`` messages numbered from :attr:`next_seq` went out (a
        batch); return the first number."""
        first = self.sent + 1
        self.sent += count
        return first

    @property
    def pending(self) -> int:
        """Messages sent and not yet acknowledged."""
        return self.sent - self.acked

    def receive(self, frame: fr.Frame) -> bool:
        """Take an Ack, or an ErrorFrame that names a sequence number; True if it was one."""
        if isinstance(frame, fr.Ack):
            self.acked = max(self.acked, frame.seq)
            return True
        if isinstance(frame, fr.ErrorFrame) and frame.seq is not None:
            self._refused[frame.seq] = MessageError(frame.reason, code=frame.code)
            return True
        return False

    def lose_pending(self) -> None:
        """The connection ended: every message sent on it and not acknowledged is lost."""
        first = max(self.acked, self.lost_upto) + 1
        if self.sent >= first:
            self._lost.append((first, self.sent))
            self.lost_upto = self.sent

    def pop_loss(self, upto: int) -> tuple[int, int] | None:
        """The first unreported lost range (first, last) that begins at or below ``upto``,
        forgotten once returned, or None."""
        for i, (first, last) in enumerate(self._lost):
            if first <= upto:
                del self._lost[i]
                return first, last
        return None

    def pop_refusal(self, upto: int) -> MessageError | None:
        """The refusal of the lowest refused sequence number up to ``upto``, forgotten once
        returned (each refusal is reported once), or None."""
        if not self._refused:
            return None
        first = min(self._refused)
        if first > upto:
            return None
        return self._refused.pop(first)

    def is_acked(self, seq: int) -> bool:
        """Whether an ack settled ``seq`` (on the connection it was sent on)."""
        return seq <= self.acked and not self.is_lost(seq)

    def is_lost(self, seq: int) -> bool:
        """Whether ``seq`` went out on a connection that ended before the hub settled it (and
        the loss is not reported yet)."""
        return any(first <= seq <= last for first, last in self._lost)

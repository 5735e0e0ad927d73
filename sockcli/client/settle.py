"""Waiting for acknowledgements, for the threaded client: the ledger of
:mod:`sockcli.protocol.acks` behind a condition that the reader thread notifies.

The hub may hold a publisher back for up to its ``slow_consumer_timeout`` (flow control, said
in its welcome), so a wait is at least that long plus a second, and it starts again with every
acknowledgement that comes: it measures the hub's silence, not the length of a stream.
"""

from __future__ import annotations

import threading
import time

from sockcli.exceptions import ConnectionError, TimeoutError
from sockcli.protocol.acks import AckLedger

__all__ = ["Settlement"]


class Settlement:
    """An :class:`AckLedger` guarded by :attr:`cond` (reentrant), and the waits on it."""

    def __init__(self, event_name: str) -> None:
        self.event_name = event_name
        self.acks = AckLedger()
        #: Guards the ledger; the client also waits on it for its connection and stats.
        self.cond = threading.Condition()
        #: How long the hub may keep this client waiting (its welcome's
        #: slow_consumer_timeout plus a second; 0: it did not say).
        self.hold_limit = 0.0

    def give_seq(self) -> int:
        """The next sequence number, given out (the caller holds the client's write lock)."""
        with self.cond:
            return self.acks.sent_one()

    def connection_lost(self) -> None:
        """The connection ended: what was sent and not acknowledged is lost."""
        with self.cond:
            self.acks.lose_pending()
            self.cond.notify_all()

    def wait(self, seq: int, deadline: float) -> None:
        """Wait until ``seq`` is settled: return once it is acknowledged; raise the first
        refusal up to it (MessageError), ConnectionError for a loss up to it, TimeoutError
        when the hub said nothing for the budget."""
        acks = self.acks
        budget = max(deadline - time.monotonic(), self.hold_limit)
        deadline = time.monotonic() + budget
        seen = acks.acked
        with self.cond:
            while True:
                failed = acks.pop_refusal(seq)
                if failed is not None:
                    raise failed
                lost = acks.pop_loss(seq)
                if lost is not None:
                    what = "the message" if lost[0] == lost[1] else \
                        f"{lost[1] - lost[0] + 1} messages"
                    raise ConnectionError(
                        f"the connection to {self.event_name!r} was lost before the hub "
                        f"acknowledged {what}")
                if acks.is_acked(seq):
                    return
                if acks.acked != seen:  # progress: the hub is not stuck
                    seen = acks.acked
                    deadline = time.monotonic() + budget
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"hub {self.event_name!r} did not acknowledge in time")
                self.cond.wait(remaining)

"""Refused lines, counted and logged without flooding the hub's stderr.

A producer printing garbage in a loop, or a script writing a bad line into the FIFO ten
thousand times, must not turn the hub's log into a copy of its input: :class:`RejectLog`
logs the first refused line of a source at once, then at most one summary every
:data:`REJECT_LOG_INTERVAL` seconds with the count since the last line and the last one
refused. The hub's ``rejected`` stat counts every one.
"""

from __future__ import annotations

import logging
import time

from sockcli.lines import Rejected

__all__ = ["REJECT_LOG_INTERVAL", "RejectLog"]

log = logging.getLogger("sockcli.hub")

#: Refused lines: one log line at most this often (seconds), with the count since the last.
REJECT_LOG_INTERVAL = 5.0


class RejectLog:
    """Counts refused lines of one source (``what``: "producer", "fifo /run/...") and logs
    them: the first at once, then a summary at most every :data:`REJECT_LOG_INTERVAL` seconds
    (at :meth:`tick` time, even when no line follows: :meth:`due` says when)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._last_log = -REJECT_LOG_INTERVAL
        self._held = 0
        self._last: Rejected | None = None

    def note(self, rejected: Rejected) -> None:
        self._held += 1
        self._last = rejected
        self.tick()

    def due(self) -> float | None:
        """When (time.monotonic()) a summary is due; None when nothing is held."""
        return self._last_log + REJECT_LOG_INTERVAL if self._held else None

    def tick(self, *, final: bool = False) -> None:
        """Log what is held if the interval has passed (``final``: in any case)."""
        now = time.monotonic()
        if not self._held or (now < self._last_log + REJECT_LOG_INTERVAL and not final):
            return
        last = self._last
        assert last is not None
        if self._held == 1:
            log.warning("%s line %d rejected: %s: %r", self.what, last.number, last.reason,
                        last.text)
        else:
            log.warning("%s: %d more lines rejected; the last, line %d: %s: %r", self.what,
                        self._held, last.number, last.reason, last.text)
        self._held, self._last_log = 0, now

"""Flow control: when the hub stops reading whom, and for how long.

Two rules, one mechanism (not reading a connection, so that its sends block in the kernel):

- *Publishers wait for a slow subscriber.* While :attr:`Router.behind
  <sockcli.hub.router.Router.behind>` is not empty (a "wait" subscriber has more than
  ``send_buffer_limit`` bytes waiting), every other welcomed connection is not read, until each
  one that was behind has read half of what waited (:meth:`Router.caught_up`).
- *A client that does not read its replies is not read.* When what waits for a connection
  passes the limit because of its own requests (stats, pings, refusals, acknowledgements), it
  is *choked*: not read until it has read half.

Either way a connection that reads nothing for ``slow_consumer_timeout`` is dropped
(:meth:`Router.drop_slow`), which bounds both how long publishers wait and what the hub holds.
This module decides; the loop (:mod:`sockcli.hub.loop`) does the selector work through the two
callables it passes in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sockcli.hub.connection import Connection, ConnectionState
from sockcli.hub.router import Router

__all__ = ["FlowControl"]


class FlowControl:
    """Who is not read, and why; run by the loop once per turn (:meth:`regulate`)."""

    def __init__(self, router: Router, conns: dict[int, Connection], *,
                 pause: Callable[[Connection, bool], None],
                 consume: Callable[[Connection], None]) -> None:
        self.router = router
        self._conns = conns  # the loop's, by descriptor
        self._pause = pause  # read (False) or stop reading (True) a connection
        self._consume = consume  # handle the frames a connection's codec holds
        #: Publishers are held back for a subscriber that is behind.
        self.holding = False
        #: Not read: what waits for them (their own replies) passed the limit.
        self.choked: set[Connection] = set()

    @property
    def timed(self) -> bool:
        """Whether a stall may need dropping: the loop must wake up to look."""
        return bool(self.router.behind or self.choked)

    def holds(self, conn: Connection) -> bool:
        """Whether ``conn`` is not to be read now."""
        return conn in self.choked or (self.holding and conn.state is ConnectionState.ACTIVE
                                       and conn not in self.router.behind)

    def regulate(self) -> None:
        """Hold publishers back while a subscriber is behind, let them go once every one has
        caught up, and read choked clients again once they have read their replies."""
        router = self.router
        if self.choked:
            self._unchoke()
        if not (router.behind or router.lagging or self.holding):
            return
        for conn in [*router.behind, *router.lagging]:
            router.caught_up(conn)
        if bool(router.behind) != self.holding:
            self.holding = not self.holding
            for conn in self._conns.values():
                self._pause(conn, self.holds(conn))

    def choke(self, conn: Connection) -> None:
        """Stop reading ``conn``: more than ``send_buffer_limit`` bytes wait for it."""
        if conn not in self.choked:
            self.choked.add(conn)
            conn.progress_at = time.monotonic()  # the stall clock starts now
        self._pause(conn, True)

    def _unchoke(self) -> None:
        half = self.router.send_buffer_limit // 2
        for conn in list(self.choked):
            if conn.fd not in self._conns or conn.closing:
                self.choked.discard(conn)
            elif conn.out_size <= half:
                self.choked.discard(conn)
                self._pause(conn, self.holds(conn))
                self._consume(conn)  # the frames it sent meanwhile

    def expire(self, now: float) -> None:
        """Drop the connections that read nothing for ``slow_consumer_timeout``."""
        router = self.router
        limit = router.slow_consumer_timeout
        for conn in list(self.choked):
            if now - conn.progress_at >= limit and not conn.closing:
                self.choked.discard(conn)
                router.drop_slow(conn, f"it read none of the hub's replies for {limit:g} s "
                                       f"(slow_consumer_timeout) while {conn.out_size} bytes "
                                       "waited")
        for conn in list(router.behind):
            if now - conn.progress_at >= limit:
                router.drop_slow(conn, f"it read nothing for {limit:g} s "
                                       f"(slow_consumer_timeout) while {conn.out_size} bytes "
                                       "waited")

"""File descriptors, the resource a hub runs out of first.

A hub holds one descriptor per connection. :func:`raise_fd_limit` lifts the soft limit to the
hard one when a hub starts (a hub is a server: it should be able to hold what the system
allows), and :func:`connection_capacity` keeps ``max_connections`` below what the descriptors
allow, so that clients past it get the ``max_connections`` refusal rather than nothing.

When ``accept`` still fails with EMFILE (other code in the process holds descriptors too),
:class:`SpareDescriptor` is the classic way out (libev, nginx): one descriptor held in reserve
is freed, which lets the hub accept the waiting clients one at a time, tell each it is full,
and close it, so that the listening socket is drained instead of waking the loop forever.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import selectors
import socket
import time

__all__ = ["RESERVED", "SpareDescriptor", "connection_capacity", "raise_fd_limit"]

log = logging.getLogger("sockcli.hub")

#: Descriptors a hub needs besides its connections: the listener, the wake-up pair, the
#: selector, the record's lock, the spare, and some for the host program and logging.
RESERVED = 16
#: How often, at most, the hub says that it ran out of descriptors.
_LOG_INTERVAL = 10.0
#: Seconds without accepting when not even the spare descriptor could be had.
_ACCEPT_PAUSE = 0.5


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit if it is lower; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def connection_capacity(max_connections: int, event_name: str) -> int:
    """``max_connections``, or fewer when the descriptor limit cannot hold that many (said
    once, as a warning)."""
    soft = raise_fd_limit()
    if soft == resource.RLIM_INFINITY:
        return max_connections
    room = max(1, soft - RESERVED)
    if max_connections > room:
        log.warning("hub %s: max_connections %d is more than the file descriptor limit allows "
                    "(%d, ulimit -n); accepting at most %d clients", event_name,
                    max_connections, soft, room)
        return room
    return max_connections


class SpareDescriptor:
    """One descriptor kept in reserve, for refusing clients when the others are all in use."""

    def __init__(self, event_name: str) -> None:
        self.event_name = event_name
        self._fd: int | None = None
        self._logged = 0.0
        self.refused = 0
        #: When accepting starts again (time.monotonic()), 0.0 while it goes on.
        self.paused_until = 0.0
        #: The listeners taken out of the selector meanwhile, with their selector data.
        self._paused: list[tuple[socket.socket, object]] = []
        self.take()

    @property
    def paused(self) -> bool:
        return self.paused_until != 0.0

    def resume(self, now: float, selector: selectors.BaseSelector) -> None:
        """Accept again once the pause is over."""
        if self.paused_until and now >= self.paused_until:
            self.paused_until = 0.0
            for listener, data in self._paused:
                selector.register(listener, selectors.EVENT_READ, data)
            self._paused.clear()

    def take(self) -> bool:
        if self._fd is None:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def refuse_waiting(self, listener: socket.socket, refusal: bytes,
                       selector: selectors.BaseSelector, limit: int = 128,
                       data: object = None) -> int:
        """Out of descriptors: accept the clients waiting on ``listener`` with the spare one,
        write ``refusal`` (an encoded error frame) to each and close it; return how many.
        When not even one could be accepted, stop accepting briefly (``listener`` out of
        ``selector``; ``data``: its selector data, for :meth:`resume`), so that it does not
        wake the loop in a busy loop."""
        self._say()
        count = self._refuse(listener, refusal, limit) if self._fd is not None or self.take() \
            else 0
        if not count and all(sock is not listener for sock, _ in self._paused):
            selector.unregister(listener)
            self._paused.append((listener, data))
            self.paused_until = self.paused_until or time.monotonic() + _ACCEPT_PAUSE
        return count

    def _refuse(self, listener: socket.socket, refusal: bytes, limit: int) -> int:
        self.close()
        count = 0
        try:
            for _ in range(limit):
                try:
                    sock, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        break  # taken by someone else in the meantime
                    raise
                with sock, contextlib.suppress(OSError):
                    sock.setblocking(False)
                    sock.send(refusal)  # small: the kernel takes it whole or not at all
                    sock.shutdown(socket.SHUT_WR)
                count += 1
        finally:
            self.take()
        self.refused += count
        return count

    def _say(self) -> None:
        now = time.monotonic()
        if now - self._logged >= _LOG_INTERVAL:
            self._logged = now
            log.warning("hub %s is out of file descriptors (ulimit -n); refusing new clients "
                        "with max_connections until some leave", self.event_name)

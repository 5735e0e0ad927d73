"""The hub role: one process that serves one event to any number of clients.

- :mod:`~sockcli.hub.base`: the :class:`SocketServer` contract and :class:`ClientInfo`.
- :mod:`~sockcli.hub.server`: :class:`HubServer`, the hub as its owner sees it: settings,
  start and stop, send, handlers, stats; what transports override.
- :mod:`~sockcli.hub.loop`: :class:`HubLoop`, the selector loop (accepting, reading, writing,
  wake-ups from other threads, timers) that admission and the router plug into.
- :mod:`~sockcli.hub.admission`: who gets in: limits, peer credentials, the token, TLS.
- :mod:`~sockcli.hub.router`: who gets what: broadcast, unicast, the queue, type filters,
  per-subscriber buffers and what happens to a subscriber that falls behind.
- :mod:`~sockcli.hub.flow`: flow control: whom the loop stops reading, and for how long.
- :mod:`~sockcli.hub.mailbox`: what other threads give the loop (sends, wake-ups) and the
  client snapshot they may read.
- :mod:`~sockcli.hub.replies`: what the hub answers to stats, ping and unknown frames.
- :mod:`~sockcli.hub.descriptors`: the file descriptor limit, and refusing clients when it
  is reached.
- :mod:`~sockcli.hub.connection`: one client connection as the loop holds it;
  :mod:`~sockcli.hub.conntable`: the loop's connections, their output and closing.
- :mod:`~sockcli.hub.intake`: the shell entry points of a Unix hub, its FIFO
  (:mod:`~sockcli.hub.fifo`) and the clients of its JSON-lines socket
  (:mod:`~sockcli.hub.linesconn`), with :mod:`~sockcli.hub.rejects` for refused lines;
  :mod:`~sockcli.hub.activation`: the sockets systemd passes (socket activation).
- :mod:`~sockcli.hub.unix`, :mod:`~sockcli.hub.tcp`: what differs per transport (binding,
  cleaning up, peer credentials).
- :mod:`~sockcli.hub.producer`: a hub's producer (``serve --exec``): restarts, backoff,
  figures; :mod:`~sockcli.hub.child`: one run of its command; :mod:`~sockcli.hub.reaper`:
  what ends that command's process group when the hub dies.
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.hub.base import ClientInfo, MessageHandler, SocketServer
    from sockcli.hub.router import HubStats
    from sockcli.hub.server import HubServer
    from sockcli.hub.tcp import TcpSocketServer
    from sockcli.hub.unix import UnixSocketServer

__all__ = ["ClientInfo", "HubServer", "HubStats", "MessageHandler", "SocketServer",
           "TcpSocketServer", "UnixSocketServer"]

_LAZY = {
    "ClientInfo": "sockcli.hub.base",
    "MessageHandler": "sockcli.hub.base",
    "SocketServer": "sockcli.hub.base",
    "HubServer": "sockcli.hub.server",
    "HubStats": "sockcli.hub.router",
    "TcpSocketServer": "sockcli.hub.tcp",
    "UnixSocketServer": "sockcli.hub.unix",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

"""The hub role: one process that serves one event to any number of clients.

- :mod:`~sockcli.hub.base`: the :class:`SocketServer` contract and :class:`ClientInfo`.
- :mod:`~sockcli.hub.loop`: :class:`HubServer`, the selector loop (wake-ups, timers, reading,
  writing, start and stop) that the other parts plug into.
- :mod:`~sockcli.hub.admission`: who gets in: limits, peer credentials, the token, TLS.
- :mod:`~sockcli.hub.router`: who gets what: broadcast, unicast, the queue, type filters,
  per-subscriber buffers and the slow-consumer rule.
- :mod:`~sockcli.hub.connection`: one client connection as the loop holds it.
- :mod:`~sockcli.hub.unix`, :mod:`~sockcli.hub.tcp`: what differs per transport (binding,
  cleaning up, peer credentials).
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.hub.base import ClientInfo, MessageHandler, SocketServer
    from sockcli.hub.loop import HubServer, HubStats
    from sockcli.hub.tcp import TcpSocketServer
    from sockcli.hub.unix import UnixSocketServer

__all__ = ["ClientInfo", "HubServer", "HubStats", "MessageHandler", "SocketServer",
           "TcpSocketServer", "UnixSocketServer"]

_LAZY = {
    "ClientInfo": "sockcli.hub.base",
    "MessageHandler": "sockcli.hub.base",
    "SocketServer": "sockcli.hub.base",
    "HubServer": "sockcli.hub.loop",
    "HubStats": "sockcli.hub.loop",
    "TcpSocketServer": "sockcli.hub.tcp",
    "UnixSocketServer": "sockcli.hub.unix",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

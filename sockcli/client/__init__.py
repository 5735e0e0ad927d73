"""The client role: everything that connects to a hub.

- :mod:`~sockcli.client.base`: the :class:`SocketClient` contract.
- :mod:`~sockcli.client.threaded`: :class:`HubClient`, the long-lived client (reader thread,
  bounded receive buffer, reconnection, batched sends).
- :mod:`~sockcli.client.oneshot`: :class:`Sender`, the short-lived pure sender of ``sockcli
  send``: no thread, few imports.
- :mod:`~sockcli.client.connect`: opening a socket to a hub, and retrying while it is absent.
- :mod:`~sockcli.client.inbox`: the bounded receive buffer.
- :mod:`~sockcli.client.outbox`: the batched writer of the threaded client.
- :mod:`~sockcli.client.settle`: waiting for acknowledgements (the ledger behind a condition).
- :mod:`~sockcli.client.discovery`: finding a local hub by event name, whatever its transport.
- :mod:`~sockcli.client.unix`, :mod:`~sockcli.client.tcp`: what differs per transport.

Both clients speak the protocol through :mod:`sockcli.protocol` (handshake, acknowledgements).
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.client.base import SocketClient
    from sockcli.client.discovery import LocalHubClient
    from sockcli.client.oneshot import Sender
    from sockcli.client.tcp import TcpSocketClient
    from sockcli.client.threaded import HubClient
    from sockcli.client.unix import UnixSocketClient

__all__ = ["HubClient", "LocalHubClient", "Sender", "SocketClient", "TcpSocketClient",
           "UnixSocketClient"]

_LAZY = {
    "SocketClient": "sockcli.client.base",
    "LocalHubClient": "sockcli.client.discovery",
    "Sender": "sockcli.client.oneshot",
    "TcpSocketClient": "sockcli.client.tcp",
    "HubClient": "sockcli.client.threaded",
    "UnixSocketClient": "sockcli.client.unix",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

"""The sockcli protocol, sans I/O: bytes in, frames and events out, and back.

Nothing here opens, reads or writes a socket (like h11 and wsproto): the hub and both clients
feed received bytes in and write out the bytes they are handed, so the whole protocol is
tested in memory, byte by byte, and every role speaks it the same way.

- :mod:`~sockcli.protocol.codec`: the frame codec interface and its MessagePack implementation
  (length-prefixed maps, size limits enforced before buffering).
- :mod:`~sockcli.protocol.frames`: one class per frame kind, and their translation to and from
  the wire maps, checking every key a peer sends (:mod:`~sockcli.protocol.checks`: the
  checks of a message's keys, the relay's fast ones included).
- :mod:`~sockcli.protocol.batches`: runs of messages gathered into batch frames.
- :mod:`~sockcli.protocol.handshake`: hello, challenge, auth, welcome, as two small state
  machines: :class:`ClientHandshake` and :class:`HubHandshake`.
- :mod:`~sockcli.protocol.acks`: the acknowledgement ledger of a sending client.
- :mod:`~sockcli.protocol.auth`: the shared token and its HMAC challenge-response.

docs/protocol.md is the specification.
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.protocol.acks import AckLedger
    from sockcli.protocol.codec import FrameCodec, MsgpackCodec
    from sockcli.protocol.handshake import ClientHandshake, HubHandshake

__all__ = ["AckLedger", "ClientHandshake", "FrameCodec", "HubHandshake", "MsgpackCodec"]

_LAZY = {
    "AckLedger": "sockcli.protocol.acks",
    "FrameCodec": "sockcli.protocol.codec",
    "MsgpackCodec": "sockcli.protocol.codec",
    "ClientHandshake": "sockcli.protocol.handshake",
    "HubHandshake": "sockcli.protocol.handshake",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

"""The MQTT bridge of ``sockcli serve EVENT --bridge URL``: hubs on several machines share their
events through an MQTT broker (docs/BRIDGE.md).

The bridge is a client of the local hub (a tap: it sees every message relayed) and of the
broker (paho-mqtt, an optional extra), not a transport inside the hub's loop.

- :mod:`~sockcli.bridge.extra`: :func:`require_paho`, the check that the extra is installed.
- :mod:`~sockcli.bridge.codec`: topics, payloads both ways, the hub id, deduplication (sans
  I/O, no paho).
- :mod:`~sockcli.bridge.endpoint`: the broker's URL, the credentials and the TLS context.
- :mod:`~sockcli.bridge.pending`: what waits for the broker, and what it has not acknowledged.
- :mod:`~sockcli.bridge.mqtt`: the broker side (paho): connection, presence, publishing.
- :mod:`~sockcli.bridge.bridge`: :class:`Bridge`, both sides tied together, and its figures.

Light: nothing is imported until a name is used, and paho only when a bridge starts.
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.bridge.bridge import Bridge
    from sockcli.bridge.extra import MissingExtraError, require_paho
    from sockcli.config.models import BridgeConfig

__all__ = ["Bridge", "BridgeConfig", "MissingExtraError", "require_paho"]

_LAZY = {
    "Bridge": "sockcli.bridge.bridge",
    "BridgeConfig": "sockcli.config.models",
    "MissingExtraError": "sockcli.bridge.extra",
    "require_paho": "sockcli.bridge.extra",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

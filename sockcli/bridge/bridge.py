"""The bridge: a tap on the local hub on one side, a broker on the other, and its figures.

Local -> broker: a :class:`~sockcli.client.discovery.LocalHubClient` whose hello says
``tap`` gets every message the hub relays (the hub still queues them for its first real
subscriber); each is encoded and appended to the pending queue at once, and the broker side
publishes from there (:mod:`sockcli.bridge.mqtt`). Broker -> local: each payload is decoded
and judged (:mod:`sockcli.bridge.codec`), then sent into the hub on that same connection, so
the hub never relays it back to the bridge (a sender does not receive its own messages); a
retained value newer than what was seen of its type becomes the hub's retained value
(``retain="only"``) without being relayed.

Threads: the tap's (connects to the hub, then starts the broker side, then reads), paho's
network thread (what arrives), the publisher's; :meth:`Bridge.figures` is called from the
hub's. Everything they share is under one lock, or in :class:`~sockcli.bridge.pending.Pending`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from sockcli.bridge.codec import (
    OFFLINE,
    ONLINE,
    Encoder,
    Inbound,
    PayloadRejected,
    Topics,
    Verdict,
    decode_payload,
    make_hub_id,
    message_type_of,
)
from sockcli.bridge.endpoint import make_endpoint
from sockcli.bridge.pending import Outgoing, Pending
from sockcli.exceptions import (
    ConnectionError,
    MessageError,
    SocketError,
    TimeoutError,
    ValidationError,
)
from sockcli.hub.rejects import RejectLog
from sockcli.lines import PREVIEW_CHARS, Rejected
from sockcli.timestamps import now_ms
from sockcli.types import SocketMessage, validate_event_name

if TYPE_CHECKING:
    from sockcli.bridge.mqtt import BrokerLink
    from sockcli.client.discovery import LocalHubClient
    from sockcli.config.views import SettingsView

__all__ = ["MAX_REMOTE_HUBS", "Bridge"]

log = logging.getLogger("sockcli.bridge")

#: The other hubs whose presence is kept, at most (a topic per hub: a bound on memory).
MAX_REMOTE_HUBS = 1024
#: How long a message from the broker may wait for the local hub to take it (seconds).
_SEND_TIMEOUT = 1.0
#: The tap's longest wait for a message: how often it logs held rejections at worst.
_TICK = 1.0


class Bridge:
    """The bridge of the hub of ``event_name`` to the broker at ``url`` (None: the
    ``[bridge] url`` setting), with the ``[bridge]`` section of ``settings``.

    Made before the hub starts (ValidationError for a bad URL, an unsafe password file, an
    unreadable CA file); :meth:`start` once the hub listens; :meth:`stop` when it is done.
    """

    def __init__(self, event_name: str, *, settings: SettingsView | None = None,
                 url: str | None = None) -> None:
        from sockcli.config.loader import settings_for

        self.event_name = validate_event_name(event_name)
        self.settings = settings_for(settings)
        config = self.settings.bridge
        text = config.url if url is None else url
        if not text.strip():
            raise ValidationError("no broker to bridge to: give serve --bridge "
                                  "mqtt://HOST[:PORT], or set the [bridge] url setting")
        self.endpoint = make_endpoint(text, config)
        #: This hub's name on the broker (presence, ``origin``): stable across restarts.
        self.hub_id = make_hub_id(self.settings.socket.socket_dir, self.event_name)
        self.client_id = config.client_id or f"sockcli-{self.hub_id}"
        self.topics = Topics(config.topic_prefix, self.event_name)
        self.retain = config.retain
        self._pending = Pending(config.queue_size)
        self._encoder = Encoder(self.hub_id, now_ms())
        self._lock = threading.Lock()
        self._inbound = Inbound(self.hub_id, run=self._encoder.run)
        self._rejects = RejectLog(f"bridge {self.endpoint.url}")
        self._remote: dict[str, str] = {}
        self._arrived = 0  # payloads from the broker, of any kind: a rejection's number
        self._received = 0
        self._rejected = 0
        self._duplicates = 0
        self._lost = 0  # from the broker, but the local hub could not take them
        self._last_error: str | None = None
        self._local_complained = False
        self._losing = False  # messages from the broker are being lost (logged once)
        self._started = False
        self._stopped = threading.Event()
        self._local: LocalHubClient | None = None
        self._link: BrokerLink | None = None
        self._tap: threading.Thread | None = None

    # -- the API of serve --bridge -----------------------------------------------------

    def start(self) -> None:
        """Connect to the local hub (as a tap) and then to the broker, in the background;
        returns at once. MissingExtraError without paho-mqtt."""
        from sockcli.bridge.extra import require_paho

        require_paho()
        from sockcli.bridge.mqtt import BrokerLink
        from sockcli.client.discovery import LocalHubClient

        with self._lock:
            if self._started:
                raise SocketError("this bridge was started already")
            self._started = True
        self._local = LocalHubClient(self.event_name, settings=self.settings, subscribe=True,
                                     tap=True, name="bridge", auto_reconnect=True)
        self._link = BrokerLink(self.endpoint, client_id=self.client_id, topics=self.topics,
                                hub_id=self.hub_id, pending=self._pending,
                                deliver=self._deliver, on_error=self._error,
                                on_lost=self._broker_lost)
        self._tap = threading.Thread(target=self._run_tap, daemon=True,
                                     name=f"sockcli-bridge-tap-{self.event_name}")
        self._tap.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what waits (if the broker is there), say ``offline``, disconnect from
        the broker and from the local hub, within about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            link = self._link
        if link is not None and link.state != "stopped":
            link.stop(deadline)
        if self._local is not None:
            self._local.disconnect()
        if self._tap is not None:
            self._tap.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._rejects.tick(final=True)

    def figures(self) -> dict[str, Any]:
        """What ``sockcli list`` shows of the bridge (JSON values): ``state``
        (connecting, connected, reconnecting, stopped), ``url`` (no user or password),
        ``hub_id``, ``pending`` (waiting for the broker or for its acknowledgement),
        ``published`` (acknowledged by the broker), ``received`` (from the broker, handed to
        the local hub), ``dropped`` (lost: pushed out of a full queue, refused by the broker,
        or not taken by the local hub), ``rejected`` (payloads that are no message),
        ``duplicates`` (redeliveries dropped), ``remote_hubs`` ({hub_id: "online" or
        "offline"}), ``last_error`` (the last connection error, or null)."""
        link = self._link
        if self._stopped.is_set():
            state = "stopped"
        elif link is None:
            state = "connecting" if self._started else "stopped"
        else:
            state = link.state
            if state == "stopped":  # made, waiting for the local hub before the broker
                state = "connecting"
        pending = self._pending
        with self._lock:
            return {
                "state": state,
                "url": self.endpoint.url,
                "hub_id": self.hub_id,
                "pending": pending.count,
                "published": pending.published,
                "received": self._received,
                "dropped": pending.dropped + self._lost,
                "rejected": self._rejected,
                "duplicates": self._duplicates,
                "remote_hubs": dict(sorted(self._remote.items())),
                "last_error": self._last_error,
            }

    # -- local -> broker (the tap's thread) --------------------------------------------

    def _run_tap(self) -> None:
        local, link = self._local, self._link
        assert local is not None and link is not None
        if not self._connect_local(local):
            return
        with self._lock:
            if self._stopped.is_set():
                return
            link.start()  # the broker once the hub takes what it sends
        while not self._stopped.is_set():
            try:
                batch = local.receive_many(1024, timeout=_TICK)
            except TimeoutError:
                batch = []
            except ConnectionError as exc:  # the client gave up on the hub
                if self._stopped.is_set():
                    break
                self._local_trouble(f"lost the local hub: {exc}")
                local.disconnect()
                if not self._connect_local(local):
                    break
                continue
            for message in batch:
                self._outgoing(message)
            with self._lock:
                self._rejects.tick()

    def _connect_local(self, local: LocalHubClient) -> bool:
        """Connect the tap, retrying until it works or the bridge stops (False)."""
        while not self._stopped.is_set():
            try:
                local.connect(timeout=self.settings.socket.default_timeout)
            except SocketError as exc:
                self._local_trouble(f"cannot connect to the local hub: {exc}")
                self._stopped.wait(0.5)
                continue
            with self._lock:
                self._local_complained = False
            return True
        return False

    def _local_trouble(self, error: str) -> None:
        with self._lock:
            self._last_error = error
            complain, self._local_complained = not self._local_complained, True
        if complain:
            log.warning("bridge of %r: %s; retrying", self.event_name, error)

    def _outgoing(self, message: SocketMessage) -> None:
        payload = self._encoder.encode(message)  # only this thread encodes
        with self._lock:
            self._inbound.note_local(message)
        self._pending.put(Outgoing(self.topics.message(message.message_type), payload,
                                   self.retain))

    # -- broker -> local (paho's thread) -----------------------------------------------

    def _deliver(self, topic: str, payload: bytes, retained: bool) -> None:
        if self._stopped.is_set():  # the hub has stopped: nothing can take it
            return
        with self._lock:
            self._arrived += 1
        kind = self.topics.parse(topic)
        if kind is None:
            self._reject(topic, payload, "not a topic of this event")
            return
        if kind[0] == "presence":
            self._presence(topic, kind[1], payload)
            return
        try:
            incoming = decode_payload(payload, message_type_of(kind[1]), self.event_name,
                                      max_bytes=self.settings.socket.buffer_size)
        except PayloadRejected as exc:
            self._reject(topic, payload, str(exc))
            return
        with self._lock:
            verdict = self._inbound.judge(incoming, retained=retained)
            if verdict is Verdict.DUPLICATE:
                self._duplicates += 1
        if verdict is Verdict.RELAY:
            self._hand_over(incoming.message, None, topic, payload)
        elif verdict is Verdict.RETAIN and self.settings.socket.retain:
            self._hand_over(incoming.message, "only", topic, payload)
        else:
            log.debug("bridge: %s on %s dropped", verdict.value, topic)

    def _hand_over(self, message: SocketMessage, retain: str | None, topic: str,
                   payload: bytes) -> None:
        local = self._local
        if local is None or not local.is_connected():  # never hold paho's thread for it
            self._lose(topic, "the local hub is not connected")
            return
        try:
            local.send(message, wait=False, timeout=_SEND_TIMEOUT, retain=retain)
        except MessageError as exc:  # too large for the hub's frames, say
            self._reject(topic, payload, f"the local hub cannot take it: {exc}")
            return
        except SocketError as exc:
            self._lose(topic, str(exc))
            return
        with self._lock:
            self._received += 1
            self._losing = False
        self._refusals(topic, payload)

    def _refusals(self, topic: str, payload: bytes) -> None:
        """Count what the hub refused of the messages sent so far (allow_client_send off,
        say): each refusal is reported once."""
        local = self._local
        assert local is not None
        for _ in range(64):
            try:
                local.check()
            except MessageError as exc:
                with self._lock:
                    self._received -= 1
                self._reject(topic, payload, f"the local hub refused it: {exc}")
                continue
            return

    def _lose(self, topic: str, why: str) -> None:
        with self._lock:
            self._lost += 1
            complain, self._losing = not self._losing, True
        if complain:
            log.warning("bridge of %r: a message on %s is lost: %s", self.event_name, topic,
                        why)

    def _presence(self, topic: str, hub_id: str, payload: bytes) -> None:
        if hub_id == self.hub_id:
            return
        state = payload.strip().decode("ascii", "replace")
        with self._lock:
            if not payload:  # a retained presence cleared: the hub is forgotten
                self._remote.pop(hub_id, None)
                return
            if state in (ONLINE, OFFLINE):
                if hub_id in self._remote or len(self._remote) < MAX_REMOTE_HUBS:
                    self._remote[hub_id] = state
                return
        self._reject(topic, payload, f"a presence is {ONLINE!r} or {OFFLINE!r}")

    def _reject(self, topic: str, payload: bytes, reason: str) -> None:
        text = payload[:PREVIEW_CHARS * 4].decode("utf-8", "backslashreplace")
        if len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS - 3] + "..."
        with self._lock:
            self._rejected += 1
            self._rejects.note(Rejected(self._arrived, f"{topic}: {reason}", text))

    def _broker_lost(self) -> None:
        """Without the broker the other hubs are out of reach: offline until their presence
        comes again (retained, on the next subscription)."""
        with self._lock:
            for hub_id in self._remote:
                self._remote[hub_id] = OFFLINE

    def _error(self, error: str) -> None:
        with self._lock:
            self._last_error = error

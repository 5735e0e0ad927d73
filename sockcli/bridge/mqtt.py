"""The broker side of the bridge: one paho-mqtt client (MQTT 5, CallbackAPIVersion.VERSION2)
and the thread that publishes what the local hub sent.

- Connection: ``connect_async`` then paho's network thread (``loop_start``), which connects
  and reconnects by itself with a capped backoff (0.5 s doubling to 10 s). A persistent
  session (clean start off, session expiry 1 h) lets a broker that keeps sessions queue QoS 1
  messages for a bridge that is away.
- Presence: a retained ``online`` on ``{prefix}/{event}/$hubs/{hub_id}`` on each connect,
  ``offline`` as the last will and on a clean stop.
- Subscriptions, on each connect: the event's messages (QoS 1, No Local: the broker does not
  send this client's own messages back) and the other hubs' presence. The state is
  ``connected`` once the broker has acknowledged them.
- Publishing: a thread takes messages from :class:`~sockcli.bridge.pending.Pending` in order
  and publishes them (QoS 1); the PUBACKs settle them.

What arrives goes to the bridge's ``deliver(topic, payload, retained)`` in paho's thread; the
state changes are logged once each (logger ``sockcli.bridge``), with the URL without secrets.
paho is imported here, and this module only when a bridge starts.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from sockcli.bridge.codec import OFFLINE, ONLINE, Topics
from sockcli.bridge.endpoint import Endpoint
from sockcli.bridge.pending import Pending

__all__ = ["CONNECTED", "CONNECTING", "KEEPALIVE", "RECONNECTING", "RECONNECT_MAX_DELAY",
           "RECONNECT_MIN_DELAY", "SESSION_EXPIRY", "STOPPED", "BrokerLink"]

log = logging.getLogger("sockcli.bridge")

#: The states of the bridge's figures.
CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
STOPPED = "stopped"

#: Seconds the broker keeps this bridge's session (its subscriptions, the QoS 1 messages for
#: it) after it went away.
SESSION_EXPIRY = 3600
#: Seconds between pings while nothing else is said; the broker sends the will after 1.5 x.
KEEPALIVE = 30
RECONNECT_MIN_DELAY = 0.5
RECONNECT_MAX_DELAY = 10
#: The publisher thread's longest sleep: how often it notices a stop at worst.
_TICK = 1.0

Deliver = Callable[[str, bytes, bool], None]


class _QuietRetries(logging.Filter):
    """paho logs an error each time its loop runs between two connection attempts ("Client
    is not connected"): the bridge says it once per state change instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_paho_log = logging.getLogger("sockcli.bridge.paho")
_paho_log.addFilter(_QuietRetries())


class BrokerLink:
    """The connection to the broker of ``endpoint`` as ``client_id``, for the hub
    ``hub_id``: publishes what ``pending`` holds, hands what arrives to ``deliver``, tells
    ``on_error`` each connection error (the bridge's ``last_error``) and calls ``on_lost``
    when the connection is lost."""

    def __init__(self, endpoint: Endpoint, *, client_id: str, topics: Topics, hub_id: str,
                 pending: Pending, deliver: Deliver, on_error: Callable[[str], None],
                 on_lost: Callable[[], None]) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.topics = topics
        self.hub_id = hub_id
        self._pending = pending
        self._deliver = deliver
        self._on_error = on_error
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._state = STOPPED
        self._ever_connected = False
        self._complained = False  # this state's failure was logged already
        self._up = False  # the broker accepted the connection (CONNACK), not lost since
        #: The subscription of this connection (mid, reconnected?, session resumed?) until
        #: its SUBACK: the state is "connected" from then on.
        self._subscribing: tuple[int | None, bool, bool] | None = None
        self._stopping = threading.Event()
        self._publisher: threading.Thread | None = None
        self._client = self._make_client()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def url(self) -> str:
        return self.endpoint.url

    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.enable_logger(_paho_log)
        client.suppress_exceptions = True  # a bug in a callback is logged, paho's thread lives
        client.max_inflight_messages_set(0)  # no limit in paho: Pending keeps the window
        # paho computes with the delays as numbers; its annotation says int.
        client.reconnect_delay_set(RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY)  # type: ignore[arg-type]
        endpoint = self.endpoint
        if endpoint.username is not None or endpoint.password is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls_context is not None:
            client.tls_set_context(endpoint.tls_context)
        client.will_set(self.topics.presence(self.hub_id), OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- starting and stopping -----------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's thread) and start publishing."""
        with self._lock:
            self._state = CONNECTING
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=KEEPALIVE,
                                   clean_start=False, properties=properties)
        self._client.loop_start()
        self._publisher = threading.Thread(target=self._publish_loop, daemon=True,
                                           name=f"sockcli-bridge-{self.topics.base}")
        self._publisher.start()

    def stop(self, deadline: float) -> None:
        """Publish what waits (for part of the time left), say ``offline``, disconnect;
        every wait ends by ``deadline`` (time.monotonic())."""
        connected = self.state == CONNECTED
        if connected:  # the messages sent just before the stop still reach the broker
            self._pending.wait_empty(max(0.0, (deadline - time.monotonic()) * 0.6))
        self._stopping.set()
        if connected:
            with contextlib.suppress(ValueError, RuntimeError):
                info = self._client.publish(self.topics.presence(self.hub_id), OFFLINE, qos=1,
                                            retain=True)
                self._pending.sent(info.mid, message=False)
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self._client.disconnect()
        self._pending.close()
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True,
                                   name="sockcli-bridge-stop")
        stopper.start()
        for thread in (self._publisher, stopper):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._state = STOPPED
        log.info("bridge to %s stopped", self.url)

    # -- publishing ----------------------------------------------------------------------

    def _publish_loop(self) -> None:
        client, pending = self._client, self._pending
        while True:
            batch = pending.take(_TICK)
            if batch is None:
                return
            for item in batch:
                try:
                    info = client.publish(item.topic, item.payload, qos=1, retain=item.retain)
                except ValueError as exc:  # paho refused it before sending
                    pending.unsent()
                    log.warning("bridge: cannot publish on %s: %s", item.topic, exc)
                    continue
                # NO_CONN: paho keeps a QoS 1 message and sends it once reconnected.
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    pending.unsent()
                    log.warning("bridge: cannot publish on %s: %s", item.topic,
                                paho.error_string(info.rc))
                    continue
                if pending.sent(info.mid) is False:
                    self._refused("refused")

    def _refused(self, reason: str) -> None:
        """The broker acknowledged a message with a failure (an ACL, a quota): it is lost
        (counted ``dropped``)."""
        self._on_error(f"the broker refused a message: {reason}")
        log.warning("bridge: the broker %s refused a message: %s", self.url, reason)

    # -- paho's callbacks (its network thread) -------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._failed(f"the broker refused the connection: {reason_code}")
            return
        with self._lock:
            again = self._ever_connected
            self._ever_connected, self._up = True, True
        # The retained values on the first subscription of this run (a fresh hub wants the
        # last values); afterwards only for a subscription the broker forgot with the session.
        retained = (SubscribeOptions.RETAIN_SEND_IF_NEW_SUB if again
                    else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        _, mid = client.subscribe([
            (self.topics.messages, SubscribeOptions(qos=1, noLocal=True,
                                                    retainHandling=retained)),
            (self.topics.presences, SubscribeOptions(qos=1)),
        ])
        with self._lock:
            self._subscribing = (mid, again, flags.session_present)
        info = client.publish(self.topics.presence(self.hub_id), ONLINE, qos=1, retain=True)
        self._pending.sent(info.mid, message=False)
        self._pending.connected()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # Called inside paho's "except OSError": the exception being handled says why.
        exc = sys.exc_info()[1]
        self._failed(f"cannot connect: {exc}" if exc is not None else "cannot connect")

    def _failed(self, error: str) -> None:
        self._on_error(error)
        with self._lock:
            if self._stopping.is_set():
                return
            complain, self._complained = not self._complained, True
            state = self._state
        if complain:
            log.warning("bridge %s %s: %s; retrying (every %s s at most)",
                        "is reconnecting to" if state == RECONNECTING else "is connecting to",
                        self.url, error, RECONNECT_MAX_DELAY)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        self._pending.disconnected()
        if self._stopping.is_set():
            return
        with self._lock:
            lost, self._up, self._subscribing = self._up, False, None
            if lost:
                self._state, self._complained = RECONNECTING, False
        if lost:
            why = (f"it disconnected the bridge ({reason_code})"
                   if flags.is_disconnect_packet_from_server else "the connection was lost")
            self._on_error(f"lost the broker: {why}")
            self._on_lost()
            log.warning("bridge lost the broker %s: %s; reconnecting", self.url, why)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        for topic, code in zip((self.topics.messages, self.topics.presences), reason_codes,
                               strict=False):
            if code.is_failure:
                self._on_error(f"the broker refused the subscription to {topic}: {code}")
                log.error("bridge: the broker %s refused the subscription to %s: %s",
                          self.url, topic, code)
        with self._lock:
            subscribing = self._subscribing
            if subscribing is None or subscribing[0] != mid or not self._up:
                return
            # Connected once subscribed: what is published from now on reaches this hub.
            self._subscribing, self._state, self._complained = None, CONNECTED, False
        _, again, resumed = subscribing
        log.info("bridge %s %s as %s%s", "reconnected to" if again else "connected to",
                 self.url, self.client_id, " (session resumed)" if resumed else "")

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Properties) -> None:
        if self._pending.acked(mid, not reason_code.is_failure):
            self._refused(str(reason_code))

    def _on_message(self, client: paho.Client, userdata: Any,
                    message: paho.MQTTMessage) -> None:
        if self._stopping.is_set():
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(a topic that is not UTF-8)"
        try:
            self._deliver(topic, bytes(message.payload), bool(message.retain))
        except Exception:  # never into paho: it would end its network thread
            log.exception("bridge: a message on %s could not be handled", topic)

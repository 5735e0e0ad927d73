"""The bridge's parts (issue 13): the codec (topics, payloads both ways, bare objects, every
rejection, the dedup window, the retained decision), the endpoint (URL, password, TLS), the
pending queue, and a few runs of :class:`~sockcli.bridge.Bridge` in this process between a
real hub and a real mosquitto (tests/mqttbroker.py).

The end-to-end tests of ``serve --bridge`` are in tests/test_bridge.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli import create_client, create_server
from sockcli.bridge.codec import (
    DEDUP_WINDOW,
    Encoder,
    Inbound,
    Incoming,
    PayloadRejected,
    Topics,
    Verdict,
    decode_payload,
    make_hub_id,
    message_type_of,
)
from sockcli.bridge.endpoint import (
    ENV_PASSWORD,
    make_endpoint,
    parse_url,
    read_password_file,
    resolve_password,
    tls_context,
)
from sockcli.bridge.extra import MissingExtraError, require_paho
from sockcli.bridge.pending import Outgoing, Pending
from sockcli.exceptions import SocketError, ValidationError
from sockcli.kinds import MessageType, register_message_type
from sockcli.timestamps import now_ms
from sockcli.types import SocketMessage
from tests.helpers import short_tmp_dir, wait_until
from tests.mqttbroker import Brokers, require_mosquitto

pytestmark = pytest.mark.timeout(60)

HUB = "host-0123abcd"
RUN = f"{HUB}:1700000000000"
MAX = 65536


def decode(payload: bytes | str, topic_type: str = "data", event: str = "ev",
           max_bytes: int = MAX) -> Incoming:
    raw = payload.encode() if isinstance(payload, str) else payload
    return decode_payload(raw, message_type_of(topic_type), event, max_bytes=max_bytes)


def rejection(payload: bytes | str, topic_type: str = "data", **kwargs: Any) -> str:
    with pytest.raises(PayloadRejected) as info:
        decode(payload, topic_type, **kwargs)
    assert isinstance(info.value, SocketError)
    return str(info.value)


# -- the hub id and the topics ------------------------------------------------------------------


def test_the_hub_id_is_the_host_and_a_hash_of_the_socket_dir_and_event(tmp_path: Path) -> None:
    import hashlib

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    digest = hashlib.sha256(f"{os.path.realpath(one)}\0ev".encode()).hexdigest()[:8]
    assert make_hub_id(one, "ev") == f"{socket.gethostname()}-{digest}"
    assert make_hub_id(one, "ev") == make_hub_id(str(one), "ev")  # stable
    assert len({make_hub_id(one, "ev"), make_hub_id(two, "ev"), make_hub_id(one, "ev2")}) == 3
    link = tmp_path / "link"
    link.symlink_to(one)
    assert make_hub_id(link, "ev") == make_hub_id(one, "ev")  # the real path
    # The host name is a topic level: no "/", "+" or "#" in it.
    assert make_hub_id(one, "ev", hostname="a/b+c#d e") == f"a-b-c-d-e-{digest}"
    assert make_hub_id(one, "ev", hostname="///") == f"host-{digest}"


def test_topics_of_an_event() -> None:
    topics = Topics("home/sockcli", "ev")
    assert topics.messages == "home/sockcli/ev/+"
    assert topics.presences == "home/sockcli/ev/$hubs/+"
    assert topics.message(MessageType.ERROR) == "home/sockcli/ev/error"
    assert topics.presence(HUB) == f"home/sockcli/ev/$hubs/{HUB}"
    assert topics.parse("home/sockcli/ev/data") == ("message", "data")
    assert topics.parse("home/sockcli/ev/Custom") == ("message", "Custom")
    assert topics.parse(f"home/sockcli/ev/$hubs/{HUB}") == ("presence", HUB)
    for other in ("home/sockcli/ev", "home/sockcli/ev/", "home/sockcli/ev/data/x",
                  "home/sockcli/ev2/data", "sockcli/ev/data", "home/sockcli/ev/$hubs/",
                  "home/sockcli/ev/$hubs/a/b"):
        assert topics.parse(other) is None, other


def test_the_type_in_a_topic_must_be_known() -> None:
    assert message_type_of("data") is MessageType.DATA
    assert message_type_of("ERROR") is MessageType.ERROR  # any case, as everywhere
    with pytest.raises(PayloadRejected, match="unknown message type 'warning' in the topic"):
        message_type_of("warning")
    warning = register_message_type("warning")  # the message_types setting
    assert message_type_of("warning") is warning


# -- the outgoing payload -----------------------------------------------------------------------


def test_the_outgoing_payload_is_the_listen_json_object_with_origin_and_id() -> None:
    encoder = Encoder(HUB, 1700000000000)
    message = SocketMessage("ev", timestamp_ms=1700000000123,
                            timestamp_iso="2023-11-14T22:13:20.123+00:00",
                            message_type=MessageType.ERROR, data={"é": [1, 2.5, None, "ü"]})
    first = encoder.encode(message)
    second = encoder.encode(message)
    assert "é".encode() in first  # UTF-8, not \\u escapes
    assert json.loads(first) == {
        "event_name": "ev", "timestamp_ms": 1700000000123,
        "timestamp_iso": "2023-11-14T22:13:20.123+00:00", "message_type": "error",
        "data": {"é": [1, 2.5, None, "ü"]}, "origin": HUB, "id": f"{RUN}:1"}
    assert list(json.loads(first)) == ["event_name", "timestamp_ms", "timestamp_iso",
                                       "message_type", "data", "origin", "id"]
    assert json.loads(second)["id"] == f"{RUN}:2"
    assert encoder.count == 2
    assert Encoder(HUB, 1700000000001).encode(message) != first  # another run, another id


def test_a_nan_from_a_library_client_goes_out_as_null() -> None:
    payload = Encoder(HUB, 1).encode(SocketMessage("ev", data={"x": float("nan"),
                                                               "y": float("inf"), "z": 1.5}))
    assert json.loads(payload)["data"] == {"x": None, "y": None, "z": 1.5}
    assert b"NaN" not in payload and b"Infinity" not in payload


def test_a_payload_the_bridge_wrote_comes_back_as_the_same_message() -> None:
    message = SocketMessage("ev", timestamp_ms=1700000000123,
                            timestamp_iso="2023-11-14T23:13:20.123+01:00",
                            message_type=MessageType.CONTROL, data={"cmd": "stop", "n": [1]})
    incoming = decode(Encoder(HUB, 5).encode(message), "control")
    assert incoming.message == message
    assert (incoming.origin, incoming.id) == (HUB, f"{HUB}:5:1")


# -- the incoming payload -----------------------------------------------------------------------


def test_a_bare_object_is_the_data_of_a_message_of_the_topic_type_stamped_now() -> None:
    before = now_ms()
    incoming = decode('{"progress": 1, "nested": {"a": [true, null]}}', "error")
    after = now_ms()
    message = incoming.message
    assert (message.event_name, message.message_type) == ("ev", MessageType.ERROR)
    assert message.data == {"progress": 1, "nested": {"a": [True, None]}}
    assert before <= message.timestamp_ms <= after
    assert message.timestamp_iso
    assert (incoming.origin, incoming.id) == (None, None)
    # Keys of the full form without the rest of it are data too.
    assert decode('{"data": {"x": 1}}').message.data == {"data": {"x": 1}}
    assert decode('{"message_type": "data", "data": 5}').message.data == \
        {"message_type": "data", "data": 5}
    assert decode('{"origin": "x", "id": "y"}').id is None  # a bare object's keys are data
    assert decode(' \r\n{}\n').message.data == {}


def test_the_full_form_keeps_its_timestamps_when_they_are_valid() -> None:
    full = {"event_name": "ev", "timestamp_ms": 1700000000123,
            "timestamp_iso": "2023-11-14T22:13:20.123Z", "message_type": "error",
            "data": {"error": "disk full"}, "origin": "other-1", "id": "other-1:1:1",
            "retained": True, "unknown": "ignored"}
    incoming = decode(json.dumps(full), "error")
    message = incoming.message
    assert (message.timestamp_ms, message.timestamp_iso) == (1700000000123,
                                                             "2023-11-14T22:13:20.123Z")
    assert (message.message_type, message.data) == (MessageType.ERROR, {"error": "disk full"})
    assert not message.retained
    assert (incoming.origin, incoming.id) == ("other-1", "other-1:1:1")
    # No event_name: this event's; the type in any case.
    short = decode('{"message_type": "ERROR", "data": {}, "timestamp_ms": 5}', "error")
    assert (short.message.event_name, short.message.timestamp_ms) == ("ev", 5)
    assert short.message.timestamp_iso.startswith("1970-01-01T")  # written from the ms


@pytest.mark.parametrize("stamps", [
    {},
    {"timestamp_ms": "1700000000123"},
    {"timestamp_ms": -1},
    {"timestamp_ms": True},
    {"timestamp_ms": 1.5e12},
    {"timestamp_ms": 10**17},
    {"timestamp_iso": "2023-11-14T22:13:20.123Z"},  # an instant without its ms
])
def test_the_full_form_without_a_usable_instant_is_stamped_now(stamps: dict[str, Any]) -> None:
    before = now_ms()
    message = decode(json.dumps({"message_type": "data", "data": {"x": 1}, **stamps})).message
    assert before <= message.timestamp_ms <= now_ms()
    assert message.data == {"x": 1}


def test_an_invalid_timestamp_iso_is_written_again_from_the_ms() -> None:
    message = decode(json.dumps({"message_type": "data", "data": {}, "timestamp_ms": 1000,
                                 "timestamp_iso": "yesterday"})).message
    assert message.timestamp_ms == 1000
    assert message.timestamp_iso.startswith("1970-01-01T") and "yesterday" not in \
        message.timestamp_iso


@pytest.mark.parametrize(("payload", "topic_type", "reason"), [
    (b"not json at all", "data", "not JSON (column 1): Expecting value"),
    (b"", "data", "not JSON (column 1)"),
    (b'{"a": 1', "data", "not JSON (column 8)"),
    (b'{"a": 1} {"b": 2}', "data", "not JSON (column 10): Extra data"),
    (b"[1, 2, 3]", "data", "expected a JSON object, got an array"),
    (b'"text"', "data", "expected a JSON object, got a string"),
    (b"42", "data", "expected a JSON object, got a number"),
    (b"null", "data", "expected a JSON object, got null"),
    (b"true", "data", "expected a JSON object, got a boolean"),
    (b'{"x": NaN}', "data", "NaN is not valid JSON"),
    (b'{"x": -Infinity}', "data", "-Infinity is not valid JSON"),
    (b'{"x": 1e400}', "data", "1e400 is out of range"),
    (b'{"x": "\xff\xfe"}', "data", "not UTF-8 (byte 0xff at offset 7)"),
    (b'{"x": "\\ud800"}', "data", "a string holds an unpaired surrogate"),
    (b'{"a":' * 33 + b"1" + b"}" * 33, "data", "data nests deeper than 32 levels"),
    (b'{"a":' + b"[" * 60_000, "data", "data nests deeper than 32 levels"),
    (b'{"x": 1}', "nosuchtype", "unknown message type 'nosuchtype' in the topic"),
    (b'{"event_name": "other", "message_type": "data", "data": {}}', "data",
     "event_name 'other' is not this hub's event 'ev'"),
    (b'{"event_name": 5, "message_type": "data", "data": {}}', "data",
     "event_name 5 is not this hub's event 'ev'"),
    (b'{"message_type": "error", "data": {}}', "data",
     "message_type 'error' is not the topic's type 'data'"),
    (b'{"message_type": 1, "data": {}}', "data", "message_type 1 is not the topic's type"),
    (b'{"message_type": "nosuch", "data": {}}', "data", "message_type 'nosuch' is not"),
    (b'{"message_type": "data", "data": {}, "id": 7}', "data",
     "id must be a string of 1 to 256 characters, not a number"),
    (b'{"message_type": "data", "data": {}, "id": ""}', "data", "id must be a string"),
    (b'{"message_type": "data", "data": {}, "origin": "' + b"o" * 257 + b'"}', "data",
     "origin must be a string of 1 to 256 characters"),
    (b'{"message_type": "data", "data": {"a":' + b'{"a":' * 32 + b"1" + b"}" * 34, "data",
     "data nests deeper than 32 levels"),
])
def test_what_is_not_a_message_is_rejected_with_a_reason(payload: bytes, topic_type: str,
                                                         reason: str) -> None:
    text = rejection(payload, topic_type)
    assert text.startswith(reason), text


def test_a_payload_larger_than_the_hub_buffer_is_rejected_before_parsing() -> None:
    payload = json.dumps({"x": "y" * 100})
    assert decode(payload, max_bytes=len(payload)).message.data == {"x": "y" * 100}
    assert rejection(payload, max_bytes=len(payload) - 1) == \
        f"{len(payload)} bytes, larger than the hub's buffer_size ({len(payload) - 1} bytes)"
    assert rejection(b"\xff" * 10, max_bytes=9).startswith("10 bytes, larger")


# -- what to do with a message: echo, duplicates, retained values ------------------------------


def incoming(ms: int, *, message_type: MessageType = MessageType.DATA,
             origin: str | None = "other-1", id: str | None = None) -> Incoming:
    return Incoming(SocketMessage("ev", timestamp_ms=ms, message_type=message_type,
                                  data={"ms": ms}), origin, id)


def test_this_hub_own_messages_are_echoes() -> None:
    inbound = Inbound(HUB, run=RUN)
    assert inbound.judge(incoming(1, origin=HUB, id=f"{RUN}:1"), retained=False) is Verdict.ECHO
    assert inbound.judge(incoming(1, origin=HUB), retained=False) is Verdict.ECHO
    # This run's retained value: the hub holds it already.
    assert inbound.judge(incoming(1, origin=HUB, id=f"{RUN}:1"), retained=True) is Verdict.ECHO
    # An earlier run's retained value: the restarted hub gets its own last value back.
    assert inbound.judge(incoming(2, origin=HUB, id=f"{HUB}:1699:3"), retained=True) is \
        Verdict.RETAIN
    assert inbound.judge(incoming(3, origin=HUB, id=f"{HUB}:1699:4"), retained=False) is \
        Verdict.ECHO
    assert inbound.remembered == 1  # echoes are not remembered


def test_an_id_seen_within_the_window_is_a_duplicate() -> None:
    inbound = Inbound(HUB, window=3, run=RUN)
    for n in (1, 2, 3):
        assert inbound.judge(incoming(n, id=f"o:1:{n}"), retained=False) is Verdict.RELAY
    assert inbound.judge(incoming(1, id="o:1:1"), retained=False) is Verdict.DUPLICATE
    # The LRU keeps what was seen lately: 1 was just seen again, so 2 goes first.
    assert inbound.judge(incoming(4, id="o:1:4"), retained=False) is Verdict.RELAY
    assert inbound.remembered == 3
    assert inbound.judge(incoming(1, id="o:1:1"), retained=False) is Verdict.DUPLICATE
    assert inbound.judge(incoming(2, id="o:1:2"), retained=False) is Verdict.RELAY  # forgotten
    # Messages without an id (bare objects) are never taken for duplicates.
    assert inbound.judge(incoming(5, id=None), retained=False) is Verdict.RELAY
    assert inbound.judge(incoming(5, id=None), retained=False) is Verdict.RELAY
    assert Inbound(HUB).window == DEDUP_WINDOW == 65536


def test_the_default_window_remembers_65536_ids() -> None:
    inbound = Inbound(HUB)
    for n in range(DEDUP_WINDOW + 1):
        inbound.judge(incoming(n, id=f"o:1:{n}"), retained=False)
    assert inbound.remembered == DEDUP_WINDOW
    assert inbound.judge(incoming(1, id="o:1:1"), retained=False) is Verdict.DUPLICATE
    assert inbound.judge(incoming(0, id="o:1:0"), retained=False) is Verdict.RELAY


def test_a_retained_value_is_taken_only_if_newer_than_what_was_seen_of_its_type() -> None:
    inbound = Inbound(HUB, run=RUN)
    assert inbound.judge(incoming(100, id="o:1:1"), retained=True) is Verdict.RETAIN
    assert inbound.judge(incoming(100, id="o:1:2"), retained=True) is Verdict.STALE  # as old
    assert inbound.judge(incoming(99, id="o:1:3"), retained=True) is Verdict.STALE
    assert inbound.judge(incoming(101, id="o:1:4"), retained=True) is Verdict.RETAIN
    # Per type: an error retained value does not compete with data.
    error = MessageType.ERROR
    assert inbound.judge(incoming(50, message_type=error), retained=True) is Verdict.RETAIN
    # A live message counts as seen: an older retained value is stale after it.
    assert inbound.judge(incoming(200, id="o:1:5"), retained=False) is Verdict.RELAY
    assert inbound.judge(incoming(150, id="o:1:6"), retained=True) is Verdict.STALE
    # So does a message of the local hub, on its way out.
    inbound.note_local(SocketMessage("ev", timestamp_ms=300))
    assert inbound.judge(incoming(250, id="o:1:7"), retained=True) is Verdict.STALE
    assert inbound.judge(incoming(301, id="o:1:8"), retained=True) is Verdict.RETAIN
    # The retained copy of a message relayed already is stale, not a duplicate.
    assert inbound.judge(incoming(400, id="o:1:9"), retained=False) is Verdict.RELAY
    assert inbound.judge(incoming(500, id="o:1:9"), retained=True) is Verdict.STALE


# -- the endpoint: URL, password, TLS -----------------------------------------------------------


class BridgeSettings:
    """The [bridge] section, as a test gives it."""

    def __init__(self, **values: Any) -> None:
        self.url = values.get("url", "")
        self.topic_prefix = values.get("topic_prefix", "sockcli")
        self.username = values.get("username", "")
        self.password_file = values.get("password_file")
        self.tls_ca = values.get("tls_ca")
        self.client_id = values.get("client_id", "")
        self.queue_size = values.get("queue_size", 10000)
        self.retain = values.get("retain", True)


def test_broker_urls() -> None:
    assert parse_url("mqtt://broker") == ("mqtt", "broker", 1883, None)
    assert parse_url("mqtts://broker") == ("mqtts", "broker", 8883, None)
    assert parse_url(" MQTT://Broker.lan:1884/ ") == ("mqtt", "broker.lan", 1884, None)
    assert parse_url("mqtt://[::1]:1885") == ("mqtt", "::1", 1885, None)
    assert parse_url("mqtt://bob%40home@broker") == ("mqtt", "broker", 1883, "bob@home")
    endpoint = make_endpoint("mqtt://[::1]", BridgeSettings(), environ={})
    assert endpoint.url == "mqtt://[::1]:1883"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://broker", "use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"),
    ("broker:1883", "use mqtt://HOST[:PORT]"),
    ("mqtt://", "no host"),
    ("mqtt://:1883", "no host"),
    ("mqtt://broker:port", "Port could not be cast"),
    ("mqtt://broker:99999", "out of range"),
    ("mqtt://broker:0", "port 0"),
    ("mqtt://broker/topic", "a broker URL has no path or query"),
    ("mqtt://broker?x=1", "a broker URL has no path or query"),
])
def test_bad_broker_urls(url: str, expected: str) -> None:
    with pytest.raises(ValidationError, match="bridge URL") as info:
        parse_url(url)
    assert expected in str(info.value)


def test_a_password_in_the_url_is_refused_and_not_repeated() -> None:
    with pytest.raises(ValidationError) as info:
        parse_url("mqtt://bob:hunter2@broker:1883")
    text = str(info.value)
    assert "hunter2" not in text
    assert "mqtt://bob:***@broker:1883" in text
    assert "password_file" in text and ENV_PASSWORD in text


def test_the_password_comes_from_the_variable_else_a_private_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("pa55 word\n")
    os.chmod(secret, 0o600)
    assert read_password_file(secret) == "pa55 word"  # only the line end goes
    assert resolve_password(secret, environ={}) == "pa55 word"
    assert resolve_password(secret, environ={ENV_PASSWORD: "from-env"}) == "from-env"
    assert resolve_password(secret, environ={ENV_PASSWORD: ""}) == "pa55 word"  # empty: unset
    assert resolve_password(None, environ={}) is None
    crlf = tmp_path / "crlf"
    crlf.write_bytes(b"x\r\n")
    os.chmod(crlf, 0o600)
    assert read_password_file(crlf) == "x"
    settings = BridgeSettings(username="bob", password_file=secret)
    endpoint = make_endpoint("mqtt://broker", settings, environ={})
    assert (endpoint.username, endpoint.password, endpoint.tls_context) == \
        ("bob", "pa55 word", None)
    assert "pa55" not in repr(endpoint) and endpoint.url == "mqtt://broker:1883"
    # The URL's user wins over the setting; a user without a password is fine.
    endpoint = make_endpoint("mqtt://alice@broker", BridgeSettings(username="bob"),
                             environ={})
    assert (endpoint.username, endpoint.password) == ("alice", None)


@pytest.mark.parametrize(("mode", "content", "expected"), [
    (0o644, b"secret\n", "is accessible by group or others (mode 0644): run 'chmod 600"),
    (0o640, b"secret\n", "is accessible by group or others (mode 0640)"),
    (0o600, b"", "is empty"),
    (0o600, b"\n", "is empty"),
    (0o600, b"\xff\xfe\n", "is not UTF-8 text"),
])
def test_a_password_file_others_could_read_or_that_is_unusable_is_refused(
        tmp_path: Path, mode: int, content: bytes, expected: str) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(content)
    os.chmod(secret, mode)
    with pytest.raises(ValidationError) as info:
        resolve_password(secret, environ={})
    assert str(secret) in str(info.value) and expected in str(info.value)
    assert "secret" not in str(info.value).replace(str(tmp_path), "")


def test_a_password_file_that_is_missing_or_no_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cannot read the bridge's password file .*No "
                                              r"such file"):
        read_password_file(tmp_path / "missing")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ValidationError, match="is not a regular file"):
        read_password_file(fifo)  # at once: no wait for a writer
    with pytest.raises(ValidationError, match="is not a regular file"):
        read_password_file(tmp_path)


def test_mqtts_gets_a_verifying_tls_context(tmp_path: Path) -> None:
    import ssl

    context = tls_context(None)  # the system's CAs
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValidationError, match=r"cannot read the bridge's tls_ca .*missing"):
        tls_context(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="cannot load the bridge's tls_ca"):
        tls_context(bad)
    endpoint = make_endpoint("mqtts://broker", BridgeSettings(), environ={})
    assert endpoint.tls_context is not None and endpoint.port == 8883
    # tls_ca is checked only for mqtts://
    plain = make_endpoint("mqtt://broker", BridgeSettings(tls_ca=bad), environ={})
    assert plain.tls_context is None


# -- the extra ----------------------------------------------------------------------------------


def test_without_paho_the_bridge_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("paho.mqtt.client")
    require_paho()  # installed here
    for name in [n for n in sys.modules if n == "paho" or n.startswith("paho.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "paho", None)  # import paho raises ImportError
    with pytest.raises(MissingExtraError) as info:
        require_paho()
    assert str(info.value) == "--bridge needs paho-mqtt: pip install 'sockcli[mqtt]'"
    assert isinstance(info.value, ValidationError)  # exit 78


def test_importing_the_bridge_package_imports_neither_paho_nor_the_bridge() -> None:
    code = ("import sys, sockcli.bridge; from sockcli.bridge import require_paho, "
            "MissingExtraError; print(sorted(m for m in sys.modules if m.startswith("
            "('paho', 'sockcli.bridge.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['sockcli.bridge.extra']"


# -- the pending queue --------------------------------------------------------------------------


def out(n: int) -> Outgoing:
    return Outgoing("sockcli/ev/data", str(n).encode(), True)


def test_a_full_queue_drops_its_oldest_message() -> None:
    pending = Pending(3, window=10)
    for n in range(5):
        pending.put(out(n))
    assert (pending.count, pending.dropped) == (3, 2)
    assert pending.take(0) == []  # not connected: nothing goes
    pending.connected()
    batch = pending.take(0)
    assert batch is not None and [item.payload for item in batch] == [b"2", b"3", b"4"]
    assert pending.count == 3  # in flight until acknowledged


def test_the_window_bounds_what_is_in_flight_and_acks_settle_it() -> None:
    pending = Pending(100, window=2)
    for n in range(5):
        pending.put(out(n))
    pending.connected()
    batch = pending.take(0)
    assert batch is not None and [i.payload for i in batch] == [b"0", b"1"]
    assert pending.take(0) == []  # the window is full
    assert pending.sent(10) is None
    assert pending.acked(11) is False  # acknowledged before sent() knew the mid
    assert pending.sent(11) is True
    assert (pending.published, pending.count) == (1, 4)
    batch = pending.take(0)
    assert batch is not None and [i.payload for i in batch] == [b"2"]
    assert pending.acked(10) is False
    pending.sent(12)
    assert pending.acked(12, ok=False) is True  # refused by the broker: lost
    assert (pending.published, pending.dropped, pending.refused, pending.count) == (2, 1, 1, 2)
    # Presence publishes are tracked, never counted.
    pending.sent(13, message=False)
    assert pending.acked(13) is False
    assert (pending.published, pending.count) == (2, 2)


def test_after_a_reconnect_the_resent_messages_go_first() -> None:
    pending = Pending(100, window=10)
    for n in range(3):
        pending.put(out(n))
    pending.connected()
    batch = pending.take(0)
    assert batch is not None and len(batch) == 3
    for mid in (1, 2, 3):
        pending.sent(mid)
    pending.disconnected()
    pending.put(out(3))
    pending.connected()  # paho resends 1, 2, 3: nothing new before they are acknowledged
    assert pending.take(0) == []
    pending.acked(1)
    pending.acked(2)
    assert pending.take(0) == []
    pending.acked(3)
    batch = pending.take(0)
    assert batch is not None and [i.payload for i in batch] == [b"3"]
    assert not pending.wait_empty(0)
    pending.sent(4)
    pending.acked(4)
    assert pending.wait_empty(0)
    pending.close()
    assert pending.take(5) is None


# -- Bridge, made --------------------------------------------------------------------------------


def test_a_bridge_is_checked_when_made() -> None:
    from sockcli.bridge import Bridge

    with pytest.raises(ValidationError, match="no broker to bridge to"):
        Bridge("ev")  # the [bridge] url setting is empty
    bridge = Bridge("ev", url="mqtt://user@127.0.0.1:1")
    figures = bridge.figures()
    assert figures == {"state": "stopped", "url": "mqtt://127.0.0.1:1",
                       "hub_id": bridge.hub_id, "pending": 0, "published": 0, "received": 0,
                       "dropped": 0, "rejected": 0, "duplicates": 0, "remote_hubs": {},
                       "last_error": None}
    assert bridge.client_id == f"sockcli-{bridge.hub_id}"
    json.dumps(figures)
    with pytest.raises(ValidationError, match="holds a password"):
        Bridge("ev", url="mqtt://u:p@host")
    with pytest.raises(ValidationError, match="invalid event name"):
        Bridge("no/such", url="mqtt://host")
    bridge.stop()  # never started: nothing to do
    assert bridge.figures()["state"] == "stopped"


# -- Bridge, running: a real hub in this process and a real mosquitto ---------------------------


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    require_mosquitto()
    pytest.importorskip("paho.mqtt.client", reason="the bridge needs paho-mqtt: "
                        "pip install -e '.[mqtt]'")
    made = Brokers(tmp_path / "brokers")
    yield made
    made.close()


class Site:
    """A hub of ``ev`` in its own socket directory (a "machine"), its bridge, its clients."""

    def __init__(self, sock_dir: Path, url: str, **settings: Any) -> None:
        from sockcli.bridge import Bridge

        self.sock_dir = sock_dir
        hub: Any = create_server("unix", "ev", socket_dir=sock_dir, timezone="UTC", **settings)
        hub.start(blocking=False)
        self.hub = hub
        self.bridge = Bridge("ev", settings=hub.settings, url=url)
        hub.bridge = self.bridge
        self.clients: list[Any] = []

    def start(self) -> Site:
        self.bridge.start()
        self.wait(lambda f: f["state"] == "connected", "connected")
        return self

    def client(self, **kwargs: Any) -> Any:
        client = create_client("unix", "ev", socket_dir=self.sock_dir, timezone="UTC",
                               **kwargs)
        self.clients.append(client)
        client.connect(timeout=10)
        return client

    def wait(self, predicate: Callable[[dict[str, Any]], Any], what: str,
             timeout: float = 20.0) -> dict[str, Any]:
        figures: dict[str, Any] = wait_until(
            lambda: (lambda f: f if predicate(f) else None)(self.bridge.figures()),
            timeout, what)
        return figures

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
        self.bridge.stop()
        self.hub.stop()


@pytest.fixture
def sites(brokers: Brokers) -> Iterator[Callable[..., Site]]:
    """``sites(url, **settings)``: a bridged hub in a new socket directory; closed before the
    brokers stop (so that its bridge says offline to a broker still there)."""
    made: list[Site] = []
    dirs: list[Path] = []

    def make(url: str, **settings: Any) -> Site:
        directory = short_tmp_dir()
        os.chmod(directory, 0o700)
        dirs.append(directory)
        site = Site(directory, url, **settings)
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()
    import shutil

    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)


def sub_line(proc: subprocess.Popen[str], predicate: Callable[[str, str], bool],
             timeout: float = 20.0) -> tuple[str, str]:
    """The first ``mosquitto_sub -v`` line (topic, payload) for which ``predicate`` holds."""
    from tests.clitools import read_line

    while True:
        topic, _, payload = read_line(proc, "stdout", timeout).rstrip("\n").partition(" ")
        if predicate(topic, payload):
            return topic, payload


def test_local_and_broker_messages_cross_the_bridge(brokers: Brokers,
                                                    sites: Callable[..., Site]) -> None:
    broker = brokers()
    site = sites(broker.url).start()
    hub_id = site.bridge.hub_id
    listener = site.client()
    sub = broker.sub("sockcli/#")
    try:
        assert sub_line(sub, lambda t, p: t == f"sockcli/ev/$hubs/{hub_id}") == \
            (f"sockcli/ev/$hubs/{hub_id}", "online")
        # Local -> broker: the full form, once, published retained.
        sender = site.client(subscribe=False)
        sender.send(SocketMessage("ev", message_type=MessageType.ERROR, data={"n": 1}))
        assert listener.receive(10).data == {"n": 1}
        _, payload = sub_line(sub, lambda t, p: t == "sockcli/ev/error")
        sent = json.loads(payload)
        assert (sent["data"], sent["origin"], sent["message_type"]) == ({"n": 1}, hub_id,
                                                                        "error")
        assert sent["id"].startswith(f"{hub_id}:") and sent["id"].endswith(":1")
        site.wait(lambda f: f["published"] == 1 and f["pending"] == 0, "published")

        # Broker -> local: a bare object, garbage (counted, survived), an echo, a duplicate.
        broker.pub("sockcli/ev/data", '{"progress": 1}')
        got = listener.receive(10)
        assert (got.message_type, got.data) == (MessageType.DATA, {"progress": 1})
        broker.pub("sockcli/ev/data", "garbage")
        broker.pub("sockcli/ev/nosuchtype", "{}")
        broker.pub("sockcli/ev/$hubs/other-hub", "maybe")
        echo = {"message_type": "data", "data": {"echo": True}, "origin": hub_id}
        broker.pub("sockcli/ev/data", json.dumps(echo))
        twice = {"message_type": "data", "data": {"twice": True}, "origin": "other-hub",
                 "id": "other-hub:1:1"}
        broker.pub("sockcli/ev/data", json.dumps(twice))
        broker.pub("sockcli/ev/data", json.dumps(twice))
        broker.pub("sockcli/ev/data", '{"last": true}')
        assert [listener.receive(10).data for _ in range(2)] == [{"twice": True},
                                                                 {"last": True}]
        figures = site.wait(lambda f: f["received"] == 3, "3 received")
        assert (figures["rejected"], figures["duplicates"], figures["dropped"]) == (3, 1, 0)
        assert figures["state"] == "connected" and figures["last_error"] is None
        with pytest.raises(TimeoutError):
            listener.receive(0.2)  # nothing else: not the echo, not the duplicate
        # The hub's figures carry the bridge's (sockcli list).
        assert site.hub.stats()["bridge"]["received"] == 3

        site.bridge.stop()
        assert sub_line(sub, lambda t, p: t == f"sockcli/ev/$hubs/{hub_id}") == \
            (f"sockcli/ev/$hubs/{hub_id}", "offline")
        assert site.bridge.figures()["state"] == "stopped"
    finally:
        sub.kill()
        sub.wait(10)


def test_two_bridged_hubs_see_each_other_and_exchange_once(brokers: Brokers,
                                                           sites: Callable[..., Site]) -> None:
    broker = brokers()
    a, b = sites(broker.url).start(), sites(broker.url).start()
    a_id, b_id = a.bridge.hub_id, b.bridge.hub_id
    assert a_id != b_id
    a.wait(lambda f: f["remote_hubs"] == {b_id: "online"}, "B seen online")
    b.wait(lambda f: f["remote_hubs"] == {a_id: "online"}, "A seen online")
    at_a, at_b = a.client(), b.client()
    send_a, send_b = a.client(subscribe=False), b.client(subscribe=False)
    for n in range(100):
        send_a.send(SocketMessage("ev", data={"from": "a", "n": n}), wait=False)
        send_b.send(SocketMessage("ev", data={"from": "b", "n": n}), wait=False)
    send_a.flush(10)
    send_b.flush(10)
    for listener in (at_a, at_b):
        got: list[dict[str, Any]] = []
        while len(got) < 200:
            got.extend(m.data for m in listener.receive_many(200, timeout=20))
        for sender in ("a", "b"):
            assert [d["n"] for d in got if d["from"] == sender] == list(range(100))
        with pytest.raises(TimeoutError):
            listener.receive(0.2)
    for site in (a, b):
        figures = site.wait(lambda f: f["published"] == 100 and f["received"] == 100,
                            "100 each way")
        assert (figures["dropped"], figures["rejected"], figures["duplicates"]) == (0, 0, 0)
    b.bridge.stop()
    a.wait(lambda f: f["remote_hubs"] == {b_id: "offline"}, "B offline after its stop")


def test_the_broker_away_messages_wait_and_go_in_order_once(brokers: Brokers,
                                                            sites: Callable[..., Site]) -> None:
    broker = brokers()
    a, b = sites(broker.url).start(), sites(broker.url).start()
    a.wait(lambda f: b.bridge.hub_id in f["remote_hubs"], "B seen")
    b.wait(lambda f: a.bridge.hub_id in f["remote_hubs"], "A seen")
    at_b = b.client()
    sender = a.client(subscribe=False)
    broker.wait_saved()  # B's subscription survives the kill
    broker.kill()
    a.wait(lambda f: f["state"] == "reconnecting", "the broker seen gone")
    b.wait(lambda f: f["remote_hubs"] == {a.bridge.hub_id: "offline"},
           "A out of reach while the broker is away")
    for n in range(50):
        sender.send(SocketMessage("ev", data={"n": n}))  # acknowledged by the local hub
    a.wait(lambda f: f["pending"] == 50, "50 pending")
    a.wait(lambda f: (f["last_error"] or "").startswith("cannot connect: "), "a retry refused")
    broker.restart()
    a.wait(lambda f: f["state"] == "connected", "reconnected", timeout=30)
    got: list[int] = []
    while len(got) < 50:
        got.extend(m.data["n"] for m in at_b.receive_many(100, timeout=30))
    assert got == list(range(50))
    with pytest.raises(TimeoutError):
        at_b.receive(0.3)
    figures = a.wait(lambda f: f["pending"] == 0 and f["published"] == 50, "all published")
    assert figures["dropped"] == 0
    b.wait(lambda f: f["remote_hubs"] == {a.bridge.hub_id: "online"}, "A online again")


def test_a_retained_value_sets_the_hub_last_value_without_being_relayed(
        brokers: Brokers, sites: Callable[..., Site]) -> None:
    broker = brokers()
    newer = {"event_name": "ev", "timestamp_ms": 1700000000200, "message_type": "data",
             "data": {"state": "ok"}, "origin": "other-hub", "id": "other-hub:1:2"}
    broker.pub("sockcli/ev/data", json.dumps(newer), retain=True)
    broker.pub("sockcli/ev/error", '{"bare": "retained"}', retain=True)
    site = sites(broker.url)
    listener = site.client()  # connected before the bridge: it must get nothing relayed
    site.start()
    site.wait(lambda f: f["received"] == 2, "both retained values handed over")
    last = site.client(last=True)
    values = {m.message_type: m for m in (last.receive(10), last.receive(10))}
    assert set(values) == {MessageType.DATA, MessageType.ERROR}
    assert all(m.retained for m in values.values())
    assert values[MessageType.DATA].data == {"state": "ok"}
    assert values[MessageType.DATA].timestamp_ms == 1700000000200
    assert values[MessageType.ERROR].data == {"bare": "retained"}
    with pytest.raises(TimeoutError):
        listener.receive(0.3)


def test_a_password_broker_with_the_password_from_a_file(
        brokers: Brokers, sites: Callable[..., Site], tmp_path: Path) -> None:
    from tests.mqttbroker import PASSWORD, USERNAME

    broker = brokers("password")
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o600)
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    os.chmod(wrong, 0o600)
    refused = sites(broker.url, username=USERNAME, password_file=str(wrong))
    refused.bridge.start()
    figures = refused.wait(lambda f: f["last_error"], "the refusal")
    assert "refused the connection" in figures["last_error"]
    assert figures["state"] == "connecting"
    site = sites(broker.url, username=USERNAME, password_file=str(secret))
    site.start()
    assert PASSWORD not in json.dumps(site.bridge.figures())


def test_a_restarted_hub_gets_its_own_last_value_back(brokers: Brokers,
                                                      sites: Callable[..., Site]) -> None:
    broker = brokers()
    first = sites(broker.url).start()
    first.client(subscribe=False).send(SocketMessage("ev", timestamp_ms=1700000000000,
                                                     data={"state": "before the restart"}))
    first.wait(lambda f: f["published"] == 1 and f["pending"] == 0, "published")
    first.close()
    # The same socket directory: the same hub id, a new run.
    again = Site(first.sock_dir, broker.url)
    try:
        assert again.bridge.hub_id == first.bridge.hub_id
        listener = again.client()
        again.start()
        again.wait(lambda f: f["received"] == 1, "its own retained value handed over")
        last = again.client(last=True).receive(10)
        assert (last.data, last.timestamp_ms, last.retained) == \
            ({"state": "before the restart"}, 1700000000000, True)
        with pytest.raises(TimeoutError):
            listener.receive(0.3)  # set, not relayed
    finally:
        again.close()

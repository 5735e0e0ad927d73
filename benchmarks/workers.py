"""The processes the benchmarks start: senders and receivers, each printing one JSON report.

    python benchmarks/workers.py ROLE [options]

Roles:
  raw-send     a minimal sender: hello, then COUNT message frames, one sendall each (no seq:
               nothing is acknowledged), built the way sockcli's client builds them
  raw-recv     SUBS connections in one process (a selectors loop): the handshake of the chosen
               protocol on each, then count what arrives until each got COUNT messages.
               --proto sockcli (hello/welcome of docs/protocol.md; also the baseline relay),
               mqtt (MQTT 3.1.1 CONNECT + SUBSCRIBE, QoS 0) or lines (newline-delimited, for
               ncat --broker). Prints "ready" once every handshake is done.
  lib-send     sockcli's library: create_client(subscribe=False), send(wait=False) x COUNT,
               flush()
  lib-recv     sockcli's library: create_client(), receive() x COUNT
  pace-lines   writes COUNT JSON lines carrying time.time_ns() to stdout at RATE per second
               (feeds mosquitto_pub -l or ncat for the latency figures)

Times are time.monotonic_ns() (one clock for every process of the machine) so the harness can
subtract a sender's start from a receiver's end. Latencies use time.time_ns() put in the
message by the sender, read at receipt.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time
from typing import Any

import msgpack
from common import (
    HELLO_SENDER,
    HELLO_SUBSCRIBE,
    connect,
    message_frame,
    percentile,
    read_frame,
)

_HEADER = struct.Struct(">I")
# How a message frame's payload starts, whoever encoded it (sockcli's hub, its client, or
# message_frame above): a 6- or 7-key map whose first key is "kind": "message".
_MESSAGE_MARK = b"\xa4kind\xa7message"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _report(**values: Any) -> None:
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


def _ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def _pace(start_ns: int, i: int, rate: float) -> None:
    """Sleep until message i is due (absolute schedule: no drift)."""
    if rate <= 0:
        return
    due = start_ns + int(i * 1e9 / rate)
    delay = (due - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _data(i: int, latency: bool) -> dict[str, Any]:
    if latency:
        return {"i": i, "t": time.time_ns()}
    return {"i": i, "progress": i % 101}


# -- senders --------------------------------------------------------------------------------


def raw_send(args: argparse.Namespace) -> None:
    sock = connect(args.address)
    sock.sendall(HELLO_SENDER)
    welcome = read_frame(sock)
    if welcome.get("kind") != "welcome":
        raise SystemExit(f"raw-send: refused: {welcome}")
    sock.settimeout(None)
    event, count, rate, latency = args.event, args.count, args.rate, args.latency
    send = sock.sendall
    cpu0 = _cpu()
    start = time.monotonic_ns()
    for i in range(count):
        _pace(start, i, rate)
        send(message_frame(event, _data(i, latency)))
    end = time.monotonic_ns()
    # End of stream, then wait for the hub to close its side: it has read everything by then.
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(30)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()
    _report(t_start=start, t_sent=end, sent=count, cpu_s=_cpu() - cpu0)


def lib_send(args: argparse.Namespace) -> None:
    from sockcli import SocketMessage, create_client

    client = create_client("unix", args.event, subscribe=False, auto_reconnect=False)
    client.connect(timeout=10)
    event, count, rate, latency = args.event, args.count, args.rate, args.latency
    try:
        cpu0 = _cpu()
        start = time.monotonic_ns()
        for i in range(count):
            _pace(start, i, rate)
            client.send(SocketMessage(event, data=_data(i, latency)), wait=False)
        sent = time.monotonic_ns()
        client.flush(timeout=120)
        end = time.monotonic_ns()
        cpu = _cpu() - cpu0
    finally:
        client.disconnect()
    _report(t_start=start, t_sent=sent, t_flushed=end, sent=count, cpu_s=cpu)


def pace_lines(args: argparse.Namespace) -> None:
    out = sys.stdout.fileno()
    start = time.monotonic_ns()
    for i in range(args.count):
        _pace(start, i, args.rate)
        os.write(out, (json.dumps({"i": i, "t": time.time_ns()}) + "\n").encode())


# -- receivers ------------------------------------------------------------------------------


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def _mqtt_packet(first: int, body: bytes) -> bytes:
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(length) + body


def _mqtt_read_packet(sock: socket.socket) -> tuple[int, bytes]:
    first = sock.recv(1)
    if not first:
        raise ConnectionResetError("MQTT broker closed the connection")
    multiplier, length = 1, 0
    while True:
        byte = sock.recv(1)[0]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionResetError("MQTT broker closed the connection")
        body += chunk
    return first[0], body


def _handshake(socks: list[socket.socket], proto: str, topic: str) -> None:
    """Pipelined: send every connection's greeting, then read every answer."""
    if proto == "sockcli":
        for s in socks:
            s.sendall(HELLO_SUBSCRIBE)
        for s in socks:
            frame = read_frame(s)
            if frame.get("kind") != "welcome":
                raise SystemExit(f"raw-recv: refused: {frame}")
    elif proto == "mqtt":
        pid = os.getpid()
        for n, s in enumerate(socks):
            connect_body = (_mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0)
                            + _mqtt_string(f"bench-{pid}-{n}"))
            subscribe_body = struct.pack(">H", 1) + _mqtt_string(topic) + bytes([0])
            s.sendall(_mqtt_packet(0x10, connect_body) + _mqtt_packet(0x82, subscribe_body))
        for s in socks:
            kind, body = _mqtt_read_packet(s)
            if kind >> 4 != 2 or body[1:2] != b"\x00":
                raise SystemExit(f"raw-recv: MQTT CONNECT refused: {kind:#x} {body!r}")
            kind, body = _mqtt_read_packet(s)
            if kind >> 4 != 9 or body[2:3] == b"\x80":
                raise SystemExit(f"raw-recv: MQTT SUBSCRIBE refused: {kind:#x} {body!r}")


class _Sub:
    __slots__ = ("buf", "count", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.count = 0


def raw_recv(args: argparse.Namespace) -> None:
    proto, per_sub, latency = args.proto, args.count, args.latency
    socks = [connect(args.address, timeout=30) for _ in range(args.subs)]
    _handshake(socks, proto, args.topic)
    subs = [_Sub(s) for s in socks]
    sel = selectors.DefaultSelector()
    for each in subs:
        each.sock.setblocking(False)
        sel.register(each.sock, selectors.EVENT_READ, each)
    expected = per_sub * len(subs)
    total = other = 0
    lat: list[int] = []
    unpack = msgpack.unpackb
    header = _HEADER.unpack_from
    mark, mark_len = _MESSAGE_MARK, len(_MESSAGE_MARK)
    t_first = 0
    open_count = len(subs)
    _ready()
    cpu0 = _cpu()
    deadline = time.monotonic() + args.timeout
    while total < expected and open_count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for key, _ in sel.select(remaining):
            sub: _Sub = key.data
            try:
                data = sub.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sub.sock)
                open_count -= 1
                continue
            if not t_first:
                t_first = time.monotonic_ns()
            if proto == "lines":
                if latency:
                    sub.buf += data
                    *lines, rest = sub.buf.split(b"\n")
                    sub.buf = bytearray(rest)
                    now = time.time_ns()
                    for line in lines:
                        lat.append(now - json.loads(line)["t"])
                    got = len(lines)
                else:
                    got = data.count(b"\n")
                sub.count += got
                total += got
                continue
            buf = sub.buf
            buf += data
            size, pos, got = len(buf), 0, 0
            if proto == "sockcli":
                while size - pos >= 4:
                    end = pos + 4 + header(buf, pos)[0]
                    if end > size:
                        break
                    if buf[pos + 5:pos + 5 + mark_len] == mark:
                        got += 1
                        if latency:
                            m = unpack(bytes(buf[pos + 4:end]), raw=False)
                            lat.append(time.time_ns() - m["data"]["t"])
                    else:  # not the usual key order: decode to tell
                        m = unpack(bytes(buf[pos + 4:end]), raw=False)
                        if m.get("kind") == "message":
                            got += 1
                            if latency:
                                lat.append(time.time_ns() - m["data"]["t"])
                        else:
                            other += 1
                    pos = end
            else:  # mqtt: fixed header byte, remaining length (varint), body
                while size - pos >= 2:
                    length, shift, i = 0, 0, pos + 1
                    while i < size:
                        byte = buf[i]
                        length |= (byte & 0x7F) << shift
                        shift += 7
                        i += 1
                        if not byte & 0x80:
                            break
                    else:
                        break
                    end = i + length
                    if end > size:
                        break
                    if buf[pos] >> 4 == 3:  # PUBLISH
                        got += 1
                        if latency:
                            topic_len = (buf[i] << 8) | buf[i + 1]
                            payload = bytes(buf[i + 2 + topic_len:end])
                            lat.append(time.time_ns() - json.loads(payload)["t"])
                    else:
                        other += 1
                    pos = end
            del buf[:pos]
            sub.count += got
            total += got
    t_last = time.monotonic_ns()
    cpu = _cpu() - cpu0
    for sub in subs:
        sub.sock.close()
    report: dict[str, Any] = dict(t_first=t_first, t_last=t_last, received=total,
                                  expected=expected, other_frames=other, cpu_s=cpu,
                                  min_per_sub=min(s.count for s in subs),
                                  complete=total >= expected)
    if lat:
        report["latency_us"] = {"n": len(lat), "p50": percentile(lat, 50) / 1000,
                                "p90": percentile(lat, 90) / 1000,
                                "p99": percentile(lat, 99) / 1000, "max": max(lat) / 1000}
    _report(**report)


def lib_recv(args: argparse.Namespace) -> None:
    from sockcli import create_client

    client = create_client("unix", args.event, auto_reconnect=False)
    client.connect(timeout=10)
    received = 0
    t_first = 0
    try:
        _ready()
        cpu0 = _cpu()
        deadline = time.monotonic() + args.timeout
        while received < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                client.receive(timeout=left)
            except TimeoutError:
                break
            if not t_first:
                t_first = time.monotonic_ns()
            received += 1
        t_last = time.monotonic_ns()
        cpu = _cpu() - cpu0
    finally:
        client.disconnect()
    _report(t_first=t_first, t_last=t_last, received=received, expected=args.count, cpu_s=cpu,
            complete=received >= args.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["raw-send", "raw-recv", "lib-send", "lib-recv",
                                         "pace-lines"])
    parser.add_argument("--address", help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument("--event", default="bench")
    parser.add_argument("--count", type=int, required=True,
                        help="messages to send, or to receive per subscriber")
    parser.add_argument("--subs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: max)")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--proto", choices=["sockcli", "mqtt", "lines"], default="sockcli")
    parser.add_argument("--topic", default="t")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    {"raw-send": raw_send, "raw-recv": raw_recv, "lib-send": lib_send, "lib-recv": lib_recv,
     "pace-lines": pace_lines}[args.role](args)


if __name__ == "__main__":
    main()

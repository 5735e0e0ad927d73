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
  throttle     copies stdin to stdout at no more than RATE lines per second (the slow reader
               of the throttled CLI stream: ``sockcli listen ... | throttle > file``)

Every sender numbers its messages: the k-th carries ``"i": k`` (from 1), as the lines files
of the harness do. The receivers check it: raw-recv the last message of every read it makes
(a lost, duplicated or reordered message shifts every later number, so the next read's last
message shows it; the cost is one decode per read, not per message), lib-recv and the latency
figures every message. A receiver that finds a wrong number, or gets nothing for ``--stall``
seconds, reports at once and exits with status 1.

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
    stream_data,
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
    return stream_data(i)


class OutOfSequence(Exception):
    """A receiver got a message whose number is not the next one: lost, duplicated or out of
    order (or the stream carries no numbers)."""


def _check_number(data: Any, expected: int, where: str) -> None:
    number = data.get("i") if isinstance(data, dict) else None
    if number != expected:
        raise OutOfSequence(f"{where}: message {expected:,} carries i={number!r} "
                            f"({str(data)[:120]}): lost, duplicated or out of order")


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
    for i in range(1, count + 1):
        _pace(start, i - 1, rate)
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
        for i in range(1, count + 1):
            _pace(start, i - 1, rate)
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
    for i in range(1, args.count + 1):
        _pace(start, i - 1, args.rate)
        os.write(out, (json.dumps({"i": i, "t": time.time_ns()}) + "\n").encode())


def throttle(args: argparse.Namespace) -> None:
    """stdin to stdout, no faster than RATE lines a second from the first byte on: each read
    (at most 4 KiB, some 40 lines of listen --json) is written, then the copy sleeps until
    that many lines are due. A write to the pipe's reader that blocks is what slows it."""
    rate = args.rate
    if rate <= 0:
        raise SystemExit("throttle: --rate must be positive")
    lines, start = 0, 0.0
    while chunk := os.read(0, 4096):
        if not start:
            start = time.monotonic()
        view = memoryview(chunk)
        while view:
            view = view[os.write(1, view):]
        lines += chunk.count(b"\n")
        delay = start + lines / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


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


def _greeting(proto: str, topic: str, n: int) -> bytes:
    """What a subscriber of ``proto`` sends first (lines: nothing)."""
    if proto == "sockcli":
        return HELLO_SUBSCRIBE
    if proto == "mqtt":
        connect_body = (_mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0)
                        + _mqtt_string(f"bench-{os.getpid()}-{n}"))
        subscribe_body = struct.pack(">H", 1) + _mqtt_string(topic) + bytes([0])
        return _mqtt_packet(0x10, connect_body) + _mqtt_packet(0x82, subscribe_body)
    return b""


def _subscribe(address: str, subs: int, proto: str, topic: str) -> list[socket.socket]:
    """Pipelined: each connection sends its greeting as soon as it is connected (a hub gives a
    connection ``handshake_timeout`` for its hello, less than 10,000 connections may take),
    then every answer is read."""
    socks = []
    for n in range(subs):
        sock = connect(address, timeout=30)
        socks.append(sock)
        if greeting := _greeting(proto, topic, n):
            sock.sendall(greeting)
    for s in socks:
        if proto == "sockcli":
            frame = read_frame(s)
            if frame.get("kind") != "welcome":
                raise SystemExit(f"raw-recv: refused: {frame}")
        elif proto == "mqtt":
            kind, body = _mqtt_read_packet(s)
            if kind >> 4 != 2 or body[1:2] != b"\x00":
                raise SystemExit(f"raw-recv: MQTT CONNECT refused: {kind:#x} {body!r}")
            kind, body = _mqtt_read_packet(s)
            if kind >> 4 != 9 or body[2:3] == b"\x80":
                raise SystemExit(f"raw-recv: MQTT SUBSCRIBE refused: {kind:#x} {body!r}")
    return socks


class _Sub:
    __slots__ = ("buf", "count", "name", "sock")

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.buf = bytearray()
        self.count = 0


def _sockcli_frames(sub: _Sub, lat: list[int] | None) -> tuple[int, int, Any]:
    """Take the whole frames out of ``sub.buf``: (message frames, other frames, the data of
    the last message, to be checked; None when ``lat`` is given, every message then being
    decoded and checked here)."""
    buf = sub.buf
    header, unpack = _HEADER.unpack_from, msgpack.unpackb
    mark, mark_len = _MESSAGE_MARK, len(_MESSAGE_MARK)
    size, pos, got, other = len(buf), 0, 0, 0
    last_start = last_end = 0
    while size - pos >= 4:
        end = pos + 4 + header(buf, pos)[0]
        if end > size:
            break
        if buf[pos + 5:pos + 5 + mark_len] == mark:
            message = True
        else:  # not the usual key order: decode to tell
            message = unpack(bytes(buf[pos + 4:end]), raw=False).get("kind") == "message"
        if message:
            got += 1
            last_start, last_end = pos + 4, end
            if lat is not None:
                data = unpack(bytes(buf[pos + 4:end]), raw=False)["data"]
                lat.append(time.time_ns() - data["t"])
                _check_number(data, sub.count + got, sub.name)
        else:
            other += 1
        pos = end
    last = None
    if got and lat is None:
        last = unpack(bytes(buf[last_start:last_end]), raw=False).get("data")
    del buf[:pos]
    return got, other, last


def _mqtt_packets(sub: _Sub, lat: list[int] | None) -> tuple[int, int, Any]:
    """The same for MQTT packets (fixed header byte, remaining length as a varint, body):
    PUBLISH packets are the messages, their payload a JSON object."""
    buf = sub.buf
    size, pos, got, other = len(buf), 0, 0, 0
    last_start = last_end = 0
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
        if buf[pos] >> 4 == 3:  # PUBLISH, QoS 0: topic, then the payload
            got += 1
            last_start, last_end = i + 2 + ((buf[i] << 8) | buf[i + 1]), end
            if lat is not None:
                data = json.loads(bytes(buf[last_start:last_end]))
                lat.append(time.time_ns() - data["t"])
                _check_number(data, sub.count + got, sub.name)
        else:
            other += 1
        pos = end
    last = json.loads(bytes(buf[last_start:last_end])) if got and lat is None else None
    del buf[:pos]
    return got, other, last


def _lines(sub: _Sub, lat: list[int] | None) -> tuple[int, int, Any]:
    """The same for newline-delimited JSON objects (ncat --broker relays bytes)."""
    buf = sub.buf
    end = buf.rfind(b"\n") + 1
    if not end:
        return 0, 0, None
    last = None
    if lat is not None:
        lines = bytes(buf[:end]).splitlines()
        now = time.time_ns()
        for n, line in enumerate(lines, sub.count + 1):
            data = json.loads(line)
            lat.append(now - data["t"])
            _check_number(data, n, sub.name)
        got = len(lines)
    else:
        got = buf.count(b"\n", 0, end)
        last = json.loads(bytes(buf[buf.rfind(b"\n", 0, end - 1) + 1:end]))
    del buf[:end]
    return got, 0, last


_PARSERS = {"sockcli": _sockcli_frames, "mqtt": _mqtt_packets, "lines": _lines}


def raw_recv(args: argparse.Namespace) -> None:
    proto, per_sub, latency = args.proto, args.count, args.latency
    socks = _subscribe(args.address, args.subs, proto, args.topic)
    subs = [_Sub(s, f"subscriber {n + 1} of {len(socks)}") for n, s in enumerate(socks)]
    sel = selectors.DefaultSelector()
    for each in subs:
        each.sock.setblocking(False)
        sel.register(each.sock, selectors.EVENT_READ, each)
    expected = per_sub * len(subs)
    total = other = closed = 0
    lat: list[int] | None = [] if latency else None
    parse = _PARSERS[proto]
    t_first = 0
    error = ""
    _ready()
    cpu0 = _cpu()
    now = time.monotonic()
    deadline, heard = now + args.timeout, now
    try:
        while total < expected and closed < len(subs):
            now = time.monotonic()
            if now >= deadline:
                error = f"timed out after {args.timeout:g} s"
                break
            if now - heard >= args.stall:
                error = f"stalled: nothing arrived for {args.stall:g} s"
                break
            events = sel.select(min(deadline, heard + args.stall) - now)
            for key, _ in events:
                sub: _Sub = key.data
                try:
                    data = sub.sock.recv(1 << 18)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sub.sock)
                    closed += 1
                    continue
                if not t_first:
                    t_first = time.monotonic_ns()
                sub.buf += data
                got, others, last = parse(sub, lat)
                if last is not None:
                    _check_number(last, sub.count + got, sub.name)
                sub.count += got
                total += got
                other += others
            if events:
                heard = time.monotonic()
    except OutOfSequence as exc:
        error = str(exc)
    t_last = time.monotonic_ns()
    cpu = _cpu() - cpu0
    for sub in subs:
        sub.sock.close()
    if closed and total < expected and not error:
        error = f"{closed} connection(s) closed by the other side"
    report: dict[str, Any] = dict(t_first=t_first, t_last=t_last, received=total,
                                  expected=expected, other_frames=other, cpu_s=cpu,
                                  min_per_sub=min(s.count for s in subs), closed=closed,
                                  complete=total >= expected and not error, error=error)
    if lat:
        report["latency_us"] = {"n": len(lat), "p50": percentile(lat, 50) / 1000,
                                "p90": percentile(lat, 90) / 1000,
                                "p99": percentile(lat, 99) / 1000, "max": max(lat) / 1000}
    _report(**report)
    if error:
        raise SystemExit(f"raw-recv: {error} ({total:,} of {expected:,} messages)")


def lib_recv(args: argparse.Namespace) -> None:
    from sockcli import create_client

    client = create_client("unix", args.event, auto_reconnect=False)
    client.connect(timeout=10)
    received = 0
    t_first = 0
    error = ""
    try:
        _ready()
        cpu0 = _cpu()
        deadline = time.monotonic() + args.timeout
        while received < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                error = f"timed out after {args.timeout:g} s"
                break
            try:
                message = client.receive(timeout=min(left, args.stall))
            except TimeoutError:
                if left > args.stall:
                    error = f"stalled: nothing arrived for {args.stall:g} s"
                    break
                continue
            if not t_first:
                t_first = time.monotonic_ns()
            received += 1
            try:
                _check_number(message.data, received, "lib-recv")
            except OutOfSequence as exc:
                error = str(exc)
                break
        t_last = time.monotonic_ns()
        cpu = _cpu() - cpu0
    finally:
        client.disconnect()
    _report(t_first=t_first, t_last=t_last, received=received, expected=args.count, cpu_s=cpu,
            complete=received >= args.count and not error, error=error)
    if error:
        raise SystemExit(f"lib-recv: {error} ({received:,} of {args.count:,} messages)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["raw-send", "raw-recv", "lib-send", "lib-recv",
                                         "pace-lines", "throttle"])
    parser.add_argument("--address", help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument("--event", default="bench")
    parser.add_argument("--count", type=int, default=0,
                        help="messages to send, or to receive per subscriber")
    parser.add_argument("--subs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages (throttle: lines) per second (0: max)")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--proto", choices=["sockcli", "mqtt", "lines"], default="sockcli")
    parser.add_argument("--topic", default="t")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--stall", type=float, default=15.0,
                        help="receivers: give up when nothing arrives for this long")
    args = parser.parse_args()
    if args.role != "throttle" and args.count <= 0:
        parser.error("--count is required")
    {"raw-send": raw_send, "raw-recv": raw_recv, "lib-send": lib_send, "lib-recv": lib_recv,
     "pace-lines": pace_lines, "throttle": throttle}[args.role](args)


if __name__ == "__main__":
    main()

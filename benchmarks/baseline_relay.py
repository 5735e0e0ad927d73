"""The baseline relay: the least a relay with sockcli's framing has to do, in plain Python.

Same wire format as sockcli (4-byte big-endian length + one MessagePack map per frame, see
docs/protocol.md) and the same shape (one selectors loop, one thread, non-blocking sockets), but
nothing else: the first frame of a connection is read as a hello only to learn whether the
client subscribes, and answered with a fixed welcome; every later frame is forwarded, as the
bytes it arrived as, to every *other* subscriber. No validation, no decoding of messages, no
acknowledgements, no queue, no slow-consumer limit, no settings. The benchmarks run sockcli's
figures against this one, measured in the same run on the same machine.

    python benchmarks/baseline_relay.py --unix PATH     # or --tcp PORT (127.0.0.1)

prints "ready" on stdout once it listens, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import struct
import sys
from typing import Any

import msgpack

_HEADER = struct.Struct(">I")
_RECV = 256 * 1024


def _frame(m: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(m, use_bin_type=True)
    return _HEADER.pack(len(payload)) + payload


class Conn:
    __slots__ = ("buf", "out", "sock", "subscribed", "welcomed", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.out = bytearray()
        self.welcomed = False
        self.subscribed = False
        self.writing = False


class Relay:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, None)
        self.conns: dict[socket.socket, Conn] = {}
        self.subscribers: list[Conn] = []
        self.dirty: set[Conn] = set()
        self.next_id = 0

    def serve(self) -> None:
        while True:
            for key, mask in self.sel.select():
                conn: Conn | None = key.data
                if conn is None:
                    self.accept()
                    continue
                if mask & selectors.EVENT_READ:
                    self.read(conn)
                if mask & selectors.EVENT_WRITE:
                    self.dirty.add(conn)
            self.flush()

    def accept(self) -> None:
        for _ in range(128):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[sock] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        buf = conn.buf
        buf += data
        pos, size = 0, len(buf)
        if not conn.welcomed:
            if size < 4:
                return
            end = 4 + _HEADER.unpack_from(buf)[0]
            if size < end:
                return
            hello = msgpack.unpackb(bytes(buf[4:end]), raw=False)
            conn.welcomed = True
            conn.subscribed = bool(hello.get("subscribe")) if isinstance(hello, dict) else False
            if conn.subscribed:
                self.subscribers.append(conn)
            self.next_id += 1
            conn.out += _frame({"kind": "welcome", "version": 1, "client_id": f"c{self.next_id}",
                                "event_name": "relay", "allow_client_send": True,
                                "max_frame_size": 65536, "features": []})
            self.dirty.add(conn)
            pos = end
        # Whole frames only: find where the last complete one ends, forward up to there.
        start = pos
        while size - pos >= 4:
            end = pos + 4 + _HEADER.unpack_from(buf, pos)[0]
            if end > size:
                break
            pos = end
        if pos > start:
            chunk = bytes(buf[start:pos])
            for other in self.subscribers:
                if other is not conn:
                    other.out += chunk
                    self.dirty.add(other)
        del buf[:pos]

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for conn in dirty:
            if conn.sock not in self.conns:
                continue
            out = conn.out
            try:
                while out:
                    sent = conn.sock.send(out)
                    del out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(conn)
                continue
            want = bool(out)
            if want != conn.writing:
                conn.writing = want
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
                self.sel.modify(conn.sock, events, conn)

    def close(self, conn: Conn) -> None:
        if self.conns.pop(conn.sock, None) is None:
            return
        if conn.subscribed:
            self.subscribers.remove(conn)
        self.dirty.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        conn.sock.close()


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="PATH")
    where.add_argument("--tcp", metavar="PORT", type=int)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    if args.unix:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.unix)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(args.unix)
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", args.tcp))
    listener.listen(socket.SOMAXCONN)
    listener.setblocking(False)
    print("ready", flush=True)
    try:
        Relay(listener).serve()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        if args.unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.unix)
    return 0


if __name__ == "__main__":
    sys.exit(main())

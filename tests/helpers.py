"""Small tools the tests share: waiting on a condition, raw protocol peers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class RawPeer:
    """A hand-driven protocol client over a plain socket, for what SocketClient will not do."""

    def __init__(self, address: str, *, max_frame_size: int = 65536, timeout: float = 5.0):
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        else:
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.codec = Codec(max_frame_size=max_frame_size)

    @classmethod
    def for_hub(cls, hub: Any, **kwargs: Any) -> RawPeer:
        return cls(str(hub.address), **kwargs)

    def send_frame(self, frame: fr.Frame) -> None:
        self.sock.sendall(self.codec.send(frame))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, **kwargs: Any) -> fr.Welcome:
        self.send_frame(fr.Hello(**kwargs))
        frame = self.next_frame()
        assert isinstance(frame, fr.Welcome), frame
        return frame

    def next_frame(self) -> fr.Frame | None:
        """The next frame, or None at end of stream."""
        while True:
            event = self.codec.next_event()
            if event is CLOSED:
                return None
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            self.codec.receive_data(data)

    def close(self) -> None:
        self.sock.close()


def short_tmp_dir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))

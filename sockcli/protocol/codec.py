"""The wire codec: frames in, bytes out, and back, sans I/O.

:class:`FrameCodec` is the interface every role speaks through: it is fed bytes with
:meth:`~FrameCodec.receive_data` (``b""`` means end of stream), hands back frames from
:meth:`~FrameCodec.next_event`, and turns a frame into bytes with :meth:`~FrameCodec.send`.
:class:`MsgpackCodec` is the implementation of the binary protocol: a frame is a 4-byte
big-endian unsigned length N followed by N bytes holding one MessagePack map. It imports no
socket: both transports, the hub and the clients share it, and the tests feed it one byte at a
time. A second serialization (such as JSON lines) is a second implementation of the interface.

The size limit is enforced on the length prefix, before any of the frame is buffered, so a peer
announcing gigabytes costs four bytes of memory.
"""

from __future__ import annotations

import struct
from enum import Enum

import msgpack

from sockcli.exceptions import MessageError
from sockcli.protocol.frames import frame_from_map, frame_to_map

TYPE_CHECKING = False  # the light send path must not pay for typing
if TYPE_CHECKING:
    from typing import Any, Final

    from sockcli.protocol.frames import Frame

_MALFORMED = "malformed_frame"
_TOO_LARGE = "frame_too_large"
_INVALID = "invalid_message"

__all__ = ["CLOSED", "DEFAULT_MAX_FRAME_SIZE", "HEADER_SIZE", "NEED_DATA", "Codec", "FrameCodec",
           "MsgpackCodec", "Sentinel"]

_HEADER: Final = struct.Struct(">I")
HEADER_SIZE: Final = _HEADER.size
DEFAULT_MAX_FRAME_SIZE: Final = 65536


class Sentinel(Enum):
    """What :meth:`Codec.next_event` returns when it has no frame to give."""

    NEED_DATA = "need_data"
    CLOSED = "closed"


NEED_DATA: Final = Sentinel.NEED_DATA
CLOSED: Final = Sentinel.CLOSED


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MessageError(f"extension type {code} is not allowed", code=_INVALID)


class FrameCodec:
    """Frames in, bytes out, for one connection; not thread-safe (one per direction is fine).

    The interface of a serialization. Implementations raise MessageError (``code`` says why)
    for input they cannot decode or a frame they cannot encode within ``max_frame_size``.
    """

    max_frame_size: int

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer; ``b""`` records the end of the stream."""
        raise NotImplementedError

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        raise NotImplementedError

    def next_event(self) -> Frame | Sentinel:
        """The next complete frame, NEED_DATA, or CLOSED after a clean end of stream."""
        raise NotImplementedError

    def send(self, frame: Frame) -> bytes:
        """The bytes of one frame."""
        raise NotImplementedError


class MsgpackCodec(FrameCodec):
    """The binary protocol: each frame a length-prefixed MessagePack map.

    Besides the interface it offers the same at the level of maps (:meth:`next_map`,
    :meth:`pack_map`): the hub relays and the clients read messages without building frame
    objects, which is most of the cost per message.
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 64:
            raise ValueError("max_frame_size must be at least 64 bytes")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._eof = False
        self._packer = msgpack.Packer(use_bin_type=True)

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer; ``b""`` records the end of the stream."""
        if self._eof and data:
            raise RuntimeError("received data after end of stream")
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer)

    def next_event(self) -> Frame | Sentinel:
        """Return the next complete frame, NEED_DATA, or CLOSED after a clean end of stream.

        Raises MessageError (``code`` says why) for an oversized or malformed frame, or for a
        stream that ends inside a frame; the connection cannot be resumed after that.
        """
        m = self.next_map()
        if isinstance(m, Sentinel):
            return m
        return frame_from_map(m)

    def next_map(self) -> Any:
        """Like :meth:`next_event` but returns the raw decoded map (used to relay cheaply)."""
        buf = self._buffer
        if len(buf) < HEADER_SIZE:
            return self._starved()
        (size,) = _HEADER.unpack_from(buf)
        if size > self.max_frame_size:
            raise _too_large(size, self.max_frame_size)
        end = HEADER_SIZE + size
        if len(buf) < end:
            return self._starved()
        with memoryview(buf) as view:  # no copy of the payload; released before the resize
            m = self._unpack(view[HEADER_SIZE:end])
        del buf[:end]  # O(1): CPython's bytearray moves its start, not its bytes
        return m

    def unpack_frame(self, frame: bytes) -> Any:
        """The map of one whole frame (as :meth:`pack_map` made it), for a consumer that needs
        the message again in another form (the hub's JSON-lines clients)."""
        return self._unpack(memoryview(frame)[HEADER_SIZE:])

    def _starved(self) -> Sentinel:
        if not self._eof:
            return NEED_DATA
        if self._buffer:
            raise MessageError(
                f"stream ended inside a frame ({len(self._buffer)} bytes pending)",
                code=_MALFORMED,
            )
        return CLOSED

    def _unpack(self, payload: bytes | memoryview) -> Any:
        limit = self.max_frame_size
        try:
            return msgpack.unpackb(
                payload,
                raw=False,
                strict_map_key=True,
                use_list=True,
                ext_hook=_refuse_ext,
                timestamp=0,
                max_str_len=limit,
                max_bin_len=limit,
                max_array_len=limit,
                max_map_len=limit,
                max_ext_len=limit,
            )
        except MessageError:
            raise
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.StackError,
                msgpack.FormatError, RecursionError) as exc:
            # UnicodeDecodeError is a ValueError: invalid UTF-8 lands here too.
            # StackError (nesting too deep) has no text: name the exception instead.
            raise MessageError(f"malformed MessagePack: {str(exc) or type(exc).__name__}",
                               code=_MALFORMED) from None

    # -- sending --------------------------------------------------------------------------

    def send(self, frame: Frame) -> bytes:
        """The bytes of one frame; MessageError if it would exceed the size limit."""
        return self.pack_map(frame_to_map(frame))

    def pack_map(self, m: dict[str, Any]) -> bytes:
        """The bytes of one frame given as a raw map."""
        try:
            payload: bytes = self._packer.pack(m)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageError(f"cannot encode frame: {exc}") from None
        if len(payload) > self.max_frame_size:
            raise _too_large(len(payload), self.max_frame_size)
        return _HEADER.pack(len(payload)) + payload


def _too_large(size: int, limit: int) -> MessageError:
    # The same words on both sides (the sender's refusal, the hub's error frame), naming the
    # setting that raises the limit: hub and clients each have one, and both must allow it.
    return MessageError(
        f"frame of {size} bytes exceeds the limit of {limit} bytes (raise the buffer_size "
        "setting, SOCKCLI_BUFFER_SIZE, of the hub and its clients)",
        code=_TOO_LARGE,
    )


#: The codec of the binary protocol, under the name every role has used since version 1.
Codec = MsgpackCodec

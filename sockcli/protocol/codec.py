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
from _thread import _local as _thread_local  # threading.local, without importing threading
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

    __slots__ = ("max_frame_size",)

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

    __slots__ = ("_buffer", "_eof", "_packer")

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 64:
            raise ValueError("max_frame_size must be at least 64 bytes")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._eof = False
        # Made on the first pack: a msgpack.Packer mallocs a 256 KiB buffer, whose first page
        # is resident, and the hub's codec per connection only decodes (4 KiB of the 6.2 KiB
        # a hub held per idle subscriber).
        self._packer: msgpack.Packer | None = None

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
        # One Unpacker per thread and limit, fed one whole payload at a time: unpackb parses
        # its eleven keyword arguments on every call, a third of what a small frame costs
        # (1.48 against 2.24 us a message frame, python -m timeit, this machine under load).
        unpacker = _unpacker(self.max_frame_size)
        try:
            start = unpacker.tell()  # what it has taken in all, up to this payload
            unpacker.feed(payload)
            m = unpacker.unpack()
            if unpacker.tell() - start != len(payload):
                raise msgpack.ExtraData(m, b"")
        except MessageError:
            _forget_unpacker(self.max_frame_size)
            raise
        except msgpack.OutOfData:
            _forget_unpacker(self.max_frame_size)
            raise MessageError("malformed MessagePack: the frame's map is incomplete",
                               code=_MALFORMED) from None
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.StackError,
                msgpack.FormatError, RecursionError) as exc:
            _forget_unpacker(self.max_frame_size)
            # UnicodeDecodeError is a ValueError: invalid UTF-8 lands here too.
            # StackError (nesting too deep) has no text: name the exception instead.
            text = "extra data after the frame's map" if isinstance(exc, msgpack.ExtraData) \
                else str(exc) or type(exc).__name__
            raise MessageError(f"malformed MessagePack: {text}", code=_MALFORMED) from None
        return m

    # -- sending --------------------------------------------------------------------------

    def send(self, frame: Frame) -> bytes:
        """The bytes of one frame; MessageError if it would exceed the size limit."""
        return self.pack_map(frame_to_map(frame))

    def pack_map(self, m: dict[str, Any]) -> bytes:
        """The bytes of one frame given as a raw map."""
        packer = self._packer
        if packer is None:
            packer = self._packer = msgpack.Packer(use_bin_type=True)
        try:
            payload: bytes = packer.pack(m)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageError(f"cannot encode frame: {exc}") from None
        if len(payload) > self.max_frame_size:
            raise _too_large(len(payload), self.max_frame_size)
        return _HEADER.pack(len(payload)) + payload


_LOCAL = _thread_local()  # the unpackers of each thread, by limit


def _unpacker(limit: int) -> msgpack.Unpacker:
    """This thread's Unpacker for payloads of up to ``limit`` bytes: the same checks as
    ``unpackb`` with every ``max_*_len`` at the limit. Shared by the codecs of a thread (one
    hub holds thousands), and empty between two payloads."""
    unpackers = _unpackers()
    unpacker = unpackers.get(limit)
    if unpacker is None:
        unpacker = unpackers[limit] = msgpack.Unpacker(
            raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext, timestamp=0,
            max_buffer_size=limit, read_size=min(limit, 16 * 1024))
    return unpacker


def _unpackers() -> dict[int, msgpack.Unpacker]:
    try:
        unpackers: dict[int, msgpack.Unpacker] = _LOCAL.unpackers
    except AttributeError:  # this thread's first
        unpackers = _LOCAL.unpackers = {}
    return unpackers


def _forget_unpacker(limit: int) -> None:
    """After a bad payload the Unpacker may hold a part of it: the next one gets a new one."""
    _unpackers().pop(limit, None)


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

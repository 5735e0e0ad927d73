"""Batch frames made from messages sent one by one, sans I/O.

A library client's ``send(wait=False)`` costs one message each, but a stream of them shares
its event, its type and, many to a millisecond, its timestamps. :class:`BatchBuilder` gathers
such a run (consecutive sequence numbers, one header) into one batch frame
(:class:`~sockcli.protocol.frames.Batch`), so that the hub reads, checks and relays one frame
where it would have handled hundreds. Each message's data is packed once, when it is sent (so
that data the protocol cannot carry, or a message too large, is refused to the caller there,
as for a message frame), and a frame is those packed items behind one header.
"""

from __future__ import annotations

import msgpack

from sockcli.exceptions import MessageError
from sockcli.protocol.codec import HEADER_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_ITEMS", "BatchBuilder"]

#: The most messages in one batch frame: enough to spare the hub nearly all its work per
#: frame, few enough that a frame is out before the next millisecond's run begins.
MAX_ITEMS = 1024
#: What a map header, a ``seq`` and an array header can take at most, besides the header
#: fields: the slack kept below the frame limit.
_SLACK = 32

#: The most a batch's header fields take besides the texts of the key: the field names,
#: the kind, a 9-byte timestamp and the headers of four strings.
_MAX_HEADER = 128
_BATCH_KIND = msgpack.packb("kind") + msgpack.packb("batch")
_MESSAGE_KIND = msgpack.packb("kind") + msgpack.packb("message")
#: A run's key: (event_name, message_type value, timestamp_ms, timestamp_iso).
Key = tuple[str, str, int, str]


class BatchBuilder:
    """The run of messages being gathered, and the frames of the runs that ended.

    ``limit`` is the largest frame both ends take (the client's ``buffer_size`` and the
    hub's ``max_frame_size``). Not thread-safe: the client calls it under its write lock.
    """

    __slots__ = ("_first", "_header", "_items", "_key", "_packer", "_size", "easy", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Packed data up to this size, less the texts of its key, fits a frame whatever its
        #: header: :meth:`fits` need not pack the header to know.
        self.easy = limit - HEADER_SIZE - _SLACK - _MAX_HEADER
        self._packer = msgpack.Packer(use_bin_type=True)
        self._key: Key | None = None
        self._header = b""  # the packed fields of the run's key, but the kind
        self._items: list[bytes] = []
        self._size = 0  # of the items packed so far
        self._first = 0  # the sequence number of the run's first message

    def pack(self, data: dict[str, Any]) -> bytes:
        """One message's data, packed; MessageError if MessagePack cannot carry it."""
        try:
            packed: bytes = self._packer.pack(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageError(f"cannot encode frame: {exc}") from None
        return packed

    def fits(self, key: Key, packed: bytes) -> bool:
        """Whether a message of this key and packed data fits a batch frame alone (else it
        must go as a message frame, which says why it is too large)."""
        event, kind, _, iso = key  # the names are ASCII; the ISO text may be any text
        return len(packed) + len(event) + len(kind) + 4 * len(iso) <= self.easy or \
            HEADER_SIZE + self._header_size(key) + _SLACK + len(packed) <= self.limit

    def add(self, key: Key, seq: int, packed: bytes) -> bytes | None:
        """Add one message (``packed``: from :meth:`pack`, ``fits``); return the frame of
        the run it ended, if it did (another key, a gap in the numbers, a full frame)."""
        done = None
        if self._key is not None and (
                key != self._key or seq != self._first + len(self._items) or
                len(self._items) >= MAX_ITEMS or
                HEADER_SIZE + len(_BATCH_KIND) + len(self._header) + _SLACK + self._size +
                len(packed) >
                self.limit):
            done = self.finish()
        if self._key is None:
            self._key = key
            self._header = self._pack_header(key)
            self._first = seq
        self._items.append(packed)
        self._size += len(packed)
        return done

    @property
    def pending(self) -> int:
        """The bytes of the run being gathered (0: none)."""
        return self._size

    def finish(self) -> bytes | None:
        """The frame of the run being gathered: a batch frame, or the message frame of a run
        of one (a message sent alone costs the hub less so); None if there is none. The
        builder is empty afterwards."""
        if self._key is None:
            return None
        items, first, header = self._items, self._first, self._header
        self._key, self._items, self._size = None, [], 0
        pack = self._packer.pack
        if len(items) == 1:  # the keys in a message frame's order
            body = b"".join((b"\x87", _MESSAGE_KIND, header, pack("data"), items[0],
                             pack("seq"), pack(first)))
        else:
            body = b"".join((b"\x87", _BATCH_KIND, header, pack("seq"), pack(first),
                             pack("items"), self._packer.pack_array_header(len(items)),
                             *items))
        return len(body).to_bytes(HEADER_SIZE, "big") + body

    def clear(self) -> None:
        """Forget the run being gathered (its connection died: it is lost, not resent)."""
        self._key, self._items, self._size = None, [], 0

    def _pack_header(self, key: Key) -> bytes:
        """The packed header fields of a run, but its kind (a batch's or a message's)."""
        pack = self._packer.pack
        event, kind, stamp, iso = key
        return b"".join((pack("event_name"), pack(event),
                         pack("timestamp_ms"), pack(stamp), pack("timestamp_iso"), pack(iso),
                         pack("message_type"), pack(kind)))

    def _header_size(self, key: Key) -> int:
        header = self._header if key == self._key else self._pack_header(key)
        return len(_MESSAGE_KIND) + len(header)

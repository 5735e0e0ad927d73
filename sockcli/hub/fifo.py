"""A Unix hub's named pipe, ``{socket_dir}/{event}.fifo``: publishing with no process at all.

Any shell publishes with a redirection (``echo '{"progress":40}' > "$fifo"``): one ``write``,
no Python start, no connection. The hub reads the FIFO in its loop, in the line grammar of
:mod:`sockcli.lines`, and relays each line as a message of its own (no acknowledgement: the
writer is gone by then, as with mosquitto's QoS 0).

Why each rule (docs/protocol.md, "The FIFO"):

- The hub opens the FIFO for reading *and writing*: with a writer always present (itself) it
  never sees end of file between two writers, and ``open`` for writing never blocks while a
  hub runs.
- Created with ``mkfifo`` through the checked socket directory's descriptor, mode 0600, and
  opened without following a symbolic link; ``fstat`` then checks that what was opened is a
  FIFO of ours. What another run left at the path is replaced: a FIFO (a hub killed with -9:
  the caller holds the event's lock, so no live hub reads it), or a regular file that a
  redirection made while no FIFO was there (``echo … > "$fifo"`` creates one).
- Lines up to ``PIPE_BUF`` (4096 bytes) that concurrent writers write in one ``write`` never
  interleave (POSIX); longer ones may, and are then refused like any other bad line.
- A last line without its newline (``printf '%s'``) is taken once :data:`PARTIAL_GRACE`
  seconds pass with nothing more: the writer has closed, but a FIFO held open for writing
  cannot say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from pathlib import Path

from sockcli.exceptions import SocketError
from sockcli.lines import Line, LineReader, Rejected
from sockcli.runtime import lstat_entry

__all__ = ["PARTIAL_GRACE", "HubFifo"]

log = logging.getLogger("sockcli.hub")

#: Seconds after which the start of a line with no newline yet is taken as a whole line.
PARTIAL_GRACE = 0.5
#: Bytes read per ``read``, and reads per loop turn (so that one busy writer does not starve
#: the hub's sockets).
_READ_SIZE = 65536
_READS_PER_TURN = 4


class HubFifo:
    """The FIFO of one hub: made, opened and removed by :meth:`create` and :meth:`remove`,
    or given by systemd (:meth:`adopt`, ``ListenFIFO=``: then it is systemd's to remove)."""

    def __init__(self, path: Path, fd: int, *, max_line_bytes: int, owned: bool,
                 inode: tuple[int, int]) -> None:
        self.path = path
        self.fd = fd
        self.owned = owned
        self._inode = inode
        self.reader = LineReader(max_line_bytes=max_line_bytes)
        #: When the partial line held must be taken as it is (time.monotonic(); 0.0: none).
        self.partial_deadline = 0.0
        #: Messages published from the FIFO, and lines refused.
        self.messages = 0
        self.rejected = 0

    @classmethod
    def create(cls, dir_fd: int, path: Path, *, mode: int, max_line_bytes: int) -> HubFifo:
        """Replace what a previous hub left at ``path`` (the caller holds the event's lock),
        make the FIFO and open it. Raises SocketError when something else is there or it
        cannot be made, UnsafePathError for a symbolic link."""
        name = path.name
        st = lstat_entry(dir_fd, name, str(path))
        if st is not None:
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                log.warning("removed the regular file at %s (%d bytes), made by a redirection "
                            "while no hub read the FIFO there", path, st.st_size)
            elif not stat.S_ISFIFO(st.st_mode):
                raise SocketError(f"{path} exists and is not a FIFO: remove it or choose "
                                  "another socket_dir")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
        try:
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
            fd = os.open(name, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except OSError as exc:
            raise SocketError(f"cannot make the FIFO {path}: {exc.strerror or exc}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.geteuid():
                raise SocketError(f"{path} was replaced while the hub made it: try again")
            os.fchmod(fd, mode)  # mkfifo's mode passed through the umask
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, max_line_bytes=max_line_bytes, owned=True,
                   inode=(st.st_dev, st.st_ino))

    @classmethod
    def adopt(cls, fd: int, path: Path, *, max_line_bytes: int) -> HubFifo:
        """A FIFO systemd opened (``ListenFIFO=``), read as it is and left when the hub stops."""
        os.set_blocking(fd, False)
        st = os.fstat(fd)
        return cls(path, fd, max_line_bytes=max_line_bytes, owned=False,
                   inode=(st.st_dev, st.st_ino))

    def read(self) -> tuple[list[Line | Rejected], bool]:
        """What the lines written since the last call hold, and whether more may be waiting
        (the turn's reads were used up)."""
        out: list[Line | Rejected] = []
        for _ in range(_READS_PER_TURN):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            if not data:  # only if our own write end were closed: nothing to read
                break
            out.extend(self.reader.feed(data))
        else:
            self._partial()
            return out, True
        self._partial()
        return out, False

    def _partial(self) -> None:
        if self.reader.pending:
            if not self.partial_deadline:
                self.partial_deadline = time.monotonic() + PARTIAL_GRACE
        else:
            self.partial_deadline = 0.0

    def take_partial(self) -> list[Line | Rejected]:
        """The line with no newline, taken whole once :data:`PARTIAL_GRACE` has passed."""
        self.partial_deadline = 0.0
        return self.reader.end()

    def remove(self, dir_fd: int | None) -> None:
        """Close the FIFO and, if the hub made it, remove it (never a successor's)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if not self.owned or dir_fd is None:
            return
        name = self.path.name
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(name, dir_fd=dir_fd)

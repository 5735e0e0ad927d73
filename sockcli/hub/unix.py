"""The hub of the Unix domain socket transport: a socket file in the private runtime directory."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import time
from pathlib import Path
from typing import Any

from sockcli.exceptions import ConnectionError, SocketError, ValidationError
from sockcli.hub.activation import Inherited, inherited
from sockcli.hub.base import ClientInfo
from sockcli.hub.fifo import HubFifo
from sockcli.hub.server import HubServer
from sockcli.runtime import (
    MAX_UNIX_PATH,
    HubRecord,
    entry_path,
    fifo_path,
    lines_path,
    lstat_entry,
    open_socket_dir,
    socket_path,
)
from sockcli.types import SocketType

__all__ = ["UnixSocketServer"]

log = logging.getLogger("sockcli.hub")

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class UnixSocketServer(HubServer):
    """A hub listening on ``{socket_dir}/{event_name}.sock``, on its JSON-lines socket
    ``{event_name}.lines.sock`` and reading its FIFO ``{event_name}.fifo`` (settings
    ``[unix] lines_socket`` and ``fifo``)."""

    transport = SocketType.UNIX

    def __init__(self, event_name: str, **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.unix_config = self.settings.unix
        # Checked now, so that a too-long path fails at construction, not at start().
        self.socket_path = socket_path(self.config.socket_dir, self.event_name)
        #: The JSON-lines socket and the FIFO (docs/protocol.md), unless turned off.
        try:
            self.lines_path: Path | None = lines_path(self.config.socket_dir, self.event_name)
        except ValidationError:  # 6 bytes longer than the main socket's path, which fits
            self.lines_path = None
        self.fifo_path = fifo_path(self.config.socket_dir, self.event_name)
        #: What systemd passed (socket activation), read before any child can inherit it.
        self.inherited = inherited(self.event_name, self.config.socket_dir)
        self._inode: tuple[int, int] | None = None
        self._lines_inode: tuple[int, int] | None = None
        self._dir_fd: int | None = None  # the socket directory, while the hub listens

    @property
    def max_connections(self) -> int:
        return int(self.unix_config.max_connections)

    def _bind(self) -> tuple[socket.socket, HubRecord]:
        # Bound, chmod-ed, probed and removed through the checked directory's descriptor
        # (sockcli.runtime.open_socket_dir), kept until _cleanup_address: never by a path
        # whose directory could have been swapped since start() checked it.
        path = self.socket_path
        dir_fd = open_socket_dir(path.parent)
        if dir_fd is None:
            raise SocketError(f"cannot listen on {path}: no directory {path.parent}")
        self._dir_fd = dir_fd
        given = self.inherited
        try:
            if given is not None and given.msgpack is not None:
                sock = given.msgpack  # systemd's: never probed, chmod-ed nor removed here
            else:
                sock, self._inode = self._listen_at(dir_fd, path)
            try:
                self._open_lines_ways(dir_fd, given)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            self._cleanup_address()
            raise
        record = HubRecord(event_name=self.event_name, transport=SocketType.UNIX,
                           pid=os.getpid(), started_ms=time.time_ns() // 1_000_000,
                           path=str(path),
                           fifo=str(self.fifo_path) if self._fifo is not None else None,
                           lines=str(self.lines_path) if self._lines_listener is not None
                           else None, activated=given is not None)
        if given is None and self.lines_path is None and self.unix_config.lines_socket:
            log.warning("hub %s has no JSON-lines socket: its path would be longer than the "
                        "%d bytes Unix sockets allow (choose a shorter socket_dir)",
                        self.event_name, MAX_UNIX_PATH)
        return sock, record

    def _open_lines_ways(self, dir_fd: int, given: Inherited | None) -> None:
        """The JSON-lines socket and the FIFO: the ones systemd passed, else made here."""
        cfg = self.unix_config
        if given is not None and given.lines is not None:
            self._lines_listener = given.lines
        elif cfg.lines_socket and self.lines_path is not None:
            self._lines_listener, self._lines_inode = self._listen_at(dir_fd, self.lines_path)
        if given is not None and given.fifo is not None:
            self._fifo = HubFifo.adopt(given.fifo, self.fifo_path,
                                       max_line_bytes=self.config.buffer_size)
        elif cfg.fifo:
            self._fifo = HubFifo.create(dir_fd, self.fifo_path, mode=cfg.mode,
                                        max_line_bytes=self.config.buffer_size)

    def _listen_at(self, dir_fd: int, path: Path) -> tuple[socket.socket, tuple[int, int]]:
        """A listening socket bound at ``path`` (what a dead hub left there removed), and
        its inode, so that only this socket file is removed at the end."""
        name = path.name
        # We hold the event's lock, so whatever is at the path was left by a dead hub.
        self._remove_stale(dir_fd, path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(entry_path(dir_fd, name, str(path)))
            os.chmod(name, self.unix_config.mode, dir_fd=dir_fd)
            sock.listen(socket.SOMAXCONN)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            sock.close()
            raise ConnectionError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
        return sock, (st.st_dev, st.st_ino)

    def _remove_stale(self, dir_fd: int, path: Path) -> None:
        st = lstat_entry(dir_fd, path.name, str(path))  # a symbolic link: UnsafePathError
        if st is None:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketError(f"{path} exists and is not a socket: remove it or choose another "
                              "socket_dir")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(entry_path(dir_fd, path.name, str(path)))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise SocketError(f"cannot probe existing socket {path}: {exc.strerror}") \
                    from exc
        else:
            raise SocketError(f"a hub for event {self.event_name!r} is already running on "
                              f"{path}")
        finally:
            probe.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.name, dir_fd=dir_fd)

    def _cleanup_address(self) -> None:
        dir_fd, self._dir_fd = self._dir_fd, None
        lines, self._lines_listener = self._lines_listener, None
        if lines is not None:
            lines.close()
        fifo, self._fifo = self._fifo, None
        if fifo is not None:
            fifo.remove(dir_fd)  # always: a FIFO nobody reads makes its writers hang
        if dir_fd is None:
            return
        try:
            if self.unix_config.auto_remove_socket:
                self._unlink_own(dir_fd, self.socket_path.name, self._inode)
                if self.lines_path is not None:
                    self._unlink_own(dir_fd, self.lines_path.name, self._lines_inode)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _unlink_own(dir_fd: int, name: str, inode: tuple[int, int] | None) -> None:
        """Remove ``name`` if it is still the file this hub made (never a successor's)."""
        if inode is None:
            return
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == inode:
                os.unlink(name, dir_fd=dir_fd)

    def _peer_info(self, sock: socket.socket, addr: Any) -> tuple[str, dict[str, int]]:
        try:
            pid, uid, gid = _CREDS.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
        except OSError:
            return str(self.socket_path), {}
        return f"pid {pid}", {"pid": pid, "uid": uid, "gid": gid}

    def _peer_refusal(self, info: ClientInfo) -> str | None:
        """Admit the hub's own uid, root (who could become it anyway), ``allowed_uids`` and
        peers whose primary gid is in ``allowed_gids``; refuse everyone else."""
        uid, gid = info.uid, info.gid
        if uid is None:  # no credentials: fail closed
            return "the hub cannot read this peer's credentials (SO_PEERCRED)"
        cfg = self.unix_config
        if uid in (0, os.geteuid()) or uid in cfg.allowed_uids or \
                (gid is not None and gid in cfg.allowed_gids):
            return None
        return (f"uid {uid} (gid {gid}) may not connect to hub {self.event_name!r}: it admits "
                f"uid {os.geteuid()}, root, and the uids and gids of [unix] allowed_uids and "
                "allowed_gids")

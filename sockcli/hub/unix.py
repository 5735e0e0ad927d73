"""The hub of the Unix domain socket transport: a socket file in the private runtime directory."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
import time
from pathlib import Path
from typing import Any

from sockcli.exceptions import ConnectionError, SocketError
from sockcli.hub.base import ClientInfo
from sockcli.hub.server import HubServer
from sockcli.runtime import HubRecord, entry_path, lstat_entry, open_socket_dir, socket_path
from sockcli.types import SocketType

__all__ = ["UnixSocketServer"]

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class UnixSocketServer(HubServer):
    """A hub listening on ``{socket_dir}/{event_name}.sock``."""

    transport = SocketType.UNIX

    def __init__(self, event_name: str, **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.unix_config = self.settings.unix
        # Checked now, so that a too-long path fails at construction, not at start().
        self.socket_path = socket_path(self.config.socket_dir, self.event_name)
        self._inode: tuple[int, int] | None = None
        self._dir_fd: int | None = None  # the socket directory, while the hub listens

    @property
    def max_connections(self) -> int:
        return int(self.unix_config.max_connections)

    def _bind(self) -> tuple[socket.socket, HubRecord]:
        # Bound, chmod-ed, probed and removed through the checked directory's descriptor
        # (sockcli.runtime.open_socket_dir), kept until _cleanup_address: never by a path
        # whose directory could have been swapped since start() checked it.
        path = self.socket_path
        name = path.name
        dir_fd = open_socket_dir(path.parent)
        if dir_fd is None:
            raise SocketError(f"cannot listen on {path}: no directory {path.parent}")
        try:
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
                raise ConnectionError(f"cannot listen on {path}: {exc.strerror or exc}") \
                    from exc
        except BaseException:
            os.close(dir_fd)
            raise
        self._dir_fd = dir_fd
        self._inode = (st.st_dev, st.st_ino)
        record = HubRecord(event_name=self.event_name, transport=SocketType.UNIX,
                           pid=os.getpid(), started_ms=time.time_ns() // 1_000_000,
                           path=str(path))
        return sock, record

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
        if dir_fd is None:
            return
        try:
            if not self.unix_config.auto_remove_socket or self._inode is None:
                return
            name = self.socket_path.name
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == self._inode:  # never remove a successor's socket
                    os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

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

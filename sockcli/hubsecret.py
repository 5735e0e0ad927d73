"""The per-hub secret of a loopback TCP hub: ``{socket_dir}/{event}.token``.

TCP carries no identity: every local user can connect to 127.0.0.1. So a loopback TCP hub
that has no configured token and is not ``insecure`` makes a secret of its own when it starts
(32 random bytes, written as 64 hex digits), keeps it mode 0600 in the private socket directory
beside its record, requires every client to prove it (the HMAC challenge of
:mod:`sockcli.protocol.auth`: the secret never crosses the wire), and removes it when it stops.
sockcli's clients of the same user that find the hub by its record read the file and prove it;
another user can neither list the directory nor read the file. It is the pattern of Jupyter's
connection files and of X11's cookie; docs/SECURITY.md says what it defends and what not.

Every operation goes through the checked directory's descriptor
(:func:`~sockcli.runtime.open_socket_dir`) and never follows a symbolic link. A hub makes,
clears and removes the file only while it holds its event's lock
(:class:`~sockcli.runtime.HubLock`), so what it finds there was left by a dead hub. Light: the
send path reads secrets with os and stat only (the hub alone imports :mod:`secrets`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from sockcli.exceptions import SocketError, UnsafePathError, ValidationError
from sockcli.protocol.auth import read_token_fd
from sockcli.rules import validate_event_name
from sockcli.runtime import lstat_entry, open_socket_dir

__all__ = ["SECRET_BYTES", "clear_stale_secret", "create_secret", "read_secret",
           "remove_secret", "secret_name"]

#: Random bytes in a secret: as many as the HMAC's output, beyond any guessing.
SECRET_BYTES = 32

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def secret_name(event_name: str) -> str:
    """``{event}.token``: the secret's name in the socket directory."""
    return f"{validate_event_name(event_name)}.token"


def clear_stale_secret(dir_fd: int, event_name: str, where: str) -> None:
    """Remove the secret a dead hub left (a regular file); the caller holds the event's lock.

    ``where`` names the path in the errors: UnsafePathError for a symbolic link (never
    followed or removed, as a planted socket), SocketError for anything else that is not a
    regular file.
    """
    name = secret_name(event_name)
    st = lstat_entry(dir_fd, name, where)  # a symbolic link: UnsafePathError
    if st is None:
        return
    if not stat.S_ISREG(st.st_mode):
        raise SocketError(f"{where} exists and is not a regular file: remove it or choose "
                          "another socket_dir")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def create_secret(dir_fd: int, event_name: str, where: str) -> tuple[bytes, tuple[int, int]]:
    """Make a new secret for the hub of ``event_name``, mode 0600; return it and the file's
    (st_dev, st_ino), which :func:`remove_secret` needs. The caller holds the event's lock.

    A dead hub's secret is removed first (:func:`clear_stale_secret`, which raises for a
    symbolic link); the new file is created exclusively (``O_EXCL``, ``O_NOFOLLOW``), so
    nothing that appears meanwhile is ever written through. Raises SocketError when the file
    cannot be made.
    """
    import secrets

    clear_stale_secret(dir_fd, event_name, where)
    name = secret_name(event_name)
    token = secrets.token_hex(SECRET_BYTES).encode()
    try:
        fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise SocketError(f"cannot create the hub's secret {where}: "
                          f"{exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask took away or left
        os.write(fd, token + b"\n")  # 65 bytes to a new file: one write
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise SocketError(f"cannot write the hub's secret {where}: "
                          f"{exc.strerror or exc}") from exc
    os.close(fd)
    return token, (st.st_dev, st.st_ino)


def remove_secret(dir_fd: int, event_name: str, inode: tuple[int, int]) -> None:
    """Remove the hub's secret, if it is still the file :func:`create_secret` made (never a
    successor's)."""
    name = secret_name(event_name)
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == inode:
            os.unlink(name, dir_fd=dir_fd)


def read_secret(socket_dir: str | os.PathLike[str], event_name: str) -> bytes | None:
    """The secret of the hub of ``event_name`` in ``socket_dir``, or None when it has none
    (a hub with a configured token, an ``insecure`` one, or no hub).

    Read through the checked directory, without following a symbolic link, and with the
    checks of a token file: UnsafePathError for an unsafe directory or a symbolic link,
    ValidationError for a file that is not this user's (or root's), that group or others may
    use, or that holds no usable token.
    """
    name = secret_name(event_name)
    where = os.path.join(os.fspath(socket_dir), name)
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return None
    try:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
                raise UnsafePathError(f"{where} is a symbolic link: sockcli does not follow "
                                      "one (remove it, or choose another socket_dir)") from None
            raise ValidationError(f"cannot read the hub's secret {where}: "
                                  f"{exc.strerror or exc}") from None
    finally:
        os.close(dir_fd)
    return read_token_fd(fd, where)

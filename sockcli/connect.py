"""Opening a connection to a hub: what differs between Unix and TCP on the client side.

Light on purpose (no hub, no threads): the one-shot sender and the full client both use it.
"""

from __future__ import annotations

import os
import socket

from sockcli.exceptions import ConnectionError, HubAbsentError
from sockcli.runtime import check_socket_dir

__all__ = ["open_tcp_socket", "open_unix_socket"]


def open_unix_socket(path: str | os.PathLike[str], timeout: float,
                     event_name: str) -> socket.socket:
    """Connect to the hub socket at ``path``; HubAbsentError when nothing listens there."""
    check_socket_dir(os.path.dirname(os.fspath(path)))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise HubAbsentError(
            f"no hub is running for event {event_name!r} (nothing listens on {os.fspath(path)})"
        ) from exc
    except OSError as exc:
        sock.close()
        raise ConnectionError(f"cannot connect to {os.fspath(path)}: {exc.strerror or exc}") \
            from exc
    return sock


def open_tcp_socket(host: str, port: int, timeout: float, event_name: str) -> socket.socket:
    """Connect to a hub at host:port; HubAbsentError when nothing listens there."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        raise HubAbsentError(f"no hub is listening on {host}:{port} for event "
                             f"{event_name!r}") from exc
    except TimeoutError as exc:
        raise HubAbsentError(f"{host}:{port} did not answer in time") from exc
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames: no Nagle delay
    return sock

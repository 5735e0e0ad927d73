"""``sd_notify(3)`` without libsystemd: tell the service manager the hub is ready, or stopping.

A ``Type=notify`` unit (examples/systemd/sockcli@.service) counts the hub as started only
when it says ``READY=1``, so units ordered after it, and ``systemctl start`` itself, wait until
its sockets accept. The protocol is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX``
socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading
``@``); nothing answers it. No dependency is needed for that, and none is taken.

Notifying is best effort: outside systemd the variable is unset, and a manager that went away
must not stop a hub that works, so nothing here raises. ``NOTIFY_SOCKET`` is left in the
environment: the hub notifies again when it stops, and systemd ignores what the commands of
``serve --exec`` might send (``NotifyAccess=main``, the default).

Light on purpose (the hub imports it at start-up): :mod:`socket` and :mod:`logging` are
imported only when there is something to send or to log.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["notify", "ready", "stopping"]


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``KEY=VALUE`` lines) to ``$NOTIFY_SOCKET`` of ``environ``
    (``os.environ`` by default). True when it was sent; False when the variable is unset or
    names no Unix socket, or the send failed (logged at debug level)."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        if address:
            _debug("NOTIFY_SOCKET=%r is not a Unix socket's path or abstract name: not "
                   "notified", address)
        return False
    import socket

    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), target)
    except (OSError, ValueError) as exc:  # ValueError: a state that is not UTF-8 encodable
        _debug("cannot notify the service manager at %s: %s", address, exc)
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """``READY=1`` with this process as the main pid: the hub's sockets accept."""
    return notify(f"READY=1\nMAINPID={os.getpid()}", environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    """``STOPPING=1``: the hub has begun to shut down (``systemctl status`` shows it
    deactivating until it exits)."""
    return notify("STOPPING=1", environ)


def _debug(text: str, *args: object) -> None:
    import logging

    logging.getLogger("sockcli.hub").debug(text, *args)

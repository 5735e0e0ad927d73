"""A hub's producer (``sockcli serve EVENT --exec CMD``): one command whose output every
listener of the hub gets, however many bars listen.

:class:`Producer` runs CMD (:class:`~sockcli.hub.child.ProducerChild`), turns each line it
prints into a message (the grammar of :mod:`sockcli.lines`) handed to ``emit`` (the hub's own
``send``: relayed, retained, queued while nobody listens), and restarts CMD by its policy:

- ``never``: once CMD exits, the hub goes on serving without it (listeners keep the retained
  values; ``sockcli list`` says how it exited);
- ``on-failure`` (the default): again after a non-zero status or a signal, not after 0;
- ``always``: again whatever the status.

Restarts wait 0.5 s, doubling after each run shorter than 10 s up to 30 s; a run of 10 s or
more resets the wait (:class:`Backoff`). Refused lines are counted (``rejected``) and logged,
the first at once and then at most one summary every 5 s, so a CMD printing garbage in a loop
does not flood the hub's stderr. Each exit of CMD is logged with its status.

The group CMD runs in is ended when the hub stops (:meth:`Producer.stop`: SIGTERM, SIGKILL
after ``grace``) and, through the :class:`~sockcli.hub.reaper.Watchdog`, when the hub dies.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sockcli.exceptions import MessageError, SocketError, ValidationError
from sockcli.hub.child import ProducerChild
from sockcli.hub.reaper import Watchdog
from sockcli.hub.rejects import RejectLog
from sockcli.kinds import MessageType
from sockcli.lines import Line, Rejected

__all__ = ["RESTART_POLICIES", "Backoff", "Producer", "describe_status"]

log = logging.getLogger("sockcli.hub")

RESTART_POLICIES = ("never", "on-failure", "always")
#: The status of a CMD that ``sh`` could not even run.
_NOT_STARTED = 127


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a restart waits: ``initial`` seconds, doubled after each run shorter than
    ``stable`` seconds, at most ``maximum``; a run of ``stable`` seconds or more starts again
    from ``initial``."""

    initial: float = 0.5
    maximum: float = 30.0
    stable: float = 10.0

    def next(self, previous: float | None, ran: float) -> float:
        """The wait before the next start, after a run of ``ran`` seconds that followed a
        wait of ``previous`` (None: the first start)."""
        if previous is None or ran >= self.stable:
            return self.initial
        return min(self.maximum, previous * 2)


def describe_status(returncode: int) -> str:
    """``exited 1``, ``killed by SIGTERM``: a status as subprocess gives it, in words."""
    if returncode >= 0:
        return f"exited {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class Producer:
    """Runs ``command`` with ``sh -c`` until :meth:`stop`, restarting it by ``restart``, and
    gives ``emit(message_type, data)`` every message its lines hold.

    ``emit`` runs on the producer's thread; a MessageError it raises counts the line as
    rejected, any other SocketError (the hub is stopping) drops it. ``env`` is the whole
    environment of CMD. Raises ValidationError for an unknown ``restart``.
    """

    def __init__(self, command: str, *, emit: Callable[[MessageType, dict[str, Any]], None],
                 restart: str = "on-failure", env: Mapping[str, str] | None = None,
                 max_line_bytes: int = 65536, grace: float = 3.0,
                 backoff: Backoff | None = None) -> None:
        if restart not in RESTART_POLICIES:
            raise ValidationError(f"invalid restart policy {restart!r}: choose one of "
                                  f"{', '.join(RESTART_POLICIES)}")
        self.command = command
        self.restart = restart
        self.grace = grace
        self.max_line_bytes = max_line_bytes
        self.backoff = backoff or Backoff()
        self._emit = emit
        self._env = dict(os.environ if env is None else env)
        self._watchdog = Watchdog(grace=grace)
        self._rejects = RejectLog("producer")
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._fd_lock = threading.Lock()  # a closed descriptor's number may be reused
        self._thread: threading.Thread | None = None
        # Written by the producer's thread only; read by any (the hub's stats).
        self.restarts = 0
        self.rejected = 0
        self.messages = 0
        self._child: ProducerChild | None = None
        self._state = "starting"
        self._returncode: int | None = None
        self._restart_at = 0.0

    # -- the owner's side --------------------------------------------------------------------

    def start(self) -> None:
        """Start the watchdog, then CMD, on a thread that lives until :meth:`stop`. Raises
        OSError if the watchdog (``/bin/sh``) cannot start."""
        if self._thread is not None:
            raise SocketError("a producer starts once")
        self._watchdog.start()
        self._thread = threading.Thread(target=self._supervise, name="sockcli-producer",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop CMD's group (SIGTERM, then SIGKILL after the grace period) and the watchdog;
        True once done, False if ``timeout`` (default: the grace period and 5 s) passed first.
        Idempotent."""
        self._stopping.set()
        with self._fd_lock:
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is None:
            self._close()
            return True
        thread.join(self.grace + 5.0 if timeout is None else timeout)
        return not thread.is_alive()

    @property
    def pid(self) -> int | None:
        """CMD's pid (its ``sh``) while it runs."""
        child = self._child
        return child.pid if child is not None and self._state == "running" else None

    @property
    def state(self) -> str:
        """starting, running, restarting (see :meth:`figures`' restart_in), exited (not to be
        restarted), stopped."""
        return self._state

    def figures(self) -> dict[str, Any]:
        """What ``sockcli list`` shows: command, pid, state, restarts, rejected, messages,
        restart (the policy), returncode (of the last run, as subprocess gives it: negative
        for a signal; None before the first exit) and last_exit (it in words:
        :func:`describe_status`), restart_in (seconds, or None), watchdog_pid."""
        state = self._state
        restart_in = None
        if state == "restarting":
            restart_in = round(max(0.0, self._restart_at - time.monotonic()), 1)
        return {"command": self.command, "pid": self.pid, "state": state,
                "restarts": self.restarts, "rejected": self.rejected,
                "messages": self.messages, "restart": self.restart,
                "returncode": self._returncode, "restart_in": restart_in,
                "last_exit": None if self._returncode is None else
                describe_status(self._returncode),
                "watchdog_pid": self._watchdog.pid}

    # -- the producer's thread -------------------------------------------------------------------

    def _supervise(self) -> None:
        wait: float | None = None
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                returncode = self._run_once()
                ran = time.monotonic() - started
                self._returncode = returncode
                if self._stopping.is_set():
                    log.info("producer %s on stop", describe_status(returncode))
                    break
                if self.restart == "never" or (self.restart == "on-failure" and
                                               returncode == 0):
                    self._state = "exited"
                    log.warning("producer %s; not restarted (--restart %s): the hub goes on "
                                "serving", describe_status(returncode), self.restart)
                    self._stopping.wait()
                    break
                wait = self.backoff.next(wait, ran)
                self._restart_at = time.monotonic() + wait
                self._state = "restarting"
                log.warning("producer %s after %.1f s; restarting in %.1f s",
                            describe_status(returncode), ran, wait)
                if self._stopping.wait(wait):
                    break
                self.restarts += 1
        except Exception:
            log.exception("the producer's supervisor failed; stopping its command")
            raise
        finally:
            self._state = "stopped"
            self._rejects.tick(final=True)
            self._close()

    def _run_once(self) -> int:
        try:
            self._watchdog.ensure()
        except OSError as exc:
            log.warning("producer: cannot start its watchdog again: %s", exc)
        child = ProducerChild(
            self.command, env=self._env, grace=self.grace, max_line_bytes=self.max_line_bytes,
            watchdog_fd=self._watchdog.fd, on_line=self._line, on_rejected=self._rejected,
            tick=self._rejects.tick, tick_at=self._rejects.due)
        try:
            child.spawn()
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("producer: cannot run /bin/sh: %s", exc)
            return _NOT_STARTED
        self._child = child
        self._state = "running"
        log.info("producer started (pid %d): %s", child.pid, self.command)
        try:
            return child.run(self._stopping.is_set, self._wake_r)
        finally:
            self._watchdog.forget()  # its group is gone: never kill a reused pgid
            self._rejects.tick()

    def _line(self, line: Line) -> None:
        try:
            self._emit(line.message_type, line.data)
        except MessageError as exc:  # valid JSON the hub cannot carry (too large encoded)
            self._rejected(Rejected(line.number, str(exc), ""))
        except SocketError:
            pass  # the hub is stopping: nobody is there to get it
        else:
            self.messages += 1

    def _rejected(self, rejected: Rejected) -> None:
        self.rejected += 1
        self._rejects.note(rejected)

    def _close(self) -> None:
        self._watchdog.close()
        with self._fd_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

"""One run of a producer's command: ``sh -c CMD`` in a process group of its own, its stdout
read line by line, and its group ended when the run is over.

A run is over when CMD (the ``sh``) exits or the hub stops. Either way what is left of its
process group gets SIGTERM, then SIGKILL once the grace period has passed (systemd's
``KillMode=control-group``): a background job CMD left behind is part of the run, not of the
next one, and a restarted CMD never finds its predecessor's children. Its stdout is read until
its end the whole time, so that a CMD writing while it handles SIGTERM never blocks on a full
pipe (and what it prints still counts while the hub runs).

The child is started from the producer's supervisor thread, which lives until the hub has
stopped it: ``PR_SET_PDEATHSIG`` fires when the forking *thread* ends.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from sockcli.hub.reaper import announce_group, die_with_parent, prctl_function
from sockcli.lines import Line, LineReader, Rejected

__all__ = ["ProducerChild"]

log = logging.getLogger("sockcli.hub")

#: How often a run that is ending looks whether its group is gone.
_ENDING_POLL = 0.05
#: How long after SIGKILL the end of stdout is waited for: past it, a process outside the
#: group (one that called setsid) holds it, and the run ends without it.
_AFTER_KILL = 1.0
_READ_SIZE = 65536


class ProducerChild:
    """``sh -c command``, started by :meth:`spawn` and read by :meth:`run` until it is over.

    ``on_line`` gets each message line, ``on_rejected`` each refused one, in order, on the
    thread that calls :meth:`run`; ``tick`` is called whenever :meth:`run` wakes, and
    ``tick_at()`` says when it must wake next (a monotonic time, or None).
    """

    def __init__(self, command: str, *, env: Mapping[str, str], grace: float,
                 max_line_bytes: int, watchdog_fd: int,
                 on_line: Callable[[Line], None], on_rejected: Callable[[Rejected], None],
                 tick: Callable[[], None], tick_at: Callable[[], float | None]) -> None:
        self.command = command
        self.grace = grace
        self._env = dict(env)
        self._watchdog_fd = watchdog_fd
        self._reader = LineReader(max_line_bytes=max_line_bytes)
        self._on_line = on_line
        self._on_rejected = on_rejected
        self._tick = tick
        self._tick_at = tick_at
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def spawn(self) -> None:
        """Start CMD: stdin /dev/null, stdout a pipe, stderr the hub's; its own process group,
        announced to the watchdog, and SIGKILL when the calling thread ends. Raises OSError
        if ``sh`` cannot be started."""
        parent, fd, prctl = os.getpid(), self._watchdog_fd, prctl_function()

        def in_child() -> None:  # after fork, before exec: as little as can be
            die_with_parent(parent, prctl)
            announce_group(fd)

        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", self.command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            env=self._env, close_fds=True, process_group=0, preexec_fn=in_child)

    def run(self, stopping: Callable[[], bool], wake_fd: int) -> int:
        """Read CMD's output until the run is over (CMD exited, or ``stopping()`` after a
        byte on ``wake_fd``), end its group, and return its status as subprocess gives it
        (negative: the signal that killed it)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        out = proc.stdout.fileno()
        poller = select.poll()
        poller.register(out, select.POLLIN)
        poller.register(wake_fd, select.POLLIN)
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        out_open, term_at, kill_at = True, -1.0, -1.0
        group_gone = False
        try:
            while True:
                now = time.monotonic()
                if proc.poll() is not None or stopping():
                    if term_at < 0:
                        term_at = now
                        group_gone = not self._signal_group(proc.pid, signal.SIGTERM)
                    elif not group_gone:
                        group_gone = not self._signal_group(proc.pid, 0)
                    if not group_gone and kill_at < 0 and now >= term_at + self.grace:
                        kill_at = now
                        group_gone = not self._signal_group(proc.pid, signal.SIGKILL)
                    if proc.returncode is not None and (group_gone or kill_at >= 0):
                        if not out_open:
                            break
                        if kill_at >= 0 and now >= kill_at + _AFTER_KILL:
                            log.warning("the producer's stdout is still open after its "
                                        "process group was killed: a process that left the "
                                        "group holds it; reading no more of it")
                            break
                timeout = self._timeout(now, pidfd is not None and term_at < 0)
                for fd, _ in poller.poll(timeout):
                    if fd == out:
                        data = os.read(out, _READ_SIZE)
                        if data:
                            self._deliver(self._reader.feed(data))
                        else:
                            out_open = False
                            poller.unregister(out)
                            self._deliver(self._reader.end())
                    elif fd == wake_fd:
                        poller.unregister(wake_fd)  # stopping is for good: no need to drain
                    elif fd == pidfd:
                        poller.unregister(pidfd)
                self._tick()
        finally:
            if pidfd is not None:
                os.close(pidfd)
            proc.stdout.close()
            if proc.returncode is None:  # an exception above: never leave it running
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def _timeout(self, now: float, pidfd_watches: bool) -> int | None:
        """Milliseconds poll may wait: until the next tick, and short while the run ends (or
        while no pidfd tells when CMD exits)."""
        limits = [] if pidfd_watches else [_ENDING_POLL]
        tick_at = self._tick_at()
        if tick_at is not None:
            limits.append(max(0.0, tick_at - now))
        return None if not limits else max(1, round(min(limits) * 1000))

    def _deliver(self, items: list[Line | Rejected]) -> None:
        for item in items:
            if isinstance(item, Line):
                self._on_line(item)
            else:
                self._on_rejected(item)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> bool:
        """Send ``signum`` to the group (0: only look); False when nothing is left of it."""
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member changed user (setuid): it is not ours to end
            return False
        return True


def _pidfd(pid: int) -> int | None:
    """A descriptor that polls readable once ``pid`` exits (Linux 5.3), else None: then the
    run looks every 50 ms."""
    opener: Any = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd

"""What kills a producer's process group when the hub is gone, however it went.

``PR_SET_PDEATHSIG`` (:func:`die_with_parent`) kills only the direct child when the hub dies,
and only if the thread that forked it is gone too; a ``kill -9`` of the hub would leave every
grandchild of ``sh -c CMD`` running (``sleep`` in ``while :; do ...; sleep 1000; done``). So
each hub with a producer starts a :class:`Watchdog`: a small ``sh`` in a process group of its
own, with the read end of a pipe as its stdin, whose write end only the hub holds (every file
descriptor Python opens is close-on-exec, and producers are started with ``close_fds``). The
producer's child writes its process group id into that pipe before it execs CMD (so no window
where the hub could die first); the hub writes ``0`` once that group is gone. When its ``read``
meets the end of the pipe, the hub has closed it or died: the watchdog sends SIGTERM to the
last group it was told of, waits up to the grace period for it to go, sends SIGKILL, and exits.

The watchdog ignores SIGHUP and SIGINT (a closed terminal or a Ctrl-C aimed at the hub must not
take it first), and costs one ``sh`` (about a megabyte) for the life of the hub.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess

from sockcli.deathsig import die_with_parent, prctl_function

__all__ = ["WATCHDOG_SCRIPT", "Watchdog", "announce_group", "die_with_parent",
           "prctl_function"]

log = logging.getLogger("sockcli.hub")

#: $1: the grace period in tenths of a second. Lines of stdin: the group to kill ("0": none).
WATCHDOG_SCRIPT = r"""
trap '' HUP INT
pgid=0
while read -r line; do pgid=$line; done
case $pgid in ''|*[!0-9]*|0|1) exit 0 ;; esac
kill -TERM -"$pgid" 2>/dev/null || exit 0
n=0
while [ "$n" -lt "$1" ] && kill -0 -"$pgid" 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
kill -KILL -"$pgid" 2>/dev/null
exit 0
"""

class Watchdog:
    """The process that ends a producer's group after the hub (see the module's docstring).

    :meth:`start` it before the first producer starts; a child writes its group into
    :attr:`fd` (:func:`announce_group`), the hub calls :meth:`forget` once that group is gone
    and :meth:`close` when it stops. Raises OSError if ``sh`` cannot be started.
    """

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self._proc: subprocess.Popen[bytes] | None = None
        #: The write end of the pipe (close-on-exec); -1 until started and after close.
        self.fd = -1

    def start(self) -> None:
        read_end, write_end = os.pipe()  # both close-on-exec: no child but the watchdog inherits
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", WATCHDOG_SCRIPT, "sockcli-watchdog",
                 str(max(1, math.ceil(self.grace * 10)))],
                stdin=read_end, stdout=subprocess.DEVNULL, close_fds=True, process_group=0)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self.fd = write_end

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def ensure(self) -> None:
        """Before a new run: a watchdog that someone killed is replaced (a child writing
        into its broken pipe would die of SIGPIPE before exec). Raises OSError as start."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        log.warning("the producer's watchdog (pid %d) is gone (status %s); starting another",
                    proc.pid, proc.returncode)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.start()

    def forget(self) -> None:
        """The group it was told of is gone: nothing to kill if the hub dies now."""
        self._tell(0)

    def close(self, timeout: float = 2.0) -> None:
        """The hub stops, its producer's group is gone: let the watchdog exit."""
        if self.fd < 0:
            return
        self.forget()
        os.close(self.fd)
        self.fd = -1
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the producer's watchdog (pid %d) did not exit; killing it",
                            self._proc.pid)
                self._proc.kill()
                self._proc.wait()

    def _tell(self, pgid: int) -> None:
        if self.fd >= 0:
            try:
                os.write(self.fd, b"%d\n" % pgid)
            except OSError as exc:  # it died (killed by someone): the hub still cleans up
                log.warning("the producer's watchdog is gone (%s): until the next run "
                            "starts another, CMD's children may outlive a hub that dies", exc)


def announce_group(fd: int) -> None:
    """In a new child, before exec: tell the watchdog (its pipe's write end ``fd``) the
    child's own process group. An atomic write of a few bytes: a pipe's PIPE_BUF is 4096."""
    if fd >= 0:
        # The watchdog gone (EPIPE): the run goes on; the next one gets another watchdog.
        with contextlib.suppress(OSError):
            os.write(fd, b"%d\n" % os.getpgid(0))



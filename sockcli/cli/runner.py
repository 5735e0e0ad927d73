"""``listen --exec CMD``: CMD run for each message, each run in a process group of its own,
and none left behind when listen exits.

:class:`CommandRunner` starts ``/bin/sh -c CMD`` with the message's ``--json`` line on its
stdin and the message in ``SOCKCLI_*`` variables; up to ``jobs`` run at once and the next
waits for a free slot, so a slow command holds the listener back, and flow control holds the
hub back in turn: nothing is dropped. A failure (a non-zero status, a signal) is one stderr
line and is counted; with ``stop_on_failure`` it ends listen (:class:`ExecFailed`, exit 1).

Nothing may outlive listen: :meth:`CommandRunner.stop` sends SIGTERM to every group still
running, then SIGKILL after :data:`STOP_GRACE_SECONDS`. For that to run whatever ends listen,
SIGTERM and SIGHUP become :class:`Stopped` (exit 0, as for ``serve``) and SIGINT stays a
KeyboardInterrupt (exit 130) from the first command on; and each ``sh`` is started with
``PR_SET_PDEATHSIG`` = SIGTERM, so even a ``kill -9`` of listen takes it along.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sockcli.cli.errors import CliError, say
from sockcli.cli.templates import compact_json
from sockcli.deathsig import die_with_parent, prctl_function

__all__ = ["STOP_GRACE_SECONDS", "CommandRunner", "ExecFailed", "Stopped"]

#: How long a command has between SIGTERM and SIGKILL when listen stops it.
STOP_GRACE_SECONDS = 0.5

_SHELL = "/bin/sh"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class ExecFailed(CliError):
    """A command failed and ``--exec-fail exit`` was given, or commands failed before
    ``--count`` ended listen."""

    exit_code = 1


class Stopped(CliError):
    """SIGTERM or SIGHUP asked listen to stop: a clean exit, nothing to report (the running
    commands are stopped on the way out)."""

    exit_code = 0

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}", reported=True)


@dataclass
class _Job:
    proc: subprocess.Popen[bytes]
    number: int  # the message's rank among those run, from 1
    pidfd: int | None  # readable once the process has exited (not reaped)


class CommandRunner:
    """Runs ``command`` for message records, ``jobs`` at a time, started in their order.

    ``watch_fd``: a descriptor (stdout on a pipe) whose reader going away ends listen; while
    waiting for a free slot the runner watches it and raises BrokenPipeError then.
    """

    def __init__(self, command: str, *, jobs: int = 1, stop_on_failure: bool = False,
                 watch_fd: int | None = None) -> None:
        self.command = command
        self.jobs = jobs
        self.stop_on_failure = stop_on_failure
        self.started = 0
        self.failures = 0
        self._watch_fd = watch_fd
        self._running: list[_Job] = []
        self._base_env = dict(os.environ)
        self._child_setup = _death_signal_setup()
        self._previous: dict[int, Any] | None = None  # handlers replaced, once armed
        self._critical = False  # starting a command: a stop signal waits until it is known
        self._pending: int | None = None
        self._stopping = False

    @property
    def running(self) -> int:
        """How many commands are running (or exited and not yet collected)."""
        return len(self._running)

    def run(self, record: dict[str, Any], line: str) -> None:
        """Start the command for one message (``line``: its ``--json`` line, for stdin),
        after waiting for a free slot; reports (or raises for) the commands that ended."""
        self.poll()
        if self._reader_gone():  # what the command would print has nowhere to go
            raise BrokenPipeError("the reader of stdout went away")
        while len(self._running) >= self.jobs:
            self._wait(None)
            self.poll()
        self._arm()
        self.started += 1
        env = dict(self._base_env)
        env.update(_variables(record))
        read_end, write_end = os.pipe()
        self._critical = True
        try:
            proc = subprocess.Popen([_SHELL, "-c", self.command], stdin=read_end, env=env,
                                    process_group=0, preexec_fn=self._child_setup)
            self._running.append(_Job(proc, self.started, _pidfd(proc.pid)))
        finally:
            os.close(read_end)
            self._critical = False
        _feed(write_end, line.encode("utf-8", "surrogateescape"))
        if self._pending is not None:
            self._raise_for(self._pending)

    def poll(self) -> None:
        """Collect the commands that have ended: a failure is reported and counted (with
        ``stop_on_failure``: ExecFailed)."""
        for job in [j for j in self._running if _exited(j)]:
            status = job.proc.wait()
            self._running.remove(job)
            _close(job)
            if status != 0:
                self._failed(job, status)

    def wait_all(self) -> None:
        """Wait until every command has ended (``--count`` reached: they are part of the
        work), then ExecFailed if any of them failed."""
        while self._running:
            self._wait(None)
            self.poll()
        if self.failures:
            raise ExecFailed(f"exec: {self.failures} of {self.started} commands failed")

    def stop(self) -> None:
        """Stop every command still running (SIGTERM to its group, SIGKILL after the grace
        period) and collect them; then give the signals their old handlers back."""
        self._stopping = True
        try:
            if self._running:
                self._signal_all(signal.SIGTERM)
                deadline = _now() + STOP_GRACE_SECONDS
                while any(not _exited(j) for j in self._running) and _now() < deadline:
                    self._wait(deadline - _now(), watch=False)
                # Again with SIGKILL, whether the leaders left or not: a zombie leader keeps
                # its group's id, so what the shell left in the group goes too.
                self._signal_all(signal.SIGKILL)
                for job in self._running:
                    job.proc.wait()
                    _close(job)
                self._running.clear()
        finally:
            self._disarm()

    # --- internals ----------------------------------------------------------------------------

    def _failed(self, job: _Job, status: int) -> None:
        self.failures += 1
        how = f"exited {status}" if status > 0 else \
            f"was killed by {_signal_name(-status)}"
        text = f"exec: {self.command!r} {how} for message {job.number}"
        if self.stop_on_failure:
            raise ExecFailed(text)
        say(f"sockcli: {text}\n")

    def _signal_all(self, signum: int) -> None:
        for job in self._running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.proc.pid, signum)  # the leader is not reaped: the id is its

    def _wait(self, timeout: float | None, *, watch: bool = True) -> None:
        """Until a command exits, ``timeout`` passes, or (``watch``) the reader of
        ``watch_fd`` goes away, which raises BrokenPipeError."""
        poller = select.poll()
        fallback = False
        for job in self._running:
            if job.pidfd is None:
                fallback = True
            else:
                poller.register(job.pidfd, select.POLLIN)
        watched = self._watch_fd if watch else None
        if watched is not None:
            poller.register(watched, 0)  # no events asked: POLLHUP and POLLERR still come
        if fallback:  # no pidfd (a kernel before 5.3): look again every 20 ms
            timeout = 0.02 if timeout is None else min(timeout, 0.02)
        events = poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        for fd, event in events:
            if fd == watched and event & (select.POLLHUP | select.POLLERR):
                raise BrokenPipeError("the reader of stdout went away")

    def _reader_gone(self) -> bool:
        if self._watch_fd is None:
            return False
        poller = select.poll()
        poller.register(self._watch_fd, 0)
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0))

    def _arm(self) -> None:
        """From the first command on: stop signals end listen through its ``finally``."""
        if self._previous is not None or \
                threading.current_thread() is not threading.main_thread():
            return
        self._previous = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}

    def _disarm(self) -> None:
        if self._previous is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:  # already on the way out: the commands are being stopped
            return
        if self._critical:  # a command is starting: stop once it is on the list
            self._pending = signum
            return
        self._raise_for(signum)

    def _raise_for(self, signum: int) -> None:
        self._stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)


def _variables(record: dict[str, Any]) -> dict[str, str]:
    """The message in the command's environment (NUL, which no variable can hold, dropped)."""
    values = {
        "SOCKCLI_EVENT": record.get("event_name"),
        "SOCKCLI_TYPE": record.get("message_type"),
        "SOCKCLI_TIMESTAMP_MS": record.get("timestamp_ms"),
        "SOCKCLI_TIMESTAMP_ISO": record.get("timestamp_iso"),
        "SOCKCLI_DATA": compact_json(record.get("data")),
    }
    return {k: (v if isinstance(v, str) else compact_json(v)).replace("\0", "")
            for k, v in values.items()}


def _feed(fd: int, data: bytes) -> None:
    """Write ``data`` to the command's stdin and close it, without ever blocking listen: what
    the pipe does not take at once (a message over 64 KiB, a command that does not read yet)
    a thread writes; a command that exits unread is no error."""
    os.set_blocking(fd, False)
    try:
        written = os.write(fd, data) if data else 0
    except BlockingIOError:
        written = 0
    except OSError:  # EPIPE: the command has already gone without reading
        os.close(fd)
        return
    if written == len(data):
        os.close(fd)
        return

    def rest() -> None:
        try:
            os.set_blocking(fd, True)
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            pass
        finally:
            os.close(fd)

    threading.Thread(target=rest, name="sockcli-exec-stdin", daemon=True).start()


def _death_signal_setup() -> Callable[[], None]:
    """The child's last step before exec: SIGTERM when listen dies (``PR_SET_PDEATHSIG``), and
    at once if listen died already. prctl is looked up here, in the parent, so the child only
    calls it."""
    prctl, parent = prctl_function(), os.getpid()

    def setup() -> None:
        die_with_parent(parent, prctl, signal.SIGTERM)

    return setup


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(job: _Job) -> bool:
    """Whether the command has exited, without collecting it (its pid, and so its group's
    id, stays reserved until :meth:`subprocess.Popen.wait`)."""
    if job.proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, job.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _close(job: _Job) -> None:
    if job.pidfd is not None:
        os.close(job.pidfd)
        job.pidfd = None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_now = time.monotonic

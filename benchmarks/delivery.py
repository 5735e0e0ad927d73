"""What the benchmarks that stream into a listener's file (stream.py, fifo.py, lines_socket.py,
bridge.py, through filestream.py) check and watch: that the file holds every message, in order
and nothing else; when each process ended and what CPU it used; and a bounded wait that fails
at once, with the logs, when a listener exits or is dropped, or the output stops growing.

Processes are reaped by polling ``os.wait4(pid, WNOHANG)`` every millisecond from the harness's
own thread (no waiter threads racing :meth:`Sandbox.stop`): an exit time is known to about a
millisecond, against runs of half a second and more.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: How often the harness looks at its children and at the output file, in seconds.
POLL = 0.001


def reaped(proc: subprocess.Popen[Any]) -> tuple[float, float] | None:
    """(time.perf_counter() now, CPU seconds user + system) if ``proc`` has exited (it is
    then reaped, its returncode set), else None. The CPU time includes the children it
    waited for: a shell's pipeline counts whole."""
    if proc.returncode is not None:
        raise RuntimeError(f"{proc.args!r} was already reaped")
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter(), usage.ru_utime + usage.ru_stime


def wait_all(procs: dict[str, subprocess.Popen[Any]], timeout: float,
             failure: Callable[[str], str]) -> dict[str, tuple[float, float]]:
    """Reap every process of ``procs`` (name -> process): {name: (ended, cpu_s)}. Raises
    RuntimeError, with ``failure(what)`` as its text, after ``timeout`` seconds."""
    done: dict[str, tuple[float, float]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(procs):
        for name, proc in procs.items():
            if name not in done and (ended := reaped(proc)) is not None:
                done[name] = ended
        if len(done) < len(procs):
            if time.monotonic() > deadline:
                late = ", ".join(n for n in procs if n not in done)
                raise RuntimeError(failure(f"{late} still running after {timeout:g} s"))
            time.sleep(POLL)
    return done


class Follower:
    """Reads a file a listener writes to, as it grows, counting its lines from ``offset``."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.lines = 0
        #: Lines in the file when the writer exited (set by :func:`follow`): what the reader
        #: had when the writer was done, the rest being in buffers on the way.
        self.at_writer_exit: int | None = None
        self._fd = os.open(path, os.O_RDONLY)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def poll(self) -> bool:
        """Count what was written since the last call; True if anything was."""
        grew = False
        while chunk := os.read(self._fd, 1 << 20):
            self.lines += chunk.count(b"\n")
            grew = True
        return grew

    def close(self) -> None:
        os.close(self._fd)


#: The data the k-th message of a stream carries (from 1).
Expect = Callable[[int], dict[str, Any]]


def numbered(k: int) -> dict[str, Any]:
    """``{"i": k}``: the lines of ``seq -f '{"i":%.0f}' 1 N``, the FIFO loop's."""
    return {"i": k}


def check_sequence(path: Path, count: int, *, event: str | None, offset: int = 0,
                   expect: Expect = numbered) -> None:
    """The file holds exactly ``count`` lines from ``offset``, the k-th carrying
    ``expect(k)`` (``{"i": k}`` unless told): bare (``event`` None: what a shell or a peer's
    client wrote) or as the record ``sockcli listen --json`` prints, of a data message of
    ``event``. RuntimeError saying the first line that is wrong, or what is missing."""
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    for k, raw in enumerate(lines, 1):
        if k > count:
            raise RuntimeError(f"{path.name}: {len(lines)} lines where {count} were sent; "
                               f"line {k}: {raw[:200]!r}")
        try:
            record = json.loads(raw)
        except ValueError:
            raise RuntimeError(f"{path.name}: line {k} is not JSON: {raw[:200]!r}") from None
        if event is None:
            data = record
        else:
            if not isinstance(record, dict) or record.get("event_name") != event or \
                    record.get("message_type") != "data":
                raise RuntimeError(f"{path.name}: line {k} is not a data message of {event}: "
                                   f"{raw[:200]!r}")
            data = record.get("data")
        if data != (want := expect(k)):
            raise RuntimeError(f"{path.name}: line {k} carries {data!r}, not {want!r} "
                               "(lost, duplicated or out of order)")
    if len(lines) != count:
        raise RuntimeError(f"{path.name}: {len(lines)} of {count} messages arrived (in order)")


#: Seconds a listener's file may not grow before a streaming run is failed (longer than a
#: hub's slow_consumer_timeout, 10 s: a listener that stops reading is reported as dropped).
STALL = 15.0
#: How often the caller's ``watch`` looks (the hub's figures, say), in seconds.
STATS_EVERY = 0.5


def follow(follower: Follower, count: int, writer: subprocess.Popen[Any],
           listener: subprocess.Popen[Any], *, timeout: float, watch: Callable[[], None],
           fail: Callable[[str], Exception], stall: float = STALL,
           listener_label: str = "listener",
           ) -> tuple[float, tuple[float, float] | None, tuple[float, float] | None]:
    """Follow the listener's file until ``count`` lines are in: when they were
    (time.perf_counter()), and what :func:`reaped` gave for the writer and the listener if
    they ended meanwhile. Raises ``fail(why)`` at once when the writer fails, the listener
    ends early, ``watch()`` raises RuntimeError (every :data:`STATS_EVERY` s), the file stops
    growing for ``stall`` s, or ``timeout`` passes: never a silent long wait."""
    writer_done: tuple[float, float] | None = None
    listener_done: tuple[float, float] | None = None
    now = time.monotonic()
    deadline, grew_at, watch_at = now + timeout, now, now + STATS_EVERY
    while True:
        if follower.poll():
            grew_at = time.monotonic()
            if follower.lines >= count:
                return time.perf_counter(), writer_done, listener_done
        if writer_done is None and (writer_done := reaped(writer)) is not None:
            if writer.returncode != 0:
                raise fail(f"the writer exited {writer.returncode}")
            follower.poll()
            follower.at_writer_exit = follower.lines
            if follower.lines >= count:
                return time.perf_counter(), writer_done, listener_done
        if listener_done is None and (listener_done := reaped(listener)) is not None:
            follower.poll()
            if follower.lines >= count:
                return time.perf_counter(), writer_done, listener_done
            raise fail(f"the {listener_label} exited {listener.returncode}")
        now = time.monotonic()
        if now >= watch_at:
            watch_at = now + STATS_EVERY
            try:
                watch()
            except RuntimeError as exc:
                raise fail(str(exc)) from None
        if now - grew_at > stall:
            raise fail(f"no new line for {stall:g} s")
        if now > deadline:
            raise fail(f"not done after {timeout:g} s")
        time.sleep(POLL)

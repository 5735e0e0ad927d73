"""One timed stream into a listener's output file, the way the CLI and its peers are measured
(stream.py, lines_socket.py, bridge.py): the listener is started first with its stdout a file
(or a pipe into a filter, such as the throttled reader, that writes the file), known to
subscribe (a hub's stats, or probes until one is in the file), then the writer is started and
the harness follows the file until the N-th line is in it. Then everything is reaped and the
file is checked line by line: exactly N lines after the probes, the k-th the k-th message
(delivery.check_sequence), and a hub's counts of dropped clients, dropped messages and
rejected lines must not have moved.

It fails loudly and fast: at once when the writer fails, when the listener (or the process
feeding its filter) exits early, or when the hub drops a client (its stats are read every
half second); after ``stall`` seconds without a new line (delivery.STALL, 15 s, longer than
a hub's slow_consumer_timeout, unless told), saying which side has stopped (the hub's figures
since the file last grew); and after a timeout of the stream's size. Each error carries the
processes' states, the hub's figures and the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Sandbox, alive, cpu_seconds, hub_stats, wait_until
from delivery import (
    POLL,
    STALL,
    Expect,
    Follower,
    check_sequence,
    follow,
    numbered,
    reaped,
    wait_all,
)

#: The hub's figures a failure quotes, and those that must not move during a stream.
_QUOTED = ("clients", "subscribers", "received", "delivered", "holding", "dropped_clients",
           "dropped", "rejected")
_STEADY = ("dropped_clients", "dropped", "rejected")


def default_timeout(count: int) -> float:
    """Seconds a stream of ``count`` lines may take in all (80 s for 100,000): 2,000 lines a
    second, some 20 to 50 times slower than a quiet machine streams."""
    return 30 + count / 2000


def stall_side(start: dict[str, Any] | None, grown: dict[str, Any] | None,
               now: dict[str, Any] | None, lines: int, count: int, writer_running: bool) -> str:
    """Which side stopped, from a hub's figures at the stream's start, when the file last
    grew and now (None: no hub to ask), and the lines in the file."""
    writer = "the writer is still running" if writer_running else "the writer has exited"
    if start is None or grown is None or now is None:
        return f"{writer}: the relay or the listener holds the rest"
    received = now["received"] - start["received"]
    delivered = now["delivered"] - start["delivered"]
    if delivered > lines:
        return (f"the hub has handed {delivered:,} messages to the listener's connection and "
                f"the file has {lines:,}: the listener side is stuck (not reading, or not "
                "writing its output)")
    if received > delivered:
        return (f"the hub received {received:,} messages and delivered {delivered:,}: the hub "
                f"holds the rest (holding {now.get('holding')})")
    if received < count and now["received"] == grown["received"]:
        return (f"{writer} and the hub has received only {received:,} of {count:,} messages, "
                "none since the file last grew: the writer side is stuck" if writer_running
                else f"{writer} and the hub received only {received:,} of {count:,} messages: "
                "lost on the writer's side")
    return f"{writer}; the hub received {received:,} and delivered {delivered:,}"


class FileStream:
    """One run: its processes, its output file, its checks, and the failure text with logs.

    ``address`` is the sockcli hub in the middle, if it is one (its stats are watched and
    checked); ``logs`` names other processes whose logs a failure should show (the hub, the
    broker); ``expect`` gives the data of the k-th message (delivery.numbered: ``{"i": k}``);
    ``event`` says the lines are ``sockcli listen --json`` records of that event (None: bare
    objects, as mosquitto_sub and socat print them)."""

    def __init__(self, box: Sandbox, name: str, out: Path, count: int, *,
                 address: str | None = None, event: str | None = None,
                 expect: Expect = numbered, logs: dict[str, subprocess.Popen[Any]] | None = None,
                 timeout: float | None = None, stall: float = STALL) -> None:
        self.box, self.name, self.out, self.count = box, name, out, count
        self.address, self.event, self.expect = address, event, expect
        self.logs = dict(logs or {})
        self.timeout = default_timeout(count) if timeout is None else timeout
        self.stall = stall
        #: The process that writes the file, and the one feeding it when it is a filter.
        self.listener: subprocess.Popen[Any] | None = None
        self.upstream: subprocess.Popen[Any] | None = None
        self.writer: subprocess.Popen[Any] | None = None
        self.follower: Follower | None = None
        #: Whether the listener exits once it has the count (sockcli listen --count).
        self.ends_itself = False
        self._stats0: dict[str, Any] | None = None
        self._stats_grown: dict[str, Any] | None = None
        self._lines_seen = -1
        self._upstream_done: tuple[float, float] | None = None

    # -- failure text ---------------------------------------------------------------------

    def _processes(self) -> list[tuple[str, subprocess.Popen[Any] | None]]:
        if self.upstream is not None:
            return [("writer", self.writer), ("listener", self.upstream),
                    ("listener's filter", self.listener)]
        return [("writer", self.writer), ("listener", self.listener)]

    def failure(self, what: str) -> str:
        got = self.follower.lines if self.follower is not None else 0
        upstream = self.upstream
        if upstream is not None and self._upstream_done is None:
            # Its filter ends when it does: give the reaping a moment, for its exit status.
            deadline = time.monotonic() + 1.0
            while (done := reaped(upstream)) is None and time.monotonic() < deadline:
                time.sleep(POLL)
            self._upstream_done = done
        text = f"{self.name}: {what}; the listener's file has {got:,} of {self.count:,} lines"
        # By returncode only (set when the harness reaped them): no poll() here, which would
        # reap a child behind reaped()'s back.
        for label, proc in self._processes():
            if proc is not None:
                text += f"; {label} " + ("running" if proc.returncode is None
                                         else f"exited {proc.returncode}")
        stalled = what.startswith("no new line")
        writer_running = self.writer is not None and self.writer.returncode is None
        stats: dict[str, Any] | None = None
        if self.address is not None:
            try:
                stats = hub_stats(self.address)
                text += "; hub stats: " + ", ".join(f"{k} {stats.get(k)}" for k in _QUOTED)
            except (OSError, ValueError) as exc:
                text += f"; the hub's stats could not be read: {exc}"
        if stalled:
            text += "; " + stall_side(self._stats0, self._stats_grown, stats, got, self.count,
                                      writer_running)
        for label, proc in [*self._processes(), *self.logs.items()]:
            if proc is not None:
                text += f"\n{label} log:\n{self.box.log_of(proc)}"
        return text

    def fail(self, what: str) -> RuntimeError:
        return RuntimeError(self.failure(what))

    # -- the listener -----------------------------------------------------------------------

    def start_listener(self, argv: list[str], *, ends_itself: bool,
                       through: list[str] | None = None,
                       subscribed: Callable[[], bool] | None = None) -> None:
        """Start the listener, its stdout the file, or with ``through`` a pipe into that
        filter, whose stdout is the file. Returns once it subscribes: ``subscribed()`` says
        so, else a hub's stats count one subscriber more, else (a peer) at once: settle with
        probes then."""
        self.ends_itself = ends_itself
        box = self.box
        before = hub_stats(self.address)["subscribers"] if self.address is not None else 0
        if through is None:
            with open(self.out, "wb") as stdout:
                self.listener = listener = box.spawn(argv, name=f"{self.name}-listen",
                                                     stdout=stdout)
        else:
            read_end, write_end = os.pipe()
            try:
                self.upstream = listener = box.spawn(argv, name=f"{self.name}-listen",
                                                     stdout=write_end)
                with open(self.out, "wb") as stdout:
                    self.listener = box.spawn(through, name=f"{self.name}-filter",
                                              stdin=read_end, stdout=stdout)
            finally:
                os.close(read_end)
                os.close(write_end)
        if subscribed is None and self.address is not None:
            address = self.address

            def subscribed() -> bool:
                return int(hub_stats(address)["subscribers"]) > before

        if subscribed is None:
            return
        ready = subscribed
        try:
            wait_until(lambda: alive(listener, "the listener") and ready(), 10.0,
                       "the listener to subscribe")
        except (TimeoutError, RuntimeError) as exc:
            raise self.fail(str(exc)) from None

    def settle(self, probe: Callable[[int], None]) -> int:
        """Probes, one a second, until the newest one sent is in the listener's file: it is
        subscribed (a probe published before a peer's listener subscribed is lost, as MQTT
        does without a session, so only the newest counts). Returns the file's size then,
        where the timed lines start."""
        assert self.listener is not None
        sent, due = 0, 0.0
        deadline = time.monotonic() + 20
        while True:
            if sent and has_probe(self.out, sent):
                return self.out.stat().st_size
            if time.monotonic() > deadline or self.listener.poll() is not None:
                raise self.fail(f"{sent} probes sent, the last not arrived")
            if time.monotonic() >= due:
                sent += 1
                probe(sent)
                due = time.monotonic() + 1.0
            time.sleep(POLL)

    # -- the timed part ---------------------------------------------------------------------

    def _watch(self, extra: Callable[[], None] | None) -> Callable[[], None]:
        def watch() -> None:
            upstream = self.upstream
            if upstream is not None and self._upstream_done is None:
                self._upstream_done = reaped(upstream)
                if self._upstream_done is not None and upstream.returncode != 0:
                    raise RuntimeError(f"the listener exited {upstream.returncode}")
            if self.address is not None and self._stats0 is not None:
                stats = hub_stats(self.address)
                lines = self.follower.lines if self.follower is not None else 0
                if lines != self._lines_seen:
                    self._lines_seen, self._stats_grown = lines, stats
                dropped = stats["dropped_clients"] - self._stats0["dropped_clients"]
                if dropped:
                    raise RuntimeError(f"the hub dropped {dropped} client(s) as slow consumers")
            if extra is not None:
                extra()
        return watch

    def stream(self, writer_argv: list[str], *, offset: int = 0, stdin: Path | None = None,
               watch: Callable[[], None] | None = None,
               middle: subprocess.Popen[Any] | None = None) -> dict[str, Any]:
        """Start the writer (``stdin`` a file, or none); follow the file until the count is
        in (``watch`` may raise RuntimeError meanwhile, every half second); reap; check.
        Seconds and CPU seconds of each process, and of ``middle`` (the hub, the broker)."""
        box, count, listener = self.box, self.count, self.listener
        assert listener is not None
        if self.address is not None:
            self._stats0 = self._stats_grown = hub_stats(self.address)
        self.follower = follower = Follower(self.out, offset)
        middle_cpu0 = cpu_seconds(middle.pid) if middle is not None else 0.0
        with contextlib.ExitStack() as stack:
            stdin_file = stack.enter_context(open(stdin, "rb")) if stdin is not None \
                else subprocess.DEVNULL
            started = time.perf_counter()
            self.writer = writer = box.spawn(writer_argv, name=f"{self.name}-write",
                                             stdin=stdin_file)
        reached, writer_done, listener_done = follow(
            follower, count, writer, listener, timeout=self.timeout,
            watch=self._watch(watch), fail=self.fail, stall=self.stall,
            listener_label="listener's filter" if self.upstream is not None else "listener")
        middle_cpu = cpu_seconds(middle.pid) - middle_cpu0 if middle is not None else None
        if listener_done is None and not self.ends_itself:  # a peer: it never ends by itself
            listener_done = (reached, cpu_seconds(listener.pid))
            box.stop(listener)
        rest = {k: p for k, p, d in (("writer", writer, writer_done),
                                     ("listener", listener, listener_done),
                                     ("upstream", self.upstream, self._upstream_done))
                if d is None and p is not None}
        done = wait_all(rest, 30.0, self.failure)
        writer_done = writer_done or done["writer"]
        listener_done = listener_done or done["listener"]
        upstream_done = self._upstream_done or done.get("upstream")
        if writer.returncode != 0:
            raise self.fail(f"the writer exited {writer.returncode}")
        if self.upstream is not None and self.upstream.returncode != 0:
            raise self.fail(f"the listener exited {self.upstream.returncode}")
        if self.ends_itself and listener.returncode != 0:
            raise self.fail(f"the listener exited {listener.returncode}")
        if self._stats0 is not None and self.address is not None:
            stats = hub_stats(self.address)
            for key in _STEADY:
                if stats[key] != self._stats0[key]:
                    raise self.fail(f"the hub's {key} went from {self._stats0[key]} to "
                                    f"{stats[key]}")
        try:
            check_sequence(self.out, count, event=self.event, offset=offset,
                           expect=self.expect)
        except RuntimeError as exc:
            raise self.fail(str(exc)) from None
        receiver_cpu = listener_done[1] + (upstream_done[1] if upstream_done else 0.0)
        writer_seconds = writer_done[0] - started
        at_exit = follower.at_writer_exit
        return {"rate": count / (reached - started), "seconds": reached - started,
                "writer_seconds": writer_seconds, "writer_rate": count / writer_seconds,
                "lines_at_writer_exit": count if at_exit is None else min(at_exit, count),
                "sender_cpu_s": writer_done[1], "receiver_cpu_s": receiver_cpu,
                "hub_cpu_s": middle_cpu}

    def close(self) -> None:
        for proc in (self.writer, self.upstream, self.listener):
            if proc is not None:
                self.box.stop(proc)
        if self.follower is not None:
            self.follower.close()


def has_probe(path: Path, n: int) -> bool:
    """Whether a line of ``path`` carries ``{"probe": n}``, bare or as a listen --json
    record's data."""
    want = {"probe": n}
    for raw in path.read_bytes().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if record == want or (isinstance(record, dict) and record.get("data") == want):
            return True
    return False

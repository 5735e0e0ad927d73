"""Streaming through the JSON-lines socket with socat at both ends, against the MessagePack
path with sockcli's own CLI at both ends: the same lines, the same hub, the same run.

* ``lines``: ``seq -f '{"i":%.0f}' 1 N | socat -u - UNIX-CONNECT:$lines`` -> hub ->
  ``socat -u UNIX-CONNECT:$lines - > file``;
* ``msgpack``: ``seq -f '{"i":%.0f}' 1 N | sockcli send E --lines`` -> hub ->
  ``sockcli listen E --json --count N > file``.

The listener is started first and known to subscribe before the writer starts: the hub's
stats count it, and for socat (whose first line the hub waits 0.2 s for, holding what comes
meanwhile) a probe message sent through the hub has reached its file, so that the timed part
does not include that wait. Messages/s from the writer's start until the N-th line is in the
listener's file (the harness follows it, polling every millisecond); runs interleaved, medians.
Each file is checked: exactly N lines after the probes, the k-th the record of a data message
``{"i": k}``. A run fails at once, with the hub's log, when the listener exits or the hub drops
a client, when the file stops growing for STALL seconds, or after a timeout of its size.
No target: the ratio is reported.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    SOCKCLI,
    Row,
    Sandbox,
    alive,
    cpu_seconds,
    hub_stats,
    interleaved,
    median,
    queue_one,
    wait_until,
)
from delivery import POLL, Follower, check_sequence, follow, wait_all
from peers import SOCAT_MISSING, which

SECTION = ("5b. JSON-lines socket streaming, 1 writer -> 1 listener (messages/s, ratio to the "
           "MessagePack path)")
EVENT = "bench_lines"
_SEQ = """seq -f '{"i":%.0f}' 1 "$1\""""
#: $1 the count, $2 socat, $3 the lines socket.
WRITE_LINES = f'set -o pipefail; {_SEQ} | "$2" -u - UNIX-CONNECT:"$3"'
#: $1 the count, $2 sockcli, $3 the event.
WRITE_MSGPACK = f'set -o pipefail; {_SEQ} | "$2" send "$3" --lines'


def _timeout(count: int) -> float:
    return 30 + count / 2000


class Run:
    """One timed stream: its processes, its output file, and the failure text with logs."""

    def __init__(self, box: Sandbox, hub: subprocess.Popen[Any], name: str, out: Path,
                 count: int) -> None:
        self.box, self.hub, self.name, self.out, self.count = box, hub, name, out, count
        self.address = box.hub_address(EVENT)
        self.listener: subprocess.Popen[Any] | None = None
        self.writer: subprocess.Popen[Any] | None = None
        self.follower: Follower | None = None
        #: Whether the listener exits once it has the count (sockcli listen --count).
        self.ends_itself = False

    def failure(self, what: str) -> str:
        box = self.box
        got = self.follower.lines if self.follower is not None else 0
        text = f"{self.name}: {what}; the listener's file has {got} of {self.count} lines"
        try:
            stats = hub_stats(self.address)
            text += "; hub stats: " + ", ".join(
                f"{k} {stats.get(k)}" for k in ("clients", "subscribers", "received",
                                                "delivered", "holding", "dropped_clients",
                                                "rejected"))
        except (OSError, ValueError) as exc:
            text += f"; the hub's stats could not be read: {exc}"
        for label, proc in (("listener", self.listener), ("writer", self.writer),
                            ("hub", self.hub)):
            if proc is not None:
                text += f"\n{label} log:\n{box.log_of(proc)}"
        return text

    def fail(self, what: str) -> RuntimeError:
        return RuntimeError(self.failure(what))

    def start_listener(self, argv: list[str], ends_itself: bool) -> subprocess.Popen[Any]:
        self.ends_itself = ends_itself
        before = hub_stats(self.address)["subscribers"]
        with open(self.out, "wb") as stdout:
            self.listener = listener = self.box.spawn(argv, name=f"{self.name}-listen",
                                                      stdout=stdout)
        try:
            wait_until(lambda: alive(listener, "the listener")
                       and hub_stats(self.address)["subscribers"] > before, 10.0,
                       "the listener to subscribe")
        except (TimeoutError, RuntimeError) as exc:
            raise self.fail(str(exc)) from None
        return listener

    def settle(self) -> int:
        """Probe messages until the listener's file shows them all: the hub has stopped
        holding its output. Returns the file's size then (where the timed lines start)."""
        assert self.listener is not None
        follower = Follower(self.out)
        try:
            sent, probe_due = 0, 0.0
            deadline = time.monotonic() + 10
            while follower.lines < max(sent, 1):
                if time.monotonic() > deadline or self.listener.poll() is not None:
                    raise self.fail(f"{sent} probes sent, {follower.lines} arrived")
                if follower.lines == 0 and time.monotonic() >= probe_due:
                    sent += 1
                    queue_one(self.address, EVENT, {"probe": sent})
                    probe_due = time.monotonic() + 1.0
                time.sleep(POLL)
                follower.poll()
        finally:
            follower.close()
        return self.out.stat().st_size

    def stream(self, writer_argv: list[str], offset: int) -> dict[str, Any]:
        """Start the writer; follow the file until the count is in; reap; check."""
        box, count, listener = self.box, self.count, self.listener
        assert listener is not None
        stats0 = hub_stats(self.address)
        self.follower = follower = Follower(self.out, offset)
        hub_cpu0 = cpu_seconds(self.hub.pid)
        started = time.perf_counter()
        self.writer = writer = box.spawn(writer_argv, name=f"{self.name}-write")

        def watch() -> None:
            dropped = hub_stats(self.address)["dropped_clients"] - stats0["dropped_clients"]
            if dropped:
                raise RuntimeError(f"the hub dropped {dropped} client(s) as slow consumers")

        reached, writer_done, listener_done = follow(
            follower, count, writer, listener, timeout=_timeout(count), watch=watch,
            fail=self.fail)
        if listener_done is None and not self.ends_itself:  # socat: it never ends by itself
            listener_done = (reached, cpu_seconds(listener.pid))
            box.stop(listener)
        rest = {k: p for k, p, d in (("writer", writer, writer_done),
                                     ("listener", listener, listener_done)) if d is None}
        done = wait_all(rest, 30.0, self.failure)
        writer_done = writer_done or done["writer"]
        listener_done = listener_done or done["listener"]
        hub_cpu = cpu_seconds(self.hub.pid) - hub_cpu0
        if writer.returncode != 0:
            raise self.fail(f"the writer exited {writer.returncode}")
        if self.ends_itself and listener.returncode != 0:
            raise self.fail(f"the listener exited {listener.returncode}")
        stats = hub_stats(self.address)
        for key in ("dropped_clients", "rejected", "dropped"):
            if stats[key] != stats0[key]:
                raise self.fail(f"the hub's {key} went from {stats0[key]} to {stats[key]}")
        try:
            check_sequence(self.out, count, event=EVENT, offset=offset)
        except RuntimeError as exc:
            raise self.fail(str(exc)) from None
        return {"rate": count / (reached - started), "seconds": reached - started,
                "writer_seconds": writer_done[0] - started, "sender_cpu_s": writer_done[1],
                "hub_cpu_s": hub_cpu, "receiver_cpu_s": listener_done[1]}

    def close(self) -> None:
        for proc in (self.writer, self.listener):
            if proc is not None:
                self.box.stop(proc)
        if self.follower is not None:
            self.follower.close()


def lines_run(box: Sandbox, hub: subprocess.Popen[Any], socat: str, path: str, count: int,
              rep: int) -> dict[str, Any]:
    run = Run(box, hub, "lines socket", box.path(f"lines-{rep}.jsonl"), count)
    try:
        run.start_listener([socat, "-u", f"UNIX-CONNECT:{path}", "-"], ends_itself=False)
        offset = run.settle()
        return run.stream(["bash", "-c", WRITE_LINES, "bench-write", str(count), socat, path],
                          offset)
    finally:
        run.close()


def msgpack_run(box: Sandbox, hub: subprocess.Popen[Any], count: int,
                rep: int) -> dict[str, Any]:
    run = Run(box, hub, "MessagePack", box.path(f"msgpack-{rep}.jsonl"), count)
    try:
        run.start_listener([SOCKCLI, "listen", EVENT, "--json", "--count", str(count)],
                           ends_itself=True)
        return run.stream(["bash", "-c", WRITE_MSGPACK, "bench-write", str(count), SOCKCLI,
                           EVENT], 0)
    finally:
        run.close()


def _note(runs: list[dict[str, Any]], count: int, writer: str) -> str:
    def us(key: str) -> str:
        values = [r[key] for r in runs if r.get(key) is not None]
        return f"{median(values) / count * 1e6:,.1f}" if values else "?"

    return (f"CPU us per message: writer ({writer}) {us('sender_cpu_s')}, hub "
            f"{us('hub_cpu_s')}, listener {us('receiver_cpu_s')} (wall: {us('seconds')}; "
            f"the writer done at {us('writer_seconds')})")


def run(box: Sandbox, count: int, reps: int,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    hub = box.start_hub(EVENT)
    path = box.run([SOCKCLI, "path", EVENT, "--lines"], name="lines-path", timeout=30)
    if path.returncode != 0:
        raise RuntimeError(f"sockcli path {EVENT} --lines exited {path.returncode}")
    lines_path = path.stdout.strip()
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "msgpack": lambda rep: msgpack_run(box, hub, count, rep)}
    socat = which("socat")
    if socat is not None:
        systems["lines"] = lambda rep: lines_run(box, hub, socat, lines_path, count, rep)
    results, errors = interleaved(systems, reps, "lines", f"{count:,} lines", log, keep=3000)

    labels = {"msgpack": "MessagePack: seq | sockcli send --lines -> hub -> sockcli listen",
              "lines": "lines socket: seq | socat -> hub -> socat"}
    writers = {"msgpack": "seq | sockcli send --lines", "lines": "seq | socat"}
    base = median([r["rate"] for r in results["msgpack"]]) if results["msgpack"] else None
    rows: list[Row] = []
    for key in ("msgpack", "lines"):
        runs = results.get(key)
        if key not in systems:
            rows.append(Row(SECTION, f"lines_{key}", labels[key], None, "msg/s",
                            note=SOCAT_MISSING))
            continue
        if not runs:
            rows.append(Row(SECTION, f"lines_{key}", labels[key], None, "msg/s",
                            note=f"failed: {errors.get(key, '?')[:300]}"))
            continue
        rows.append(Row(SECTION, f"lines_{key}", labels[key], median([r["rate"] for r in runs]),
                        "msg/s", baseline_label="" if key == "msgpack" else "MessagePack path",
                        baseline=None if key == "msgpack" else base,
                        note=_note(runs, count, writers[key]),
                        extra={"runs": runs, "count": count,
                               "min": min(r["rate"] for r in runs),
                               "max": max(r["rate"] for r in runs)}))
    return rows, {"errors": errors}

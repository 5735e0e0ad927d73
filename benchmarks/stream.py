"""Streaming: N small messages from one sender to one listener, end to end, in messages/s.

Every message is numbered: the k-th carries ``{"i": k, "progress": k % 101}``
(common.stream_data), in the lines file given to ``sockcli send --lines`` and to the peers'
senders, and in what the workers send. Each system runs ``reps`` times, interleaved (baseline,
CLI, throttled CLI, library, hub alone, peers; then again), and the median rate is quoted.

* CLI: ``sockcli send E --lines < file`` -> hub -> ``sockcli listen E --json --count N >
  out`` (the listener started first, and counted by the hub's stats before the writer starts);
  from starting the writer until the N-th line is in ``out`` (filestream.FileStream follows
  it). ``out`` is then checked line by line: exactly N records of data messages of E, the k-th
  carrying message k; the hub must have dropped no client, no message, rejected no line.
* CLI, throttled reader: the same, with the listener's stdout a pipe into
  ``workers.py throttle`` (which copies it to ``out`` at half the lines/s the unthrottled
  writer reached in this run). Nothing may be lost and ``send`` must exit 0: flow control slows
  the writer instead. Its row gives the writer's rate against the unthrottled writer's.
* Peers: ``mosquitto_pub -l < file`` -> mosquitto -> ``mosquitto_sub > out``, and
  ``ncat --send-only < file`` -> ``ncat --broker`` -> ``ncat --recv-only > out``: the same
  lines, measured and checked the same way (bare JSON lines after the probes that showed the
  listener subscribed).
* workers (library, hub alone, baseline): from the sender's first send, after it connected,
  until the receiver has counted the N-th message (both read the one monotonic clock); the
  receivers check the numbers (benchmarks/workers.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from common import (
    SOCKCLI,
    Row,
    Sandbox,
    cpu_note,
    cpu_seconds,
    hub_stats,
    interleaved,
    median,
    run_worker_pair,
    stream_data,
    worker,
    write_lines,
)
from filestream import FileStream
from peers import (
    MOSQUITTO_MISSING,
    NCAT_MISSING,
    start_mosquitto,
    start_ncat_broker,
    which,
)

SECTION = "2. Streaming, 1 sender -> 1 listener (messages/s, ratio to the baseline relay)"
EVENT = "bench_stream"
#: The throttled reader's speed, as a share of the unthrottled writer's (issue 12: half).
THROTTLE_SHARE = 0.5
#: Lines/s of the throttled reader when no unthrottled CLI run succeeded in this run.
THROTTLE_FALLBACK = 20_000.0
#: The throttled stream is this many times longer than the others: the hub holds up to
#: send_buffer_limit (4 MiB: some 250,000 of these messages) for a listener, and the sockets
#: and the listener more, so a stream of 100,000 fits in what is in flight and its writer is
#: never held back; ten times that shows whether it is.
THROTTLE_LINES = 10

LABELS = {
    "baseline": "baseline: raw send -> baseline_relay.py -> raw recv",
    "cli": "CLI: sockcli send --lines -> hub -> sockcli listen --json > file",
    "cli_throttled": "CLI, reader throttled to 1/2: the writer's lines/s",
    "library": "library: send(wait=False)+flush -> hub -> receive()",
    "raw_via_hub": "hub alone: raw send -> sockcli serve -> raw recv",
    "mosquitto": "peer: mosquitto_pub -l -> mosquitto -> mosquitto_sub > file",
    "ncat": "peer: ncat --send-only -> ncat --broker -> ncat > file",
}


def cli_stream(box: Sandbox, hub: subprocess.Popen[Any], lines: Any, count: int, rep: int,
               throttle: float | None = None) -> dict[str, Any]:
    """One CLI run; with ``throttle`` (lines/s) the listener's output goes through the
    throttled reader."""
    name = "cli" if throttle is None else "cli-throttled"
    run = FileStream(box, name, box.path(f"{name}-{rep}.jsonl"), count,
                     address=box.hub_address(EVENT), event=EVENT, expect=stream_data,
                     logs={"hub": hub})
    try:
        through = None if throttle is None else worker("throttle", "--rate", f"{throttle:.0f}")
        run.start_listener([SOCKCLI, "listen", EVENT, "--json", "--count", str(count)],
                           ends_itself=True, through=through)
        result = run.stream([SOCKCLI, "send", EVENT, "--lines"], stdin=lines, middle=hub)
        if throttle is not None:
            result["throttle_rate"] = throttle
        return result
    finally:
        run.close()


def peer_stream(box: Sandbox, name: str, middle: subprocess.Popen[Any],
                listen_argv: list[str], send_argv: list[str],
                probe: Callable[[int], None], lines: Any, count: int,
                rep: int) -> dict[str, Any]:
    """A peer's CLI pair: its listener's stdout a file, its sender fed the same lines file.
    Probes are sent until the listener's file shows the newest, so it is known to subscribe;
    the timed lines start after them."""
    run = FileStream(box, name, box.path(f"{name}-{rep}.jsonl"), count, expect=stream_data,
                     logs={name: middle})
    try:
        run.start_listener(listen_argv, ends_itself=False)
        offset = run.settle(probe)
        return run.stream(send_argv, offset=offset, stdin=lines, middle=middle)
    finally:
        run.close()


def worker_stream(box: Sandbox, receiver: list[str], sender: list[str], name: str,
                  count: int, ready: Callable[[], bool] | None,
                  hub_pid: int) -> dict[str, Any]:
    cpu0 = cpu_seconds(hub_pid)
    sent, got = run_worker_pair(box, receiver, sender, timeout=300, name=name,
                                ready_check=ready)
    hub_cpu = cpu_seconds(hub_pid) - cpu0
    if not got.get("complete"):
        raise RuntimeError(f"{name}: {got.get('received')} of {count} messages arrived "
                           f"({got.get('error') or 'incomplete'})")
    seconds = (got["t_last"] - sent["t_start"]) / 1e9
    return {"rate": count / seconds, "seconds": seconds, "receiver_cpu_s": got["cpu_s"],
            "sender_cpu_s": sent["cpu_s"], "hub_cpu_s": hub_cpu,
            "sender_seconds": (sent.get("t_flushed", sent["t_sent"]) - sent["t_start"]) / 1e9}


def _probe(argv: list[str], box: Sandbox, stdin: bool = False) -> Callable[[int], None]:
    """A probe sender: ``argv`` plus the probe's JSON as its last argument, or on stdin."""
    def probe(n: int) -> None:
        text = json.dumps({"probe": n})
        subprocess.run(argv if stdin else [*argv, text], env=box.env, check=False, timeout=10,
                       input=(text + "\n").encode() if stdin else None,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe


def run(box: Sandbox, count: int, reps: int,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    lines = write_lines(box.path("stream.jsonl"), count)
    long_count = count * THROTTLE_LINES
    long_lines = write_lines(box.path("stream-long.jsonl"), long_count)
    hub = box.start_hub(EVENT)
    address = box.hub_address(EVENT)
    relay_proc, relay = box.start_relay("stream")

    def subscribed() -> bool:
        return int(hub_stats(address)["subscribers"]) >= 1

    results: dict[str, list[dict[str, Any]]] = {}

    def throttled(rep: int) -> dict[str, Any]:
        """Half the unthrottled writer's median lines/s so far in this run."""
        writers = [r["writer_rate"] for r in results.get("cli", [])]
        rate = THROTTLE_SHARE * median(writers) if writers else THROTTLE_FALLBACK
        result = cli_stream(box, hub, long_lines, long_count, rep, throttle=rate)
        box.path(f"cli-throttled-{rep}.jsonl").unlink(missing_ok=True)  # checked: 170 MB
        return result

    n = str(count)
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "baseline": lambda _rep: worker_stream(
            box, worker("raw-recv", "--address", relay, "--count", n),
            worker("raw-send", "--address", relay, "--event", EVENT, "--count", n),
            "baseline", count, None, relay_proc.pid),
        "cli": lambda rep: cli_stream(box, hub, lines, count, rep),
        "cli_throttled": throttled,
        "library": lambda _rep: worker_stream(
            box, worker("lib-recv", "--event", EVENT, "--count", n),
            worker("lib-send", "--event", EVENT, "--count", n), "library", count, subscribed,
            hub.pid),
        "raw_via_hub": lambda _rep: worker_stream(
            box, worker("raw-recv", "--address", address, "--count", n),
            worker("raw-send", "--address", address, "--event", EVENT, "--count", n),
            "raw-via-hub", count, subscribed, hub.pid),
    }
    notes: dict[str, str] = {}
    mosquitto, pub, sub = which("mosquitto"), which("mosquitto_pub"), which("mosquitto_sub")
    if mosquitto and pub and sub:
        broker, port = start_mosquitto(box, mosquitto)
        target = [pub, "-h", "127.0.0.1", "-p", str(port), "-t", "t"]
        systems["mosquitto"] = lambda rep: peer_stream(
            box, "mosquitto", broker, [sub, "-h", "127.0.0.1", "-p", str(port), "-t", "t"],
            [*target, "-l"], _probe([*target, "-m"], box), lines, count, rep)
    else:
        notes["mosquitto"] = MOSQUITTO_MISSING
    ncat = which("ncat")
    if ncat:
        ncat_broker, nport = start_ncat_broker(box, ncat)
        send_argv = [ncat, "--send-only", "127.0.0.1", str(nport)]
        systems["ncat"] = lambda rep: peer_stream(
            box, "ncat", ncat_broker, [ncat, "--recv-only", "127.0.0.1", str(nport)],
            send_argv, _probe(send_argv, box, stdin=True), lines, count, rep)
    else:
        notes["ncat"] = NCAT_MISSING

    done, errors = interleaved(systems, reps, "streaming", f"{count:,} messages", log,
                               keep=1500, results=results)
    return _rows(done, errors, notes, count, reps), {"errors": errors}


def _rows(results: dict[str, list[dict[str, Any]]], errors: dict[str, str],
          notes: dict[str, str], count: int, reps: int) -> list[Row]:
    def rate(key: str, field: str = "rate") -> float | None:
        runs = results.get(key) or []
        return median([r[field] for r in runs]) if runs else None

    base = rate("baseline")
    rows: list[Row] = []
    for key, label in LABELS.items():
        if key in notes:
            rows.append(Row(SECTION, f"stream_{key}", label, None, "msg/s", note=notes[key]))
            continue
        if key not in results:
            continue
        runs = results[key]
        if key == "cli_throttled":
            rows.append(_throttled_row(runs, errors.get(key), rate("cli", "writer_rate"),
                                       rate("cli", "writer_seconds"), count * THROTTLE_LINES,
                                       reps))
            continue
        value = rate(key)
        if value is None:
            rows.append(Row(SECTION, f"stream_{key}", label, None, "msg/s",
                            note=f"failed: {errors.get(key, '?')[:600]}"))
            continue
        row = Row(SECTION, f"stream_{key}", label, value, "msg/s",
                  baseline_label="" if key == "baseline" else "baseline relay",
                  baseline=None if key == "baseline" else base,
                  extra={"runs": runs, "count": count, "failed": errors.get(key, ""),
                         "min": min(r["rate"] for r in runs),
                         "max": max(r["rate"] for r in runs)})
        row.note = cpu_note(runs, {"baseline": "relay", "mosquitto": "broker",
                                   "ncat": "broker"}.get(key, "hub"), count, "us")
        if key in errors:
            row.note += f"; a later run failed: {errors[key][:600]}"
        rows.append(row)
    return rows


def _throttled_row(runs: list[dict[str, Any]], error: str | None, free_rate: float | None,
                   free_seconds: float | None, count: int, reps: int) -> Row:
    """The writer's lines/s with the reader throttled, against the unthrottled writer's; the
    verdict (targets.py) reads ``extra["nothing_lost"]``: every run complete, in order, with
    send exiting 0 (each run raises otherwise)."""
    label = LABELS["cli_throttled"]
    ok = len(runs) == reps and error is None
    extra: dict[str, Any] = {"runs": runs, "count": count, "nothing_lost": ok,
                             "failed": error or ""}
    if not runs:
        return Row(SECTION, "stream_cli_throttled", label, None, "msg/s",
                   note=f"failed: {(error or '?')[:600]}", extra=extra)
    writer_rate = median([r["writer_rate"] for r in runs])
    seconds = median([r["writer_seconds"] for r in runs])
    reader = median([r["throttle_rate"] for r in runs])
    held = median([count - r["lines_at_writer_exit"] for r in runs])
    note = (f"reader throttled to {reader:,.0f} lines/s; {len(runs)} of {reps} runs with all "
            f"{count:,} lines in order, send exiting 0 and no client dropped; the writer took "
            f"{seconds:.2f} s" + (f" ({free_seconds:.2f} s unthrottled for "
                                  f"{count // THROTTLE_LINES:,} lines)" if free_seconds else "")
            + f", the last line was in the file after "
            f"{median([r['seconds'] for r in runs]):.2f} s; when send exited, {held:,.0f} "
            "lines were still on their way (hub, sockets, listener)")
    if error:
        note += f"; a run FAILED: {error[:600]}"
    return Row(SECTION, "stream_cli_throttled", label, writer_rate, "msg/s",
               baseline_label="unthrottled writer", baseline=free_rate, note=note, extra=extra)

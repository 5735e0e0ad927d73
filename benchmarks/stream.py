"""Streaming: N small messages from one sender to one listener, end to end, in messages/s.

Each system runs ``reps`` times, interleaved (sockcli CLI, library, raw clients through the
hub, baseline, peers; then again), and the median rate is quoted. Rates:

* CLI: from starting ``sockcli send --lines`` (listener already connected) until
  ``sockcli listen --count N`` has exited, N lines counted on its stdout;
* workers (library, raw, baseline): from the sender's first send, after it connected, until
  the receiver has counted the Nth message (both read the one monotonic clock);
* peers: from starting the sender until the harness has counted the Nth line on the
  listener's stdout (ncat --recv-only never exits by itself; mosquitto_sub is read the same
  way for symmetry).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    SOCKCLI,
    LineCounter,
    Row,
    Sandbox,
    check_target,
    cpu_note,
    cpu_seconds,
    hub_stats,
    interleaved,
    median,
    run_worker_pair,
    wait_until,
    wait_with_cpu,
    worker,
)
from peers import (
    MOSQUITTO_MISSING,
    NCAT_MISSING,
    start_mosquitto,
    start_ncat_broker,
    which,
)

SECTION = "2. Streaming, 1 sender -> 1 listener (messages/s, ratio to the baseline relay)"
EVENT = "bench_stream"


def write_lines(path: Path, count: int) -> Path:
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"i": i, "progress": i % 101}) + "\n")
    return path


def cli_stream(box: Sandbox, hub_pid: int, lines: Path, count: int) -> dict[str, Any]:
    address = box.hub_address(EVENT)
    before = hub_stats(address)
    listener = box.spawn([SOCKCLI, "listen", EVENT, "--count", str(count)], name="cli-listen",
                         stdout=subprocess.PIPE)
    sender: subprocess.Popen[Any] | None = None
    try:
        counter = LineCounter(listener.stdout)
        wait_until(lambda: hub_stats(address)["subscribers"] >= 1, 10.0,
                   "sockcli listen to subscribe")
        hub_cpu0 = cpu_seconds(hub_pid)
        with open(lines, "rb") as stdin:
            started = time.perf_counter()
            sender = box.spawn([SOCKCLI, "send", EVENT, "--lines"], name="cli-send",
                               stdin=stdin)
        # Reaped here with their resource usage (os.wait4), each in its own thread.
        done: dict[str, tuple[float, float]] = {}
        waiters = [threading.Thread(target=lambda k=k, p=p: done.__setitem__(k, wait_with_cpu(p)),
                                    daemon=True)
                   for k, p in (("listener", listener), ("sender", sender))]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join(300)
        if len(done) < 2:
            raise RuntimeError("sockcli send --lines | sockcli listen did not finish within "
                               f"300 s:\n{box.log_of(listener)}")
        hub_cpu = cpu_seconds(hub_pid) - hub_cpu0
        counter.wait(10)
        if sender.returncode != 0:
            raise RuntimeError(f"sockcli send --lines failed ({sender.returncode}):\n"
                               + box.log_of(sender))
        if listener.returncode != 0 or counter.count != count:
            raise RuntimeError(f"sockcli listen exited {listener.returncode} after "
                               f"{counter.count} of {count} lines:\n{box.log_of(listener)}")
        after = hub_stats(address)
        ended = done["listener"][0]
        return {"rate": count / (ended - started), "seconds": ended - started,
                "sender_seconds": done["sender"][0] - started,
                "sender_cpu_s": done["sender"][1], "receiver_cpu_s": done["listener"][1],
                "hub_cpu_s": hub_cpu,
                "hub_delivered": after["delivered"] - before["delivered"],
                "hub_dropped": after["dropped"] - before["dropped"],
                "dropped_clients": after["dropped_clients"] - before["dropped_clients"]}
    finally:
        if sender is not None:
            box.stop(sender)
        box.stop(listener)


def worker_stream(box: Sandbox, receiver: list[str], sender: list[str], name: str,
                  count: int, ready: Callable[[], bool] | None,
                  hub_pid: int) -> dict[str, Any]:
    cpu0 = cpu_seconds(hub_pid)
    sent, got = run_worker_pair(box, receiver, sender, timeout=300, name=name,
                                ready_check=ready)
    hub_cpu = cpu_seconds(hub_pid) - cpu0
    if not got.get("complete"):
        raise RuntimeError(f"{name}: {got.get('received')} of {count} messages arrived")
    seconds = (got["t_last"] - sent["t_start"]) / 1e9
    return {"rate": count / seconds, "seconds": seconds, "receiver_cpu_s": got["cpu_s"],
            "sender_cpu_s": sent["cpu_s"], "hub_cpu_s": hub_cpu,
            "sender_seconds": (sent.get("t_flushed", sent["t_sent"]) - sent["t_start"]) / 1e9}


def peer_stream(box: Sandbox, listen_argv: list[str], send_argv: list[str],
                probe: Callable[[], None], lines: Path, count: int,
                name: str) -> dict[str, Any]:
    """A CLI peer: a listener whose stdout the harness counts, a sender fed the same file.
    Probes are sent until the listener prints one, so it is known to be subscribed."""
    listener = box.spawn(listen_argv, name=f"{name}-listen", stdout=subprocess.PIPE)
    sender: subprocess.Popen[Any] | None = None
    try:
        counter = LineCounter(listener.stdout)
        deadline = time.monotonic() + 10
        while counter.count < 1:
            if time.monotonic() > deadline or listener.poll() is not None:
                raise RuntimeError(f"{name}: the listener never printed a probe:\n"
                                   + box.log_of(listener))
            probe()
            wait_for = time.monotonic() + 0.3
            while counter.count < 1 and time.monotonic() < wait_for:
                time.sleep(0.005)
        time.sleep(0.2)  # any late probe lands now, before the timed part
        counter.target = counter.count + count
        with open(lines, "rb") as stdin:
            started = time.perf_counter()
            sender = box.spawn(send_argv, name=f"{name}-send", stdin=stdin)
        deadline = time.monotonic() + 300
        while counter.reached_at is None:
            if time.monotonic() > deadline or counter.done.is_set():
                raise RuntimeError(f"{name}: {counter.count - counter.target + count} of "
                                   f"{count} lines arrived:\n{box.log_of(listener)}")
            time.sleep(0.002)
        seconds = counter.reached_at - started
        return {"rate": count / seconds, "seconds": seconds}
    finally:
        if sender is not None:
            box.stop(sender)
        box.stop(listener)


def run(box: Sandbox, count: int, reps: int,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    lines = write_lines(box.path("stream.jsonl"), count)
    hub = box.start_hub(EVENT)
    address = box.hub_address(EVENT)
    relay_proc, relay = box.start_relay("stream")

    def subscribed() -> bool:
        return int(hub_stats(address)["subscribers"]) >= 1

    n = str(count)
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "baseline": lambda _rep: worker_stream(
            box, worker("raw-recv", "--address", relay, "--count", n),
            worker("raw-send", "--address", relay, "--event", EVENT, "--count", n),
            "baseline", count, None, relay_proc.pid),
        "cli": lambda _rep: cli_stream(box, hub.pid, lines, count),
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
        mport = str(start_mosquitto(box, mosquitto)[1])

        def mosquitto_probe() -> None:
            subprocess.run([pub, "-h", "127.0.0.1", "-p", mport, "-t", "t", "-m",
                            '{"probe":1}'], env=box.env, check=False, timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        systems["mosquitto"] = lambda _rep: peer_stream(
            box, [sub, "-h", "127.0.0.1", "-p", mport, "-t", "t"],
            [pub, "-h", "127.0.0.1", "-p", mport, "-t", "t", "-l"], mosquitto_probe, lines,
            count, "mosquitto")
    else:
        notes["mosquitto"] = MOSQUITTO_MISSING
    ncat = which("ncat")
    if ncat:
        nport = str(start_ncat_broker(box, ncat)[1])

        def ncat_probe() -> None:
            subprocess.run([ncat, "--send-only", "127.0.0.1", nport], input=b'{"probe":1}\n',
                           env=box.env, check=False, timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        systems["ncat"] = lambda _rep: peer_stream(
            box, [ncat, "--recv-only", "127.0.0.1", nport],
            [ncat, "--send-only", "127.0.0.1", nport], ncat_probe, lines, count, "ncat")
    else:
        notes["ncat"] = NCAT_MISSING

    results, errors = interleaved(systems, reps, "streaming", f"{count:,} messages", log, keep=500)

    def rate(key: str) -> float | None:
        runs = results.get(key) or []
        return median([r["rate"] for r in runs]) if runs else None

    base = rate("baseline")
    base_label = "baseline relay"
    labels = {
        "baseline": "baseline: raw send -> baseline_relay.py -> raw recv",
        "cli": "CLI: sockcli send --lines -> hub -> sockcli listen",
        "library": "library: send(wait=False)+flush -> hub -> receive()",
        "raw_via_hub": "hub alone: raw send -> sockcli serve -> raw recv",
        "mosquitto": "peer: mosquitto_pub -l -> mosquitto -> mosquitto_sub",
        "ncat": "peer: ncat --send-only -> ncat --broker -> ncat",
    }
    rows: list[Row] = []
    for key in ["baseline", "cli", "library", "raw_via_hub", "mosquitto", "ncat"]:
        label = labels[key]
        if key in notes:
            rows.append(Row(SECTION, f"stream_{key}", label, None, "msg/s", note=notes[key]))
            continue
        if key not in systems:
            continue
        value = rate(key)
        if value is None:
            rows.append(Row(SECTION, f"stream_{key}", label, None, "msg/s",
                            note=f"failed: {errors.get(key, '?')[:300]}"))
            continue
        runs = results[key]
        row = Row(SECTION, f"stream_{key}", label, value, "msg/s",
                  baseline_label="" if key == "baseline" else base_label,
                  baseline=None if key == "baseline" else base,
                  extra={"runs": runs, "count": count,
                         "min": min(r["rate"] for r in runs),
                         "max": max(r["rate"] for r in runs)})
        if key in ("cli", "library"):
            check_target(row, min_ratio=0.5)
        if "hub_cpu_s" in runs[0]:
            row.note = cpu_note(runs, "relay" if key == "baseline" else "hub", count, "us")
        rows.append(row)
    return rows, {"errors": errors}

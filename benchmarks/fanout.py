"""Fan-out and latency.

* Fan-out: one sender, 100 subscribers. The subscribers are raw sockets in one receiver process
  (benchmarks/workers.py raw-recv: the handshake of each protocol, then a selectors loop
  counting message frames), so that 100 Python processes do not fight over two cores.
  Deliveries/s = messages x subscribers / (first send -> last delivery counted).
* Latency: 10 subscribers, messages paced at 1,000 per second; each message carries
  time.time_ns() taken just before it is sent, and the receiver subtracts it at receipt (same
  machine, same clock). Median and 99th percentile over every delivery.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from common import (
    Row,
    Sandbox,
    cpu_note,
    cpu_seconds,
    hub_stats,
    median,
    read_ready,
    run_worker_pair,
    worker,
    write_lines,
)
from peers import (
    MOSQUITTO_MISSING,
    NCAT_MISSING,
    start_mosquitto,
    start_ncat_broker,
    which,
)

SECTION_FANOUT = "3a. Fan-out, 1 sender -> 100 subscribers (deliveries/s, ratio to the baseline)"
SECTION_LATENCY = "3b. Latency, send -> receipt, 1,000 msg/s paced, 10 subscribers"
EVENT = "bench_fanout"
SUBS = 100
LATENCY_SUBS = 10
LATENCY_RATE = 1000


def external_sender(box: Sandbox, receiver: list[str], send_argv: list[str], name: str,
                    stdin_path: str | None = None,
                    pacer: list[str] | None = None) -> tuple[int, dict[str, Any], float | None]:
    """A receiver worker plus a sender that is not a worker (mosquitto_pub, ncat): the harness
    notes the start time itself (time.monotonic_ns, the clock the receiver reports in).
    Returns the start, the receiver's report and the sender's CPU seconds (None if unknown)."""
    recv = box.spawn(receiver, name=f"{name}-recv", stdout=subprocess.PIPE, text=True)
    procs: list[subprocess.Popen[Any]] = []
    try:
        read_ready(recv, 60.0, name, box)
        if pacer is not None:
            read_end, write_end = os.pipe()
            try:
                started = time.monotonic_ns()
                procs.append(box.spawn(send_argv, name=f"{name}-send", stdin=read_end))
                procs.append(box.spawn(pacer, name=f"{name}-pacer", stdout=write_end))
            finally:
                os.close(read_end)
                os.close(write_end)
        else:
            assert stdin_path is not None
            with open(stdin_path, "rb") as stdin:
                started = time.monotonic_ns()
                procs.append(box.spawn(send_argv, name=f"{name}-send", stdin=stdin))
        try:
            out, _ = recv.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name}: receiver timed out:\n{box.log_of(recv)}") from None
        if recv.returncode != 0:
            raise RuntimeError(f"{name}: receiver failed:\n{box.log_of(recv)}")
        return started, json.loads(out), _reap_cpu(procs[0], 5.0)
    finally:
        for proc in procs:
            box.stop(proc)
        box.stop(recv)


def _reap_cpu(proc: subprocess.Popen[Any], timeout: float) -> float | None:
    """Wait up to ``timeout`` for a child that is ending by itself; its CPU seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.005)
    return None


def run(box: Sandbox, messages: int, reps: int, latency_seconds: float,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    hub = box.start_hub(EVENT)
    address = box.hub_address(EVENT)
    relay_proc, relay = box.start_relay("fanout")
    lines = str(write_lines(box.path("fanout.jsonl"), messages))
    m = str(messages)

    def subscribed(n: int) -> Callable[[], bool]:
        return lambda: int(hub_stats(address)["subscribers"]) >= n

    def pair(receiver: list[str], sender: list[str], name: str,
             ready: Callable[[], bool] | None, middle_pid: int) -> dict[str, Any]:
        cpu0 = cpu_seconds(middle_pid)
        sent, got = run_worker_pair(box, receiver, sender, timeout=300, name=name,
                                    ready_check=ready)
        return {"got": got, "t_start": sent["t_start"], "sender_cpu_s": sent["cpu_s"],
                "hub_cpu_s": cpu_seconds(middle_pid) - cpu0}

    def external(middle_pid: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
        cpu0 = cpu_seconds(middle_pid)
        started, got, sender_cpu = external_sender(box, *args, **kwargs)
        return {"got": got, "t_start": started, "sender_cpu_s": sender_cpu,
                "hub_cpu_s": cpu_seconds(middle_pid) - cpu0}

    fan: dict[str, Callable[[], dict[str, Any]]] = {
        "baseline": lambda: pair(
            worker("raw-recv", "--address", relay, "--subs", str(SUBS), "--count", m),
            worker("raw-send", "--address", relay, "--event", EVENT, "--count", m),
            "fanout-baseline", None, relay_proc.pid),
        "sockcli": lambda: pair(
            worker("raw-recv", "--address", address, "--subs", str(SUBS), "--count", m),
            worker("lib-send", "--event", EVENT, "--count", m), "fanout-sockcli",
            subscribed(SUBS), hub.pid),
    }
    notes: dict[str, str] = {}
    mosquitto, pub = which("mosquitto"), which("mosquitto_pub")
    ncat = which("ncat")
    mport = nport = ""
    mpid = npid = 0
    if mosquitto and pub:
        broker, port = start_mosquitto(box, mosquitto)
        mport, mpid = str(port), broker.pid
        fan["mosquitto"] = lambda: external(
            mpid, worker("raw-recv", "--proto", "mqtt", "--address", f"tcp:127.0.0.1:{mport}",
                         "--subs", str(SUBS), "--count", m),
            [pub, "-h", "127.0.0.1", "-p", mport, "-t", "t", "-l"], "fanout-mosquitto",
            stdin_path=lines)
    else:
        notes["mosquitto"] = MOSQUITTO_MISSING
    if ncat:
        broker, port = start_ncat_broker(box, ncat)
        nport, npid = str(port), broker.pid
        fan["ncat"] = lambda: external(
            npid, worker("raw-recv", "--proto", "lines", "--address", f"tcp:127.0.0.1:{nport}",
                         "--subs", str(SUBS), "--count", m),
            [ncat, "--send-only", "127.0.0.1", nport], "fanout-ncat", stdin_path=lines)
    else:
        notes["ncat"] = NCAT_MISSING

    results: dict[str, list[dict[str, Any]]] = {k: [] for k in fan}
    errors: dict[str, str] = {}
    for rep in range(reps):
        for key, fn in fan.items():
            if key in errors:
                continue
            log(f"fan-out: {key}, {messages:,} messages x {SUBS} subscribers "
                f"(run {rep + 1} of {reps})")
            try:
                r = fn()
                got = r["got"]
                if not got.get("complete"):
                    raise RuntimeError(f"{got.get('received')} of {got.get('expected')} "
                                       "deliveries arrived")
                seconds = (got["t_last"] - r["t_start"]) / 1e9
                results[key].append({"rate": got["received"] / seconds, "seconds": seconds,
                                     "receiver_cpu_s": got["cpu_s"],
                                     "sender_cpu_s": r["sender_cpu_s"],
                                     "hub_cpu_s": r["hub_cpu_s"]})
            except Exception as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
                log(f"fan-out: {key} FAILED: {errors[key][:500]}")

    rows: list[Row] = []
    labels = {
        "baseline": "baseline: raw send -> baseline_relay.py -> 100 subs",
        "sockcli": "sockcli: library send -> sockcli serve -> 100 subs",
        "mosquitto": "peer: mosquitto_pub -l -> mosquitto -> 100 MQTT subs",
        "ncat": "peer: ncat --send-only -> ncat --broker -> 100 sockets",
    }
    base = median([r["rate"] for r in results["baseline"]]) if results["baseline"] else None
    for key in ["baseline", "sockcli", "mosquitto", "ncat"]:
        if key in notes:
            rows.append(Row(SECTION_FANOUT, f"fanout_{key}", labels[key], None,
                            "deliveries/s", note=notes[key]))
            continue
        runs = results.get(key) or []
        if not runs:
            rows.append(Row(SECTION_FANOUT, f"fanout_{key}", labels[key], None, "deliveries/s",
                            note=f"failed: {errors.get(key, '?')[:300]}"))
            continue
        value = median([r["rate"] for r in runs])
        row = Row(SECTION_FANOUT, f"fanout_{key}", labels[key], value, "deliveries/s",
                  baseline_label="" if key == "baseline" else "baseline relay",
                  baseline=None if key == "baseline" else base,
                  extra={"runs": runs, "messages": messages, "subscribers": SUBS},
                  note=cpu_note(runs, {"baseline": "relay", "sockcli": "hub"}.get(key, "broker"),
                                messages * SUBS, "ns"))
        rows.append(row)

    # -- latency ---------------------------------------------------------------------------
    count = max(100, int(latency_seconds * LATENCY_RATE))
    k, rate = str(count), str(LATENCY_RATE)
    lat: dict[str, Callable[[], dict[str, Any]]] = {
        "baseline": lambda: pair(
            worker("raw-recv", "--address", relay, "--subs", str(LATENCY_SUBS), "--count", k,
                   "--latency"),
            worker("raw-send", "--address", relay, "--event", EVENT, "--count", k, "--rate",
                   rate, "--latency"), "latency-baseline", None, relay_proc.pid),
        "sockcli": lambda: pair(
            worker("raw-recv", "--address", address, "--subs", str(LATENCY_SUBS), "--count",
                   k, "--latency"),
            worker("lib-send", "--event", EVENT, "--count", k, "--rate", rate, "--latency"),
            "latency-sockcli", subscribed(LATENCY_SUBS), hub.pid),
    }
    pacer = worker("pace-lines", "--count", k, "--rate", rate)
    if mport:
        lat["mosquitto"] = lambda: {"got": external_sender(
            box, worker("raw-recv", "--proto", "mqtt", "--address", f"tcp:127.0.0.1:{mport}",
                        "--subs", str(LATENCY_SUBS), "--count", k, "--latency"),
            [pub or "", "-h", "127.0.0.1", "-p", mport, "-t", "t", "-l"], "latency-mosquitto",
            pacer=pacer)[1]}
    if nport:
        lat["ncat"] = lambda: {"got": external_sender(
            box, worker("raw-recv", "--proto", "lines", "--address", f"tcp:127.0.0.1:{nport}",
                        "--subs", str(LATENCY_SUBS), "--count", k, "--latency"),
            [ncat or "", "--send-only", "127.0.0.1", nport], "latency-ncat", pacer=pacer)[1]}
    lat_results: dict[str, dict[str, Any]] = {}
    for key, fn in lat.items():
        log(f"latency: {key}, {count:,} messages at {LATENCY_RATE}/s to {LATENCY_SUBS} "
            "subscribers")
        try:
            got = fn()["got"]
            if not got.get("complete"):
                raise RuntimeError(f"{got.get('received')} of {got.get('expected')} "
                                   "deliveries arrived")
            lat_results[key] = got["latency_us"]
        except Exception as exc:
            errors[f"latency_{key}"] = f"{type(exc).__name__}: {exc}"
            log(f"latency: {key} FAILED: {errors[f'latency_{key}'][:500]}")
    lat_labels = {
        "baseline": "baseline: raw send -> baseline_relay.py",
        "sockcli": "sockcli: library send -> sockcli serve",
        "mosquitto": "peer: paced pipe | mosquitto_pub -l -> mosquitto",
        "ncat": "peer: paced pipe | ncat --send-only -> ncat --broker",
    }
    base_lat = lat_results.get("baseline")
    for key in ["baseline", "sockcli", "mosquitto", "ncat"]:
        if key in notes:
            rows.append(Row(SECTION_LATENCY, f"latency_{key}", lat_labels[key], None, "us",
                            note=notes[key]))
            continue
        got = lat_results.get(key)
        if got is None:
            if key in lat:
                rows.append(Row(SECTION_LATENCY, f"latency_{key}", lat_labels[key], None, "us",
                                note=f"failed: {errors.get(f'latency_{key}', '?')[:300]}"))
            continue
        for p in ("p50", "p99"):
            rows.append(Row(
                SECTION_LATENCY, f"latency_{key}_{p}", f"{lat_labels[key]}: {p}", got[p], "us",
                baseline_label="" if key == "baseline" else f"baseline {p}",
                baseline=None if key == "baseline" or base_lat is None else base_lat[p],
                extra=dict(got, rate=LATENCY_RATE, subscribers=LATENCY_SUBS)))
    return rows, {"errors": errors}

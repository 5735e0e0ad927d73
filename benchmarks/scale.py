"""Scale: a hub's memory with 1,000 and 10,000 idle subscribers (memory.py), and delivery
rates at 1, 10, 100 and 1,000 subscribers, each against the baseline relay measured the same way.

Deliveries/s: a raw sender (the same for both) sends about ``deliveries / subscribers``
messages; one receiver process holds every subscriber (raw sockets, selectors), counts message
frames and checks their numbers. At each point sockcli and the baseline run one after the
other, ``reps`` times, and the medians are compared. The hub's CPU time over the runs is read
from /proc/PID/stat, so deliveries per CPU-second of the hub process are reported too: a
figure the other processes on the two cores disturb less. mosquitto, where installed: its
memory and its rate with 1,000 raw MQTT subscribers, one run.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import memory
from common import (
    Row,
    Sandbox,
    cpu_seconds,
    hub_stats,
    median,
    raise_fd_limit,
    read_ready,
    vm_rss_kib,
    wait_until,
    worker,
    write_lines,
)
from peers import MOSQUITTO_MISSING, start_mosquitto, which

SECTION_MEM = memory.SECTION
SECTION_RATE = "4b. Deliveries/s by number of subscribers (ratio to the baseline relay)"
EVENT = "bench_scale"
IDLE = 1000
POINTS = (1, 10, 100, 1000)
MAX_MESSAGES = 100_000


def _messages(deliveries: int, subs: int) -> int:
    """About ``deliveries`` in all, but no more messages than the streaming figure sends."""
    return max(20, min(MAX_MESSAGES, deliveries // subs))


def run(box: Sandbox, deliveries: int, reps: int,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    limit = raise_fd_limit()
    if limit < IDLE + 200:
        raise RuntimeError(f"RLIMIT_NOFILE is {limit}: too low for {IDLE} subscribers")
    errors: dict[str, str] = {}
    info: dict[str, Any] = {}
    points: dict[int, dict[str, dict[str, Any]]] = {}
    for subs in memory.POINTS:
        try:
            points[subs] = memory.measure(box, subs, log)
        except Exception as exc:
            errors[f"memory_{subs}"] = f"{type(exc).__name__}: {exc}"
            log(f"scale: memory at {subs:,} FAILED: {errors[f'memory_{subs}'][:500]}")
    hub = box.start_hub(EVENT)
    address = box.hub_address(EVENT)
    relay, relay_address = box.start_relay("scale")

    def subscribed(n: int) -> Callable[[], bool]:
        return lambda: int(hub_stats(address)["subscribers"]) >= n

    def measure(name: str, pid: int, addr: str, subs: int, sender: list[str],
                ready: Callable[[], bool] | None) -> dict[str, Any]:
        n = _messages(deliveries, subs)
        recv = box.spawn(worker("raw-recv", "--address", addr, "--subs", str(subs), "--count",
                                str(n), "--timeout", "240"),
                         name=f"scale-{name}-{subs}-recv", stdout=subprocess.PIPE, text=True)
        out: dict[str, Any] = {"subscribers": subs, "messages": n}
        try:
            read_ready(recv, 60.0, f"{subs} subscribers", box)
            if ready is not None:
                wait_until(ready, 20.0, f"{subs} subscribers")
            cpu0 = cpu_seconds(pid)
            send = box.spawn([*sender, "--count", str(n)], name=f"scale-{name}-{subs}-send",
                             stdout=subprocess.PIPE, text=True)
            try:
                send_out, _ = send.communicate(timeout=240)
            finally:
                box.stop(send)
            if send.returncode != 0:
                raise RuntimeError(f"sender failed: {box.log_of(send)}")
            recv_out, _ = recv.communicate(timeout=240)
            cpu1 = cpu_seconds(pid)
        finally:
            box.stop(recv)
        sent, got = json.loads(send_out), json.loads(recv_out)
        if not got.get("complete"):
            raise RuntimeError(f"{got.get('received')} of {got.get('expected')} deliveries "
                               f"({got.get('error') or 'incomplete'}):\n{box.log_of(recv)}")
        seconds = (got["t_last"] - sent["t_start"]) / 1e9
        out.update(rate=got["received"] / seconds, seconds=seconds, hub_cpu_s=cpu1 - cpu0,
                   per_cpu_s=got["received"] / max(cpu1 - cpu0, 1e-9),
                   receiver_cpu_share=got["cpu_s"] / seconds)
        return out

    systems: dict[str, tuple[int, str, list[str], Callable[[int], Callable[[], bool]] | None]]
    systems = {
        "sockcli": (hub.pid, address, worker("raw-send", "--address", address, "--event",
                                             EVENT), subscribed),
        "baseline": (relay.pid, relay_address, worker("raw-send", "--address", relay_address,
                                                       "--event", EVENT), None),
    }
    # Interleaved: at each point sockcli then the baseline, so both see the same machine.
    # Medians over ``reps``.
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        k: {n: [] for n in POINTS} for k in systems}
    for rep in range(reps):
        for subs in sorted(POINTS, reverse=True):
            for key, (pid, addr, sender, ready) in systems.items():
                if f"{key}_{subs}" in errors:
                    continue
                log(f"scale: {key}, {subs} subscriber{'s' if subs > 1 else ''}, "
                    f"{_messages(deliveries, subs):,} messages (run {rep + 1} of {reps})")
                try:
                    r = measure(key, pid, addr, subs, sender, ready(subs) if ready else None)
                except Exception as exc:
                    errors[f"{key}_{subs}"] = f"{type(exc).__name__}: {exc}"
                    log(f"scale: {key} at {subs} FAILED: {errors[f'{key}_{subs}'][:500]}")
                    continue
                runs[key][subs].append(r)
    for key, (pid, *_) in systems.items():
        info[f"{key}_rss_after_kib"] = vm_rss_kib(pid)
    results: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in systems}
    for key, by_subs in runs.items():
        for subs, rs in by_subs.items():
            if rs:
                cpu = sum(r["hub_cpu_s"] for r in rs)
                results[key][subs] = {
                    "rate": median([r["rate"] for r in rs]), "hub_cpu_s": cpu,
                    "per_cpu_s": sum(r["rate"] * r["seconds"] for r in rs) / max(cpu, 1e-9),
                    "runs": rs}

    # mosquitto, where installed: memory with 1,000 raw MQTT subscribers and the 1,000 rate.
    peer_rows: list[Row] = []
    mosquitto, pub = which("mosquitto"), which("mosquitto_pub")
    if mosquitto and pub:
        try:
            peer_rows = _mosquitto(box, mosquitto, pub, deliveries, log)
        except Exception as exc:
            errors["mosquitto"] = f"{type(exc).__name__}: {exc}"
            peer_rows = [Row(SECTION_MEM, "rss_mosquitto", "peer: mosquitto broker", None,
                             "MiB", note=f"failed: {errors['mosquitto'][:300]}")]
    else:
        peer_rows = [Row(SECTION_MEM, "rss_mosquitto", "peer: mosquitto broker", None, "",
                         note=MOSQUITTO_MISSING)]

    rows: list[Row] = memory.rows(points, errors)
    rows.extend(r for r in peer_rows if r.section == SECTION_MEM)
    for subs in POINTS:
        s = results["sockcli"].get(subs)
        b = results["baseline"].get(subs)
        label = f"sockcli serve, raw send -> {subs:,} raw subscriber{'s' if subs > 1 else ''}"
        if s is None:
            rows.append(Row(SECTION_RATE, f"scale_{subs}", label, None, "deliveries/s",
                            note=f"failed: {errors.get(f'sockcli_{subs}', '?')[:300]}"))
            continue
        row = Row(SECTION_RATE, f"scale_{subs}", label, s["rate"], "deliveries/s",
                  baseline_label="baseline relay",
                  baseline=b["rate"] if b else None, extra={"sockcli": s, "baseline": b})
        if s["hub_cpu_s"] >= 0.3 and (b is None or b["hub_cpu_s"] >= 0.3):
            row.note = (f"{s['per_cpu_s']:,.0f} deliveries per CPU-second of the hub process"
                        + (f" (baseline relay: {b['per_cpu_s']:,.0f})" if b else ""))
        rows.append(row)
    rows.extend(r for r in peer_rows if r.section == SECTION_RATE)
    return rows, {"errors": errors, "memory": points, **info}


def _mosquitto(box: Sandbox, exe: str, pub: str, deliveries: int,
               log: Callable[[str], None]) -> list[Row]:
    broker, port = start_mosquitto(box, exe)
    pid = broker.pid
    time.sleep(0.3)
    idle = vm_rss_kib(pid)
    n = _messages(deliveries, IDLE)
    lines = write_lines(box.path("scale-mqtt.jsonl"), n)
    log(f"scale: mosquitto, {IDLE} subscribers, {n:,} messages")
    recv = box.spawn(worker("raw-recv", "--proto", "mqtt", "--address", f"tcp:127.0.0.1:{port}",
                            "--subs", str(IDLE), "--count", str(n), "--timeout", "240"),
                     name="scale-mosquitto-recv", stdout=subprocess.PIPE, text=True)
    try:
        read_ready(recv, 60.0, f"{IDLE} MQTT subscribers", box)
        time.sleep(1.0)
        full = vm_rss_kib(pid)
        with open(lines, "rb") as stdin:
            started = time.monotonic_ns()
            send = box.spawn([pub, "-h", "127.0.0.1", "-p", str(port), "-t", "t", "-l"],
                             name="scale-mosquitto-send", stdin=stdin)
        out, _ = recv.communicate(timeout=240)
        box.stop(send)
    finally:
        box.stop(recv)
    got = json.loads(out)
    rows = [Row(SECTION_MEM, "rss_mosquitto_1000",
                f"peer: mosquitto + {IDLE:,} idle MQTT subscribers", full / 1024, "MiB",
                note=f"mosquitto: {idle / 1024:.1f} MiB with no client; "
                     f"{(full - idle) / IDLE:.1f} KiB per subscriber")]
    if got.get("complete"):
        rate = got["received"] / ((got["t_last"] - started) / 1e9)
        rows.append(Row(SECTION_RATE, "scale_mosquitto_1000",
                        f"peer: mosquitto_pub -l -> mosquitto -> {IDLE:,} MQTT subs", rate,
                        "deliveries/s",
                        extra=got))
    else:
        rows.append(Row(SECTION_RATE, "scale_mosquitto_1000", "peer: mosquitto at 1,000", None,
                        "deliveries/s", note=f"incomplete: {got.get('received')} of "
                        f"{got.get('expected')}"))
    return rows

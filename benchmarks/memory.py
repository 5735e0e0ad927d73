"""Memory of the hub process with idle subscribers (part of the ``scale`` suite): what a
``sockcli serve`` process holds at rest, and what each idle subscriber adds, at 1,000 and at
10,000 subscribers, against the baseline relay measured the same way.

Each point starts a fresh hub and a fresh relay, so that no earlier run's buffers are counted:
VmRSS (/proc/PID/status) once the hub answers its readiness probe ("at rest"), then with N
raw subscribers (one receiver process, benchmarks/workers.py raw-recv) that completed their
handshake, are counted by the hub's stats, and sat idle for a second. Then a few messages are
sent to all of them and every delivery is checked (count and numbers): the subscribers were
real. Each hub is started once and stopped before the measured start, so that it finds its
settings cache and bytecode written, as a user's does. A point needs N + 200 descriptors
(RLIMIT_NOFILE, raised to the hard limit) and, beyond sockcli's default ``max_connections``
(1,024), a settings file raising it (``sockcli --config FILE serve``, read from the settings
cache as a default hub's settings are: ``serve --max-connections`` would be validated in full
at every start, with pydantic, some 16 MiB more at rest). Each step is bounded in time
(:data:`STEP_TIMEOUT`), so a point fails in about a minute at worst.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from common import (
    Row,
    Sandbox,
    hub_stats,
    raise_fd_limit,
    read_ready,
    vm_rss_kib,
    wait_until,
    worker,
)

SECTION = "4a. Memory of the hub process (VmRSS)"
POINTS = (1_000, 10_000)
#: sockcli's default max_connections: above it a point's hub is given --max-connections.
DEFAULT_MAX_CONNECTIONS = 1024
#: Messages sent to every subscriber after the reading, to check they were subscribed.
CHECK_MESSAGES = 5
#: Seconds each step of a point may take: connecting, being counted, delivering.
STEP_TIMEOUT = 60.0
#: Seconds the subscribers sit idle before the reading.
IDLE_SECONDS = 1.0


def _point(box: Sandbox, name: str, proc: subprocess.Popen[Any], address: str, subs: int,
           subscribed: Callable[[], bool] | None, event: str) -> dict[str, Any]:
    """VmRSS of ``proc`` at rest, then with ``subs`` idle subscribers; then the check."""
    rest = vm_rss_kib(proc.pid)
    recv = box.spawn(worker("raw-recv", "--address", address, "--subs", str(subs), "--count",
                            str(CHECK_MESSAGES), "--timeout", str(3 * STEP_TIMEOUT),
                            "--stall", str(2 * STEP_TIMEOUT)),
                     name=f"memory-{name}-{subs}-recv", stdout=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        read_ready(recv, STEP_TIMEOUT, f"{subs:,} subscribers to {name}", box)
        if subscribed is not None:
            wait_until(subscribed, STEP_TIMEOUT, f"{name} to count {subs:,} subscribers")
        connect_s = time.monotonic() - started
        time.sleep(IDLE_SECONDS)
        full = vm_rss_kib(proc.pid)
        send = box.run(worker("raw-send", "--address", address, "--event", event, "--count",
                              str(CHECK_MESSAGES)), name=f"memory-{name}-{subs}-send",
                       timeout=STEP_TIMEOUT)
        if send.returncode != 0:
            raise RuntimeError(f"{name}: the check's sender exited {send.returncode}")
        try:
            out, _ = recv.communicate(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name}: not every subscriber got the check's messages within "
                               f"{STEP_TIMEOUT:g} s:\n{box.log_of(recv)}") from None
        got = json.loads(out) if out.strip() else {}
        if recv.returncode != 0 or not got.get("complete"):
            raise RuntimeError(f"{name}: {got.get('received')} of {got.get('expected')} check "
                               f"deliveries ({got.get('error')}):\n{box.log_of(recv)}")
    finally:
        box.stop(recv)
    return {"rest_kib": rest, "full_kib": full, "per_subscriber_kib": (full - rest) / subs,
            "connect_seconds": connect_s}


def measure(box: Sandbox, subs: int, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """One point: {"sockcli": figures, "baseline": figures}, each on a fresh server."""
    limit = raise_fd_limit()
    if limit < subs + 200:
        raise RuntimeError(f"RLIMIT_NOFILE is {limit}: too low for {subs:,} subscribers")
    event = f"bench_mem_{subs}"
    options: list[str] = []
    setting = ""
    if subs + 16 > DEFAULT_MAX_CONNECTIONS:  # room for the harness's stats probes too
        setting = f"[unix] max_connections = {subs + 64}"
        settings = box.path(f"memory-{subs}.toml")
        settings.write_text(f"[unix]\nmax_connections = {subs + 64}\n")
        options = ["--config", str(settings)]
    out: dict[str, dict[str, Any]] = {}
    log(f"scale: memory with {subs:,} idle subscribers, sockcli serve"
        + (f" ({setting})" if setting else ""))
    # A first start, stopped at once, writes what a user's hub finds written: the settings
    # cache for these settings, and the bytecode of modules edited since the warm-up (a hub
    # that compiles them keeps some MiB more at rest).
    box.stop(box.start_hub(event, options=options))
    hub = box.start_hub(event, options=options)
    address = box.hub_address(event)
    try:
        out["sockcli"] = _point(box, "sockcli serve", hub, address, subs,
                                lambda: int(hub_stats(address)["subscribers"]) >= subs, event)
        out["sockcli"]["options"] = setting
    finally:
        box.stop(hub)
    log(f"scale: memory with {subs:,} idle subscribers, baseline relay")
    relay, relay_address = box.start_relay(f"mem{subs}")
    try:
        out["baseline"] = _point(box, "baseline relay", relay, relay_address, subs, None, event)
    finally:
        box.stop(relay)
    return out


def rows(points: dict[int, dict[str, dict[str, Any]]], errors: dict[str, str]) -> list[Row]:
    """Section 4a: the hub at rest (the first point's fresh hub), and each point's totals and
    cost per subscriber, against the baseline relay's."""
    out: list[Row] = []
    first = points.get(POINTS[0])
    if first is not None:
        s, b = first["sockcli"], first["baseline"]
        out.append(Row(SECTION, "rss_idle", "sockcli serve, no client", s["rest_kib"] / 1024,
                       "MiB", baseline_label="baseline relay, no client",
                       baseline=b["rest_kib"] / 1024))
    for subs in POINTS:
        suffix = "" if subs == POINTS[0] else f"_{subs}"
        point = points.get(subs)
        if point is None:
            why = f"failed: {errors.get(f'memory_{subs}', '?')[:600]}"
            out.append(Row(SECTION, f"rss_per_subscriber{suffix}",
                           f"sockcli serve: added per subscriber, {subs:,} subscribers", None,
                           "KiB", note=why))
            continue
        s, b = point["sockcli"], point["baseline"]
        options = f" with {s['options']}" if s["options"] else ""
        out.append(Row(SECTION, f"rss_{subs}", f"sockcli serve + {subs:,} idle subscribers",
                       s["full_kib"] / 1024, "MiB", baseline_label=f"baseline relay + {subs:,}",
                       baseline=b["full_kib"] / 1024, extra=point,
                       note=f"fresh processes; at rest {s['rest_kib'] / 1024:.1f} MiB{options} "
                            f"(relay {b['rest_kib'] / 1024:.1f} MiB); {subs:,} handshakes in "
                            f"{s['connect_seconds']:.1f} s (relay {b['connect_seconds']:.1f} s)"))
        out.append(Row(SECTION, f"rss_per_subscriber{suffix}",
                       f"sockcli serve: added per subscriber, {subs:,} subscribers",
                       s["per_subscriber_kib"], "KiB", baseline_label="baseline relay",
                       baseline=b["per_subscriber_kib"]))
    return out

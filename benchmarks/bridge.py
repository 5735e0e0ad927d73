"""The MQTT bridge (issue 13): two hubs of one event, in two socket directories ("two
machines"), each bridged (``sockcli serve E --bridge mqtt://...``) to a private mosquitto on a
free loopback port.

* Messages/s, interleaved runs, medians:

  * ``bridged``: ``seq -f '{"i":%.0f}' 1 N | sockcli send E --lines`` on hub A -> bridge A ->
    mosquitto -> bridge B -> hub B -> ``sockcli listen E --json --count N > file`` on hub B;
  * ``mosquitto`` (the baseline): the same lines, ``mosquitto_pub -l`` -> the same broker ->
    ``mosquitto_sub > file``, with the bridge's MQTT options: QoS 1, retained, MQTT 5;
  * ``local`` (for reference): the same writer into hub A, ``sockcli listen`` on hub A (its
    bridge publishing everything meanwhile).

  The listener is started first and known to subscribe before the writer starts (the hub's
  stats; for mosquitto_sub, which says nothing, probe messages until one is in its file).
  Messages/s from the writer's start until the N-th line is in the listener's file; each file
  is checked line by line (exactly N records, the k-th carrying ``{"i": k}``), and the
  bridges' figures must show nothing dropped, rejected or left over.
* Latency: one raw sender (benchmarks/workers.py raw-send) into hub A at 1,000 msg/s, each
  message carrying time.time_ns(); two raw subscribers started first, one on hub A (local
  delivery) and one on hub B (through both bridges and the broker), which subtract it at
  receipt. The same messages, measured both ways in one run: p50 and p99 of each, and what the
  bridges add. For reference, the same into a third hub of the event that has no bridge, with
  its own subscriber (what bridging costs local delivery: the bridge's threads share the serve
  process, and its GIL, with the hub).

The broker runs with ``max_queued_messages`` raised from mosquitto's 1,000 so that it never
drops for a subscriber that falls behind in a burst (the default would, see docs/BRIDGE.md),
and the bridges with ``queue_size`` raised from 10,000 for the same reason: what is measured is
the rate, not the limits. The hubs run with ``--queue-size 0`` so that nothing sent while a
run's listener is not there yet is handed to it later.
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

from common import (
    PYTHON,
    SOCKCLI,
    Row,
    Sandbox,
    alive,
    cpu_seconds,
    free_port,
    hub_stats,
    interleaved,
    median,
    tcp_listening,
    wait_until,
    worker,
)
from filestream import FileStream
from peers import MOSQUITTO_MISSING, which

SECTION_RATE = ("6a. MQTT bridge, 1 writer on hub A -> 1 listener on hub B (messages/s, ratio "
                "to mosquitto_pub -> mosquitto -> mosquitto_sub)")
SECTION_LATENCY = ("6b. MQTT bridge latency, raw send at 1,000 msg/s -> a hub without a bridge, "
                   "bridged hub A's own subscriber, and hub B's through the bridges")
EVENT = "bench_bridge"
#: The baseline's topic: apart from the bridges' (sockcli/EVENT/+), so that they ignore it.
PLAIN_TOPIC = "bench/plain"
LATENCY_RATE = 1000
#: What the broker and the bridges may hold, raised so that a burst is measured, not dropped.
BROKER_QUEUE = 1_000_000
BRIDGE_QUEUE = 1_000_000
PAHO_MISSING = "paho-mqtt not installed (pip install 'sockcli[mqtt]')"
NO_BRIDGE = "this sockcli has no 'serve --bridge' (issue 13)"
_CPU_LABELS = {"plain": "hub", "a": "hub A + bridge", "b": "hub B + bridge",
               "broker": "broker"}
_SEQ = """seq -f '{"i":%.0f}' 1 "$1\""""
#: $1 the count, $2 sockcli, $3 the socket directory, $4 the event.
WRITE_SOCKCLI = f'set -o pipefail; {_SEQ} | "$2" --socket-dir "$3" send "$4" --lines'
#: $1 the count, $2 mosquitto_pub, $3 the port, $4 the topic.
WRITE_MOSQUITTO = (f'set -o pipefail; {_SEQ} | "$2" -h 127.0.0.1 -p "$3" -V 5 -q 1 -r '
                   '-t "$4" -l')


def _timeout(count: int) -> float:
    return 30 + count / 500


class Hub:
    """One hub (bridged when given a URL): its socket directory, its serve process, its
    address."""

    def __init__(self, box: Sandbox, name: str, url: str | None, config: Path) -> None:
        self.box, self.name = box, name
        self.dir = box.path(f"sockets-{name}")
        self.address = f"unix:{self.dir / (EVENT + '.sock')}"
        bridge = ["--bridge", url] if url is not None else []
        self.proc = box.spawn([SOCKCLI, "--config", str(config), "--socket-dir", str(self.dir),
                               "serve", EVENT, "--queue-size", "0", *bridge],
                              name=f"hub-{name}")
        def ready() -> bool:
            alive(self.proc, f"hub {name}")
            stats = self.stats()
            if url is None:
                return bool(stats)
            # serve adds the bridge's figures a moment after the hub answers.
            figures = stats.get("bridge")
            return isinstance(figures, dict) and figures.get("state") == "connected"

        try:
            wait_until(ready, 30.0,
                       f"hub {name}'s bridge to connect" if url else f"hub {name} to start")
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"hub {name} ({url}): {exc}:\n{box.log_of(self.proc)}") from None

    def stats(self) -> dict[str, Any]:
        return hub_stats(self.address)

    def bridge(self) -> dict[str, Any]:
        figures = self.stats().get("bridge")
        if not isinstance(figures, dict):
            raise RuntimeError(f"hub {self.name} reports no bridge figures")
        return figures

    def cli(self, *args: str) -> list[str]:
        return [SOCKCLI, "--socket-dir", str(self.dir), *args]


def _start_broker(box: Sandbox, exe: str) -> tuple[subprocess.Popen[Any], int]:
    """mosquitto on 127.0.0.1, anonymous, no persistence, queues raised (module docstring)."""
    port = free_port()
    conf = box.path(f"bridge-mosquitto-{port}.conf")
    user = "user root\n" if os.geteuid() == 0 else ""  # see peers.start_mosquitto
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_queued_messages {BROKER_QUEUE}\n"
                    f"log_dest file {box.path(f'bridge-mosquitto-{port}.log')}\n{user}")
    proc = box.spawn([exe, "-c", str(conf)], name="bridge-mosquitto")
    wait_until(lambda: alive(proc, "mosquitto") and tcp_listening(port), 10.0, "mosquitto")
    return proc, port


class Rig:
    """The broker and the two bridged hubs, and the runs made on them."""

    def __init__(self, box: Sandbox, mosquitto: str, pub: str, sub: str) -> None:
        self.box, self.pub, self.sub = box, pub, sub
        self.broker, self.port = _start_broker(box, mosquitto)
        config = box.path("bridge-settings.toml")
        config.write_text(f"[bridge]\nqueue_size = {BRIDGE_QUEUE}\n")
        url = f"mqtt://127.0.0.1:{self.port}"
        self.a = Hub(box, "a", url, config)
        self.b = Hub(box, "b", url, config)
        #: The latency reference: a hub of the same event without a bridge.
        self.plain = Hub(box, "plain", None, config)
        self._see_each_other()
        self._settle_path()
        self._offset = self._steady_offset()

    def _steady_offset(self) -> int:
        """What bridge B received beyond what bridge A published (retained values on
        subscribing), once nothing moves: A has nothing pending and two readings a little
        apart agree."""
        last: tuple[int, int] | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a, b = self.a.bridge(), self.b.bridge()
            now = (a["published"], b["received"])
            if a["pending"] == 0 and now == last:
                return int(b["received"] - a["published"])
            last = now
            time.sleep(0.3)
        raise RuntimeError(f"the bridges do not settle: a {self.a.bridge()}, "
                           f"b {self.b.bridge()}")

    def quiesce(self) -> None:
        """Wait until bridge A has published everything, and bridge B received it: a run
        must not share the machine with the tail of the one before (nor have it delivered
        to its listener)."""
        def idle() -> bool:
            a, b = self.a.bridge(), self.b.bridge()
            return bool(a["pending"] == 0
                        and b["received"] - a["published"] >= self._offset)

        try:
            wait_until(idle, 120.0, "the bridges to deliver what the last run sent")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}: a {self.a.bridge()}, b {self.b.bridge()}") from None

    def _see_each_other(self) -> None:
        """Each bridge has the other's presence: both are subscribed."""
        ids = {h.name: h.bridge()["hub_id"] for h in (self.a, self.b)}
        if ids["a"] == ids["b"]:
            raise RuntimeError(f"both hubs have the hub id {ids['a']}")

        def seen() -> bool:
            return bool(self.a.bridge().get("remote_hubs", {}).get(ids["b"]) == "online"
                        and self.b.bridge().get("remote_hubs", {}).get(ids["a"]) == "online")

        try:
            wait_until(seen, 20.0, "the two bridges to see each other online")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}: a {self.a.bridge()}, b {self.b.bridge()}\n"
                               f"hub a log:\n{self.box.log_of(self.a.proc)}\n"
                               f"hub b log:\n{self.box.log_of(self.b.proc)}") from None

    def _settle_path(self) -> None:
        """A message sent on hub A reaches a listener of hub B: the whole path is up."""
        out = self.box.path("bridge-settle.jsonl")
        run = FileStream(self.box, "bridge settle", out, 1, logs=self.logs(),
                         timeout=_timeout(1))
        before = self.b.stats()["subscribers"]
        try:
            run.start_listener(self.b.cli("listen", EVENT, "--json"), ends_itself=False,
                               subscribed=lambda: self.b.stats()["subscribers"] > before)
            run.settle(lambda n: self._send_a({"probe": n}))
        finally:
            run.close()

    def _send_a(self, data: dict[str, Any]) -> None:
        done = self.box.run(self.a.cli("send", EVENT, "-d", json.dumps(data)),
                            name="bridge-probe", timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"sockcli send on hub a exited {done.returncode}")

    def logs(self) -> dict[str, subprocess.Popen[Any]]:
        return {"hub a": self.a.proc, "hub b": self.b.proc, "mosquitto": self.broker}

    def _cpu(self) -> dict[str, float]:
        return {"hub_a_cpu_s": cpu_seconds(self.a.proc.pid),
                "hub_b_cpu_s": cpu_seconds(self.b.proc.pid),
                "broker_cpu_s": cpu_seconds(self.broker.pid)}

    def _watch(self, hubs: list[Hub], dropped0: dict[str, int]) -> Callable[[], None]:
        def watch() -> None:
            for hub in hubs:
                stats = hub.stats()
                if stats["dropped_clients"] != dropped0[hub.name]:
                    raise RuntimeError(f"hub {hub.name} dropped a client as a slow consumer")
                if stats["bridge"]["dropped"] != dropped0[f"bridge {hub.name}"]:
                    raise RuntimeError(f"bridge {hub.name} dropped messages: "
                                       f"{stats['bridge']}")
        return watch

    def sockcli_run(self, count: int, rep: int, *, to: str) -> dict[str, Any]:
        """seq | sockcli send --lines on hub A -> sockcli listen on hub ``to`` (a or b)."""
        target = self.b if to == "b" else self.a
        self.quiesce()
        run = FileStream(self.box, f"bridge {to}", self.box.path(f"bridge-{to}-{rep}.jsonl"),
                         count, event=EVENT, logs=self.logs(), timeout=_timeout(count))
        stats0 = {h.name: h.stats() for h in (self.a, self.b)}
        dropped0 = {k: v for h in (self.a, self.b) for k, v in (
            (h.name, stats0[h.name]["dropped_clients"]),
            (f"bridge {h.name}", stats0[h.name]["bridge"]["dropped"]))}
        try:
            before = stats0[target.name]["subscribers"]
            run.start_listener(target.cli("listen", EVENT, "--json", "--count", str(count)),
                               ends_itself=True,
                               subscribed=lambda: target.stats()["subscribers"] > before)
            cpu0 = self._cpu()
            result = run.stream(["bash", "-c", WRITE_SOCKCLI, "bench-write", str(count),
                                 SOCKCLI, str(self.a.dir), EVENT],
                                watch=self._watch([self.a, self.b], dropped0))
            result.update({k: v - cpu0[k] for k, v in self._cpu().items()})
            a0, b0 = stats0["a"]["bridge"], stats0["b"]["bridge"]
            if to == "b":
                # The last acknowledgements may still be on their way to bridge A.
                wait_until(lambda: self.a.bridge()["published"] - a0["published"] >= count,
                           10.0, "bridge a to count every message published")
            a1, b1 = self.a.bridge(), self.b.bridge()
            result.update(published=a1["published"] - a0["published"],
                          received=b1["received"] - b0["received"],
                          duplicates=b1["duplicates"] - b0["duplicates"])
            if to == "b":
                problems = [f"bridge {n} {key} {f0[key]} -> {f1[key]}"
                            for n, f0, f1 in (("a", a0, a1), ("b", b0, b1))
                            for key in ("dropped", "rejected") if f1[key] != f0[key]]
                if result["received"] != count:
                    problems.append(f"bridge b received {result['received']} of {count}")
                if problems:
                    raise run.fail("; ".join(problems) + f"; figures now: a {a1}, b {b1}")
            return result
        finally:
            run.close()

    def mosquitto_run(self, count: int, rep: int) -> dict[str, Any]:
        """seq | mosquitto_pub -l -> the broker -> mosquitto_sub."""
        run = FileStream(self.box, "mosquitto", self.box.path(f"bridge-mosquitto-{rep}.jsonl"),
                         count, logs={"mosquitto": self.broker}, timeout=_timeout(count))
        port = str(self.port)
        self.quiesce()
        try:
            run.start_listener([self.sub, "-h", "127.0.0.1", "-p", port, "-V", "5", "-q", "1",
                                "-t", PLAIN_TOPIC], ends_itself=False)

            def probe(n: int) -> None:
                done = self.box.run([self.pub, "-h", "127.0.0.1", "-p", port, "-V", "5", "-q",
                                     "1", "-t", PLAIN_TOPIC, "-m", json.dumps({"probe": n})],
                                    name="mosquitto-probe", timeout=30)
                if done.returncode != 0:
                    raise run.fail(f"mosquitto_pub exited {done.returncode}")

            # The retained line of the run before, if any, arrives first, before the offset.
            offset = run.settle(probe)
            broker0 = cpu_seconds(self.broker.pid)
            result = run.stream(["bash", "-c", WRITE_MOSQUITTO, "bench-write", str(count),
                                 self.pub, port, PLAIN_TOPIC], offset=offset)
            result["broker_cpu_s"] = cpu_seconds(self.broker.pid) - broker0
            return result
        finally:
            run.close()

    def latency(self, count: int, sender: Hub, receivers: list[Hub]) -> dict[str, Any]:
        """One raw sender on ``sender`` at LATENCY_RATE; a raw subscriber on each of
        ``receivers``, started first: {hub name: latency_us}, and "cpu_us": the CPU each hub
        (and the broker) spent per message."""
        box = self.box
        procs: dict[str, subprocess.Popen[Any]] = {}
        timeout = 60 + count / LATENCY_RATE * 3
        self.quiesce()
        try:
            for hub in receivers:
                before = hub.stats()["subscribers"]
                recv = box.spawn(worker("raw-recv", "--address", hub.address, "--count",
                                        str(count), "--latency", "--timeout", str(timeout)),
                                 name=f"bridge-latency-recv-{hub.name}", stdout=subprocess.PIPE,
                                 text=True)
                procs[hub.name] = recv
                assert recv.stdout is not None
                line = recv.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"latency: receiver on hub {hub.name} not ready "
                                       f"({line!r}):\n{box.log_of(recv)}")
                wait_until(_more_subscribers(hub, before), 10.0,
                           f"hub {hub.name} to see the latency receiver")
            watched = {h.name: h.proc.pid for h in dict.fromkeys([sender, *receivers])}
            watched["broker"] = self.broker.pid
            cpu0 = {k: cpu_seconds(pid) for k, pid in watched.items()}
            send = box.spawn(worker("raw-send", "--address", sender.address, "--event", EVENT,
                                    "--count", str(count), "--rate", str(LATENCY_RATE),
                                    "--latency"), name="bridge-latency-send",
                             stdout=subprocess.PIPE, text=True)
            procs["send"] = send
            try:
                send.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"latency: sender timed out:\n{box.log_of(send)}") from None
            if send.returncode != 0:
                raise RuntimeError(f"latency: sender exited {send.returncode}:\n"
                                   f"{box.log_of(send)}")
            got: dict[str, Any] = {}
            for hub in receivers:
                try:
                    out, _ = procs[hub.name].communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"latency: receiver on hub {hub.name} timed out:\n"
                                       f"{box.log_of(procs[hub.name])}") from None
                report = json.loads(out)
                if not report.get("complete") or "latency_us" not in report:
                    raise RuntimeError(f"latency: hub {hub.name}'s receiver got "
                                       f"{report.get('received')} of {count}: {report}")
                got[hub.name] = report["latency_us"]
            got["cpu_us"] = {k: (cpu_seconds(pid) - cpu0[k]) / count * 1e6
                             for k, pid in watched.items()}
            return got
        finally:
            for proc in procs.values():
                box.stop(proc)


def _more_subscribers(hub: Hub, before: int) -> Callable[[], bool]:
    return lambda: bool(hub.stats()["subscribers"] > before)


def _has_paho() -> bool:
    done = subprocess.run([PYTHON, "-c", "import paho.mqtt.client"], capture_output=True,
                          check=False, timeout=60)
    return done.returncode == 0


def _has_bridge_option() -> bool:
    done = subprocess.run([SOCKCLI, "serve", "--help"], capture_output=True, text=True,
                          check=False, timeout=60)
    return "--bridge" in done.stdout


def _note(runs: list[dict[str, Any]], count: int, key: str) -> str:
    def us(name: str) -> str:
        values = [r[name] for r in runs if r.get(name) is not None]
        return f"{median(values) / count * 1e6:,.1f}" if values else "?"

    if key == "mosquitto":
        middle = f"broker {us('broker_cpu_s')}"
        writer, listener = "seq | mosquitto_pub", "mosquitto_sub"
    else:
        middle = f"hub A + bridge {us('hub_a_cpu_s')}"
        if key == "bridged":
            middle += f", broker {us('broker_cpu_s')}, hub B + bridge {us('hub_b_cpu_s')}"
        else:
            middle += f" (publishing to the broker meanwhile: {us('broker_cpu_s')})"
        writer, listener = "seq | sockcli send --lines", "sockcli listen"
    text = (f"CPU us per message: writer ({writer}) {us('sender_cpu_s')}, {middle}, listener "
            f"({listener}) {us('receiver_cpu_s')} (wall: {us('seconds')}; the writer done at "
            f"{us('writer_seconds')})")
    if key == "bridged":
        text += f"; QoS 1 redeliveries removed: {sum(r.get('duplicates', 0) for r in runs)}"
    return text


def run(box: Sandbox, messages: int, reps: int, latency_seconds: float,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    labels = {
        "mosquitto": "baseline: seq | mosquitto_pub -l -q 1 -r -> mosquitto -> mosquitto_sub",
        "bridged": "seq | sockcli send --lines -> hub A => mosquitto => hub B -> sockcli listen",
        "local": "the same, local: -> hub A -> sockcli listen on hub A (bridged meanwhile)",
    }
    lat_labels = {"plain": "raw send -> a hub without a bridge -> raw subscriber",
                  "local": "raw send -> hub A (bridged) -> raw subscriber of hub A",
                  "bridged": "raw send -> hub A => mosquitto => hub B -> raw subscriber"}
    mosquitto, pub, sub = which("mosquitto"), which("mosquitto_pub"), which("mosquitto_sub")
    why = (MOSQUITTO_MISSING if not (mosquitto and pub and sub) else
           PAHO_MISSING if not _has_paho() else
           NO_BRIDGE if not _has_bridge_option() else "")
    if why:
        log(f"bridge: not measured: {why}")
        skipped = [Row(SECTION_RATE, f"bridge_{k}", v, None, "msg/s", note=why)
                   for k, v in labels.items()]
        skipped += [Row(SECTION_LATENCY, f"bridge_latency_{k}", v, None, "us", note=why)
                    for k, v in lat_labels.items()]
        return skipped, {"skipped": why}
    assert mosquitto and pub and sub
    rig = Rig(box, mosquitto, pub, sub)
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "mosquitto": lambda rep: rig.mosquitto_run(messages, rep),
        "bridged": lambda rep: rig.sockcli_run(messages, rep, to="b"),
        "local": lambda rep: rig.sockcli_run(messages, rep, to="a"),
    }
    results, errors = interleaved(systems, reps, "bridge", f"{messages:,} lines", log,
                                  keep=3000)
    base = median([r["rate"] for r in results["mosquitto"]]) if results["mosquitto"] else None
    rows: list[Row] = []
    for key, label in labels.items():
        runs = results[key]
        if not runs:
            rows.append(Row(SECTION_RATE, f"bridge_{key}", label, None, "msg/s",
                            note=f"failed: {errors.get(key, '?')[:300]}"))
            continue
        rows.append(Row(SECTION_RATE, f"bridge_{key}", label, median([r["rate"] for r in runs]),
                        "msg/s", baseline_label="" if key == "mosquitto" else "mosquitto",
                        baseline=None if key == "mosquitto" else base,
                        note=_note(runs, messages, key),
                        extra={"runs": runs, "count": messages,
                               "min": min(r["rate"] for r in runs),
                               "max": max(r["rate"] for r in runs)}))

    count = max(200, int(latency_seconds * LATENCY_RATE))
    got: dict[str, Any] = {}
    for what, sender, receivers in (("a hub without a bridge", rig.plain, [rig.plain]),
                                    ("hub A and hub B", rig.a, [rig.a, rig.b])):
        log(f"bridge latency: {count:,} messages at {LATENCY_RATE}/s, {what}")
        try:
            result = rig.latency(count, sender, receivers)
        except Exception as exc:  # the rate rows stand without it
            errors[f"latency {sender.name}"] = f"{type(exc).__name__}: {exc}"
            log(f"bridge latency FAILED: {errors[f'latency {sender.name}'][:3000]}")
            continue
        cpu = result.pop("cpu_us")
        got.update(result)
        got[f"cpu {sender.name}"] = cpu
    baselines = {"local": got.get("plain"), "bridged": got.get("a")}
    for key, hub in (("plain", "plain"), ("local", "a"), ("bridged", "b")):
        lat = got.get(hub)
        if lat is None:
            why = errors.get(f"latency {'plain' if key == 'plain' else 'a'}", "?")
            rows.append(Row(SECTION_LATENCY, f"bridge_latency_{key}", lat_labels[key], None,
                            "us", note=f"failed: {why[:300]}"))
            continue
        base = baselines.get(key)
        for p in ("p50", "p99"):
            note = ""
            if base is not None:
                note = (f"{'added by the bridges' if key == 'bridged' else 'added by bridging'}"
                        f": {lat[p] - base[p]:,.0f} us ({p}); max {lat['max']:,.0f} us")
            if p == "p50" and key != "local":
                cpu = got.get(f"cpu {'plain' if key == 'plain' else 'a'}", {})
                parts = ", ".join(f"{_CPU_LABELS[k]} {v:,.0f}" for k, v in cpu.items()
                                  if k != "broker" or key == "bridged")
                note += ("; " if note else "") + f"CPU us per message: {parts}"
            rows.append(Row(SECTION_LATENCY, f"bridge_latency_{key}_{p}",
                            f"{lat_labels[key]}: {p}", lat[p], "us",
                            baseline_label="" if base is None else
                            ("unbridged" if key == "local" else "local") + f" {p}",
                            baseline=None if base is None else base[p],
                            note=note, extra=dict(lat, rate=LATENCY_RATE, count=count)))
    info: dict[str, Any] = {"errors": errors}
    with contextlib.suppress(Exception):
        info["figures"] = {"a": rig.a.bridge(), "b": rig.b.bridge()}
    return rows, info

"""The FIFO: a bash loop publishing with no process of its own, against a bare FIFO.

Each run: a bash loop of ``count`` (10,000) ``echo "{\\"i\\":$i}" > "$fifo"``, one ``open``,
``write`` and ``close`` of the pipe per line, as a script reporting progress would.

* ``hub``: into a ``sockcli serve`` hub's FIFO (``sockcli path E --fifo``), one
  ``sockcli listen E --json --count N > file`` counting them (started first, and known to
  subscribe from the hub's stats before the loop starts);
* ``bare``: into a FIFO made with ``mkfifo`` in the sandbox, drained by
  bare_fifo_reader.py (``os.read``, counting newlines, copying to a file).

Messages/s from the loop's start to the listener's (or reader's) exit; runs interleaved
(bare, hub, bare, hub, ...), medians compared. Each output file is checked: exactly N
lines, the k-th carrying ``{"i": k}``. Target (issue 11, judged in targets.py): the
hub path >= 0.5x the bare FIFO.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    PYTHON,
    SOCKCLI,
    Row,
    Sandbox,
    alive,
    cpu_seconds,
    hub_stats,
    interleaved,
    median,
    wait_until,
)
from delivery import check_sequence, wait_all

SECTION = ("5a. FIFO, a bash loop of echo > \"$fifo\" -> 1 listener (messages/s, ratio to a "
           "bare FIFO)")
EVENT = "bench_fifo"
#: Lines the loop writes, in full and quick runs alike (about a second a run).
MESSAGES = 10_000
BARE_READER = BENCH_DIR / "bare_fifo_reader.py"
#: The loop, as a user writes it: $1 the FIFO, $2 how many lines.
LOOP = r'for ((i = 1; i <= $2; i++)); do echo "{\"i\":$i}" > "$1"; done'


def _timeout(count: int) -> float:
    """Seconds a run may take before it is reported failed (about 50x a quiet machine's)."""
    return 30 + count / 500


def _run_loop(box: Sandbox, bash: str, fifo: Path, count: int, reader: subprocess.Popen[Any],
              out: Path, hub: subprocess.Popen[Any] | None, name: str) -> dict[str, Any]:
    """Start the loop into ``fifo``; reap it and ``reader``; check ``out``."""
    hub_cpu0 = cpu_seconds(hub.pid) if hub is not None else 0.0
    started = time.perf_counter()
    loop = box.spawn([bash, "-c", LOOP, "bench-loop", str(fifo), str(count)], name=f"{name}-loop")

    def failure(what: str) -> str:
        text = (f"{name}: {what}; the output has {_lines(out)} of {count} lines\n"
                f"reader/listener log:\n{box.log_of(reader)}")
        return text + (f"\nhub log:\n{box.log_of(hub)}" if hub is not None else "")

    try:
        done = wait_all({"loop": loop, "reader": reader}, _timeout(count), failure)
    finally:
        box.stop(loop)  # a loop left blocked on a pipe nobody reads any more
    hub_cpu = cpu_seconds(hub.pid) - hub_cpu0 if hub is not None else None
    if loop.returncode != 0:
        raise RuntimeError(failure(f"the bash loop exited {loop.returncode}:\n"
                                   + box.log_of(loop)))
    if reader.returncode != 0:
        raise RuntimeError(failure(f"the reader exited {reader.returncode}"))
    try:
        check_sequence(out, count, event=EVENT if hub is not None else None)
    except RuntimeError as exc:
        raise RuntimeError(failure(str(exc))) from None
    ended = done["reader"][0]
    return {"rate": count / (ended - started), "seconds": ended - started,
            "loop_seconds": done["loop"][0] - started, "sender_cpu_s": done["loop"][1],
            "receiver_cpu_s": done["reader"][1], "hub_cpu_s": hub_cpu}


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def bare_run(box: Sandbox, bash: str, count: int, rep: int) -> dict[str, Any]:
    fifo = box.path(f"bare-{rep}.fifo")
    out = box.path(f"bare-{rep}.out")
    os.mkfifo(fifo, 0o600)
    reader = box.spawn([PYTHON, str(BARE_READER), str(fifo), str(count), str(out)],
                       name="bare-fifo-reader", stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None
        line = reader.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"bare FIFO reader not ready ({line!r}):\n{box.log_of(reader)}")
        return _run_loop(box, bash, fifo, count, reader, out, None, "bare FIFO")
    finally:
        box.stop(reader)
        fifo.unlink(missing_ok=True)


def hub_run(box: Sandbox, bash: str, hub: subprocess.Popen[Any], fifo: Path, count: int,
            rep: int) -> dict[str, Any]:
    address = box.hub_address(EVENT)
    before = hub_stats(address)
    out = box.path(f"fifo-listen-{rep}.jsonl")
    with open(out, "wb") as stdout:
        listener = box.spawn([SOCKCLI, "listen", EVENT, "--json", "--count", str(count)],
                             name="fifo-listen", stdout=stdout)
    try:
        wait_until(lambda: alive(listener, "sockcli listen")
                   and hub_stats(address)["subscribers"] > before["subscribers"], 10.0,
                   "sockcli listen to subscribe")
        result = _run_loop(box, bash, fifo, count, listener, out, hub, "hub FIFO")
        after = hub_stats(address)
        result.update(hub_rejected=after["rejected"] - before["rejected"],
                      fifo_messages=after["fifo"]["messages"] - before["fifo"]["messages"])
        if result["fifo_messages"] != count or result["hub_rejected"]:
            raise RuntimeError(f"hub FIFO: the hub counted {result['fifo_messages']} FIFO "
                               f"messages and {result['hub_rejected']} rejected lines for "
                               f"{count} written:\n{box.log_of(hub)}")
        return result
    finally:
        box.stop(listener)


def _note(runs: list[dict[str, Any]], count: int, hub: bool) -> str:
    def us(key: str) -> str:
        values = [r[key] for r in runs if r.get(key) is not None]
        return f"{median(values) / count * 1e6:,.1f}" if values else "?"

    middle = f", hub {us('hub_cpu_s')}" if hub else ""
    return (f"CPU us per message: bash loop {us('sender_cpu_s')}{middle}, "
            f"{'listener' if hub else 'reader'} {us('receiver_cpu_s')} (wall: {us('seconds')}; "
            f"the loop alone: {us('loop_seconds')})")


def run(box: Sandbox, reps: int,
        log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    count = MESSAGES
    bash = shutil.which("bash")
    if bash is None:
        raise RuntimeError("bash not found on PATH")
    hub = box.start_hub(EVENT)
    fifo_text = box.run([SOCKCLI, "path", EVENT, "--fifo"], name="fifo-path", timeout=30)
    if fifo_text.returncode != 0:
        raise RuntimeError(f"sockcli path {EVENT} --fifo exited {fifo_text.returncode}")
    fifo = Path(fifo_text.stdout.strip())
    systems: dict[str, Callable[[int], dict[str, Any]]] = {
        "bare": lambda rep: bare_run(box, bash, count, rep),
        "hub": lambda rep: hub_run(box, bash, hub, fifo, count, rep),
    }
    results, errors = interleaved(systems, reps, "fifo", f"{count:,} lines", log, keep=1500)

    labels = {"bare": "baseline: bash loop > bare FIFO -> os.read reader",
              "hub": "bash loop > hub's FIFO -> sockcli listen --json"}
    base = median([r["rate"] for r in results["bare"]]) if results["bare"] else None
    rows: list[Row] = []
    for key in ("bare", "hub"):
        runs = results[key]
        if not runs:
            rows.append(Row(SECTION, f"fifo_{key}", labels[key], None, "msg/s",
                            note=f"failed: {errors.get(key, '?')[:300]}"))
            continue
        row = Row(SECTION, f"fifo_{key}", labels[key], median([r["rate"] for r in runs]),
                  "msg/s", baseline_label="" if key == "bare" else "bare FIFO",
                  baseline=None if key == "bare" else base,
                  note=_note(runs, count, key == "hub"),
                  extra={"runs": runs, "count": count, "min": min(r["rate"] for r in runs),
                         "max": max(r["rate"] for r in runs)})
        rows.append(row)
    return rows, {"errors": errors}

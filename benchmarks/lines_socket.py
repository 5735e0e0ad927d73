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
from collections.abc import Callable
from typing import Any

from common import (
    SOCKCLI,
    Row,
    Sandbox,
    interleaved,
    median,
    queue_one,
)
from filestream import FileStream
from peers import SOCAT_MISSING, which

SECTION = ("5b. JSON-lines socket streaming, 1 writer -> 1 listener (messages/s, ratio to the "
           "MessagePack path)")
EVENT = "bench_lines"
_SEQ = """seq -f '{"i":%.0f}' 1 "$1\""""
#: $1 the count, $2 socat, $3 the lines socket.
WRITE_LINES = f'set -o pipefail; {_SEQ} | "$2" -u - UNIX-CONNECT:"$3"'
#: $1 the count, $2 sockcli, $3 the event.
WRITE_MSGPACK = f'set -o pipefail; {_SEQ} | "$2" send "$3" --lines'


def lines_run(box: Sandbox, hub: subprocess.Popen[Any], socat: str, path: str, count: int,
              rep: int) -> dict[str, Any]:
    address = box.hub_address(EVENT)
    run = FileStream(box, "lines socket", box.path(f"lines-{rep}.jsonl"), count,
                     address=address, event=EVENT, logs={"hub": hub})
    try:
        run.start_listener([socat, "-u", f"UNIX-CONNECT:{path}", "-"], ends_itself=False)
        # socat says nothing, and the hub holds its output up to 0.2 s for a first line:
        # probes through the MessagePack socket until the newest is in the file.
        offset = run.settle(lambda n: queue_one(address, EVENT, {"probe": n}))
        return run.stream(["bash", "-c", WRITE_LINES, "bench-write", str(count), socat, path],
                          offset=offset, middle=hub)
    finally:
        run.close()


def msgpack_run(box: Sandbox, hub: subprocess.Popen[Any], count: int,
                rep: int) -> dict[str, Any]:
    run = FileStream(box, "MessagePack", box.path(f"msgpack-{rep}.jsonl"), count,
                     address=box.hub_address(EVENT), event=EVENT, logs={"hub": hub})
    try:
        run.start_listener([SOCKCLI, "listen", EVENT, "--json", "--count", str(count)],
                           ends_itself=True)
        return run.stream(["bash", "-c", WRITE_MSGPACK, "bench-write", str(count), SOCKCLI,
                           EVENT], middle=hub)
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

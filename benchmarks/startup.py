"""Start-up: whole-process wall time of one-shot commands, against ``python -c pass``.

Every command runs ``runs`` times, round-robin (one of each, then again), after two untimed
warm-up rounds, straight from the harness (no shell: the harness writes the stdin). The figure
is the median wall time from fork to exit as the harness sees it, so each row includes the same
small spawn overhead as its baseline.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import (
    PYTHON,
    SOCKCLI,
    Row,
    Sandbox,
    median,
    percentile,
    queue_one,
)
from peers import (
    MOSQUITTO_MISSING,
    NCAT_MISSING,
    SOCAT_MISSING,
    start_mosquitto,
    start_ncat_broker,
    which,
)

SECTION = "1. Start-up (median wall time of one process, ratio to python -c pass)"
#: Seconds one run of a one-shot command may take (some hundred times a quiet machine's).
RUN_TIMEOUT = 10.0
#: Failed runs after which a command is not run again (its row says why): a command that
#: hangs must not cost RUN_TIMEOUT in every round.
MAX_FAILURES = 2
PAYLOAD = b'{"progress":40}\n'
SEND_EVENT = "bench_send"
LISTEN_EVENT = "bench_listen"
GET_EVENT = "bench_get"


@dataclass
class Command:
    key: str
    label: str
    argv: list[str]
    stdin: bytes = b""
    before: Callable[[], None] | None = None
    check: Callable[[subprocess.CompletedProcess[bytes]], str | None] | None = None
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _expect_one_message(done: subprocess.CompletedProcess[bytes]) -> str | None:
    lines = done.stdout.splitlines()
    if len(lines) != 1 or b'"progress": 40' not in lines[0]:
        return f"expected one message line, got {done.stdout[:200]!r}"
    return None


def _expect_retained(done: subprocess.CompletedProcess[bytes]) -> str | None:
    lines = done.stdout.splitlines()
    if len(lines) != 1 or b'"progress": 40' not in lines[0] or b'"retained": true' not in lines[0]:
        return f"expected the retained message's line, got {done.stdout[:200]!r}"
    return None


def _time_one(cmd: Command, env: dict[str, str]) -> None:
    if cmd.before is not None:
        cmd.before()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(cmd.stdin, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        cmd.failures.append(f"timed out after {RUN_TIMEOUT:g} s")
        return
    elapsed = time.perf_counter() - started
    done = subprocess.CompletedProcess(cmd.argv, proc.returncode, out, err)
    problem = None
    if proc.returncode != 0:
        problem = f"exit {proc.returncode}: {err.decode(errors='replace').strip()[:300]}"
    elif cmd.check is not None:
        problem = cmd.check(done)
    if problem:
        cmd.failures.append(problem)
    else:
        cmd.times.append(elapsed)


def import_profile(box: Sandbox, event: str) -> dict[str, Any]:
    """``python -X importtime -m sockcli send EVENT``: the heaviest imports of the send path."""
    proc = subprocess.run([PYTHON, "-X", "importtime", "-m", "sockcli", "send", event],
                          input=PAYLOAD, capture_output=True, env=box.env, timeout=60,
                          check=False)
    entries: list[dict[str, Any]] = []
    pattern = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")
    for line in proc.stderr.decode(errors="replace").splitlines():
        m = pattern.match(line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            entries.append({"module": m.group(4), "depth": depth,
                            "self_ms": int(m.group(1)) / 1000,
                            "cumulative_ms": int(m.group(2)) / 1000})
    total = sum(e["self_ms"] for e in entries)
    top_level = sorted((e for e in entries if e["depth"] == 0),
                       key=lambda e: e["cumulative_ms"], reverse=True)
    heaviest = sorted(entries, key=lambda e: e["cumulative_ms"], reverse=True)
    # Third-party packages, wherever they were first imported from.
    packages: dict[str, float] = {}
    for e in entries:
        root = e["module"].split(".")[0]
        packages[root] = packages.get(root, 0.0) + e["self_ms"]
    return {"exit": proc.returncode, "total_import_ms": round(total, 1),
            "modules": len(entries), "top_level": top_level[:15], "heaviest": heaviest[:40],
            "by_package_self_ms": dict(sorted(packages.items(), key=lambda kv: -kv[1])[:20])}


def run(box: Sandbox, runs: int, log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    box.start_hub(SEND_EVENT)
    box.start_hub(LISTEN_EVENT)
    listen_address = box.hub_address(LISTEN_EVENT)
    box.start_hub(GET_EVENT)
    # Queued for no one and retained: what every run of sockcli get prints (it never takes a
    # queued message, so the same one serves every run).
    queue_one(box.hub_address(GET_EVENT), GET_EVENT, {"progress": 40})

    def queue_message() -> None:
        queue_one(listen_address, LISTEN_EVENT, {"progress": 40})

    py = PYTHON
    commands = [
        Command("python_pass", "python -c pass", [py, "-c", "pass"]),
        Command("true", "/bin/true (spawn floor)", ["/bin/true"]),
        Command("sockcli_send", f"echo '{{\"progress\":40}}' | sockcli send {SEND_EVENT}",
                [SOCKCLI, "send", SEND_EVENT], stdin=PAYLOAD),
        Command("sockcli_send_cold", "sockcli send, first run (empty settings cache)",
                [SOCKCLI, "send", SEND_EVENT], stdin=PAYLOAD, before=box.empty_cache),
        Command("sockcli_get", f"sockcli get {GET_EVENT} (the retained message, JSON)",
                [SOCKCLI, "get", GET_EVENT], check=_expect_retained),
        Command("sockcli_get_waybar", f"sockcli get {GET_EVENT} --format waybar --text TEMPLATE",
                [SOCKCLI, "get", GET_EVENT, "--format", "waybar", "--text",
                 "{data.progress}%"]),
        Command("sockcli_listen", f"sockcli listen {LISTEN_EVENT} --count 1 (queued msg)",
                [SOCKCLI, "listen", LISTEN_EVENT, "--count", "1"],
                before=queue_message, check=_expect_one_message),
        Command("sockcli_version", "sockcli --version (no hub)",
                [SOCKCLI, "--version"]),
        Command("import_sockcli", "python -c 'import sockcli'", [py, "-c", "import sockcli"]),
        Command("import_socket_json_msgpack", "python -c 'import socket, json, msgpack'",
                [py, "-c", "import socket, json, msgpack"]),
        Command("import_click", "python -c 'import click'", [py, "-c", "import click"]),
        Command("import_rich_console", "python -c 'import rich.console'",
                [py, "-c", "import rich.console"]),
        Command("import_pydantic", "python -c 'from pydantic import BaseModel'",
                [py, "-c", "from pydantic import BaseModel"]),
        Command("import_dynaconf", "python -c 'from dynaconf import Dynaconf'",
                [py, "-c", "from dynaconf import Dynaconf"]),
    ]
    missing: list[Row] = []
    mosquitto, mosquitto_pub = which("mosquitto"), which("mosquitto_pub")
    if mosquitto and mosquitto_pub:
        _, port = start_mosquitto(box, mosquitto)
        pub_argv = [mosquitto_pub, "-h", "127.0.0.1", "-p", str(port), "-t", "t",
                    "-m", '{"progress":40}']
        commands.append(Command("mosquitto_pub", "peer: mosquitto_pub -t t -m ... (QoS 0)",
                                pub_argv))
        commands.append(Command("mosquitto_pub_q1", "peer: mosquitto_pub -q 1 ... (acked)",
                                [*pub_argv, "-q", "1"]))
    else:
        missing.append(Row(SECTION, "mosquitto_pub", "peer: mosquitto_pub", None, "",
                           note=MOSQUITTO_MISSING))
    ncat, socat = which("ncat"), which("socat")
    if ncat:
        _, port = start_ncat_broker(box, ncat)
        commands.append(Command("ncat_send", "peer: ncat --send-only -> ncat --broker",
                                [ncat, "--send-only", "127.0.0.1", str(port)], stdin=PAYLOAD))
        if socat:
            commands.append(Command("socat_send", "peer: socat -u - TCP:... -> ncat --broker",
                                    [socat, "-u", "-", f"TCP:127.0.0.1:{port}"],
                                    stdin=PAYLOAD))
        else:
            missing.append(Row(SECTION, "socat_send", "peer: socat one-shot send", None, "",
                               note=SOCAT_MISSING))
    else:
        missing.append(Row(SECTION, "ncat_send", "peer: ncat / socat one-shot send", None, "",
                           note=NCAT_MISSING))

    log(f"start-up: {len(commands)} commands x {runs} runs (+2 warm-up rounds), round-robin")
    for round_no in range(runs + 2):
        for cmd in commands:
            if len(cmd.failures) >= MAX_FAILURES:
                continue
            times_before = len(cmd.times)
            _time_one(cmd, box.env)
            if round_no < 2 and len(cmd.times) > times_before:
                cmd.times.pop()  # warm-up: page cache, bytecode cache
    base_cmd = commands[0]
    if not base_cmd.times:
        raise RuntimeError(f"python -c pass failed: {base_cmd.failures[:1]}")
    base = median(base_cmd.times) * 1000
    rows: list[Row] = []
    for cmd in commands:
        if not cmd.times:
            rows.append(Row(SECTION, cmd.key, cmd.label, None, "ms",
                            note=f"failed: {cmd.failures[0] if cmd.failures else '?'}"))
            continue
        value = median(cmd.times) * 1000
        row = Row(SECTION, cmd.key, cmd.label, value, "ms",
                  baseline_label="" if cmd is base_cmd else "python -c pass",
                  baseline=None if cmd is base_cmd else base,
                  extra={"runs": len(cmd.times), "min_ms": min(cmd.times) * 1000,
                         "p90_ms": percentile(cmd.times, 90) * 1000,
                         "max_ms": max(cmd.times) * 1000, "failures": cmd.failures[:3]})
        if cmd.failures:
            row.note = f"{len(cmd.failures)} failed runs: {cmd.failures[0]}"
        rows.append(row)
    rows.extend(missing)
    log("start-up: profiling the send path with python -X importtime")
    profile = import_profile(box, SEND_EVENT)
    return rows, {"import_profile": profile}

"""sockcli's benchmark suite: one entry point, ``make bench`` (or ``.venv/bin/python
benchmarks/run.py``).

Every figure is measured against a baseline measured in the same run, on the same machine, and
reported as a ratio; medians are quoted. Nothing is asserted: a missed target is a verdict in
the table, not a failure. The exit status is non-zero only when a measurement could not be
made (or on Ctrl-C).

Suites (docs/PERFORMANCE.md says what each number means):
  startup  one-shot process wall time: sockcli send / get / listen, reference imports, peers
  stream   100,000 messages, 1 sender -> 1 listener: CLI (also with a throttled reader),
           library, hub alone, baseline, peers; every message checked, in order
  fanout   1 sender -> 100 subscribers (deliveries/s); latency at 1,000 msg/s, 10 subscribers
  scale    hub memory at rest and with 1,000 and 10,000 idle subscribers; deliveries/s at 1,
           10, 100, 1,000
  fifo     a bash loop of 10,000 echo > "$fifo" into a hub's FIFO, against a bare FIFO
  lines    socat -> the JSON-lines socket -> socat, against the MessagePack path (CLI)
  bridge   two hubs bridged through mosquitto: messages/s against mosquitto_pub ->
           mosquitto_sub, latency added against local delivery

Prints the tables, then one block with every target (targets.py) and its verdict, and writes
them as JSON to benchmarks/results/latest.json (and Markdown to latest.md; quick.json and
quick.md with --quick). Every process it starts runs in a private
temporary XDG_RUNTIME_DIR and is stopped on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import targets
from common import (
    REPO,
    RESULTS_DIR,
    UNSET_VARIABLES,
    Row,
    machine_info,
    raise_fd_limit,
    render_table,
    sandbox,
    write_results,
)

SUITES = ("startup", "stream", "fanout", "scale", "fifo", "lines", "bridge")

FULL = {"runs": 30, "count": 100_000, "reps": 3, "fanout_messages": 10_000,
        "latency_seconds": 4.0, "scale_deliveries": 1_000_000, "bridge_messages": 20_000}
QUICK = {"runs": 5, "count": 5_000, "reps": 1, "fanout_messages": 200,
         "latency_seconds": 1.0, "scale_deliveries": 20_000, "bridge_messages": 2_000}

_T0 = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _git() -> dict[str, Any]:
    def out(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    status = out("status", "--porcelain", "--", "sockcli", "config")
    diff = out("diff", "HEAD", "--", "sockcli", "config") + status
    return {"commit": out("rev-parse", "--short", "HEAD"), "dirty": bool(status),
            "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if status else ""}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Measure sockcli against baselines run on the same machine in the same run.")
    parser.add_argument("--quick", action="store_true",
                        help="small counts, one repetition: checks the harness works (~40 s)")
    parser.add_argument("--only", metavar="SUITES",
                        help=f"comma-separated subset of {','.join(SUITES)}")
    parser.add_argument("--runs", type=int, help="start-up: timed runs per command "
                        f"[{FULL['runs']}; quick {QUICK['runs']}]")
    parser.add_argument("--count", type=int, help="streaming: messages "
                        f"[{FULL['count']:,}; quick {QUICK['count']:,}]")
    parser.add_argument("--reps", type=int, help="streaming, fan-out, scale: repetitions, median "
                        f"quoted [{FULL['reps']}; quick {QUICK['reps']}]")
    parser.add_argument("--output", type=Path,
                        help="JSON results file [benchmarks/results/latest.json; with --quick "
                        "quick.json, so that a smoke run does not replace a full one]")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary folder (process logs) for inspection")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    if args.output is None:
        args.output = RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    args.runs = args.runs or preset["runs"]
    args.count = args.count or preset["count"]
    args.reps = args.reps or preset["reps"]
    args.fanout_messages = preset["fanout_messages"]
    args.latency_seconds = preset["latency_seconds"]
    args.scale_deliveries = preset["scale_deliveries"]
    args.bridge_messages = preset["bridge_messages"]
    suites = args.only.split(",") if args.only else list(SUITES)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    args.suites = suites
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    raise_fd_limit()
    meta: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, "benchmarks/run.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(), "git": _git(),
        "environment_unset": [v for v in UNSET_VARIABLES if v in os.environ],
        "settings": {k: getattr(args, k) for k in ("runs", "count", "reps", "fanout_messages",
                                                   "latency_seconds", "scale_deliveries",
                                                   "bridge_messages")},
        "suites": {},
    }
    load = meta["machine"]["loadavg"][0]
    log(f"{meta['mode']} run of {', '.join(args.suites)} on {meta['machine']['nproc']} cores "
        f"({meta['machine']['cpu_model']}), Python {meta['machine']['python']}, "
        f"load average {load:.2f}")
    if load > 0.5:
        log(f"warning: the machine is busy (load average {load:.2f}): figures will be noisy")
    rows: list[Row] = []
    failed: list[str] = []
    interrupted = False
    try:
        with sandbox(keep=args.keep_temp) as box:
            if args.keep_temp:
                log(f"temporary folder (kept): {box.root}")
            box.warm_up()
            for suite in args.suites:
                started = time.monotonic()
                try:
                    suite_rows, info = _run_suite(suite, box, args)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    failed.append(suite)
                    log(f"{suite}: FAILED: {type(exc).__name__}: {exc}")
                    traceback.print_exc(file=sys.stderr)
                    suite_rows = [Row(f"{suite} (failed)", suite, f"{suite} suite", None, "",
                                      note=f"failed: {type(exc).__name__}: {exc}"[:300])]
                    info = {"error": f"{type(exc).__name__}: {exc}"}
                if info.get("errors"):
                    failed.append(suite)
                info["seconds"] = round(time.monotonic() - started, 1)
                meta["suites"][suite] = info
                rows.extend(suite_rows)
                log(f"{suite}: done in {info['seconds']:.0f} s")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: every process started was stopped; partial results follow")
    meta["git_end"] = _git()
    if meta["git_end"] != meta["git"]:
        log(f"warning: the code changed during the run (git {meta['git']} -> "
            f"{meta['git_end']}): the figures may mix two versions")
    meta["seconds"] = round(time.monotonic() - _T0, 1)
    meta["loadavg_end"] = os.getloadavg()
    meta["interrupted"] = interrupted
    verdicts = targets.judge(rows, [s for s in args.suites if s in meta["suites"]])
    meta["targets"] = targets.as_json(verdicts)
    print(render_table(rows))
    _print_profile(meta)
    print(targets.render(verdicts, meta["mode"], args.reps))
    write_results(rows, meta, args.output)
    args.output.with_suffix(".md").write_text(
        render_table(rows, markdown=True) + "\n"
        + targets.render(verdicts, meta["mode"], args.reps, markdown=True))
    log(f"wrote {_shown(args.output)} and {_shown(args.output.with_suffix('.md'))} "
        f"({meta['seconds']:.0f} s in all)")
    if interrupted:
        return 130
    return 1 if failed else 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _run_suite(suite: str, box: Any, args: argparse.Namespace) -> tuple[list[Row],
                                                                        dict[str, Any]]:
    if suite == "startup":
        import startup

        return startup.run(box, args.runs, log)
    if suite == "stream":
        import stream

        return stream.run(box, args.count, args.reps, log)
    if suite == "fanout":
        import fanout

        return fanout.run(box, args.fanout_messages, args.reps, args.latency_seconds, log)
    if suite == "fifo":
        import fifo

        return fifo.run(box, args.reps, log)
    if suite == "lines":
        import lines_socket

        return lines_socket.run(box, args.count, args.reps, log)
    if suite == "bridge":
        import bridge

        return bridge.run(box, args.bridge_messages, args.reps, args.latency_seconds, log)
    import scale

    return scale.run(box, args.scale_deliveries, args.reps, log)


def _print_profile(meta: dict[str, Any]) -> None:
    profile = meta["suites"].get("startup", {}).get("import_profile")
    if not profile:
        return
    print(f"Import profile of 'python -X importtime -m sockcli send' (exit {profile['exit']}): "
          f"{profile['modules']} modules, {profile['total_import_ms']:.0f} ms of imports in "
          "all; heaviest (cumulative):")
    for e in profile["heaviest"][:15]:
        print(f"  {e['cumulative_ms']:7.1f} ms  {'  ' * e['depth']}{e['module']}")
    print("By top-level package (self times added up, wherever imported from):")
    print("  " + ", ".join(f"{name} {ms:.1f} ms"
                           for name, ms in list(profile["by_package_self_ms"].items())[:12]))
    print()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What the quickshell wallpaper widget would show, without quickshell: one JSON line per change.

It speaks to the hub exactly as WallpaperLink.qml does, with wallpaper.mjs's logic written again
in Python: the socket path from ``sockcli path wallpaper_change --lines`` (without sockcli on
PATH, ``$XDG_RUNTIME_DIR/sockcli/wallpaper_change.lines.sock``), the same first line, lines
split at ``\\n`` as quickshell's SplitParser splits them, each parsed as JSON.parse would and
read for the same fields, and the same reconnection when the hub goes away. Use it to see what
the widget would show (``examples/quickshell/check-widget.py`` while the pipeline runs), and
tests/test_examples_lines.py uses it against a real hub; the same tests run wallpaper.mjs itself
with node and compare the two.

Each output line is ``{"event": EVENT, ...}``: ``path`` (the socket path it uses), ``failed``
(a connection attempt failed, with ``reason``), then, with what the widget shows (``online``,
``visible``, ``label``, ``progress``, ``detail``, ``failed``, ``notice``): ``connected``,
``line`` (with the ``line`` read), ``disconnected`` and ``hidden`` (a finished run's widget
hides). ``--replay`` reads lines from stdin instead of a socket and prints what each shows.
Standard library only; stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

# The constants of wallpaper.mjs (tests/test_examples_lines.py checks that they are the same).
EVENT = "wallpaper_change"
FIRST_LINE = "#subscribe types=data,error last=1\n"
PATH_COMMAND = ["sockcli", "path", EVENT, "--lines"]
RETRY_MS = 1000
HIDE_AFTER_MS = 10000

View = dict[str, Any]


# --- wallpaper.mjs, function for function ------------------------------------------------------


def fallback_path(runtime_dir: str | None) -> str:
    if not runtime_dir:
        return ""
    return runtime_dir + "/sockcli/" + EVENT + ".lines.sock"


def initial() -> View:
    return {"online": False, "step": "", "status": "", "progress": 0, "text": "", "error": "",
            "failed": False, "notice": "", "at": 0, "label": ""}


def is_number(value: Any) -> bool:
    """``typeof value === "number"``: JSON's true and false are not numbers there."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def percent(value: Any, fallback: int) -> int:
    """A progress in whole percent, 0 to 100; ``fallback`` when the message has none. JSON
    numbers are doubles in JavaScript: an integer too big for one is Infinity there."""
    if not is_number(value):
        return fallback
    try:
        number = float(value)
    except OverflowError:
        return fallback
    if not math.isfinite(number):
        return fallback
    return max(0, min(100, math.floor(number)))


def label_of(view: View) -> str:
    parts = []
    if view["step"] != "":
        parts.append(view["step"])
    parts.append(f"{view['progress']}%")
    if view["status"] != "":
        parts.append(view["status"])
    return " ".join(parts)


def online(view: View) -> View:
    return {**view, "online": True, "notice": ""}


def offline(view: View) -> View:
    return {**view, "online": False}


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # JSON.parse takes no NaN nor Infinity


def show(view: View, line: str) -> View:
    """One line from the hub (without its newline), as wallpaper.mjs's show() reads it."""
    new = dict(view)
    try:
        record = json.loads(line, parse_constant=_not_json)
    except ValueError:
        new["notice"] = "the hub sent a line that is not JSON"
        return new
    if not isinstance(record, dict):
        new["notice"] = "the hub sent a line that is not a JSON object"
        return new
    if "message_type" not in record:
        new["notice"] = (text(record.get("reason")) or text(record.get("error"))
                         or "the hub sent an unknown line")
        return new
    kind = record["message_type"]
    if kind not in ("data", "error"):
        return new
    data = record.get("data")
    if not isinstance(data, dict):
        data = {}
    if kind == "data":
        new.update(step=text(data.get("step")), status=text(data.get("status")),
                   text=text(data.get("text")), error="", failed=False)
    else:
        new.update(step=text(data.get("step")) or view["step"],
                   status=text(data.get("status")) or "failed", text="",
                   error=text(data.get("error")) or "error", failed=True)
    new["progress"] = percent(data.get("progress"), view["progress"])
    stamp = record.get("timestamp_ms")
    new["at"] = stamp if is_number(stamp) else 0
    new["notice"] = ""
    new["label"] = label_of(new)
    return new


def finished(view: View) -> bool:
    return not view["failed"] and view["status"] == "done" and view["progress"] >= 100


def visible(view: View, now_ms: float, hide_after_ms: float) -> bool:
    if view["label"] == "":
        return False
    return not finished(view) or now_ms < view["at"] + hide_after_ms


def hide_in(view: View, now_ms: float, hide_after_ms: float) -> float:
    if not visible(view, now_ms, hide_after_ms) or not finished(view):
        return -1
    return float(view["at"] + hide_after_ms - now_ms)


def shown(view: View, now_ms: float, hide_after_ms: float) -> dict[str, Any]:
    return {"online": view["online"], "visible": visible(view, now_ms, hide_after_ms),
            "label": view["label"], "progress": view["progress"],
            "detail": view["error"] if view["failed"] else view["text"],
            "failed": view["failed"], "notice": view["notice"]}


# --- WallpaperLink.qml ------------------------------------------------------------------------


def now_ms() -> float:
    return time.time() * 1000  # Date.now(), the clock the hub's timestamp_ms also comes from


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def locate() -> str:
    """The Process of WallpaperLink.qml: sockcli's answer when it exits 0 with one, else the
    default path (sockcli missing, or saying no)."""
    try:
        done = subprocess.run(PATH_COMMAND, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    found = done.stdout.strip() if done is not None else ""
    if done is not None and done.returncode == 0 and found != "":
        return found
    return fallback_path(os.environ.get("XDG_RUNTIME_DIR"))


def follow(path: str, hide_after_ms: float) -> None:
    """Connect, read, and connect again RETRY_MS after each failure or end, forever."""
    view = initial()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            view = offline(view)
            emit("failed", reason=type(exc).__name__, **shown(view, now_ms(), hide_after_ms))
            time.sleep(RETRY_MS / 1000)
            continue
        with sock:
            # write(), then flush(); the hub may have closed it already (saying why first):
            # then there is that line to read, then the end.
            with contextlib.suppress(OSError):
                sock.sendall(FIRST_LINE.encode())
            view = online(view)
            emit("connected", **shown(view, now_ms(), hide_after_ms))
            view = read(sock, view, hide_after_ms)
        view = offline(view)
        emit("disconnected", **shown(view, now_ms(), hide_after_ms))
        time.sleep(RETRY_MS / 1000)


def read(sock: socket.socket, view: View, hide_after_ms: float) -> View:
    """Lines until the hub closes the connection; the hide timer meanwhile. What is left of
    an unfinished line at the end is dropped, as the Socket clears its buffer."""
    buffer = b""
    while True:
        left = hide_in(view, now_ms(), hide_after_ms)
        ready, _, _ = select.select([sock], [], [], left / 1000 if left >= 0 else None)
        if not ready:
            emit("hidden", **shown(view, now_ms(), hide_after_ms))
            continue
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return view
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            view = show(view, line)
            emit("line", line=line, **shown(view, now_ms(), hide_after_ms))


def replay(now: float, hide_after_ms: float) -> None:
    """Each line of stdin as it comes (split at newlines only, as the socket's lines are),
    and what the widget shows after it."""
    view = online(initial())
    for raw in sys.stdin.buffer:
        view = show(view, raw.removesuffix(b"\n").decode("utf-8", "replace"))
        print(json.dumps(shown(view, now, hide_after_ms)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hide-after", type=float, default=HIDE_AFTER_MS / 1000,
                        metavar="SECONDS", help="how long a finished run stays shown "
                        "(WallpaperLink's hideAfter) [default: %(default)s]")
    parser.add_argument("--replay", action="store_true",
                        help="read the hub's lines from stdin instead of its socket")
    parser.add_argument("--now", type=float, metavar="MS",
                        help="with --replay: the time (ms since the epoch) to show them at")
    args = parser.parse_args(argv)
    hide_after_ms = args.hide_after * 1000
    if args.replay:
        replay(now_ms() if args.now is None else args.now, hide_after_ms)
        return 0
    path = locate()
    emit("path", path=path)
    if path == "":
        print("check-widget.py: error: no socket path: sockcli is not on PATH and "
              "XDG_RUNTIME_DIR is not set", file=sys.stderr)
        return 69
    try:
        follow(path, hide_after_ms)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

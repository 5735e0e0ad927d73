#!/usr/bin/env bash
# wallpaper-listen.sh: the command of eww.yuck's `deflisten wallpaper`. It runs
# `sockcli listen EVENT` (which waits for a hub that is not running yet and survives hub
# restarts) and prints, for each message, one flat JSON object that the widget reads with
# {wallpaper.visible}, {wallpaper.progress}, ... flushed at once:
#   data  {"step":"resize","progress":25,"text":"resizing to 128x72"}
#      -> {"visible":true,"step":"resize","progress":25,"label":"resize 25%",
#          "tooltip":"resizing to 128x72","class":"running"}       "done" at 100
#   error {"step":"apply","error":"disk full"}
#      -> {"visible":true,"step":"apply","progress":75,"label":"apply failed",
#          "tooltip":"disk full","class":"error"}
# It starts hidden ("visible":false, class "idle") and hides again WALLPAPER_HIDE_AFTER
# seconds after a "done" or an "error" (default 10; 0 keeps it shown).
#
# Usage: wallpaper-listen.sh [EVENT]   (default: $WALLPAPER_EVENT, else wallpaper_change)
# Needs sockcli and python3 on PATH (no jq).
set -euo pipefail

EVENT=${1:-${WALLPAPER_EVENT:-wallpaper_change}}
HIDE_AFTER=${WALLPAPER_HIDE_AFTER:-10}

read -r -d '' TRANSFORM <<'PY' || true
import json, os, select, sys, time

hide_after = float(sys.argv[1])
HIDDEN = {"visible": False, "step": "", "progress": 0, "label": "", "tooltip": "",
          "class": "idle"}


def emit(state):
    sys.stdout.write(json.dumps(state, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def state_of(record, last):
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    step = str(data.get("step") or "")
    value = data.get("progress")
    progress = last
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        progress = max(0, min(100, int(value)))
    if record.get("message_type") == "error":
        reason = data.get("error") or data.get("text") or json.dumps(data, ensure_ascii=False)
        return {"visible": True, "step": step, "progress": progress,
                "label": f"{step or 'wallpaper'} failed", "tooltip": str(reason),
                "class": "error"}
    return {"visible": True, "step": step, "progress": progress,
            "label": f"{step} {progress}%".strip(), "tooltip": str(data.get("text") or ""),
            "class": "done" if progress >= 100 else "running"}


def main():
    fd, pending, hide_at, last = sys.stdin.fileno(), b"", None, 0
    emit(HIDDEN)
    while True:
        timeout = None if hide_at is None else max(0.0, hide_at - time.monotonic())
        if not select.select([fd], [], [], timeout)[0]:
            emit(HIDDEN)
            hide_at, last = None, 0
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            sys.exit("wallpaper-listen: sockcli listen ended")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("message_type") == "control":
                continue
            state = state_of(record, last)
            last = state["progress"] if state["class"] == "running" else 0
            emit(state)
            hide_at = None
            if state["class"] != "running" and hide_after > 0:
                hide_at = time.monotonic() + hide_after


try:
    main()
except (BrokenPipeError, KeyboardInterrupt):  # eww went away, or Ctrl-C
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
PY

# sockcli listen exits within half a second once its reader (python) is gone, and python
# exits when sockcli listen ends, so stopping python stops both.
sockcli listen "$EVENT" | python3 -c "$TRANSFORM" "$HIDE_AFTER" &
transform=$!
trap 'kill "$transform" 2>/dev/null || true; wait; exit 143' TERM HUP
trap 'kill "$transform" 2>/dev/null || true; wait; exit 130' INT
wait "$transform"

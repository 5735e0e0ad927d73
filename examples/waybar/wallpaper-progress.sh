#!/usr/bin/env bash
# wallpaper-progress.sh: a waybar custom module (return-type "json") that shows the progress
# of examples/wallpaper-pipeline.sh, or of anything else sending to the same event.
#
# It runs `sockcli listen EVENT` (which waits for a hub that is not running yet and survives
# hub restarts) and turns each message into one line of waybar JSON, flushed at once:
#   data  {"step":"palette","progress":50,"text":"extracting the palette"}
#      -> {"text":"palette 50%","tooltip":"wallpaper_change: extracting the palette (50%) ...",
#          "class":"running","percentage":50}            class "done" once progress is 100
#   error {"step":"palette","error":"no colours"}
#      -> {"text":"palette failed","tooltip":"...: no colours","class":"error","percentage":50}
# It starts with an "idle" line (empty text: waybar hides the module), and goes back to idle
# WALLPAPER_HIDE_AFTER seconds after a "done" or an "error" (default 10; 0 keeps it shown).
# Control messages are ignored. Text and tooltip are escaped for Pango markup.
#
# Usage: wallpaper-progress.sh [EVENT]   (default: $WALLPAPER_EVENT, else wallpaper_change)
# Needs sockcli and python3 on PATH (no jq). See config.jsonc next to it.
set -euo pipefail

EVENT=${1:-${WALLPAPER_EVENT:-wallpaper_change}}
HIDE_AFTER=${WALLPAPER_HIDE_AFTER:-10}

read -r -d '' TRANSFORM <<'PY' || true
import html, json, os, select, sys, time

event, hide_after = sys.argv[1], float(sys.argv[2])
IDLE = {"text": "", "tooltip": f"{event}: idle", "class": "idle", "percentage": 0}


def emit(shown):
    sys.stdout.write(json.dumps(shown, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def render(record, last):
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    step = str(data.get("step") or event)
    value = data.get("progress")
    percentage = last
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        percentage = max(0, min(100, int(value)))
    when = str(record.get("timestamp_iso", ""))[11:19]
    if record.get("message_type") == "error":
        reason = str(data.get("error") or data.get("text") or json.dumps(data, ensure_ascii=False))
        return {"text": html.escape(f"{step} failed", quote=False),
                "tooltip": html.escape(f"{event}: {step} failed at {when}: {reason}", quote=False),
                "class": "error", "percentage": percentage}
    text = str(data.get("text") or step)
    return {"text": html.escape(f"{step} {percentage}%", quote=False),
            "tooltip": html.escape(f"{event}: {text} ({percentage}%) at {when}", quote=False),
            "class": "done" if percentage >= 100 else "running", "percentage": percentage}


def main():
    fd, pending, hide_at, last = sys.stdin.fileno(), b"", None, 0
    emit(IDLE)
    while True:
        timeout = None if hide_at is None else max(0.0, hide_at - time.monotonic())
        if not select.select([fd], [], [], timeout)[0]:
            emit(IDLE)
            hide_at, last = None, 0
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            sys.exit("wallpaper-progress: sockcli listen ended")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("message_type") == "control":
                continue
            shown = render(record, last)
            last = shown["percentage"] if shown["class"] == "running" else 0
            emit(shown)
            hide_at = None
            if shown["class"] != "running" and hide_after > 0:
                hide_at = time.monotonic() + hide_after


try:
    main()
except (BrokenPipeError, KeyboardInterrupt):  # the bar went away, or Ctrl-C
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
PY

# sockcli listen exits within half a second once its reader (python) is gone, and python
# exits when sockcli listen ends, so stopping python stops both.
sockcli listen "$EVENT" | python3 -c "$TRANSFORM" "$EVENT" "$HIDE_AFTER" &
transform=$!
trap 'kill "$transform" 2>/dev/null || true; wait; exit 143' TERM HUP
trap 'kill "$transform" 2>/dev/null || true; wait; exit 130' INT
wait "$transform"

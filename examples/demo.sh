#!/usr/bin/env bash
# demo.sh (`make demo`): sockcli as a user runs it, in a private runtime directory.
#
#   sockcli serve wallpaper_change &              the hub                    [hub]
#   sockcli -v listen wallpaper_change &          a listener: JSON lines     [listener]
#   sockcli -v listen ... --format waybar &       a bar's listener: waybar   [waybar]
#   examples/wallpaper-pipeline.sh --delay 0.3    progress, then a failure   [pipeline]
#   sockcli list                                  the hubs, while all that runs
#
# Needs sockcli on PATH (`make demo` puts .venv/bin first). Everything it starts is stopped,
# and its temporary directory removed, when it ends, however it ends.
set -euo pipefail

EVENT=wallpaper_change
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PIPELINE=$HERE/wallpaper-pipeline.sh

say() { printf '%-10s %s\n' '[demo]' "$*"; }
# prefix TAG: copy stdin to stdout line by line, as the lines come, each behind TAG.
prefix() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do printf '%-10s %s\n' "$1" "$line"; done
}

command -v sockcli >/dev/null || { echo "demo: sockcli is not on PATH (run 'make demo')" >&2; exit 1; }

DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sockcli-demo.XXXXXX")
HUB='' LISTENER='' BAR='' RUN=''
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The pipeline first (it ends its sender), then the listener, then the hub.
  local pid
  for pid in "$RUN" "$LISTENER" "$BAR" "$HUB"; do
    if [[ -n $pid ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  wait # the prefixers end with their writers
  rm -rf "$DEMO_DIR"
  if ((status == 0)); then
    say "everything stopped; $DEMO_DIR removed"
  else
    say "failed (status $status); everything stopped; $DEMO_DIR removed"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private world: our own hubs' directory, no user settings, no cache of them.
unset "${!SOCKCLI_@}"
export XDG_RUNTIME_DIR=$DEMO_DIR/run XDG_CONFIG_HOME=$DEMO_DIR/config XDG_CACHE_HOME=$DEMO_DIR/cache
export WALLPAPER_STATE_DIR=$DEMO_DIR/wallpaper
mkdir -m 700 "$XDG_RUNTIME_DIR"
mkfifo "$DEMO_DIR/hub.log" "$DEMO_DIR/listener.out" "$DEMO_DIR/listener.err" \
  "$DEMO_DIR/bar.out" "$DEMO_DIR/bar.err"
say "private XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"

say "\$ sockcli serve $EVENT &"
prefix '[hub]' <"$DEMO_DIR/hub.log" &
sockcli serve "$EVENT" 2>"$DEMO_DIR/hub.log" &
HUB=$!

# relay_messages TAG PATTERN: a listener's lines behind TAG, until the one that matches
# PATTERN (its output for the control message that closes the demo).
relay_messages() {
  local line
  while IFS= read -r line; do
    printf '%-10s %s\n' "$1" "$line"
    if [[ $line == *"$2"* ]]; then return 0; fi
  done
}
# connected TAG ERR_FIFO: wait until that listener says (-v, on stderr) that it is connected,
# then relay the rest of its stderr behind TAG.
connected() {
  local fd line
  exec {fd}<"$2"
  while :; do
    if ! IFS= read -r -t 15 -u "$fd" line; then
      say "the $1 listener did not connect within 15 s"
      exit 1
    fi
    printf '%-10s %s\n' "$1" "$line"
    if [[ $line == *"listening to"* ]]; then break; fi
  done
  prefix "$1" <&"$fd" &
  exec {fd}<&-
}
say "\$ sockcli -v listen $EVENT &     (no need to wait for the hub: listen waits for it)"
relay_messages '[listener]' '"message_type": "control"' <"$DEMO_DIR/listener.out" &
MESSAGES=$!
sockcli -v listen "$EVENT" >"$DEMO_DIR/listener.out" 2>"$DEMO_DIR/listener.err" &
LISTENER=$!
# The same messages as a waybar module gets them (examples/waybar has the full line).
say "\$ sockcli -v listen $EVENT --format waybar &     (what a waybar custom module reads)"
relay_messages '[waybar]' '"class": "control"' <"$DEMO_DIR/bar.out" &
BAR_MESSAGES=$!
sockcli -v listen "$EVENT" --format waybar >"$DEMO_DIR/bar.out" 2>"$DEMO_DIR/bar.err" &
BAR=$!
# Start sending only once both listeners are connected.
connected '[listener]' "$DEMO_DIR/listener.err"
connected '[waybar]' "$DEMO_DIR/bar.err"

# clients_at_least N: whether the hub has N clients (besides `sockcli list` itself): the two
# listeners and the pipeline's sender.
clients_at_least() {
  sockcli list --json | python3 -c 'import json, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: no traceback
sys.exit(0 if any((h.get("clients") or 0) >= int(sys.argv[1]) for h in json.load(sys.stdin)) else 1)' "$1"
}

# run_pipeline ARGS...: the example pipeline in the background, its stderr prefixed; RUN=pid.
run_pipeline() {
  local log
  log=$(mktemp -u "$DEMO_DIR/pipeline.XXXXXX")
  mkfifo "$log"
  prefix '[pipeline]' <"$log" &
  bash "$PIPELINE" "$@" >"$log" 2>&1 &
  RUN=$!
}
# finish_pipeline: wait for it and return its exit status.
finish_pipeline() {
  local status=0
  wait "$RUN" || status=$?
  RUN=''
  return "$status"
}

say "\$ examples/wallpaper-pipeline.sh --delay 0.3 aurora     (one sockcli send --lines)"
run_pipeline --delay 0.3 aurora
deadline=$((SECONDS + 10))
until clients_at_least 3 || ((SECONDS >= deadline)); do :; done
say "\$ sockcli list     (while the pipeline sends: 3 clients, 2 listeners)"
sockcli list
status=0
finish_pipeline || status=$?
if ((status != 0)); then
  say "the pipeline failed (status $status)"
  exit 1
fi
say "the pipeline exited 0: the hub acknowledged every progress message"

say "\$ examples/wallpaper-pipeline.sh --delay 0.3 --fail palette aurora     (FAIL_STEP=palette)"
run_pipeline --delay 0.3 --fail palette aurora
status=0
finish_pipeline || status=$?
if ((status == 0)); then
  say "the pipeline should have failed"
  exit 1
fi
say "the pipeline exited $status after sending an error message (sockcli send --type error)"

say "\$ sockcli send --type control -d '{\"demo\":\"finished\"}' $EVENT"
sockcli send --type control -d '{"demo":"finished"}' "$EVENT"
wait "$MESSAGES" "$BAR_MESSAGES" # both listeners have printed every message up to this one
say "stopping the listeners and the hub"

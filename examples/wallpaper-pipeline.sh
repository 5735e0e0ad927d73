#!/usr/bin/env bash
# wallpaper-pipeline.sh: change the wallpaper in four steps (fetch, resize, palette, apply) and
# broadcast the progress to whoever listens: status bars, notifiers, other scripts.
#
#   sockcli serve wallpaper_change &            # once per session (or the systemd unit)
#   examples/wallpaper-pipeline.sh aurora       # run the pipeline, progress goes to the hub
#   sockcli listen wallpaper_change             # anywhere else: one JSON line per message
#
# Every step reports twice through ONE `sockcli send --lines` process (it reads JSON lines
# from a FIFO, sends each as it arrives, and exits 0 once the hub acknowledged all):
#   {"step":"resize","status":"running","progress":25,"wallpaper":"aurora","text":"..."}
#   {"step":"resize","status":"done","progress":50,"wallpaper":"aurora","text":"..."}
# The last "done" (progress 100) also carries the wallpaper's "palette" and "file". A step
# that fails is reported as an ERROR message (`sockcli send --type error`):
#   {"step":"palette","status":"failed","progress":50,"wallpaper":"aurora","error":"..."}
# With --stdout it sends nothing itself: it prints the same messages on stdout, one line each,
# in the line grammar of `sockcli serve EVENT --exec CMD` (a JSON object is a data message,
# `error {...}` an error message), so that the hub runs it as its producer:
#   sockcli serve wallpaper_change --exec 'examples/wallpaper-pipeline.sh --stdout aurora'
#
# The work is simulated with small real work (awk draws, scales and quantises a PPM image, no
# network), a few hundred milliseconds in all. Replace the step_* functions with curl, magick,
# swww, ... for the real thing.
#
# Usage: wallpaper-pipeline.sh [-e EVENT] [--delay SECONDS] [--fail STEP] [--stdout] [-q] [NAME]
#   NAME                 the wallpaper to make (default: aurora); any text, it is escaped
#   -e, --event EVENT    the hub's event        (WALLPAPER_EVENT, default: wallpaper_change)
#   --stdout             print the messages on stdout (for serve --exec) instead of sending
#   --delay SECONDS      sleep in each step, to watch the progress (STEP_DELAY, default: 0)
#   --fail STEP          make STEP fail, to see an error reported (FAIL_STEP)
#   -q, --quiet          no log lines on stderr
# Environment: WALLPAPER_STATE_DIR (where the wallpaper is installed, default
#   ${XDG_STATE_HOME:-~/.local/state}/wallpaper-pipeline), WALLPAPER_SIZE (default 128x72),
#   WALLPAPER_APPLY_CMD (a command run with the installed file, e.g. "swww img").
# Exit status: 0 done and every message acknowledged by the hub (printed, with --stdout); 1 a
#   step failed (after its error message was sent); 2 bad usage; otherwise sockcli send's
#   status (69: no hub for EVENT, 75: the hub went away before acknowledging).
set -euo pipefail

PROG=${0##*/}
EVENT=${WALLPAPER_EVENT:-wallpaper_change}
STEP_DELAY=${STEP_DELAY:-0}
FAIL_STEP=${FAIL_STEP:-}
STATE_DIR=${WALLPAPER_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/wallpaper-pipeline}
SIZE=${WALLPAPER_SIZE:-128x72}
QUIET=0
TO_STDOUT=0
STEPS=(fetch resize palette apply)

usage() { sed -n '/^# Usage:/,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p;}' "$0"; }
die_usage() { printf '%s: %s (see --help)\n' "$PROG" "$1" >&2; exit 2; }
log() { ((QUIET)) || printf '%s: %s\n' "$PROG" "$*" >&2; }

while (($#)); do
  case $1 in
    -e | --event) (($# >= 2)) || die_usage "$1 needs a value"; EVENT=$2; shift 2 ;;
    --delay) (($# >= 2)) || die_usage "$1 needs a value"; STEP_DELAY=$2; shift 2 ;;
    --fail) (($# >= 2)) || die_usage "$1 needs a value"; FAIL_STEP=$2; shift 2 ;;
    --stdout) TO_STDOUT=1; shift ;;
    -q | --quiet) QUIET=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die_usage "unknown option: $1" ;;
    *) break ;;
  esac
done
(($# <= 1)) || die_usage "one NAME at most"
NAME=${1:-aurora}
[[ $STEP_DELAY =~ ^[0-9]*\.?[0-9]+$ ]] || die_usage "--delay: not a number of seconds: $STEP_DELAY"
[[ $SIZE =~ ^([1-9][0-9]{0,3})x([1-9][0-9]{0,3})$ ]] || die_usage "WALLPAPER_SIZE: not WxH: $SIZE"
WIDTH=${BASH_REMATCH[1]} HEIGHT=${BASH_REMATCH[2]}
if [[ -n $FAIL_STEP && " ${STEPS[*]} " != *" $FAIL_STEP "* ]]; then
  die_usage "--fail: no step named '$FAIL_STEP' (steps: ${STEPS[*]})"
fi
if ((!TO_STDOUT)); then
  command -v sockcli >/dev/null || { printf '%s: sockcli is not on PATH\n' "$PROG" >&2; exit 127; }
fi

# --- JSON without jq --------------------------------------------------------------------------

# json_quote TEXT: REPLY=TEXT as a JSON string ("...", with \ " and control characters escaped).
json_quote() {
  local s=$1 out='' c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  if [[ $s == *[[:cntrl:]]* ]]; then # the rarer control characters, one by one
    for ((i = 0; i < ${#s}; i++)); do
      c=${s:i:1}
      if [[ $c == [[:cntrl:]] ]]; then printf -v c '\\u%04x' "'$c"; fi
      out+=$c
    done
    s=$out
  fi
  REPLY="\"$s\""
}

# --- the progress channel: one `sockcli send --lines` fed through a FIFO (or stdout) ----------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wallpaper.XXXXXXXX")
SENDER_PID=''
PROGRESS_FD=''
cleanup() { # on every exit: the sender gets the end of its stream, flushes and exits
  if [[ -n $PROGRESS_FD ]]; then exec {PROGRESS_FD}>&-; fi
  if [[ -n $SENDER_PID ]]; then wait "$SENDER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap ':' PIPE # a write to a sender that has gone fails (and is handled) instead of killing us

if ((TO_STDOUT)); then
  exec {PROGRESS_FD}>&1 # the hub reads our stdout: each line is a message
else
  mkfifo "$WORK/progress"
  sockcli send --lines "$EVENT" <"$WORK/progress" &
  SENDER_PID=$!
  exec {PROGRESS_FD}>"$WORK/progress"
fi

# close_sender: end the stream and return sockcli send's exit status (0: all acknowledged).
close_sender() {
  local status=0
  if [[ -n $PROGRESS_FD ]]; then
    exec {PROGRESS_FD}>&-
    PROGRESS_FD=''
    if [[ -n $SENDER_PID ]]; then
      wait "$SENDER_PID" || status=$?
      SENDER_PID=''
    fi
  fi
  return "$status"
}

sender_failed() {
  local status=0
  close_sender || status=$?
  ((status != 0)) || status=1
  log "the progress could not be delivered to the hub of '$EVENT' (sockcli send exited $status)"
  exit "$status"
}

# progress STEP STATUS PERCENT TEXT [EXTRA_MEMBERS]: one data message, as a JSON line.
progress() {
  local line
  json_quote "$1"; line="{\"step\":$REPLY"
  json_quote "$2"; line+=",\"status\":$REPLY,\"progress\":$3"
  json_quote "$NAME"; line+=",\"wallpaper\":$REPLY"
  json_quote "$4"; line+=",\"text\":$REPLY${5:+,$5}}"
  printf '%s\n' "$line" 1>&"$PROGRESS_FD" 2>/dev/null || sender_failed
}

# fail STEP PERCENT MESSAGE: the data messages so far are flushed (and acknowledged) first, so
# that listeners see them before the error, then the error goes out as an ERROR message.
fail() {
  local data status=0
  close_sender || status=$?
  json_quote "$1"; data="{\"step\":$REPLY,\"status\":\"failed\",\"progress\":$2"
  json_quote "$NAME"; data+=",\"wallpaper\":$REPLY"
  json_quote "$3"; data+=",\"error\":$REPLY}"
  log "$1 failed: $3"
  if ((TO_STDOUT)); then
    printf 'error %s\n' "$data"
  elif ! sockcli send --type error -d "$data" "$EVENT"; then
    log "the error could not be reported to the hub of '$EVENT'"
  fi
  ((status == 0)) || log "some progress was not delivered (sockcli send exited $status)"
  exit 1
}

# --- the steps: each runs in a subshell with errexit, its stderr kept for the error message ----

SEED=$(($(cksum <<<"$NAME" | cut -d' ' -f1) % 256))
FILE=$(tr -c 'A-Za-z0-9._-' '_' <<<"$NAME" | cut -c1-64)
FILE=${FILE%_} # tr turned the final newline into _
SRC_W=256 SRC_H=144

step_fetch() { # "download" the image: drawn by awk into a .part file, checked, then renamed
  awk -v w="$SRC_W" -v h="$SRC_H" -v seed="$SEED" 'BEGIN {
    printf "P3\n%d %d\n255\n", w, h
    for (y = 0; y < h; y++) {
      line = ""
      for (x = 0; x < w; x++) {
        r = int(x * 255 / (w - 1))
        g = int((y * 255 / (h - 1) + seed) % 256)
        b = int(((x + 2 * y) + 3 * seed) % 256)
        line = line r " " g " " b " "
      }
      print line
    }
  }' >"$WORK/$FILE.ppm.part"
  [[ $(head -c 2 "$WORK/$FILE.ppm.part") == P3 ]] || { echo "downloaded file is not a PPM image" >&2; exit 1; }
  mv "$WORK/$FILE.ppm.part" "$WORK/source.ppm"
}

step_resize() { # box filter down to WIDTHxHEIGHT
  awk -v tw="$WIDTH" -v th="$HEIGHT" '
    { for (i = 1; i <= NF; i++) tok[n++] = $i }
    END {
      if (tok[0] != "P3") { print "not a P3 image" > "/dev/stderr"; exit 1 }
      w = tok[1]; h = tok[2]
      if (tw > w || th > h) { printf "cannot enlarge %dx%d to %dx%d\n", w, h, tw, th > "/dev/stderr"; exit 1 }
      printf "P3\n%d %d\n255\n", tw, th
      for (ty = 0; ty < th; ty++) {
        y0 = int(ty * h / th); y1 = int((ty + 1) * h / th)
        line = ""
        for (tx = 0; tx < tw; tx++) {
          x0 = int(tx * w / tw); x1 = int((tx + 1) * w / tw)
          r = g = b = 0
          for (y = y0; y < y1; y++) for (x = x0; x < x1; x++) {
            p = 4 + 3 * (y * w + x); r += tok[p]; g += tok[p + 1]; b += tok[p + 2]
          }
          c = (y1 - y0) * (x1 - x0)
          line = line int(r / c) " " int(g / c) " " int(b / c) " "
        }
        print line
      }
    }' "$WORK/source.ppm" >"$WORK/resized.ppm"
}

step_palette() { # the five most frequent colours, quantised to 3 bits a channel
  awk '
    NR == 1 { next }
    NR == 2 || NR == 3 { next }
    { for (i = 1; i + 2 <= NF; i += 3)
        count[sprintf("#%02x%02x%02x", int($i / 32) * 32 + 16, int($(i + 1) / 32) * 32 + 16,
                      int($(i + 2) / 32) * 32 + 16)]++ }
    END { for (c in count) print count[c], c }' "$WORK/resized.ppm" |
    sort -k1,1nr -k2,2 | awk 'NR <= 5 { print $2 }' >"$WORK/palette"
  [[ -s $WORK/palette ]] || { echo "no colours found" >&2; exit 1; }
}

step_apply() { # install atomically where the desktop picks it up, then tell it if asked to
  mkdir -p "$STATE_DIR"
  cp "$WORK/resized.ppm" "$STATE_DIR/.current.ppm.tmp"
  mv -f "$STATE_DIR/.current.ppm.tmp" "$STATE_DIR/current.ppm"
  cp "$WORK/palette" "$STATE_DIR/palette"
  if [[ -n ${WALLPAPER_APPLY_CMD:-} ]]; then
    local -a cmd
    read -ra cmd <<<"$WALLPAPER_APPLY_CMD"
    "${cmd[@]}" "$STATE_DIR/current.ppm"
  fi
}

declare -A RUNNING=(
  [fetch]="fetching $NAME"
  [resize]="resizing to ${WIDTH}x$HEIGHT"
  [palette]="extracting the palette"
  [apply]="applying $NAME"
)
declare -A DONE=(
  [fetch]="fetched $NAME (${SRC_W}x$SRC_H)"
  [resize]="resized to ${WIDTH}x$HEIGHT"
  [palette]="extracted the palette"
  [apply]="wallpaper set: $NAME"
)

# run_step INDEX NAME: report, run, report; a failure ends the script through fail.
run_step() {
  local index=$1 step=$2 total=${#STEPS[@]} status extra=''
  local before=$((100 * index / total)) after=$((100 * (index + 1) / total))
  progress "$step" "running" "$before" "${RUNNING[$step]}"
  log "$step: ${RUNNING[$step]}"
  set +e # errexit applies inside the subshell only: its first failing command ends the step
  (
    set -e
    exec {PROGRESS_FD}>&- # nothing a step starts may keep the progress stream open
    if [[ $FAIL_STEP == "$step" ]]; then
      echo "injected failure (FAIL_STEP=$step)" >&2
      exit 1
    fi
    "step_$step"
    sleep "$STEP_DELAY"
  ) 2>"$WORK/$step.log" >&2 # what a step prints goes to its log, never to the messages
  status=$?
  set -e
  if ((status != 0)); then
    local reason
    reason=$(grep -v '^[[:space:]]*$' "$WORK/$step.log" | tail -n 1 || true)
    fail "$step" "$before" "${reason:-$step exited with status $status}"
  fi
  if [[ $step == apply ]]; then
    local colours='' c
    while IFS= read -r c; do colours+=${colours:+,}\"$c\"; done <"$WORK/palette"
    json_quote "$STATE_DIR/current.ppm"
    extra="\"palette\":[$colours],\"file\":$REPLY"
  fi
  progress "$step" "done" "$after" "${DONE[$step]}" "$extra"
}

for i in "${!STEPS[@]}"; do
  run_step "$i" "${STEPS[$i]}"
done

status=0
close_sender || status=$?
if ((status != 0)); then
  log "the progress could not be delivered to the hub of '$EVENT' (sockcli send exited $status)"
  exit "$status"
fi
log "done: $STATE_DIR/current.ppm"

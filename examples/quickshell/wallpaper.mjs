// What the wallpaper widget knows, as a JavaScript module without QML in it: where the hub's
// JSON-lines socket is, the line it writes first, and what each line from the hub makes it show.
// WallpaperLink.qml does the I/O (Process, Socket, Timer) and calls these functions; keeping
// them here means check-widget.py can mirror them exactly, and the tests import this very
// module with node next to it (tests/test_examples_lines.py), so that the two cannot drift
// apart. QML imports it as `import "wallpaper.mjs" as Wallpaper` (an ECMAScript module).
//
// A "view" is a plain object; show() and the others return a changed copy (never change theirs),
// so that a QML `property var view` notices every change.

export const EVENT = "wallpaper_change";

// Data and error messages only (control messages are not for a widget), and the hub's last
// message of each type at once (last=1), so that a widget that starts, or reconnects, shows
// the current state instead of nothing until the next message.
export const FIRST_LINE = "#subscribe types=data,error last=1\n";

// How the widget asks where the socket is (sockcli knows the socket_dir setting). Without
// sockcli on the shell's PATH: fallbackPath(), the default socket_dir of a session.
export const PATH_COMMAND = ["sockcli", "path", EVENT, "--lines"];

// After a failed connection, or once the hub closed it: wait this long, then connect again.
export const RETRY_MS = 1000;

// A finished run ("done" at 100 %) stays shown this long after the hub stamped it, then the
// widget hides; a running step or a failure stays until the next message.
export const HIDE_AFTER_MS = 10000;

export function fallbackPath(runtimeDir) {
    if (typeof runtimeDir !== "string" || runtimeDir === "")
        return "";
    return runtimeDir + "/sockcli/" + EVENT + ".lines.sock";
}

export function initial() {
    return {
        online: false, step: "", status: "", progress: 0, text: "", error: "",
        failed: false, notice: "", at: 0, label: ""
    };
}

function copy(view) {
    var next = {};
    for (var key in view)
        next[key] = view[key];
    return next;
}

function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
}

function text(value) {
    return typeof value === "string" ? value : "";
}

// A progress in whole percent, 0 to 100; `fallback` when the message has none.
function percent(value, fallback) {
    if (typeof value !== "number" || !isFinite(value))
        return fallback;
    return Math.max(0, Math.min(100, Math.floor(value)));
}

function labelOf(view) {
    var parts = [];
    if (view.step !== "")
        parts.push(view.step);
    parts.push(view.progress + "%");
    if (view.status !== "")
        parts.push(view.status);
    return parts.join(" ");
}

// Connected (the first line is written): the hub's notice of an earlier connection is over.
export function online(view) {
    var next = copy(view);
    next.online = true;
    next.notice = "";
    return next;
}

// The connection failed or ended: keep what was shown, marked as old.
export function offline(view) {
    var next = copy(view);
    next.online = false;
    return next;
}

// One line from the hub (without its "\n"): a message, the same line as
// `sockcli listen --json` prints, or the hub's own error line {"error", "reason", ...}.
export function show(view, line) {
    var next = copy(view);
    var record;
    try {
        record = JSON.parse(line);
    } catch (e) {
        next.notice = "the hub sent a line that is not JSON";
        return next;
    }
    if (!isObject(record)) {
        next.notice = "the hub sent a line that is not a JSON object";
        return next;
    }
    if (record.message_type === undefined) {
        // The hub about this connection ("fatal": it closes it next, and the widget
        // reconnects), or about a line the widget wrote (it writes none but the first).
        next.notice = text(record.reason) || text(record.error) || "the hub sent an unknown line";
        return next;
    }
    var type = record.message_type;
    if (type !== "data" && type !== "error")
        return next;  // not asked for (types=data,error): nothing to show
    var data = isObject(record.data) ? record.data : {};
    if (type === "data") {
        next.step = text(data.step);
        next.status = text(data.status);
        next.text = text(data.text);
        next.error = "";
        next.failed = false;
    } else {
        next.step = text(data.step) || view.step;
        next.status = text(data.status) || "failed";
        next.text = "";
        next.error = text(data.error) || "error";
        next.failed = true;
    }
    next.progress = percent(data.progress, view.progress);
    next.at = typeof record.timestamp_ms === "number" ? record.timestamp_ms : 0;
    next.notice = "";
    next.label = labelOf(next);
    return next;
}

function finished(view) {
    return !view.failed && view.status === "done" && view.progress >= 100;
}

export function visible(view, nowMs, hideAfterMs) {
    if (view.label === "")
        return false;
    return !finished(view) || nowMs < view.at + hideAfterMs;
}

// Milliseconds until a shown view hides itself, or -1 when it stays.
export function hideIn(view, nowMs, hideAfterMs) {
    if (!visible(view, nowMs, hideAfterMs) || !finished(view))
        return -1;
    return view.at + hideAfterMs - nowMs;
}

// What the widget shows of a view: what check-widget.py prints, key for key.
export function shown(view, nowMs, hideAfterMs) {
    return {
        online: view.online,
        visible: visible(view, nowMs, hideAfterMs),
        label: view.label,
        progress: view.progress,
        detail: view.failed ? view.error : view.text,
        failed: view.failed,
        notice: view.notice
    };
}

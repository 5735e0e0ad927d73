// The connection to the wallpaper_change hub's JSON-lines socket, one for the whole shell (every
// screen's widget binds to its `view` and `shown`). No script and no sockcli process stays
// running: quickshell's Socket reads the hub's lines itself.
//
// 1. At start, `sockcli path wallpaper_change --lines` says where the socket is (a Process that
//    exits at once); without sockcli on PATH, $XDG_RUNTIME_DIR/sockcli/wallpaper_change.lines.sock.
// 2. A Socket connects to it and writes Wallpaper.FIRST_LINE: data and error messages, the
//    hub's last ones first. Each line the hub sends (SplitParser, "\n") goes to Wallpaper.show.
// 3. When the connection fails (no hub yet) or ends (the hub stopped, or was restarted), the
//    widget keeps what it showed, marked offline, and connects again Wallpaper.RETRY_MS later.
//
// A quickshell Socket that failed to connect cannot be told to try again (it keeps its failed
// QLocalSocket and ignores `connected = true`), so each attempt is a new Socket made from the
// component below, destroyed when that attempt is over.
import QtQuick
import Quickshell
import Quickshell.Io
import "wallpaper.mjs" as Wallpaper

Scope {
    id: link

    // The socket's path, once found; and the view (wallpaper.mjs) the widgets show.
    property string path: ""
    property var view: Wallpaper.initial()
    // Whether a widget is shown now: the view's visibility, kept current by hideTimer.
    property bool shown: false
    // How long a finished run stays shown.
    property int hideAfter: Wallpaper.HIDE_AFTER_MS

    property var socket: null
    property int pathStatus: -1  // the exit status of `sockcli path`

    function refresh() {
        const now = Date.now();
        link.shown = Wallpaper.visible(link.view, now, link.hideAfter);
        const left = Wallpaper.hideIn(link.view, now, link.hideAfter);
        hideTimer.stop();
        if (left >= 0) {
            hideTimer.interval = Math.max(1, left);
            hideTimer.start();
        }
    }

    function receive(line) {
        link.view = Wallpaper.show(link.view, line);
        link.refresh();
    }

    function open() {
        if (link.path === "") {
            console.warn("wallpaper: no socket path: sockcli is not on PATH and "
                + "XDG_RUNTIME_DIR is not set");
            return;
        }
        const attempt = socketComponent.createObject(link, { path: link.path });
        link.socket = attempt;
        attempt.connected = true;
    }

    // This attempt is over (failed, or its connection ended): forget it, try again later.
    function retire(attempt) {
        if (attempt !== link.socket)
            return;  // already retired (an error, then the disconnection it causes)
        link.socket = null;
        attempt.destroy();
        link.view = Wallpaper.offline(link.view);
        link.refresh();
        retryTimer.start();
    }

    Process {
        id: locate
        command: Wallpaper.PATH_COMMAND
        running: true
        stdout: StdioCollector { id: located }
        onExited: (exitCode, exitStatus) => link.pathStatus = exitCode
        // Also when sockcli could not be started at all (no `exited` then).
        onRunningChanged: {
            if (running || link.path !== "")
                return;
            const found = located.text.trim();
            link.path = link.pathStatus === 0 && found !== ""
                ? found : Wallpaper.fallbackPath(Quickshell.env("XDG_RUNTIME_DIR"));
            console.info("wallpaper: reading " + link.path);
            link.open();
        }
    }

    Component {
        id: socketComponent

        Socket {
            id: attempt

            parser: SplitParser {
                onRead: line => link.receive(line)
            }
            onConnectedChanged: {
                if (connected) {
                    attempt.write(Wallpaper.FIRST_LINE);
                    attempt.flush();
                    link.view = Wallpaper.online(link.view);
                    link.refresh();
                } else {
                    link.retire(attempt);
                }
            }
            onError: link.retire(attempt)
        }
    }

    Timer {
        id: retryTimer
        interval: Wallpaper.RETRY_MS
        onTriggered: link.open()
    }

    Timer {
        id: hideTimer
        onTriggered: link.refresh()
    }
}

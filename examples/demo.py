"""`make demo`: a hub, a listener and a sender in three processes, progress flowing between them.

Run as ``python examples/demo.py``; it starts the other two roles as subprocesses of itself
(``demo.py hub`` / ``demo.py listen``), sends a progress sequence, and cleans up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import sockcli
from sockcli import MessageType, SocketMessage

EVENT = "wallpaper_change"


def run_hub() -> None:
    hub = sockcli.UnixSocketServer(EVENT)
    signal.signal(signal.SIGTERM, lambda *_: hub.stop())
    hub.start()  # returns once the hub accepts connections
    print(f"[hub]      serving {EVENT!r} on {hub.socket_path}", flush=True)
    while hub.is_running():
        signal.pause()
    print("[hub]      stopped, socket removed", flush=True)


def run_listener() -> None:
    with sockcli.create_client("unix", EVENT, name="demo-bar") as client:
        print("[listener] connected, waiting for messages", flush=True)
        for message in client.receive_iter():
            print(f"[listener] {json.dumps(message.as_dict())}", flush=True)
            if message.message_type is MessageType.CONTROL:
                return


def run_sender() -> None:
    steps = ["download", "resize", "palette", "apply"]
    with sockcli.create_client("unix", EVENT, subscribe=False) as client:
        for i, step in enumerate(steps, 1):
            percent = round(100 * i / len(steps))
            client.send(SocketMessage(EVENT, data={"step": step, "progress": percent}))
            print(f"[sender]   sent {step} {percent}% (acknowledged by the hub)", flush=True)
            time.sleep(0.3)
        client.send(SocketMessage(EVENT, message_type=MessageType.ERROR,
                                  data={"step": "notify", "error": "no notification daemon"}))
        print("[sender]   sent an error message", flush=True)
        client.send(SocketMessage(EVENT, message_type=MessageType.CONTROL,
                                  data={"state": "done"}))


def main() -> int:
    env = dict(os.environ, XDG_RUNTIME_DIR=tempfile.mkdtemp(prefix="sockcli-demo-"))
    os.environ.update(env)
    me = [sys.executable, __file__]
    hub = subprocess.Popen([*me, "hub"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert hub.stdout is not None
        print(hub.stdout.readline(), end="")  # the hub says where it listens once it does
        listener = subprocess.Popen([*me, "listen"], env=env)
        with sockcli.UnixSocketClient(EVENT, subscribe=False) as probe:
            # Start sending only once the listener is connected, so that it sees everything.
            while probe.stats()["subscribers"] < 1:
                time.sleep(0.05)
        run_sender()
        listener.wait(timeout=10)
    finally:
        hub.send_signal(signal.SIGTERM)
        out, _ = hub.communicate(timeout=10)
        print(out, end="")
    left = os.listdir(os.path.join(env["XDG_RUNTIME_DIR"], "sockcli"))
    print(f"[demo]     done; files left in the runtime directory: {left or 'none'}")
    return 0


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "main"
    if role == "hub":
        run_hub()
    elif role == "listen":
        run_listener()
    else:
        sys.exit(main())

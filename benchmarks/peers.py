"""The peers sockcli is compared with, where installed: mosquitto (an MQTT broker with its
mosquitto_pub / mosquitto_sub clients) and ncat --broker (a byte relay in C), plus socat as a
one-shot sender. Each runs on 127.0.0.1 on a free port the harness picks, inside the sandbox,
and is stopped with it. Nothing here is required: a missing tool becomes a row that says how
to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from common import Sandbox, alive, free_port, tcp_listening, wait_until

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MOSQUITTO_MISSING = "not installed (apt-get install mosquitto mosquitto-clients)"
NCAT_MISSING = "not installed (apt-get install ncat)"
SOCAT_MISSING = "not installed (apt-get install socat)"


def which(name: str) -> str | None:
    """A tool's path; mosquitto lives in /usr/sbin, which a user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path=_SBIN_PATH)


def start_mosquitto(box: Sandbox, exe: str) -> tuple[subprocess.Popen[Any], int]:
    """A mosquitto broker bound to 127.0.0.1 only, anonymous, no persistence."""
    port = free_port()
    conf = box.path(f"mosquitto-{port}.conf")
    # Started by root, mosquitto would switch to its own user, and changing credentials
    # clears the parent-death signal that stops it if the harness is killed: stay root.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest file {box.path(f'mosquitto-{port}.log')}\n{user}")
    proc = box.spawn([exe, "-c", str(conf)], name="mosquitto")
    wait_until(lambda: alive(proc, "mosquitto") and tcp_listening(port), 10.0, "mosquitto")
    return proc, port


def start_ncat_broker(box: Sandbox, exe: str,
                      max_conns: int = 2000) -> tuple[subprocess.Popen[Any], int]:
    """``ncat --broker`` on 127.0.0.1: every byte a client sends goes to every other client."""
    port = free_port()
    proc = box.spawn([exe, "--broker", "--listen", "127.0.0.1", str(port), "--max-conns",
                      str(max_conns)], name="ncat-broker")
    wait_until(lambda: alive(proc, "ncat --broker") and tcp_listening(port), 10.0,
               "ncat --broker")
    return proc, port

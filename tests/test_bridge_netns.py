"""The MQTT bridge between two network namespaces (issue 13): the nearest thing to two machines
one test host has.

Two namespaces joined by a veth pair (10.231.0.1 and 10.231.0.2); the broker and hub A in the
first, hub B in the second, so B reaches the broker over the veth link only, never loopback.
The hubs' Unix sockets are files, reachable from every namespace: listeners, senders and
``sockcli list`` run here. Needs root and a working ``ip netns``; skipped with the reason
elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clitools import Cli
from tests.helpers import short_tmp_dir
from tests.mqttbroker import Broker, require_mosquitto
from tests.test_bridge import Machine, numbers

pytestmark = pytest.mark.timeout(60)

BROKER_ADDRESS = "10.231.0.1"
OTHER_ADDRESS = "10.231.0.2"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """Two fresh network namespaces joined by a veth pair, deleted at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2) to make network namespaces")
    tag = uuid.uuid4().hex[:8]
    names = (f"skbr-{tag}-a", f"skbr-{tag}-b")
    made: list[str] = []
    try:
        for name in names:
            done = _ip("netns", "add", name)
            if done.returncode != 0:
                pytest.skip(f"ip netns add does not work here: {done.stderr.strip()}")
            made.append(name)
        done = _ip("netns", "exec", names[0], "true")
        if done.returncode != 0:
            pytest.skip(f"ip netns exec does not work here: {done.stderr.strip()}")
        done = _ip("link", "add", "veth-a", "netns", names[0], "type", "veth",
                   "peer", "name", "veth-b", "netns", names[1])
        if done.returncode != 0:
            pytest.skip(f"cannot make a veth pair here: {done.stderr.strip()}")
        for name, dev, address in ((names[0], "veth-a", BROKER_ADDRESS),
                                   (names[1], "veth-b", OTHER_ADDRESS)):
            for args in (("addr", "add", f"{address}/24", "dev", dev),
                         ("link", "set", dev, "up"), ("link", "set", "lo", "up")):
                done = _ip("-n", name, *args)
                assert done.returncode == 0, done.stderr
        yield names
    finally:
        for name in made:
            _ip("netns", "del", name)


def test_two_hubs_in_two_namespaces(namespaces: tuple[str, str], tmp_path: Path) -> None:
    require_mosquitto()
    pytest.importorskip("paho.mqtt.client", reason="the bridge needs paho-mqtt: "
                        "pip install -e '.[mqtt]'")
    ns_a, ns_b = namespaces
    broker = Broker(tmp_path / "broker", host=BROKER_ADDRESS, port=1883,
                    prefix=["ip", "netns", "exec", ns_a])
    machines = [Machine(Cli(short_tmp_dir()), name) for name in ("A", "B")]
    try:
        broker.start()
        a, b = machines
        a.serve(broker.url, prefix=["ip", "netns", "exec", ns_a])
        b.serve(broker.url, prefix=["ip", "netns", "exec", ns_b])
        a.wait_sees(b)
        b.wait_sees(a)
        inbox_a, inbox_b = a.listen(), b.listen()
        a.send(range(1, 11))
        b.send(range(1, 11))
        a.send_end()
        b.send_end()
        for inbox in (inbox_a, inbox_b):
            got = inbox.wait_ended("A", "B")
            assert numbers(got, "A") == numbers(got, "B") == list(range(1, 11))
            assert len(got) == 22
    finally:
        for machine in machines:
            machine.cli.cleanup()
        broker.close()

"""The MQTT bridge end to end (issue 13): real mosquitto brokers (tests/mqttbroker.py), real
``sockcli serve EVENT --bridge URL`` hubs, real listeners and senders.

Two "machines" are two :class:`~tests.clitools.Cli` environments: two socket directories, two
settings directories, so two hubs of the same event with two hub ids, as on two hosts. Every
wait is on something observable: the bridge's figures in ``sockcli list --json`` (its state,
the remote hubs it has seen, its counts), the lines a listener prints, the lines
``mosquitto_sub`` prints, the broker's log and database. Exactly-once is checked with an end
marker per sender: a listener has everything once it has every sender's marker (each sender's
messages arrive in order), and then it must hold each message exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import SOCKCLI, Cli, error_line, read_line, stop, strip_ansi
from tests.helpers import short_tmp_dir
from tests.mqttbroker import PASSWORD, USERNAME, Broker, Brokers, require_mosquitto

pytestmark = pytest.mark.timeout(60)

EVENT = "E"


# -- what a listener prints ---------------------------------------------------------------------


class Inbox:
    """The messages a ``sockcli listen --json`` prints, read by a thread as they come (a
    listener whose stdout pipe is full would stop reading its hub), and waited on."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.messages: list[dict[str, Any]] = []
        self._closed = False
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    message = {"not json": line}
                with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
        except ValueError:  # closed at teardown
            pass
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], what: str,
             timeout: float = 30.0) -> list[dict[str, Any]]:
        """The messages so far, once ``predicate`` holds for them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    why = "the listener exited" if self._closed else f"timed out ({timeout} s)"
                    raise AssertionError(f"{why} waiting for {what}; it has "
                                         f"{len(self.messages)} messages, the last: "
                                         f"{self.messages[-3:]}")
                self._changed.wait(left)
            return list(self.messages)

    def wait_ended(self, *senders: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The messages so far, once the end marker of every one of ``senders`` is in."""
        return self.wait(lambda got: all(ended(got, s) for s in senders),
                         f"the end markers of {', '.join(senders)}", timeout)


def numbers(messages: Iterable[dict[str, Any]], sender: str) -> list[int]:
    """The ``n`` of the numbered messages of ``sender``, in the order they came."""
    return [m["data"]["n"] for m in messages
            if m.get("data", {}).get("from") == sender and "n" in m["data"]]


def ended(messages: Iterable[dict[str, Any]], sender: str) -> bool:
    return any(m.get("data") == {"from": sender, "end": True} for m in messages)


def numbered(sender: str, ns: Iterable[int]) -> str:
    """``send --lines`` input: one ``{"from": sender, "n": n}`` per line."""
    return "".join(json.dumps({"from": sender, "n": n}) + "\n" for n in ns)


# -- a machine: a Cli, its bridged hub, its listeners -------------------------------------------


def poll(fetch: Callable[[], Any], predicate: Callable[[Any], Any], what: str,
         timeout: float = 20.0) -> Any:
    """``fetch()`` again and again until ``predicate`` holds for what it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                 f"the last value: {value}")
        time.sleep(0.05)


class Machine:
    """One "machine": its own socket directory, settings and environment (a :class:`Cli`),
    and there the bridged hub of :data:`EVENT`."""

    def __init__(self, cli: Cli, name: str) -> None:
        self.cli = cli
        self.name = name
        self.hub: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}
        self._hub_id: str | None = None

    def serve(self, url: str, *, env: dict[str, str] | None = None, connected: bool = True,
              prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
        """Start ``sockcli serve E --bridge URL`` (under the command ``prefix``: ``ip netns
        exec NS``); by default, wait until it is connected."""
        self.env = dict(env or {})
        if prefix:
            self.hub = subprocess.Popen(
                [*prefix, SOCKCLI, "serve", EVENT, "--bridge", url], text=True,
                env={**self.cli.env, **self.env}, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.cli.procs.append(self.hub)
            line = read_line(self.hub, "stderr", 15)
            assert "serving" in line, f"serve did not start: {line!r}"
        else:
            self.hub = self.cli.serve(EVENT, "--bridge", url, env=self.env)
        if connected:
            self.wait_connected()
        return self.hub

    def row(self) -> dict[str, Any]:
        """The hub's row in ``sockcli list --json``."""
        rows = [r for r in self.cli.list_json() if r["event_name"] == EVENT]
        assert len(rows) == 1, rows
        return rows[0]

    def figures(self) -> dict[str, Any]:
        """The bridge's figures (state, url, hub_id, pending, published, ...)."""
        row = self.row()
        assert isinstance(row.get("bridge"), dict), f"no bridge figures in {row}"
        figures: dict[str, Any] = row["bridge"]
        return figures

    def wait_figures(self, predicate: Callable[[dict[str, Any]], Any], what: str,
                     timeout: float = 20.0) -> dict[str, Any]:
        figures: dict[str, Any] = poll(self.figures, predicate, f"{self.name}: {what}",
                                       timeout)
        return figures

    def wait_connected(self, timeout: float = 20.0) -> dict[str, Any]:
        figures = self.wait_figures(lambda f: f["state"] == "connected", "connected", timeout)
        self._hub_id = self._hub_id or str(figures["hub_id"])
        return figures

    @property
    def hub_id(self) -> str:
        """The bridge's hub id, as its figures first said (so that it is known while the hub
        is stopped, frozen or dead: stable by design, checked by the presence test)."""
        if self._hub_id is None:
            self._hub_id = str(self.figures()["hub_id"])
        return self._hub_id

    def wait_sees(self, *others: Machine, state: str = "online",
                  timeout: float = 20.0) -> dict[str, Any]:
        """Wait until this hub's bridge has seen the presence of each of ``others`` as
        ``state``."""
        ids = {other.hub_id for other in others}
        names = ", ".join(f"{other.name} ({other.hub_id})" for other in others)
        return self.wait_figures(
            lambda f: all(f["remote_hubs"].get(i) == state for i in ids),
            f"{names} seen {state}", timeout)

    def listen(self, *args: str) -> Inbox:
        """A ``sockcli listen E --json`` connected to this hub."""
        return Inbox(self.cli.listen(EVENT, "--json", *args))

    def send(self, ns: Iterable[int], *, type: str = "data") -> None:
        """``send --lines`` of numbered messages; every one acknowledged by the local hub."""
        done = self.cli.run("send", EVENT, "--lines", "-t", type, input=numbered(self.name, ns),
                            timeout=60)
        assert done.returncode == 0, done.stderr

    def send_data(self, data: dict[str, Any], *, type: str = "data") -> None:
        done = self.cli.run("send", EVENT, "-t", type, "-d", json.dumps(data))
        assert done.returncode == 0, done.stderr

    def send_end(self) -> None:
        """This sender's end marker: after all its other messages, everywhere."""
        self.send_data({"from": self.name, "end": True})


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    """``brokers(kind)``: a started mosquitto (anonymous, password or tls), stopped at the
    end."""
    require_mosquitto()
    made = Brokers(tmp_path)
    yield made
    made.close()


@pytest.fixture
def machines(brokers: Brokers) -> Iterator[Callable[[str], Machine]]:
    """``machines(name)``: a new machine. Its hub and listeners are stopped before the brokers
    (this fixture needs ``brokers``), so that bridges say offline to a broker still there."""
    pytest.importorskip("paho.mqtt.client", reason="the bridge needs paho-mqtt: "
                        "pip install -e '.[mqtt]'")
    made: list[Machine] = []

    def make(name: str) -> Machine:
        machine = Machine(Cli(short_tmp_dir()), name)
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.cli.cleanup()


def bridged(broker: Broker, machines: Callable[[str], Machine], *names: str,
            env: dict[str, str] | None = None) -> list[Machine]:
    """Machines of ``names``, each serving a hub bridged to ``broker``, each having seen every
    other's presence (so each has subscribed to the others' messages)."""
    made = [machines(name) for name in names]
    for machine in made:
        machine.serve(broker.url, env=env)
    for machine in made:
        others = [other for other in made if other is not machine]
        if others:
            machine.wait_sees(*others)
    return made


def hub_id_of(machine: Machine) -> str:
    """The hub id the design gives: the host name, and 8 hex digits of the socket directory's
    real path and the event."""
    digest = hashlib.sha256(
        f"{os.path.realpath(machine.cli.socket_dir)}\0{EVENT}".encode()).hexdigest()
    return f"{socket.gethostname()}-{digest[:8]}"


# -- two machines -------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_two_machines_share_1000_messages_each_way(brokers: Brokers, machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B")
    inbox_a, inbox_b = a.listen(), b.listen()
    count = 1000

    senders = []
    for machine in (a, b):  # both ways at once
        proc = machine.cli.popen("send", EVENT, "--lines", stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(numbered(machine.name, range(1, count + 1)))
        proc.stdin.close()
        senders.append(proc)
    for proc in senders:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    a.send_end()
    b.send_end()

    every = list(range(1, count + 1))
    for inbox in (inbox_a, inbox_b):
        got = inbox.wait_ended("A", "B", timeout=60)
        assert numbers(got, "A") == every
        assert numbers(got, "B") == every
        assert len(got) == 2 * count + 2, "a message arrived twice, or one that was not sent"
        assert {(m["event_name"], m["message_type"]) for m in got} == {(EVENT, "data")}
    # The bridge carries the sender's timestamps: the same message has the same ones on both.
    for sender in ("A", "B"):
        stamps = [{m["data"]["n"]: (m["timestamp_ms"], m["timestamp_iso"])
                   for m in inbox.messages if m["data"].get("from") == sender and "n" in m["data"]}
                  for inbox in (inbox_a, inbox_b)]
        assert stamps[0] == stamps[1]

    for machine in (a, b):
        figures = machine.wait_figures(lambda f: f["published"] == count + 1 and
                                       f["pending"] == 0, "everything published")
        assert figures["received"] == count + 1
        assert (figures["dropped"], figures["rejected"], figures["duplicates"]) == (0, 0, 0)
        assert figures["url"] == broker.url
        assert figures["state"] == "connected"


def test_three_bridged_hubs_no_echo_no_loops(brokers: Brokers, machines: Any) -> None:
    broker = brokers()
    hubs = bridged(broker, machines, "A", "B", "C")
    inboxes = [hub.listen() for hub in hubs]
    for hub in hubs:
        hub.send(range(1, 21))
        hub.send_end()
    for inbox in inboxes:
        got = inbox.wait_ended("A", "B", "C")
        for hub in hubs:
            assert numbers(got, hub.name) == list(range(1, 21))
        assert len(got) == 3 * 21
    for hub in hubs:
        # From the two others only: nothing of its own came back, nothing went round.
        figures = hub.wait_figures(lambda f: f["received"] >= 42 and f["published"] == 21,
                                   "the others' messages received")
        assert figures["received"] == 42
        assert figures["duplicates"] == 0
        assert set(figures["remote_hubs"]) == {h.hub_id for h in hubs if h is not hub}


# -- interop with mosquitto_pub and mosquitto_sub -----------------------------------------------


def sub_lines(proc: subprocess.Popen[str], predicate: Callable[[str, str], bool],
              seen: list[tuple[str, str]], timeout: float = 20.0) -> tuple[str, str]:
    """Read ``mosquitto_sub -v`` lines into ``seen`` until one (topic, payload) matches."""
    deadline = time.monotonic() + timeout
    while True:
        line = read_line(proc, "stdout", max(0.1, deadline - time.monotonic())).rstrip("\n")
        topic, _, payload = line.partition(" ")
        seen.append((topic, payload))
        if predicate(topic, payload):
            return topic, payload


def test_interop_with_mosquitto_sub_and_pub(brokers: Brokers, machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B")
    inbox_a, inbox_b = a.listen(), b.listen()
    sub = broker.sub("sockcli/#")
    try:
        seen: list[tuple[str, str]] = []
        # Subscribed once the retained presence of both hubs is in.
        online = {f"sockcli/{EVENT}/$hubs/{a.hub_id}", f"sockcli/{EVENT}/$hubs/{b.hub_id}"}
        sub_lines(sub, lambda *_: online <= {t for t, p in seen if p == "online"}, seen)

        # A local send, as mosquitto_sub reads it: the listen --json object, origin and id.
        a.send_data({"k": "v", "list": [1, 2]})
        _, payload = sub_lines(sub, lambda t, p: t == f"sockcli/{EVENT}/data", seen)
        sent = json.loads(payload)
        assert set(sent) == {"event_name", "timestamp_ms", "timestamp_iso", "message_type",
                             "data", "origin", "id"}
        assert (sent["event_name"], sent["message_type"]) == (EVENT, "data")
        assert sent["data"] == {"k": "v", "list": [1, 2]}
        assert sent["origin"] == a.hub_id
        assert sent["id"].startswith(f"{a.hub_id}:")
        local = inbox_a.wait(lambda got: len(got) >= 1, "A's own message")[0]
        assert local["timestamp_ms"] == sent["timestamp_ms"]
        assert inbox_b.wait(lambda got: len(got) >= 1, "A's message at B")[0]["data"] == \
            sent["data"]

        # A bare object from mosquitto_pub is the data of a message, at both hubs.
        before = time.time() * 1000
        broker.pub(f"sockcli/{EVENT}/data", '{"progress": 1}')
        for inbox in (inbox_a, inbox_b):
            got = inbox.wait(lambda got: len(got) >= 2, "the bare object")[1]
            assert (got["event_name"], got["message_type"], got["data"]) == \
                (EVENT, "data", {"progress": 1})
            assert got["timestamp_ms"] >= before - 1000  # stamped on arrival

        # The full form keeps its timestamps; an error stays an error.
        full = {"event_name": EVENT, "timestamp_ms": 1700000000123,
                "timestamp_iso": "2023-11-14T22:13:20.123+00:00", "message_type": "error",
                "data": {"error": "disk full"}}
        broker.pub(f"sockcli/{EVENT}/error", json.dumps(full))
        for inbox in (inbox_a, inbox_b):
            got = inbox.wait(lambda got: len(got) >= 3, "the full-form message")[2]
            assert (got["message_type"], got["data"], got["timestamp_ms"]) == \
                ("error", {"error": "disk full"}, 1700000000123)

        # Garbage is counted and survived: the next good message still comes, and only it.
        garbage: list[tuple[str, str | bytes]] = [
            ("data", "not json at all"),
            ("data", "[1, 2, 3]"),
            ("data", '{"x": NaN}'),
            ("data", b'{"x": "\xff\xfe"}'),
            ("data", json.dumps({"event_name": "other", "message_type": "data",
                                 "data": {"x": 1}})),
            ("data", json.dumps({"message_type": "error", "data": {"x": 1}})),
            ("nosuchtype", '{"x": 1}'),
        ]
        for kind, payload_ in garbage:
            broker.pub(f"sockcli/{EVENT}/{kind}", payload_)
        broker.pub(f"sockcli/{EVENT}/data", '{"after": "garbage"}')
        for inbox in (inbox_a, inbox_b):
            got = inbox.wait(lambda got: len(got) >= 4, "the message after the garbage")
            assert got[3]["data"] == {"after": "garbage"}
            assert len(got) == 4
        for machine in (a, b):
            figures = machine.wait_figures(lambda f: f["rejected"] >= len(garbage),
                                           "the garbage rejected")
            assert figures["rejected"] == len(garbage)
            assert figures["state"] == "connected"
    finally:
        sub.kill()
        sub.wait(10)


# -- credentials and TLS ------------------------------------------------------------------------


def write_settings(machine: Machine, text: str) -> None:
    path = machine.cli.config_home / "sockcli" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def secret_file(machine: Machine, password: str, mode: int = 0o600) -> Path:
    path = machine.cli.root / "broker-password"
    path.write_text(password + "\n")
    os.chmod(path, mode)
    return path


def test_password_broker_three_ways(brokers: Brokers, machines: Any) -> None:
    broker = brokers("password")
    a, b, c = machines("A"), machines("B"), machines("C")
    # SOCKCLI_BRIDGE_PASSWORD
    a.serve(broker.url, env={"SOCKCLI_BRIDGE__USERNAME": USERNAME,
                             "SOCKCLI_BRIDGE_PASSWORD": PASSWORD})
    # [bridge] password_file in the settings file
    write_settings(b, f'[bridge]\nusername = "{USERNAME}"\n'
                      f'password_file = "{secret_file(b, PASSWORD)}"\n')
    b.serve(broker.url)
    # SOCKCLI_BRIDGE__PASSWORD_FILE
    c.serve(broker.url, env={"SOCKCLI_BRIDGE__USERNAME": USERNAME,
                             "SOCKCLI_BRIDGE__PASSWORD_FILE": str(secret_file(c, PASSWORD))})
    for machine, others in ((a, (b, c)), (b, (a, c)), (c, (a, b))):
        machine.wait_sees(*others)
    inboxes = [m.listen() for m in (b, c)]
    a.send(range(1, 4))
    a.send_end()
    for inbox in inboxes:
        assert numbers(inbox.wait_ended("A"), "A") == [1, 2, 3]
    for machine in (a, b, c):
        listed = machine.cli.run("list", "--json")
        assert PASSWORD not in listed.stdout


def test_wrong_password_local_delivery_still_works(brokers: Brokers, machines: Any) -> None:
    broker = brokers("password")
    a = machines("A")
    wrong = "not-the-Pa55word"
    a.serve(broker.url, connected=False,
            env={"SOCKCLI_BRIDGE__USERNAME": USERNAME, "SOCKCLI_BRIDGE_PASSWORD": wrong})
    figures = a.wait_figures(lambda f: f.get("last_error"), "the refusal in last_error")
    assert figures["state"] != "connected"
    assert re.search(r"(?i)password|not authori[sz]ed|credentials", figures["last_error"]), \
        figures["last_error"]
    assert wrong not in a.cli.run("list", "--json").stdout
    inbox = a.listen()
    a.send(range(1, 4))
    assert numbers(inbox.wait(lambda got: len(got) == 3, "local delivery"), "A") == [1, 2, 3]
    assert a.hub is not None and a.hub.poll() is None, "the hub must keep serving"


def test_a_password_file_others_can_read_is_refused(brokers: Brokers, machines: Any) -> None:
    broker = brokers("password")
    a = machines("A")
    loose = secret_file(a, PASSWORD, 0o644)
    done = a.cli.run("serve", EVENT, "--bridge", broker.url,
                     env={"SOCKCLI_BRIDGE__USERNAME": USERNAME,
                          "SOCKCLI_BRIDGE__PASSWORD_FILE": str(loose)})
    assert done.returncode == 78, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("sockcli: error: ")]
    assert len(errors) == 1 and str(loose) in errors[0], done.stderr
    assert a.cli.hub_files(EVENT) == []


def test_tls_broker_with_the_test_ca(brokers: Brokers, machines: Any) -> None:
    broker = brokers("tls")
    assert broker.ca is not None and broker.url.startswith("mqtts://127.0.0.1:")
    a, b = bridged(broker, machines, "A", "B", env={"SOCKCLI_BRIDGE__TLS_CA": str(broker.ca)})
    inbox = b.listen()
    a.send(range(1, 4))
    a.send_end()
    assert numbers(inbox.wait_ended("A"), "A") == [1, 2, 3]
    # Without the CA (the system's CAs only), the broker's certificate is not trusted.
    c = machines("C")
    c.serve(broker.url, connected=False)
    figures = c.wait_figures(lambda f: f.get("last_error"), "the TLS failure in last_error")
    assert figures["state"] != "connected"
    assert re.search(r"(?i)certificate|verif|ssl|tls", figures["last_error"]), \
        figures["last_error"]


# -- the broker away ----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_broker_killed_and_restarted_mid_stream(brokers: Brokers, machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B")
    inbox_a, inbox_b = a.listen(), b.listen()
    a.send(range(1, 51))
    inbox_b.wait(lambda got: len(numbers(got, "A")) == 50, "batch 1 at B")
    broker.wait_saved()  # B's session (its subscriptions) now survives kill -9
    broker.kill()
    a.wait_figures(lambda f: f["state"] != "connected", "the broker seen gone")

    a.send(range(51, 151))
    # Local delivery never waits for the broker.
    inbox_a.wait(lambda got: numbers(got, "A") == list(range(1, 151)), "batch 2 at A, at once",
                 timeout=10)
    a.wait_figures(lambda f: f["pending"] == 100, "batch 2 pending")

    broker.restart()
    a.wait_connected(timeout=30)
    b.wait_connected(timeout=30)
    a.send_end()
    got = inbox_b.wait_ended("A", timeout=30)
    assert numbers(got, "A") == list(range(1, 151)), "each message once, in order"
    assert len(got) == 151
    figures = a.wait_figures(lambda f: f["pending"] == 0, "nothing pending")
    assert figures["dropped"] == 0
    b.wait_sees(a, state="online")


@pytest.mark.timeout(90)
def test_queue_size_and_presence_across_a_broker_restart(brokers: Brokers,
                                                         machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B", env={"SOCKCLI_BRIDGE__QUEUE_SIZE": "10"})
    inbox_b = b.listen()
    # A clean stop: mosquitto saves everything, and sends A's will (retained "offline").
    assert broker.stop(signal.SIGTERM) == 0
    a.wait_figures(lambda f: f["state"] != "connected", "the broker seen gone")
    a.send(range(1, 26))
    a.wait_figures(lambda f: (f["pending"], f["dropped"]) == (10, 15),
                   "10 pending, the 15 oldest dropped")

    # A frozen while the broker comes back: B sees A offline (the will) ...
    assert a.hub is not None
    a.hub.send_signal(signal.SIGSTOP)
    try:
        broker.restart()
        b.wait_connected(timeout=30)
        b.wait_sees(a, state="offline", timeout=30)
    finally:
        a.hub.send_signal(signal.SIGCONT)
    # ... then online once A is back, and A's 10 newest arrive.
    b.wait_sees(a, state="online", timeout=30)
    a.send_end()
    got = inbox_b.wait_ended("A", timeout=30)
    assert numbers(got, "A") == list(range(16, 26))
    assert len(got) == 11
    figures = a.wait_figures(lambda f: f["pending"] == 0, "nothing pending")
    assert figures["dropped"] == 15


# -- the last value, presence -------------------------------------------------------------------


def test_a_later_hub_gets_the_retained_last_values(brokers: Brokers, machines: Any) -> None:
    broker = brokers()
    (a,) = bridged(broker, machines, "A")
    a.send_data({"state": "failing"}, type="error")
    a.send_data({"state": "ok", "n": 1})
    a.send_data({"state": "ok", "n": 2})
    a.wait_figures(lambda f: f["published"] == 3 and f["pending"] == 0, "all published")

    b = machines("B")
    b.serve(broker.url)
    early = b.listen()  # a retained value is not a new message: nobody gets it relayed
    b.wait_figures(lambda f: f["remote_hubs"].get(a.hub_id) == "online", "A seen")
    poll(b.row, lambda row: set(row.get("retained", [])) == {"data", "error"},
         "B's hub holding both retained values")

    done = b.cli.run("listen", EVENT, "--last", "--count", "2", "--json", "--timeout", "10")
    assert done.returncode == 0, done.stderr
    last = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((m["message_type"], json.dumps(m["data"]), m["retained"]) for m in last) == [
        ("data", json.dumps({"state": "ok", "n": 2}), True),
        ("error", json.dumps({"state": "failing"}), True)]
    done = b.cli.run("get", EVENT)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["message_type"], got["data"], got["retained"]) == \
        ("data", {"state": "ok", "n": 2}, True)

    a.send_end()
    assert [m["data"] for m in early.wait_ended("A")] == [{"from": "A", "end": True}]


def test_presence_online_offline_by_will_and_by_clean_stop(brokers: Brokers,
                                                           machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B")
    assert a.hub_id == hub_id_of(a)
    assert b.hub_id == hub_id_of(b) != a.hub_id
    first_id = a.hub_id

    assert a.hub is not None
    assert stop(a.hub, signal.SIGKILL) == -signal.SIGKILL
    b.wait_sees(a, state="offline")  # the will

    a.serve(broker.url)  # same socket directory: the same hub id
    assert a.figures()["hub_id"] == first_id
    b.wait_sees(a, state="online")
    assert a.wait_sees(b)["remote_hubs"] == {b.hub_id: "online"}

    assert a.hub is not None
    assert stop(a.hub) == 0
    b.wait_sees(a, state="offline")  # said on a clean stop
    assert b.figures()["state"] == "connected"


def test_list_on_a_terminal_shows_the_bridge_and_the_remote_hubs(brokers: Brokers,
                                                                  machines: Any) -> None:
    broker = brokers()
    a, b = bridged(broker, machines, "A", "B")
    status, out, err = a.cli.pty("list")
    assert status == 0, err
    header, row = [line for line in strip_ansi(out).splitlines() if line.strip()][:2]
    assert header.split()[-1] == "BRIDGE"
    assert f"connected {broker.url}, pending 0, published 0, received 0, dropped 0; " \
        f"hubs: {b.hub_id} online" in row


# -- without paho-mqtt --------------------------------------------------------------------------


#: sockcli's entry point (pyproject.toml: sockcli.cli:main), run with paho-mqtt hidden.
WITHOUT_PAHO = ("import sys; sys.modules['paho'] = None; sys.argv[0] = 'sockcli'; "
                "from sockcli.cli import main; sys.exit(main())")


def test_bridge_without_paho_exits_78_at_once(cli: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PAHO, "serve", EVENT, "--bridge", "mqtt://127.0.0.1:1"],
        capture_output=True, text=True, timeout=20, env=cli.env)
    assert done.returncode == 78, done.stderr
    line = error_line(done.stderr)
    assert "sockcli[mqtt]" in line and "paho-mqtt" in line, line
    assert "serving" not in done.stderr
    assert cli.hub_files(EVENT) == []

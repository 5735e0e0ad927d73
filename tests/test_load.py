"""Load: many concurrent senders into one hub (``sockcli serve``), several listener processes,
and the queue's overflow when nobody listens. Figures are printed (run with -s) and quoted in
docs/RELIABILITY.md.

The listeners are separate processes (this file run as a script: ``python test_load.py
listen ...``) so that they really run in parallel with the hub and the senders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

SENDERS = 50
PER_SENDER = 2000
LISTENERS = 5


def listener_main(event: str, socket_dir: str, senders: int, per_sender: int,
                  timeout: float) -> None:
    """A listener process: connect, say "ready", then count every message per sender, check
    the order, and print a JSON summary when all have come (or at the timeout)."""
    from sockcli import create_client
    from sockcli.exceptions import TimeoutError

    expected = senders * per_sender
    client = create_client("unix", event, subscribe=True, socket_dir=socket_dir,
                           timezone="UTC", auto_reconnect=False)
    client.connect(timeout=10)
    print("ready", flush=True)
    next_i = [0] * senders
    anomalies: list[str] = []
    received = 0
    first = last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while received < expected:
            try:
                message = client.receive(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            now = time.monotonic()
            first = first or now
            last = now
            s, i = message.data["s"], message.data["i"]
            if i != next_i[s] and len(anomalies) < 20:
                kind = "duplicate or out of order" if i < next_i[s] else "gap"
                anomalies.append(f"sender {s}: {kind}: got {i}, expected {next_i[s]}")
            next_i[s] = max(next_i[s], i + 1)
            received += 1
    finally:
        client.disconnect()
    print(json.dumps({"received": received, "next": next_i, "anomalies": anomalies,
                      "seconds": last - first}), flush=True)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_50_senders_times_2000_messages_to_5_listeners(cli) -> None:
    from sockcli.client.oneshot import Sender
    from tests.clitools import read_line, rest

    # 50 senders at full speed outrun 5 Python listeners sharing two cores: the listeners fall
    # more than the default send_buffer_limit (4 MiB) behind and would be dropped as slow
    # consumers (that policy has its own tests in test_faults.py). The hub may buffer the
    # whole stream here (100,000 frames of ~110 bytes, 11 MB per listener), so that this test
    # is about relaying: nothing lost, duplicated or reordered under concurrency.
    hub = cli.serve("load", env={"SOCKCLI_SEND_BUFFER_LIMIT": str(64 * 1024 * 1024)})
    total = SENDERS * PER_SENDER
    listeners = [subprocess.Popen(
        [sys.executable, __file__, "listen", "load", str(cli.socket_dir), str(SENDERS),
         str(PER_SENDER), "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=cli.env) for _ in range(LISTENERS)]
    cli.procs.extend(listeners)  # stopped at teardown whatever happens
    for listener in listeners:
        line = read_line(listener, timeout=30) if listener.poll() is None else ""
        assert line == "ready\n", rest(listener, "stderr")
    errors: list[BaseException] = []
    barrier = threading.Barrier(SENDERS + 1)
    acked_at: list[float] = []

    def send(s: int) -> None:
        try:
            with Sender.open("load", socket_dir=str(cli.socket_dir), timezone="UTC") as sender:
                barrier.wait(30)
                for i in range(PER_SENDER):
                    sender.send({"s": s, "i": i})
                    if i % 250 == 249:
                        sender.flush(timeout=60)
                sender.flush(timeout=60)
            acked_at.append(time.monotonic())
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=send, args=(s,), name=f"sender-{s}")
               for s in range(SENDERS)]
    for thread in threads:
        thread.start()
    barrier.wait(30)
    started = time.monotonic()
    for thread in threads:
        thread.join(120)
    assert errors == []
    acked_s = max(acked_at) - started
    summaries = []
    for listener in listeners:
        line = read_line(listener, timeout=120) if listener.wait(120) == 0 else "null"
        summaries.append(json.loads(line))
        assert summaries[-1] is not None, rest(listener, "stderr")
    done_s = time.monotonic() - started
    for n, summary in enumerate(summaries):
        assert summary["anomalies"] == [], f"listener {n}: {summary['anomalies']}"
        assert summary["received"] == total, f"listener {n}: {summary['received']} of {total}"
        assert summary["next"] == [PER_SENDER] * SENDERS
    [row] = cli.list_json()
    assert (row["received"], row["delivered"], row["dropped"], row["queued"]) == \
        (total, total * LISTENERS, 0, 0)
    assert hub.poll() is None
    print(f"\n[load] {SENDERS} senders x {PER_SENDER} messages -> 1 hub -> {LISTENERS} listener "
          f"processes: all {total:,} acknowledged after {acked_s:.1f} s, every listener had "
          f"all {total:,} (in order per sender, no duplicate) after {done_s:.1f} s: "
          f"{total / done_s:,.0f} messages/s in, {total * LISTENERS / done_s:,.0f} deliveries/s")


@pytest.mark.timeout(60)
def test_queue_overflow_when_nobody_listens_drops_exactly_the_oldest(cli) -> None:
    cli.serve("ev", "--queue-size", "5")
    done = cli.bash('for i in $(seq 1 12); do sockcli send ev -d "{\\"n\\": $i}" || exit; done')
    assert (done.returncode, done.stderr) == (0, "")
    [row] = cli.list_json()
    assert (row["queued"], row["dropped"], row["received"]) == (5, 7, 12)
    got = cli.run("listen", "ev", "--count", "5")
    assert got.returncode == 0, got.stderr
    assert [json.loads(line)["data"]["n"] for line in got.stdout.splitlines()] == \
        [8, 9, 10, 11, 12]
    [row] = cli.list_json()  # the queue is empty now: nothing else was kept
    assert (row["queued"], row["dropped"], row["delivered"]) == (0, 7, 5)


def _main(argv: list[str]) -> None:
    if argv[:1] == ["listen"]:
        event, socket_dir, senders, per_sender, timeout = argv[1:6]
        listener_main(event, socket_dir, int(senders), int(per_sender), float(timeout))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} listen EVENT SOCKET_DIR SENDERS PER_SENDER "
                         "TIMEOUT")


if __name__ == "__main__":
    _main(sys.argv[1:])

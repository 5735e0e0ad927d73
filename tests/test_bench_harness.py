"""The benchmark harness's own checks (benchmarks/): that what it calls delivered in order is,
that it finds what is lost, duplicated or reordered, that a broken stream fails it at once with
the reason, and that the targets are judged as declared. Synthetic data and small real
processes only; no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
# Appended, not prepended: the harness's module names (common, stream, ...) must not hide
# anything else the suite imports.
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

import common  # noqa: E402
import delivery  # noqa: E402
import filestream  # noqa: E402
import targets  # noqa: E402
import workers  # noqa: E402

EVENT = "bench_test"


def record(data: dict[str, Any], event: str = EVENT) -> str:
    """A line as ``sockcli listen --json`` prints it."""
    return json.dumps({"event_name": event, "message_type": "data", "data": data})


@pytest.fixture
def box() -> Iterator[common.Sandbox]:
    with common.sandbox() as sandbox:
        yield sandbox


# -- check_sequence ---------------------------------------------------------------------------


class TestCheckSequence:
    def write(self, tmp_path: Path, lines: list[str]) -> Path:
        path = tmp_path / "out.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def test_in_order_passes(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, [record({"i": k}) for k in range(1, 6)])
        delivery.check_sequence(path, 5, event=EVENT)

    def test_stream_lines_and_the_check_agree(self, tmp_path: Path) -> None:
        path = common.write_lines(tmp_path / "lines.jsonl", 300)
        delivery.check_sequence(path, 300, event=None, expect=common.stream_data)
        with pytest.raises(RuntimeError, match="line 1 carries"):
            delivery.check_sequence(path, 300, event=None)  # {"i": k} alone is not the data

    @pytest.mark.parametrize(("numbers", "why"), [
        ([1, 2, 4, 5], "line 3 carries"),  # lost
        ([1, 2, 2, 3], "line 3 carries"),  # duplicated
        ([1, 3, 2, 4], "line 2 carries"),  # reordered
        ([1, 2, 3], "3 of 4 messages arrived"),  # missing at the end
        ([1, 2, 3, 4, 5], "5 lines where 4 were sent"),  # one too many
    ])
    def test_finds_what_is_wrong(self, tmp_path: Path, numbers: list[int], why: str) -> None:
        path = self.write(tmp_path, [record({"i": k}) for k in numbers])
        with pytest.raises(RuntimeError, match=why):
            delivery.check_sequence(path, 4, event=EVENT)

    def test_another_event_or_type_is_refused(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, [record({"i": 1}), record({"i": 2}, event="other")])
        with pytest.raises(RuntimeError, match="line 2 is not a data message"):
            delivery.check_sequence(path, 2, event=EVENT)

    def test_offset_skips_the_probes(self, tmp_path: Path) -> None:
        probes = json.dumps({"probe": 1}) + "\n"
        path = tmp_path / "peer.jsonl"
        path.write_text(probes + "".join(json.dumps(common.stream_data(k)) + "\n"
                                         for k in (1, 2, 3)))
        delivery.check_sequence(path, 3, event=None, offset=len(probes),
                                expect=common.stream_data)
        with pytest.raises(RuntimeError, match="line 1 carries"):
            delivery.check_sequence(path, 3, event=None, expect=common.stream_data)
        assert filestream.has_probe(path, 1) and not filestream.has_probe(path, 2)


# -- the receivers' checks ----------------------------------------------------------------------


def frames(numbers: list[int]) -> bytes:
    return b"".join(common.message_frame(EVENT, common.stream_data(k)) for k in numbers)


def mqtt_publish(payload: bytes, topic: str = "t") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    return workers._mqtt_packet(0x30, body)


class TestReceiverParsers:
    def feed(self, parse: Any, data: bytes, step: int) -> tuple[int, list[Any]]:
        """Feed ``data`` ``step`` bytes at a time; the total count and each read's last."""
        sub = workers._Sub(None, "subscriber 1 of 1")  # type: ignore[arg-type]
        lasts = []
        for i in range(0, len(data), step):
            sub.buf += data[i:i + step]
            got, _, last = parse(sub, None)
            if last is not None:
                workers._check_number(last, sub.count + got, sub.name)
                lasts.append(last)
            sub.count += got
        return sub.count, lasts

    @pytest.mark.parametrize("step", [1, 7, 64, 1 << 16])
    def test_sockcli_frames_in_any_chunks(self, step: int) -> None:
        count, lasts = self.feed(workers._sockcli_frames, frames(list(range(1, 51))), step)
        assert count == 50
        assert lasts[-1] == common.stream_data(50)

    @pytest.mark.parametrize("step", [1, 5, 1 << 16])
    def test_mqtt_and_lines_in_any_chunks(self, step: int) -> None:
        payloads = [json.dumps(common.stream_data(k)).encode() for k in range(1, 31)]
        count, lasts = self.feed(workers._mqtt_packets,
                                 b"".join(mqtt_publish(p) for p in payloads), step)
        assert count == 30 and lasts[-1] == common.stream_data(30)
        count, lasts = self.feed(workers._lines, b"".join(p + b"\n" for p in payloads), step)
        assert count == 30 and lasts[-1] == common.stream_data(30)

    @pytest.mark.parametrize("numbers", [[1, 2, 4], [1, 2, 2], [1, 2, 4, 3]])
    def test_a_read_ending_on_a_wrong_number_is_caught(self, numbers: list[int]) -> None:
        with pytest.raises(workers.OutOfSequence, match="lost, duplicated or out of order"):
            self.feed(workers._sockcli_frames, frames(numbers), 1 << 16)

    def test_a_swap_is_caught_at_a_read_boundary(self) -> None:
        # Only the last message of each read is decoded: a swap inside one read that ends
        # right goes unseen (the price of one decode per read), one across reads does not.
        assert self.feed(workers._sockcli_frames, frames([2, 1, 3]), 1 << 16)[0] == 3
        with pytest.raises(workers.OutOfSequence, match="message 1 carries i=2"):
            self.feed(workers._sockcli_frames, frames([2, 1, 3]), 1)

    def test_latency_mode_checks_every_message(self) -> None:
        data = b"".join(common.message_frame(EVENT, {"i": k, "t": 0}) for k in (1, 3, 2))
        sub = workers._Sub(None, "s")  # type: ignore[arg-type]
        sub.buf += data
        with pytest.raises(workers.OutOfSequence, match="message 2 carries i=3"):
            workers._sockcli_frames(sub, [])


class TestWorkers:
    def test_raw_recv_through_the_relay(self, box: common.Sandbox) -> None:
        _relay, address = box.start_relay("t")
        sent, got = common.run_worker_pair(
            box, common.worker("raw-recv", "--address", address, "--subs", "3", "--count",
                               "500"),
            common.worker("raw-send", "--address", address, "--event", EVENT, "--count", "500"),
            timeout=30, name="t")
        assert got["complete"] and got["received"] == 1500 and got["error"] == ""
        assert sent["sent"] == 500

    def test_raw_recv_fails_at_once_on_a_lost_message(self, box: common.Sandbox) -> None:
        _relay, address = box.start_relay("t")
        recv = box.spawn(common.worker("raw-recv", "--address", address, "--count", "3"),
                         name="recv", stdout=subprocess.PIPE, text=True)
        common.read_ready(recv, 20, "the receiver", box)
        with common.connect(address) as sock:
            sock.sendall(common.HELLO_SENDER)
            assert common.read_frame(sock)["kind"] == "welcome"
            sock.sendall(frames([1, 2, 4]))
            out, _ = recv.communicate(timeout=20)
        report = json.loads(out)
        assert recv.returncode == 1
        assert not report["complete"]
        assert "message 3 carries i=4" in report["error"]

    def test_raw_recv_reports_a_stall(self, box: common.Sandbox) -> None:
        _relay, address = box.start_relay("t")
        done = box.run(common.worker("raw-recv", "--address", address, "--count", "3",
                                     "--stall", "0.5"), name="recv", timeout=20)
        assert done.returncode == 1
        ready, report = done.stdout.splitlines()
        assert ready == "ready"
        assert "stalled: nothing arrived for 0.5 s" in json.loads(report)["error"]

    def test_throttle_copies_everything(self, tmp_path: Path) -> None:
        data = "".join(record({"i": k}) + "\n" for k in range(1, 401)).encode()
        done = subprocess.run(common.worker("throttle", "--rate", "4000"), input=data,
                              capture_output=True, timeout=20, check=True)
        assert done.stdout == data


# -- FileStream: fails fast, says why ---------------------------------------------------------


class TestFileStream:
    """Without a hub: the writer and the listener meet in a FIFO (``cat``)."""

    def setup(self, box: common.Sandbox, count: int, **kwargs: Any) -> tuple[
            filestream.FileStream, Path]:
        fifo = box.path("pipe")
        os.mkfifo(fifo)
        lines = box.path("lines.jsonl")
        lines.write_text("".join(json.dumps({"i": k}) + "\n" for k in range(1, count + 1)))
        return filestream.FileStream(box, "t", box.path("out.jsonl"), count, **kwargs), fifo

    def test_a_whole_stream_is_measured_and_checked(self, box: common.Sandbox) -> None:
        run, fifo = self.setup(box, 2000)
        try:
            run.start_listener(["cat", str(fifo)], ends_itself=True)
            result = run.stream(["sh", "-c", f"cat > {fifo}"], stdin=box.path("lines.jsonl"))
        finally:
            run.close()
        assert result["rate"] > 0 and result["writer_rate"] > 0

    def test_a_listener_that_exits_early_fails_the_run(self, box: common.Sandbox) -> None:
        run, fifo = self.setup(box, 2000)
        try:
            run.start_listener(["sh", "-c", f"head -n 300 {fifo}; exit 3"], ends_itself=True)
            with pytest.raises(RuntimeError, match="the listener exited 3") as info:
                run.stream(["sh", "-c", f"cat > {fifo}"], stdin=box.path("lines.jsonl"))
        finally:
            run.close()
        assert "the listener's file has 300 of 2,000 lines" in str(info.value)

    def test_a_stall_fails_the_run_and_says_which_side(self, box: common.Sandbox) -> None:
        run, fifo = self.setup(box, 2000, stall=0.5)
        try:
            run.start_listener(["sh", "-c", f"head -n 300 {fifo}; sleep 30"], ends_itself=True)
            with pytest.raises(RuntimeError, match=r"no new line for 0\.5 s") as info:
                run.stream(["sh", "-c", f"cat > {fifo}"], stdin=box.path("lines.jsonl"))
        finally:
            run.close()
        assert "the relay or the listener holds the rest" in str(info.value)

    def test_a_filter_between_listener_and_file(self, box: common.Sandbox) -> None:
        run, fifo = self.setup(box, 500)
        try:
            run.start_listener(["cat", str(fifo)], ends_itself=True,
                               through=common.worker("throttle", "--rate", "5000"))
            result = run.stream(["sh", "-c", f"cat > {fifo}"], stdin=box.path("lines.jsonl"))
        finally:
            run.close()
        assert result["seconds"] > 0

    def test_the_listener_behind_a_filter_dying_is_named(self, box: common.Sandbox) -> None:
        run, fifo = self.setup(box, 2000)
        try:
            run.start_listener(["sh", "-c", f"head -n 100 {fifo}; exit 5"], ends_itself=True,
                               through=["cat"])
            with pytest.raises(RuntimeError, match="listener exited 5"):
                run.stream(["sh", "-c", f"cat > {fifo}"], stdin=box.path("lines.jsonl"))
        finally:
            run.close()


def test_stall_side_names_the_side() -> None:
    start = {"received": 0, "delivered": 0, "holding": 0}
    assert "listener side is stuck" in filestream.stall_side(
        start, start, {"received": 90, "delivered": 90}, 40, 100, True)
    assert "the hub holds the rest" in filestream.stall_side(
        start, start, {"received": 90, "delivered": 40, "holding": 1}, 40, 100, True)
    grown = {"received": 40, "delivered": 40}
    assert "the writer side is stuck" in filestream.stall_side(
        start, grown, {"received": 40, "delivered": 40}, 40, 100, True)
    assert "lost on the writer's side" in filestream.stall_side(
        start, grown, {"received": 40, "delivered": 40}, 40, 100, False)


# -- targets ------------------------------------------------------------------------------------


def row(key: str, value: float | None, unit: str = "msg/s", **kwargs: Any) -> common.Row:
    return common.Row("s", key, key, value, unit, **kwargs)


class TestTargets:
    def verdicts(self, rows: list[common.Row], suites: list[str]) -> dict[str, targets.Verdict]:
        return {v.key: v for v in targets.judge(rows, suites)}

    def test_every_target_has_a_verdict(self) -> None:
        got = targets.judge([], [])
        assert [v.key for v in got] == [t.key for t in targets.TARGETS]
        assert {v.verdict for v in got} == {targets.NOT_RUN}
        assert len({t.key for t in targets.TARGETS}) == len(targets.TARGETS)

    def test_ratio_to_another_row(self) -> None:
        rows = [row("stream_cli", 90_000.0), row("stream_mosquitto", 100_000.0)]
        v = self.verdicts(rows, ["stream"])["stream_cli"]
        assert v.verdict == targets.MISSES and "0.90x" in v.figures
        rows[0].value = 100_000.0
        assert self.verdicts(rows, ["stream"])["stream_cli"].verdict == targets.HOLDS
        assert rows[0].target == ">= 1x mosquitto" and rows[0].verdict == targets.HOLDS

    def test_a_missing_peer_is_not_measured(self) -> None:
        rows = [row("stream_cli", 1.0), row("stream_mosquitto", None, note="not installed")]
        v = self.verdicts(rows, ["stream"])["stream_cli"]
        assert v.verdict == targets.NOT_MEASURED and "not installed" in v.figures

    def test_ratio_to_the_rows_baseline(self) -> None:
        rows = [row("sockcli_send", 36.0, "ms", baseline_label="python -c pass", baseline=12.0),
                row("sockcli_send_cold", 61.0, "ms", baseline_label="python -c pass",
                    baseline=12.0)]
        got = self.verdicts(rows, ["startup"])
        assert got["sockcli_send"].verdict == targets.HOLDS  # 3.00x <= 3x
        assert got["sockcli_send_cold"].verdict == targets.MISSES  # 5.08x > 5x

    def test_bounds_on_values(self) -> None:
        rows = [row("rss_per_subscriber", 1.9, "KiB"), row("rss_per_subscriber_10000", 2.1, "KiB"),
                row("rss_idle", 17.5, "MiB", baseline_label="relay", baseline=13.0),
                row("latency_sockcli_p99", 1001.0, "us")]
        got = self.verdicts(rows, ["scale", "fanout"])
        assert got["rss_per_subscriber"].verdict == targets.HOLDS
        assert got["rss_per_subscriber_10000"].verdict == targets.MISSES
        assert got["rss_idle"].verdict == targets.MISSES and "+4.5 MiB" in got["rss_idle"].figures
        assert got["latency_sockcli_p99"].verdict == targets.MISSES

    def test_the_throttled_stream(self) -> None:
        runs = [{"throttle_rate": 20_000.0, "lines_at_writer_exit": 400}]
        ok = row("stream_cli_throttled", 30_000.0, baseline_label="unthrottled writer",
                 baseline=60_000.0, extra={"runs": runs, "count": 1000, "nothing_lost": True})
        v = self.verdicts([ok], ["stream"])["stream_cli_throttled"]
        assert v.verdict == targets.HOLDS and "600 lines still on their way" in v.figures
        assert "0.50x: slowed" in v.figures
        # Everything arrived, but the writer went as fast as without a slow reader: the
        # stream fitted in the buffers, so nothing showed it is held back.
        fast = row("stream_cli_throttled", 58_000.0, baseline_label="unthrottled writer",
                   baseline=60_000.0, extra={"runs": runs, "count": 1000, "nothing_lost": True})
        v = self.verdicts([fast], ["stream"])["stream_cli_throttled"]
        assert v.verdict == targets.MISSES and "NOT slowed" in v.figures
        failed = row("stream_cli_throttled", None,
                     extra={"runs": [], "count": 1000, "nothing_lost": False,
                            "failed": "the hub dropped 1 client(s)"})
        v = self.verdicts([failed], ["stream"])["stream_cli_throttled"]
        assert v.verdict == targets.MISSES and "dropped" in v.figures

    def test_the_block_says_quick_runs_are_not_verdicts(self) -> None:
        got = targets.judge([row("stream_cli", 1.0)], ["stream"])
        assert "QUICK" in targets.render(got, "quick", 1)
        text = targets.render(got, "full", 3)
        assert "medians of 3" in text and "not measured" in text
        assert "| issue | target | verdict | measured |" in targets.render(got, "full", 3,
                                                                           markdown=True)

"""Shared pieces of the benchmark harness: the sandbox that owns every process it starts, the
raw wire helpers (docs/protocol.md framing, written without sockcli), statistics and results.

Everything here runs in the harness process (benchmarks/run.py) except the wire helpers, which
the worker processes (benchmarks/workers.py) import too; those need only the standard library
and msgpack.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgpack

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
WORKERS = BENCH_DIR / "workers.py"
BASELINE_RELAY = BENCH_DIR / "baseline_relay.py"


def _venv_bin(name: str) -> Path:
    for candidate in (REPO / ".venv" / "bin" / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"benchmarks: {name} not found in {REPO / '.venv' / 'bin'}: run "
                     "'make venv' first (or 'make bench', which does)")


#: The venv's interpreter, by absolute path: the one the sockcli console script runs on. (The
#: python3 on PATH may be a pyenv shim that costs tens of milliseconds per start.)
PYTHON = str(_venv_bin("python"))
SOCKCLI = str(_venv_bin("sockcli"))

# -- the wire, without sockcli ---------------------------------------------------------------

HEADER = struct.Struct(">I")


def pack_frame(m: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(m, use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


HELLO_SUBSCRIBE = pack_frame({"kind": "hello", "version": 1, "subscribe": True})
HELLO_SENDER = pack_frame({"kind": "hello", "version": 1, "subscribe": False})
STATS_REQUEST = pack_frame({"kind": "stats"})


def iso_ms(ms: int) -> str:
    """The timestamp_iso a sender puts in a message (UTC, millisecond precision)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def stream_data(k: int) -> dict[str, Any]:
    """The data of the k-th message (from 1) of every throughput figure: what the workers send
    and what the lines files given to the CLI and the peers hold, so one check fits all."""
    return {"i": k, "progress": k % 101}


def write_lines(path: Path, count: int) -> Path:
    """The lines file of the streams fed from a file (``sockcli send --lines`` and the peers'
    senders): ``stream_data(k)`` as JSON, k from 1 to ``count``."""
    with open(path, "w") as f:
        f.writelines(json.dumps(stream_data(k)) + "\n" for k in range(1, count + 1))
    return path


def message_frame(event: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    """A message frame as sockcli's own client encodes it: the six keys, plus seq if given."""
    ms = time.time_ns() // 1_000_000
    m: dict[str, Any] = {"kind": "message", "event_name": event, "timestamp_ms": ms,
                         "timestamp_iso": iso_ms(ms), "message_type": "data", "data": data}
    if seq is not None:
        m["seq"] = seq
    return pack_frame(m)


def read_frame(sock: socket.socket) -> dict[str, Any]:
    """One whole frame from a blocking socket (handshakes and probes only)."""
    header = _read_exact(sock, HEADER.size)
    (size,) = HEADER.unpack(header)
    return msgpack.unpackb(_read_exact(sock, size), raw=False)  # type: ignore[no-any-return]


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionResetError("peer closed the connection mid-frame")
        chunks += chunk
    return bytes(chunks)


def parse_address(text: str) -> tuple[int, Any]:
    """'unix:/path' or 'tcp:host:port' -> (family, address)."""
    kind, _, rest = text.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    host, _, port = rest.rpartition(":")
    return socket.AF_INET, (host, int(port))


def connect(address: str, timeout: float = 5.0) -> socket.socket:
    """A connected socket with ``timeout`` set. A Unix socket whose listen backlog is full
    refuses at once (EAGAIN) where TCP would wait: that is retried until ``timeout``, so that
    thousands of subscribers can connect faster than the server accepts them."""
    family, addr = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                sock.connect(addr)
                break
            except BlockingIOError:
                if family != socket.AF_UNIX or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
    except BaseException:
        sock.close()
        raise
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def hub_stats(address: str, timeout: float = 5.0) -> dict[str, Any]:
    """A sockcli hub's live figures, asked as a pure sender (the 'stats' frame)."""
    with connect(address, timeout) as sock:
        sock.sendall(HELLO_SENDER + STATS_REQUEST)
        while True:
            frame = read_frame(sock)
            if frame.get("kind") == "stats":
                return frame
            if frame.get("kind") == "error":
                raise ConnectionError(f"hub refused the stats probe: {frame}")


def queue_one(address: str, event: str, data: dict[str, Any]) -> None:
    """Send one acknowledged message as a pure sender (fills a hub's queue)."""
    with connect(address) as sock:
        sock.sendall(HELLO_SENDER + message_frame(event, data, seq=1))
        while True:
            frame = read_frame(sock)
            if frame.get("kind") == "ack":
                return
            if frame.get("kind") == "error":
                raise ConnectionError(f"hub refused the message: {frame}")


# -- statistics ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(systems: dict[str, Callable[[int], dict[str, Any]]], reps: int, what: str,
                unit: str, log: Callable[[str], None], *, keep: int = 1500,
                results: dict[str, list[dict[str, Any]]] | None = None,
                ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Run each system once per repetition, in turn (so that the machine's load falls on all
    of them alike): the results of each, and the error of those that failed (a failing system
    is not run again, and does not hide the others). ``fn(rep)`` gets the repetition's index;
    ``what`` and ``unit`` word the log lines ("fifo", "10,000 lines"). ``results``, if given,
    is filled as the runs end, so that a system can read the figures of those before it."""
    results = {} if results is None else results
    results.update({k: [] for k in systems})
    errors: dict[str, str] = {}
    for rep in range(reps):
        for key, fn in systems.items():
            if key in errors:
                continue
            log(f"{what}: {key}, {unit} (run {rep + 1} of {reps})")
            try:
                results[key].append(fn(rep))
            except Exception as exc:  # one failing must not hide the others
                errors[key] = f"{type(exc).__name__}: {exc}"
                log(f"{what}: {key} FAILED: {errors[key][:keep]}")
    return results, errors


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return float(ordered[rank - 1])


# -- results --------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of the report: a value, what it is compared with, and the verdict."""

    section: str
    key: str
    label: str
    value: float | None
    unit: str
    baseline_label: str = ""
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    verdict: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline


def cpu_note(runs: Sequence[dict[str, Any]], middle: str, per: int, unit: str) -> str:
    """What each process spent per message (or delivery): its CPU time (user + system) over
    the run divided by ``per``, medians over the runs. Unlike rates, these add up and hardly
    depend on what else the two cores are doing."""
    scale = {"us": 1e6, "ns": 1e9}[unit]

    def cost(key: str) -> str:
        values = [r[key] for r in runs if r.get(key) is not None]
        return f"{median(values) / per * scale:,.1f}" if values else "?"

    return (f"CPU {unit} per {'message' if unit == 'us' else 'delivery'}: sender "
            f"{cost('sender_cpu_s')}, {middle} {cost('hub_cpu_s')}, receiver "
            f"{cost('receiver_cpu_s')} (wall: {cost('seconds')})")


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "us":
        return f"{value:,.0f} us"
    if unit in ("msg/s", "deliveries/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "KiB":
        return f"{value:.1f} KiB"
    return f"{value:g} {unit}".strip()


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x"


def render_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """The report: one table per section; notes become numbered footnotes under it."""
    head = ["figure", "value", "baseline", "baseline value", "ratio", "target", "verdict"]
    sections: list[tuple[str, list[list[str]], list[str]]] = []
    for r in rows:
        if not sections or sections[-1][0] != r.section:
            sections.append((r.section, [], []))
        _, cells_list, notes = sections[-1]
        label = r.label
        if r.note:
            notes.append(r.note)
            label += f" [{len(notes)}]"
        has_base = bool(r.baseline_label)
        cells_list.append([label, fmt_value(r.value, r.unit) if r.value is not None else "n/a",
                           r.baseline_label, fmt_value(r.baseline, r.unit) if has_base else "",
                           fmt_ratio(r.ratio) if has_base else "", r.target, r.verdict])
    lines: list[str] = []
    if markdown:
        for name, cells_list, notes in sections:
            lines.append(f"\n**{name}**\n")
            lines.append("| " + " | ".join(head) + " |")
            lines.append("| --- | ---: | --- | ---: | ---: | --- | --- |")
            for cells in cells_list:
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            if notes:
                lines.append("")
                lines.extend(f"[{i}] " + n.replace("|", "\\|") + "  "
                             for i, n in enumerate(notes, 1))
        return "\n".join(lines).lstrip("\n") + "\n"
    every = [c for _, cells_list, _ in sections for c in cells_list]
    widths = [max([len(h)] + [len(c[i]) for c in every]) for i, h in enumerate(head)]
    right = {1, 3, 4}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    for name, cells_list, notes in sections:
        lines.append("")
        lines.append(f"== {name} ==")
        lines.append(line(head))
        for cells in cells_list:
            lines.append(line(cells))
        for i, n in enumerate(notes, 1):
            lines.append(f"  [{i}] {n}")
    return "\n".join(lines) + "\n"


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for text in f:
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for text in f:
            if text.startswith("MemTotal:"):
                mem_kib = int(text.split()[1])
    version = subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": version,
        "python_path": PYTHON,
        "loadavg": os.getloadavg(),
    }


def write_results(rows: Sequence[Row], meta: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2,
                              default=str) + "\n")
    tmp.replace(path)


# -- processes ------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc: Any = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def _child_setup() -> None:
    """In the child, before exec: die with the harness even if it is killed with SIGKILL."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            if predicate():
                return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def alive(proc: subprocess.Popen[Any], what: str) -> bool:
    """True while the child runs; RuntimeError (which wait_until does not swallow) once it
    has exited, so that a server that failed to start is reported at once."""
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with status {proc.returncode}")
    return True


def tcp_listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for text in f:
            if text.startswith("VmRSS:"):
                return int(text.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


#: Variables of the harness's own environment that would make the children unlike a user's.
UNSET_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONSTARTUP",
                   "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
                   "PYTHONMALLOC", "PYTHONWARNINGS", "PYTHONINSPECT", "PYTHONVERBOSE")


class Sandbox:
    """A private runtime directory and every process the harness starts, all cleaned up.

    Each child runs in its own process group (killed as a group, so a shell pipeline dies
    whole) and gets PR_SET_PDEATHSIG, so it dies with the harness even if the harness is
    killed outright. XDG_RUNTIME_DIR, XDG_CONFIG_HOME and XDG_CACHE_HOME point into a fresh
    temporary folder: the hubs started here can neither meet the user's own hubs nor read
    their settings, and the settings cache starts empty (the warm-up runs fill it).
    """

    PREFIX = "sockcli-bench-"

    def __init__(self) -> None:
        self._remove_stale()
        self.root = Path(tempfile.mkdtemp(prefix=self.PREFIX))
        (self.root / "owner.pid").write_text(f"{os.getpid()}\n")
        self.runtime = self.root / "run"
        self.runtime.mkdir(mode=0o700)
        (self.root / "config").mkdir()
        (self.root / "cache").mkdir()
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKCLI_")}
        self.env.update(XDG_RUNTIME_DIR=str(self.runtime),
                        XDG_CONFIG_HOME=str(self.root / "config"),
                        XDG_CACHE_HOME=str(self.root / "cache"))
        # As on a user's machine: bytecode caches are written (and so reused after the
        # warm-up), output is buffered as Python does by default.
        for name in UNSET_VARIABLES:
            self.env.pop(name, None)
        self._procs: list[subprocess.Popen[Any]] = []
        self._files: list[TextIO] = []
        self._counter = 0

    @classmethod
    def _remove_stale(cls) -> None:
        """Folders left by a harness that was killed outright (SIGKILL): its pid is gone."""
        for folder in Path(tempfile.gettempdir()).glob(cls.PREFIX + "*"):
            try:
                pid = int((folder / "owner.pid").read_text())
            except (OSError, ValueError):
                continue
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(folder, ignore_errors=True)

    @property
    def socket_dir(self) -> Path:
        return self.runtime / "sockcli"

    def hub_address(self, event: str) -> str:
        return f"unix:{self.socket_dir / (event + '.sock')}"

    def path(self, name: str) -> Path:
        return self.root / name

    def spawn(self, argv: Sequence[str], *, name: str, stdin: Any = subprocess.DEVNULL,
              stdout: Any = None, text: bool = False) -> subprocess.Popen[Any]:
        """Start a child; its stderr (and stdout unless given) go to a log file."""
        self._counter += 1
        log = open(self.logs / f"{self._counter:03d}-{name}.log", "w")  # noqa: SIM115
        self._files.append(log)
        proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=log if stdout is None else stdout, stderr=log,
            env=self.env, cwd=self.root, start_new_session=True, preexec_fn=_child_setup,
            text=text)
        self._procs.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen[Any]) -> str:
        """The tail of a child's log, for error messages."""
        index = self._procs.index(proc)
        path = Path(self._files[index].name)
        with contextlib.suppress(OSError):
            self._files[index].flush()
            return path.read_text(errors="replace")[-2000:]
        return ""

    def run(self, argv: Sequence[str], *, name: str, timeout: float,
            stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        proc = self.spawn(argv, name=name, stdin=stdin, stdout=subprocess.PIPE, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise TimeoutError(f"{name} did not finish within {timeout:g} s") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")

    def stop(self, proc: subprocess.Popen[Any], grace: float = 3.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it lingers (only while the
        child is not reaped, so the group id is still its own)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)
        # No signal after the child was reaped: its pid (and group id) may be reused.
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self, keep: bool = False) -> None:
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                self.stop(proc)
        self._procs.clear()
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def warm_up(self) -> None:
        """Run the CLI once, as a user already has: bytecode and settings caches written."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([SOCKCLI, "list"], env=self.env, cwd=self.root, timeout=60,
                           check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def empty_cache(self) -> None:
        """Empty the private XDG_CACHE_HOME (sockcli keeps validated settings there)."""
        cache = self.root / "cache"
        for child in cache.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    child.unlink()

    # -- the servers the suites use -------------------------------------------------------

    def start_hub(self, event: str, *extra: str,
                  options: Sequence[str] = ()) -> subprocess.Popen[Any]:
        """``sockcli [OPTIONS] serve EVENT [EXTRA]`` (Unix socket), returned once it answers
        a handshake."""
        proc = self.spawn([SOCKCLI, *options, "serve", event, *extra], name=f"hub-{event}")
        address = self.hub_address(event)
        try:
            wait_until(lambda: alive(proc, "sockcli serve") and bool(hub_stats(address, 1.0)),
                       20.0, f"the hub of {event!r}")
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"sockcli serve {event} did not start ({exc}):\n"
                               f"{self.log_of(proc)}") from None
        return proc

    def start_relay(self, name: str) -> tuple[subprocess.Popen[Any], str]:
        """The baseline relay on a Unix socket, returned once it listens."""
        path = self.runtime / f"{name}.sock"
        proc = self.spawn([PYTHON, str(BASELINE_RELAY), "--unix", str(path)],
                          name=f"relay-{name}", stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"baseline relay did not start: {self.log_of(proc)}")
        return proc, f"unix:{path}"


@contextlib.contextmanager
def sandbox(keep: bool = False) -> Iterator[Sandbox]:
    box = Sandbox()
    try:
        yield box
    finally:
        box.close(keep=keep)


def read_ready(proc: subprocess.Popen[Any], timeout: float, what: str, box: Sandbox) -> None:
    """Wait, at most ``timeout`` seconds, for a worker's "ready" line (text-mode stdout, not
    read before): RuntimeError with its log if it says anything else, exits or is late."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        late = "" if ready else f"not ready after {timeout:g} s"
        raise RuntimeError(f"{what}: receiver {late or f'said {line!r}'}:\n{box.log_of(proc)}")


def worker(*args: str) -> list[str]:
    """argv of a worker process (benchmarks/workers.py) on the venv's interpreter."""
    return [PYTHON, str(WORKERS), *args]


def run_worker_pair(box: Sandbox, receiver: Sequence[str], sender: Sequence[str], *,
                    timeout: float, name: str,
                    ready_check: Callable[[], bool] | None = None) -> tuple[dict[str, Any],
                                                                             dict[str, Any]]:
    """Start a receiver worker, wait for its "ready" line (and ``ready_check``), run a sender
    worker, and return both JSON reports. Fails at once, with the receiver's report and log,
    when the receiver fails before the sender is done (it found a message out of sequence,
    stalled, or lost its connection), rather than when ``timeout`` has passed."""
    recv = box.spawn(receiver, name=f"{name}-recv", stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout is not None
        read_ready(recv, 60.0, name, box)
        if ready_check is not None:
            wait_until(ready_check, 10.0, f"{name}: the hub to see the receiver")
        send = box.spawn(sender, name=f"{name}-send", stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + timeout
            while send.poll() is None:
                if recv.poll() is not None and recv.returncode != 0:
                    out = recv.stdout.read()
                    raise RuntimeError(f"{name}: the receiver exited {recv.returncode} while "
                                       f"the sender ran: {out.strip()[:500]}\n"
                                       f"{box.log_of(recv)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: sender not done after {timeout:g} s:\n"
                                       f"{box.log_of(send)}")
                time.sleep(0.01)
            send_out, _ = send.communicate(timeout=10)
        finally:
            box.stop(send)
        if send.returncode != 0:
            raise RuntimeError(f"{name}: sender failed ({send.returncode}):\n"
                               f"{box.log_of(send)}")
        try:
            recv_out, _ = recv.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name}: receiver timed out:\n{box.log_of(recv)}") from None
        if recv.returncode != 0:
            raise RuntimeError(f"{name}: receiver failed ({recv.returncode}): "
                               f"{recv_out.strip()[:500]}\n{box.log_of(recv)}")
        return json.loads(send_out), json.loads(recv_out)
    finally:
        box.stop(recv)

"""The FIFO baseline: the least a reader of a named pipe does, in plain Python.

    python benchmarks/bare_fifo_reader.py FIFO COUNT OUT

Opens FIFO for reading and writing, as a sockcli hub opens its own (so it never sees end of
file between two writers, and a writer's ``open`` never waits for it), prints "ready", then
copies what arrives to OUT with ``os.read`` / ``os.write`` and counts newlines until COUNT have
come, and exits. No parsing, no messages, no listener: what the hub path is measured against
(benchmarks/fifo.py).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    path, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    fd = os.open(path, os.O_RDWR)
    dest = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    seen = 0
    while seen < count:
        chunk = os.read(fd, 65536)
        seen += chunk.count(b"\n")
        os.write(dest, chunk)
    os.close(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What both fuzz targets share: run under atheris, or replay inputs without it.

``python fuzz/fuzz_X.py [libFuzzer options] [CORPUS_DIR ...]`` fuzzes with atheris (coverage
guided, libFuzzer's options such as ``-max_total_time=30``); the first corpus directory is
seeded with the target's built-in seeds when it is empty. ``python fuzz/fuzz_X.py --replay
[FILE or DIR ...]`` runs the seeds and the given inputs once each, without atheris, and so does
a run where atheris is not installed: a crash file written by a fuzzing run is reproduced with
``--replay crash-...``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPLAY = "--replay" in sys.argv[1:]


def _atheris() -> Any:
    if REPLAY:
        return None
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        return None
    return atheris


ATHERIS = _atheris()


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import the code under test inside this block: atheris then sees its coverage."""
    if ATHERIS is None:
        yield
        return
    with ATHERIS.instrument_imports():
        yield


def _inputs(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    for arg in paths:
        path = Path(arg)
        if not path.exists():  # a corpus directory that was never filled
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield str(file), file.read_bytes()


def main(name: str, test_one_input: Callable[[bytes], None], seeds: list[bytes]) -> None:
    args = [a for a in sys.argv[1:] if a != "--replay"]
    paths = [a for a in args if not a.startswith("-")]
    if ATHERIS is None:
        if not REPLAY:
            print(f"{name}: atheris is not installed (pip install atheris): replaying the "
                  "seeds and the given inputs instead of fuzzing", flush=True)
        count = 0
        for label, data in [*((f"seed {i}", s) for i, s in enumerate(seeds)), *_inputs(paths)]:
            try:
                test_one_input(data)
            except BaseException:
                print(f"{name}: input {label} ({len(data)} bytes) failed: {data[:200]!r}",
                      flush=True)
                raise
            count += 1
        print(f"{name}: replayed {count} inputs, no failure", flush=True)
        return
    if paths:
        corpus = Path(paths[0])
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for i, seed in enumerate(seeds):
                (corpus / f"seed-{i:03d}").write_bytes(seed)
    ATHERIS.Setup([sys.argv[0], *args], test_one_input)
    ATHERIS.Fuzz()

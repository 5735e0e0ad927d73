"""The threaded client's outbox over a real socket pair: a message after a quiet spell is
written by the caller at once, a dense run waits to be written together, in order."""

from __future__ import annotations

import socket

from sockcli.client import outbox as ob


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    b.settimeout(10)
    return a, b


def _box(sock: socket.socket) -> ob.Outbox:
    return ob.Outbox("ev", connected=lambda: sock, on_lost=lambda: None)


def test_a_message_after_a_quiet_spell_is_written_by_the_caller() -> None:
    a, b = _pair()
    box = _box(a)
    with box.lock:
        box.add(a, b"one", now=False)
        assert not box.waiting  # written already, no flusher thread involved
    assert box._flusher is None
    assert b.recv(16) == b"one"
    a.close()
    b.close()


def test_a_dense_run_is_written_together_in_order(monkeypatch) -> None:
    a, b = _pair()
    box = _box(a)
    with box.lock:
        box.add(a, b"first", now=False)  # quiet before it: written at once
        assert not box.waiting
        # a dense run: each message comes well within IDLE_SECONDS of the last write
        monkeypatch.setattr(ob, "IDLE_SECONDS", 3600.0)
        for i in range(50):
            box.add(a, b"%02d" % i, now=False)
        assert box.waiting  # queued for the flusher, not written one by one
        box.write_out(a)
    got = b""
    want = b"first" + b"".join(b"%02d" % i for i in range(50))
    while len(got) < len(want):
        got += b.recv(4096)
    assert got == want
    box.close()
    a.close()
    b.close()

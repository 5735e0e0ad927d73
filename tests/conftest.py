"""Fixtures: a private short socket directory, a clean environment, hubs and clients of both
transports that are always stopped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli import SocketClient, SocketServer, create_client, create_server
from sockcli.config.loader import reset_settings_cache
from tests.helpers import short_tmp_dir


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-api-surface", action="store_true", default=False,
                     help="rewrite tests/api_surface.txt from the current code "
                          "(tests/test_api_surface.py), for an intended API change")


@pytest.fixture(autouse=True)
def forget_custom_message_types() -> Iterator[None]:
    """Message types registered by a test (or by the settings of its hubs and clients) are
    process-wide, like enum members: forget them afterwards, so that no test sees another's."""
    from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType

    by_value = dict(MESSAGE_TYPE_BY_VALUE)
    members = dict(MessageType._value2member_map_)
    yield
    MESSAGE_TYPE_BY_VALUE.clear()
    MESSAGE_TYPE_BY_VALUE.update(by_value)
    MessageType._value2member_map_.clear()
    MessageType._value2member_map_.update(members)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SOCKCLI_* variables and no user settings file leak in from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("SOCKCLI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    reset_settings_cache()
    yield
    reset_settings_cache()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A 0700 directory under /tmp: AF_UNIX paths must stay under 108 bytes."""
    path = short_tmp_dir()
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["unix", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_hub(transport: str, sock_dir: Path) -> Iterator[Callable[..., SocketServer]]:
    """``make_hub(event="ev", **settings)``: a started hub, stopped at teardown."""
    hubs: list[SocketServer] = []

    def make(event: str = "ev", *, start: bool = True, **kwargs: Any) -> SocketServer:
        kwargs.setdefault("socket_dir", sock_dir)
        kwargs.setdefault("timezone", "UTC")
        hub = create_server(transport, event, **kwargs)
        hubs.append(hub)
        if start:
            hub.start(blocking=False)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


@pytest.fixture
def make_client(transport: str, sock_dir: Path) -> Iterator[Callable[..., SocketClient]]:
    """``make_client(event="ev", connect=True, **kwargs)``: a client, disconnected at teardown."""
    clients: list[SocketClient] = []

    def make(event: str = "ev", *, connect: bool = True, timeout: float = 5.0,
             **kwargs: Any) -> SocketClient:
        kwargs.setdefault("socket_dir", sock_dir)
        kwargs.setdefault("timezone", "UTC")
        client = create_client(transport, event, **kwargs)
        clients.append(client)
        if connect:
            client.connect(timeout=timeout)
        return client

    yield make
    for client in clients:
        client.disconnect()


@pytest.fixture
def cli() -> Iterator[Any]:
    """A private runtime directory and helpers to run the installed ``sockcli`` in it."""
    from tests.clitools import Cli

    env = Cli(short_tmp_dir())
    yield env
    env.cleanup()


@pytest.fixture
def children() -> Iterator[list[Any]]:
    """Child processes a test starts (as another user, say): killed and reaped at teardown."""
    procs: list[Any] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def hubs() -> Iterator[list[Any]]:
    """Hubs a test makes itself: stopped at teardown."""
    made: list[Any] = []
    yield made
    for hub in made:
        hub.stop()

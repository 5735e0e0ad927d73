"""factory.py: servers and clients by transport name (nothing is started or connected).

Registered transports are tested end to end in test_transports.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sockcli import (
    MessageType,
    SocketClient,
    SocketServer,
    SocketType,
    TcpSocketClient,
    TcpSocketServer,
    UnixSocketClient,
    UnixSocketServer,
    ValidationError,
    create_client,
    create_server,
)

UNIX_SPELLINGS: list[Any] = [SocketType.UNIX, "unix", "Unix", "UNIX", "uNiX"]
TCP_SPELLINGS: list[Any] = [SocketType.TCP, "tcp", "TCP", "Tcp"]
BAD_TYPES: list[Any] = ["udp", "", "unix ", "socket", "ipc", None, 1]


@pytest.mark.parametrize("kind", UNIX_SPELLINGS)
def test_unix_server_and_client(kind: Any, sock_dir: Path) -> None:
    server = create_server(kind, "ev", socket_dir=sock_dir)
    assert type(server) is UnixSocketServer
    assert isinstance(server, SocketServer)
    assert server.event_name == "ev"
    assert server.socket_path == sock_dir / "ev.sock"
    assert not server.is_running()
    client = create_client(kind, "ev", socket_dir=sock_dir)
    assert type(client) is UnixSocketClient
    assert isinstance(client, SocketClient)
    assert client.address == str(sock_dir / "ev.sock")
    assert not client.is_connected()


@pytest.mark.parametrize("kind", TCP_SPELLINGS)
def test_tcp_server_and_client(kind: Any, sock_dir: Path) -> None:
    server = create_server(kind, "ev", socket_dir=sock_dir)
    assert type(server) is TcpSocketServer
    assert server.event_name == "ev"
    assert server.address == ""  # not started
    client = create_client(kind, "ev", socket_dir=sock_dir, host="127.0.0.1", port=47999)
    assert type(client) is TcpSocketClient
    assert client.address == "127.0.0.1:47999"
    assert not client.is_connected()


@pytest.mark.parametrize("kind", BAD_TYPES)
@pytest.mark.parametrize("factory", [create_server, create_client])
def test_unknown_socket_type(factory: Any, kind: Any) -> None:
    with pytest.raises(ValidationError) as info:
        factory(kind, "ev")
    assert str(info.value) == f"unknown socket type {kind!r}: choose one of tcp, unix"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
@pytest.mark.parametrize("factory", [create_server, create_client])
def test_unknown_setting(factory: Any, kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        factory(kind, "ev", message_queue_sise=10)
    text = str(info.value)
    assert text.startswith("unknown setting 'message_queue_sise': known settings are ")
    known = text.split("known settings are ")[1].split(", ")
    assert known == sorted(known)
    for key in ("buffer_size", "message_queue_size", "socket_dir", "timezone", "max_connections",
                "host", "port", "socket_permissions", "handshake_timeout"):
        assert key in known


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_settings_keywords_reach_the_server(kind: str, sock_dir: Path) -> None:
    server = create_server(kind, "ev", socket_dir=sock_dir, message_queue_size=7,
                           max_connections=3, buffer_size=2048)
    assert server.config.message_queue_size == 7  # type: ignore[attr-defined]
    assert server.config.buffer_size == 2048  # type: ignore[attr-defined]
    assert server.max_connections == 3  # type: ignore[attr-defined]


def test_client_keywords(sock_dir: Path) -> None:
    client = create_client("unix", "ev", socket_dir=sock_dir, subscribe=False, name="bar",
                           types=["ERROR", MessageType.DATA], auto_reconnect=False)
    assert client.subscribe is False  # type: ignore[attr-defined]
    assert client.name == "bar"  # type: ignore[attr-defined]
    assert client.types == frozenset({MessageType.ERROR, MessageType.DATA})  # type: ignore[attr-defined]
    assert client.auto_reconnect is False  # type: ignore[attr-defined]


def test_invalid_setting_value() -> None:
    with pytest.raises(ValidationError, match="buffer_size"):
        create_server("unix", "ev", buffer_size=10)


@pytest.mark.parametrize("factory", [create_server, create_client])
@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 65])
def test_invalid_event_name(factory: Any, name: str) -> None:
    with pytest.raises(ValidationError, match=r"invalid event name .*\^\[A-Za-z0-9_-\]"):
        factory("unix", name)


def test_invalid_type_is_reported_before_anything_else() -> None:
    # Both the transport and the event name are wrong: the transport is named first.
    with pytest.raises(ValidationError, match="unknown socket type 'udp'"):
        create_server("udp", "../x", bogus=1)

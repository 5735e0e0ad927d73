"""transports.py: a transport registered in this module works end to end, through the
factory and the configuration loader, and unknown names are refused naming the choices.

"unix2" is the Unix transport with a settings section of its own, ``[unix2] channel``, that
decides the socket file's name: ``{event}.{channel}.sock``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from sockcli import (
    SocketMessage,
    SocketType,
    UnixSocketClient,
    UnixSocketServer,
    ValidationError,
    create_client,
    create_server,
)
from sockcli.config.cache import CachedSettings
from sockcli.config.loader import get_settings, load_settings, reset_settings_cache
from sockcli.config.models import Settings
from sockcli.transports import (
    Transport,
    get_transport,
    register_transport,
    registry_key,
    transport_names,
    transports,
    unregister_transport,
)

pytestmark = pytest.mark.timeout(30)


class Unix2Config(BaseModel):
    """The ``[unix2]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Annotated[int, Field(ge=1, le=99)] = 1


def _unix2_path(settings: Any, socket_dir: Path, event_name: str) -> Path:
    return socket_dir / f"{event_name}.{settings.section('unix2').channel}.sock"


class Unix2Server(UnixSocketServer):
    """A Unix hub on ``{event}.{channel}.sock``."""

    def __init__(self, event_name: str, **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.socket_path = _unix2_path(self.settings, self.config.socket_dir, self.event_name)


class Unix2Client(UnixSocketClient):
    """A client of the hub on ``{event}.{channel}.sock``."""

    def __init__(self, event_name: str, **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.socket_path = _unix2_path(self.settings, self.config.socket_dir, self.event_name)


UNIX2 = {"server": f"{__name__}:Unix2Server", "client": f"{__name__}:Unix2Client",
         "model": f"{__name__}:Unix2Config"}


@pytest.fixture
def unix2() -> Iterator[Transport]:
    """The unix2 transport, registered for one test only."""
    record = register_transport("unix2", **UNIX2)
    reset_settings_cache()
    try:
        yield record
    finally:
        unregister_transport("unix2")
        reset_settings_cache()


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.toml"


# -- end to end --------------------------------------------------------------------------------


def test_a_registered_transport_serves_and_delivers(unix2: Transport, sock_dir: Path) -> None:
    hub = create_server("unix2", "ev", socket_dir=sock_dir, channel=7, timezone="UTC")
    assert type(hub) is Unix2Server
    hub.start(blocking=False)
    clients = []
    try:
        assert (sock_dir / "ev.7.sock").exists()
        assert not (sock_dir / "ev.sock").exists()
        listener = create_client("UNIX2", "ev", socket_dir=sock_dir, channel=7)
        sender = create_client("Unix2", "ev", socket_dir=sock_dir, channel=7, subscribe=False)
        clients += [listener, sender]
        assert type(listener) is Unix2Client and type(sender) is Unix2Client
        listener.connect(timeout=5)
        sender.connect(timeout=5)
        sender.send(SocketMessage("ev", timestamp_ms=1700000000000,
                                  data={"progress": 40, "via": "unix2"}))
        got = listener.receive(timeout=5)
        assert got.event_name == "ev"
        assert got.data == {"progress": 40, "via": "unix2"}
        assert got.timestamp_iso == "2023-11-14T22:13:20.000+00:00"
    finally:
        for client in clients:
            client.disconnect()
        hub.stop()
    assert not (sock_dir / "ev.7.sock").exists()


def test_its_section_is_read_from_every_layer(unix2: Transport, settings_file: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              sock_dir: Path) -> None:
    assert load_settings().section("unix2") == Unix2Config()  # the model's defaults
    settings_file.write_text("[unix2]\nchannel = 5\n[unix]\nmax_connections = 3\n")
    settings = load_settings(settings_file)
    assert isinstance(settings, Settings)
    assert (settings.section("unix2").channel, settings.unix.max_connections) == (5, 3)
    assert settings.as_json()["unix2"] == {"channel": 5}
    # The second load is the cached form, with the same section.
    cached = load_settings(settings_file)
    assert isinstance(cached, CachedSettings)
    assert cached.section("unix2").channel == 5
    assert cached == settings
    assert cached.with_overrides(channel=6).section("unix2").channel == 6
    monkeypatch.setenv("SOCKCLI_UNIX2__CHANNEL", "8")
    assert load_settings(settings_file).section("unix2").channel == 8
    assert load_settings(settings_file, channel=9).section("unix2").channel == 9
    hub = create_server("unix2", "ev", config_file=settings_file, socket_dir=sock_dir)
    assert hub.socket_path == sock_dir / "ev.8.sock"


@pytest.mark.parametrize(("text", "expected"), [
    ("[unix2]\nchannel = 0\n",
     "invalid setting [unix2] channel = 0 from {path}: Input should be greater than or equal "
     "to 1"),
    ('[unix2]\nchannel = "many"\n',
     "invalid setting [unix2] channel = 'many' from {path}: Input should be a valid integer, "
     "unable to parse string as an integer"),
    ("[unix2]\nchanel = 2\n",
     "unknown setting [unix2] chanel in {path}: known keys are channel"),
])
def test_a_bad_value_in_its_section_is_refused(unix2: Transport, settings_file: Path,
                                               text: str, expected: str) -> None:
    settings_file.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_settings(settings_file)
    assert str(info.value) == expected.format(path=settings_file)


def test_an_unknown_key_lists_every_section(unix2: Transport, settings_file: Path) -> None:
    settings_file.write_text("chanel = 2\n")
    with pytest.raises(ValidationError) as info:
        load_settings(settings_file)
    assert str(info.value).endswith("and the sections [unix], [tcp], [unix2] and [bridge]")


def test_a_bad_value_from_a_variable_or_a_keyword_names_it(
        unix2: Transport, monkeypatch: pytest.MonkeyPatch, sock_dir: Path) -> None:
    with pytest.raises(ValidationError, match=r"^invalid setting \[unix2\] channel = 100 from "
                                              r"keyword argument channel=: "):
        create_server("unix2", "ev", socket_dir=sock_dir, channel=100)
    monkeypatch.setenv("SOCKCLI_UNIX2__CHANNEL", "-1")
    with pytest.raises(ValidationError, match=r"\[unix2\] channel = -1 from environment "
                                              "variable SOCKCLI_UNIX2__CHANNEL"):
        load_settings()


def test_its_section_is_unknown_until_registered(settings_file: Path) -> None:
    settings_file.write_text("[unix2]\nchannel = 5\n")
    with pytest.raises(ValidationError) as info:
        load_settings(settings_file)
    assert str(info.value).startswith(f"unknown setting unix2 in {settings_file}: ")
    assert str(info.value).endswith("and the sections [unix], [tcp] and [bridge]")
    with pytest.raises(ValidationError, match="no settings section 'unix2': the sections are "
                                              "bridge, tcp, unix"):
        load_settings().section("unix2")


def test_registering_invalidates_settings_loaded_before(sock_dir: Path) -> None:
    before = load_settings()  # cached now, without a unix2 section
    shared = get_settings()
    early = Settings()
    register_transport("unix2", **UNIX2)
    try:
        after = load_settings()
        assert after.section("unix2").channel == 1  # not the stale cache entry
        assert get_settings() is not shared  # the shared settings were loaded again
        assert get_settings().section("unix2") is not None
        with pytest.raises(ValidationError, match="registered after these settings"):
            early.section("unix2")
        assert before.with_overrides() is before
    finally:
        unregister_transport("unix2")
        reset_settings_cache()


# -- the registry --------------------------------------------------------------------------------


def test_the_built_in_transports() -> None:
    assert [t.name for t in transports()] == ["unix", "tcp"]
    assert transport_names() == ["tcp", "unix"]
    unix = get_transport("unix")
    assert (unix.section, unix.server_class(), unix.client_class()) == (
        "unix", UnixSocketServer, UnixSocketClient)
    for kind in (SocketType.UNIX, "UNIX", "Unix"):
        assert get_transport(kind) is unix
    assert get_transport(SocketType.TCP).model_class().__name__ == "TcpSocketConfig"
    assert registry_key() == (("unix", "sockcli.config.models:UnixSocketConfig"),
                              ("tcp", "sockcli.config.models:TcpSocketConfig"))
    with pytest.raises(AttributeError, match="immutable"):
        unix.name = "other"  # type: ignore[misc]
    assert unix == Transport("unix", server=unix.server, client=unix.client, section="unix",
                             model=unix.model)
    assert "UnixSocketServer" in repr(unix)


@pytest.mark.parametrize("kind", ["unix3", "udp", "", "unix ", None, 1])
@pytest.mark.parametrize("factory", [create_server, create_client])
def test_unknown_names_are_refused_naming_the_choices(unix2: Transport, factory: Any,
                                                      kind: Any) -> None:
    with pytest.raises(ValidationError) as info:
        factory(kind, "ev")
    assert str(info.value) == f"unknown socket type {kind!r}: choose one of tcp, unix, unix2"


def test_registration_is_checked() -> None:
    with pytest.raises(ValidationError, match="transport 'unix' is already registered"):
        register_transport("UNIX", **UNIX2)
    for bad in ("", "2x", "a-b", "a b", "x" * 33):
        with pytest.raises(ValidationError, match=f"invalid transport name {bad.lower()!r}"):
            register_transport(bad, **UNIX2)
    with pytest.raises(ValidationError, match="invalid transport section 'socket'"):
        register_transport("mine", **UNIX2, section="socket")
    with pytest.raises(ValidationError, match="section 'tcp' already belongs to transport "
                                              "'tcp'"):
        register_transport("mine", **UNIX2, section="tcp")
    with pytest.raises(ValidationError, match=re.escape("invalid server 'tests.Unix2Server': "
                                                        "name it 'module:Class'")):
        register_transport("mine", **{**UNIX2, "server": "tests.Unix2Server"})
    with pytest.raises(ValidationError, match="transport 'tcp' is built in"):
        unregister_transport("tcp")
    with pytest.raises(ValidationError, match="unknown socket type 'mine'"):
        unregister_transport("mine")
    assert transport_names() == ["tcp", "unix"]


def test_registering_again_is_harmless_and_a_conflict_is_refused(unix2: Transport) -> None:
    assert register_transport("unix2", **UNIX2) is unix2
    with pytest.raises(ValidationError, match="transport 'unix2' is already registered"):
        register_transport("unix2", **{**UNIX2, "client": "sockcli.client.unix:UnixSocketClient"})


def test_a_transport_without_settings_of_its_own(sock_dir: Path) -> None:
    register_transport("plain", server="sockcli.hub.unix:UnixSocketServer",
                       client="sockcli.client.unix:UnixSocketClient")
    try:
        assert get_transport("plain").section is None
        assert "plain" not in load_settings().as_json()
        assert type(create_server("plain", "ev", socket_dir=sock_dir)) is UnixSocketServer
    finally:
        unregister_transport("plain")


def test_a_class_that_cannot_be_imported(sock_dir: Path) -> None:
    register_transport("broken", server="tests.no_such_module:Hub",
                       client="sockcli.exceptions:ValidationError")
    try:
        with pytest.raises(ValidationError, match=re.escape(
                "cannot import the hub of transport 'broken', 'tests.no_such_module:Hub'")):
            create_server("broken", "ev", socket_dir=sock_dir)
        with pytest.raises(ValidationError, match=re.escape(
                "the client of transport 'broken', sockcli.exceptions:ValidationError, is not "
                "a SocketClient")):
            create_client("broken", "ev", socket_dir=sock_dir)
    finally:
        unregister_transport("broken")


def test_the_registry_is_light() -> None:
    """The loader reads the registry on every cached ``sockcli send``."""
    code = ("import sys; import sockcli.transports as t; t.get_transport('unix');"
            "print(sorted(m for m in ('typing', 'dataclasses', 'pydantic', 'sockcli.hub',"
            " 'sockcli.client') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr

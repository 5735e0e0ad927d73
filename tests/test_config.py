"""Configuration layers (packaged defaults, user file or config_file=, SOCKCLI_* environment,
keyword arguments) and the errors that name the key, the value and where it came from."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from sockcli import (
    Settings,
    SocketConfig,
    TcpSocketConfig,
    UnixSocketConfig,
    ValidationError,
    create_client,
    create_server,
    load_settings,
)
from sockcli.config.loader import (
    default_settings_file,
    get_settings,
    reset_settings_cache,
    user_settings_file,
)
from sockcli.config.models import BridgeConfig

pytestmark = pytest.mark.timeout(20)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def user_file() -> Path:
    """Where the user's settings live under the clean_env XDG_CONFIG_HOME (not created)."""
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "sockcli" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _raises(match_all: list[str], func, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as info:
        func(*args, **kwargs)
    text = str(info.value)
    for part in match_all:
        assert part in text, f"{part!r} not in {text!r}"
    return text


# -- defaults ------------------------------------------------------------------------------


def test_packaged_default_file_is_found() -> None:
    path = default_settings_file()
    assert path.is_file()
    assert path == REPO / "config" / "settings.toml"  # source checkout (editable install)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    assert data["buffer_size"] == 65536
    assert set(data["unix"]) == set(UnixSocketConfig.model_fields)
    assert set(data["tcp"]) == set(TcpSocketConfig.model_fields)
    assert set(data["bridge"]) == set(BridgeConfig.model_fields)
    assert set(data) - {"unix", "tcp", "bridge"} == set(SocketConfig.model_fields)


def test_defaults_come_from_packaged_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    settings = load_settings()
    assert isinstance(settings, Settings)
    s, u, t = settings.socket, settings.unix, settings.tcp
    assert (s.socket_dir, s.default_timeout, s.buffer_size, s.timezone, s.message_queue_size,
            s.blocking_mode, s.allow_client_send, s.auto_reconnect, s.reconnect_max_delay,
            s.receive_buffer_size, s.send_buffer_limit, s.handshake_timeout) == (
        Path(f"/tmp/sockcli-{os.getuid()}"), 5.0, 65536, "local", 100, False, True, True, 0.5,
        1024, 4194304, 5.0)
    assert (u.max_connections, u.socket_permissions, u.auto_remove_socket, u.mode) == (
        1024, "0600", True, 0o600)
    assert (t.host, t.port, t.port_range_start, t.port_range_end, t.max_connections) == (
        "127.0.0.1", 0, 47800, 47899, 1024)
    # The file and the models agree on every default.
    assert settings == Settings()
    assert get_settings() == settings


def test_user_settings_file_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert user_settings_file() == tmp_path / "xdg-config" / "sockcli" / "settings.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_settings_file() == tmp_path / "home" / ".config" / "sockcli" / "settings.toml"


def test_empty_socket_dir_uses_xdg_runtime_dir(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert load_settings().socket.socket_dir == tmp_path / "run" / "sockcli"
    assert load_settings(socket_dir="").socket.socket_dir == tmp_path / "run" / "sockcli"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert load_settings().socket.socket_dir == Path(f"/tmp/sockcli-{os.getuid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")  # empty counts as unset
    assert load_settings().socket.socket_dir == Path(f"/tmp/sockcli-{os.getuid()}")


def test_socket_dir_expands_home_and_must_be_absolute(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(socket_dir="~/socks").socket.socket_dir == tmp_path / "socks"
    _raises(["socket_dir = 'rel/dir'", "keyword argument socket_dir=", "must be an absolute path"],
            load_settings, socket_dir="rel/dir")


# -- layers --------------------------------------------------------------------------------


def test_user_file_overrides_defaults(user_file: Path) -> None:
    user_file.write_text('buffer_size = 2048\ntimezone = "UTC"\n[unix]\nmax_connections = 3\n'
                         '[tcp]\nport_range_end = 47810\n')
    s = load_settings()
    assert (s.socket.buffer_size, s.socket.timezone, s.unix.max_connections,
            s.tcp.port_range_end) == (2048, "UTC", 3, 47810)
    # Untouched keys keep their defaults, in the sections too (the merge is per key).
    assert (s.socket.message_queue_size, s.unix.socket_permissions, s.tcp.port_range_start,
            s.tcp.max_connections) == (100, "0600", 47800, 1024)


def test_user_file_keys_are_case_insensitive(user_file: Path) -> None:
    user_file.write_text("BUFFER_SIZE = 4096\n[UNIX]\nMax_Connections = 9\n")
    s = load_settings()
    assert (s.socket.buffer_size, s.unix.max_connections) == (4096, 9)


def test_config_file_replaces_user_file(user_file: Path, tmp_path: Path,
                                        sock_dir: Path) -> None:
    user_file.write_text("buffer_size = 2048\nmessage_queue_size = 5\n")
    other = tmp_path / "other.toml"
    other.write_text("message_queue_size = 9\n[tcp]\nhost = \"::1\"\n")
    s = load_settings(other)
    assert (s.socket.message_queue_size, s.socket.buffer_size, s.tcp.host) == (9, 65536, "::1")
    hub = create_server("unix", "ev", config_file=other, socket_dir=sock_dir)
    assert (hub.config.message_queue_size, hub.config.buffer_size) == (9, 65536)
    client = create_client("tcp", "ev", config_file=str(other), socket_dir=sock_dir)
    assert (client.config.message_queue_size, client.settings.tcp.host) == (9, "::1")
    _raises([f"settings file {tmp_path / 'none.toml'} does not exist"], load_settings,
            tmp_path / "none.toml")


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, user_file: Path) -> None:
    user_file.write_text("buffer_size = 2048\n[unix]\nmax_connections = 3\n"
                         "[tcp]\nport_range_start = 47801\n")
    monkeypatch.setenv("SOCKCLI_BUFFER_SIZE", "4096")
    monkeypatch.setenv("SOCKCLI_UNIX__MAX_CONNECTIONS", "7")
    monkeypatch.setenv("SOCKCLI_TCP__PORT_RANGE_START", "47850")
    monkeypatch.setenv("SOCKCLI_BLOCKING_MODE", "true")
    monkeypatch.setenv("SOCKCLI_TIMEZONE", "Europe/Paris")
    s = load_settings()
    assert (s.socket.buffer_size, s.unix.max_connections, s.tcp.port_range_start,
            s.socket.blocking_mode, s.socket.timezone) == (4096, 7, 47850, True, "Europe/Paris")
    # Only the named key of a section changes.
    assert (s.tcp.port_range_end, s.tcp.max_connections, s.unix.socket_permissions) == (
        47899, 1024, "0600")


def test_environment_without_user_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKCLI_DEFAULT_TIMEOUT", "1.5")
    monkeypatch.setenv("SOCKCLI_UNIX__SOCKET_PERMISSIONS", "0640")
    s = load_settings()
    assert (s.socket.default_timeout, s.unix.socket_permissions) == (1.5, "0640")


def test_keyword_arguments_override_everything(monkeypatch: pytest.MonkeyPatch,
                                               user_file: Path, sock_dir: Path) -> None:
    user_file.write_text("message_queue_size = 9\n")
    monkeypatch.setenv("SOCKCLI_MESSAGE_QUEUE_SIZE", "7")
    reset_settings_cache()
    hub = create_server("unix", "ev", message_queue_size=3, socket_dir=sock_dir)
    assert hub.config.message_queue_size == 3
    hub.start(blocking=False)
    try:
        assert hub.stats()["queue_size"] == 3
    finally:
        hub.stop()
    assert create_server("unix", "ev").config.message_queue_size == 7  # env beats the file
    assert load_settings(message_queue_size=4).socket.message_queue_size == 4
    monkeypatch.delenv("SOCKCLI_MESSAGE_QUEUE_SIZE")
    reset_settings_cache()
    assert create_server("unix", "ev").config.message_queue_size == 9  # file beats defaults
    user_file.unlink()
    reset_settings_cache()
    assert create_server("unix", "ev").config.message_queue_size == 100


def test_shared_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              user_file: Path, tmp_path: Path) -> None:
    """What a test suite with monkeypatch does: change XDG_RUNTIME_DIR, a SOCKCLI_* variable
    or the user's file between two hubs or clients, and the next one gets the new values,
    with no reset_settings_cache(); unchanged, the shared settings are the same object."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "a"))
    first = get_settings()
    assert get_settings() is first  # nothing changed: loaded once, shared
    assert create_server("unix", "ev").config.socket_dir == tmp_path / "a" / "sockcli"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "b"))
    assert create_server("unix", "ev").config.socket_dir == tmp_path / "b" / "sockcli"
    assert create_client("tcp", "ev").config.socket_dir == tmp_path / "b" / "sockcli"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert create_client("unix", "ev").config.socket_dir == \
        Path(f"/tmp/sockcli-{os.getuid()}")
    monkeypatch.setenv("SOCKCLI_MESSAGE_QUEUE_SIZE", "7")
    assert create_server("tcp", "ev").config.message_queue_size == 7
    monkeypatch.setenv("SOCKCLI_UNIX__MAX_CONNECTIONS", "3")
    assert create_server("unix", "ev").max_connections == 3
    monkeypatch.delenv("SOCKCLI_MESSAGE_QUEUE_SIZE")
    monkeypatch.delenv("SOCKCLI_UNIX__MAX_CONNECTIONS")
    user_file.write_text("message_queue_size = 9\n")
    assert create_server("unix", "ev").config.message_queue_size == 9
    user_file.unlink()
    assert create_server("unix", "ev").config.message_queue_size == 100
    monkeypatch.setenv("SOCKCLI_EVENT", "other")  # not a setting: the same shared settings
    assert get_settings() is get_settings()
    assert get_settings() == first.with_overrides(socket_dir=f"/tmp/sockcli-{os.getuid()}")


def test_keyword_max_connections_applies_to_both_sections() -> None:
    s = load_settings(max_connections=5)
    assert (s.unix.max_connections, s.tcp.max_connections) == (5, 5)
    hub = create_server("tcp", "ev", max_connections=6, port=47999)
    assert (hub.max_connections, hub.settings.tcp.port) == (6, 47999)


def test_unrelated_sockcli_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKCLI_EVENT", "my-event")
    monkeypatch.setenv("SOCKCLI_TYPE", "unix")
    assert load_settings() == Settings(socket=SocketConfig(
        socket_dir=load_settings().socket.socket_dir))


def test_unknown_keyword_is_refused() -> None:
    text = _raises(["unknown setting 'bufsize'", "known settings are", "buffer_size",
                    "socket_permissions"], load_settings, bufsize=1)
    assert text.startswith("unknown setting 'bufsize'")
    with pytest.raises(ValidationError, match="unknown setting 'colour'"):
        create_server("unix", "ev", colour="red")


# -- invalid values name key, value and source ---------------------------------------------


def test_invalid_value_in_user_file(user_file: Path) -> None:
    user_file.write_text("buffer_size = 100\n")
    text = _raises([], load_settings)
    assert text == (f"invalid setting buffer_size = 100 from {user_file}: Input should be "
                    "greater than or equal to 1024")


def test_invalid_value_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[unix]\nsocket_permissions = \"0999\"\n")
    text = _raises([], load_settings, path)
    assert text == (f"invalid setting [unix] socket_permissions = '0999' from {path}: must be "
                    "an octal mode from 0000 to 0777, such as \"0600\"")


def test_invalid_value_in_environment(monkeypatch: pytest.MonkeyPatch, user_file: Path) -> None:
    user_file.write_text("buffer_size = 2048\n")
    monkeypatch.setenv("SOCKCLI_BUFFER_SIZE", "lots")
    _raises(["invalid setting buffer_size = 'lots'", "environment variable SOCKCLI_BUFFER_SIZE",
             "valid integer"], load_settings)
    monkeypatch.delenv("SOCKCLI_BUFFER_SIZE")
    monkeypatch.setenv("SOCKCLI_UNIX__MAX_CONNECTIONS", "0")
    text = _raises([], load_settings)
    assert text == ("invalid setting [unix] max_connections = 0 from environment variable "
                    "SOCKCLI_UNIX__MAX_CONNECTIONS: Input should be greater than or equal to 1")
    monkeypatch.delenv("SOCKCLI_UNIX__MAX_CONNECTIONS")
    monkeypatch.setenv("SOCKCLI_TCP__PORT_RANGE_START", "70000")
    _raises(["[tcp] port_range_start = 70000",
             "environment variable SOCKCLI_TCP__PORT_RANGE_START", "65535"], load_settings)


def test_invalid_keyword_argument(sock_dir: Path) -> None:
    text = _raises([], create_server, "unix", "ev", buffer_size=10, socket_dir=sock_dir)
    assert text == ("invalid setting buffer_size = 10 from keyword argument buffer_size=: Input "
                    "should be greater than or equal to 1024")
    _raises(["[tcp] port = 70000", "keyword argument port="], create_server, "tcp", "ev",
            port=70000)
    _raises(["[unix] socket_permissions = 'abc'", "keyword argument socket_permissions="],
            create_client, "unix", "ev", socket_permissions="abc")
    _raises(["default_timeout = 0", "keyword argument default_timeout="], load_settings,
            default_timeout=0)


def test_keyword_beats_invalid_lower_layers_in_source(monkeypatch: pytest.MonkeyPatch,
                                                      user_file: Path) -> None:
    """The source named is the layer that supplied the bad value, not another one."""
    user_file.write_text("message_queue_size = 5\n")
    monkeypatch.setenv("SOCKCLI_MESSAGE_QUEUE_SIZE", "6")
    _raises(["message_queue_size = -1 from keyword argument message_queue_size="],
            load_settings, message_queue_size=-1)
    monkeypatch.setenv("SOCKCLI_MESSAGE_QUEUE_SIZE", "-2")
    _raises(["message_queue_size = -2 from environment variable SOCKCLI_MESSAGE_QUEUE_SIZE"],
            load_settings)


@pytest.mark.parametrize(("given", "normalised", "mode"), [
    ("0600", "0600", 0o600), ("600", "0600", 0o600), ("0o640", "0640", 0o640),
    ("0O640", "0640", 0o640), ("0660", "0660", 0o660), (" 0644 ", "0644", 0o644),
    ("0", "0000", 0), ("0777", "0777", 0o777), ("7", "0007", 0o007),
])
def test_octal_permissions_accepted_and_normalised(given: str, normalised: str,
                                                   mode: int) -> None:
    config = UnixSocketConfig(socket_permissions=given)
    assert (config.socket_permissions, config.mode) == (normalised, mode)
    s = load_settings(socket_permissions=given)
    assert (s.unix.socket_permissions, s.unix.mode) == (normalised, mode)


@pytest.mark.parametrize("given", ["0999", "abc", "", "0o", "1000", "0o1000", "-600", "0x1ff",
                                   "6 00"])
def test_octal_permissions_refused(given: str) -> None:
    _raises([f"[unix] socket_permissions = {given!r}", "keyword argument socket_permissions=",
             "must be an octal mode from 0000 to 0777"], load_settings, socket_permissions=given)


@pytest.mark.parametrize(("given", "normalised"), [("0600", "0600"), ("600", "0600"),
                                                   ("0o640", "0640"), ("0660", "0660"),
                                                   ("0o600", "0600")])
def test_octal_permissions_from_environment(monkeypatch: pytest.MonkeyPatch, given: str,
                                            normalised: str) -> None:
    monkeypatch.setenv("SOCKCLI_UNIX__SOCKET_PERMISSIONS", given)
    assert load_settings().unix.socket_permissions == normalised


@pytest.mark.parametrize(("given", "normalised"), [('"0600"', "0600"), ('"600"', "0600"),
                                                   ('"0o640"', "0640")])
def test_octal_permissions_from_file(user_file: Path, given: str, normalised: str) -> None:
    user_file.write_text(f"[unix]\nsocket_permissions = {given}\n")
    assert load_settings().unix.socket_permissions == normalised


@pytest.mark.parametrize("given", ["0999", "abc", "0x1a0", "0b110100000"])
def test_environment_octal_refused_names_variable(monkeypatch: pytest.MonkeyPatch,
                                                  given: str) -> None:
    # TOML would read "0x1a0" as the integer 416: the raw text is what gets validated.
    monkeypatch.setenv("SOCKCLI_UNIX__SOCKET_PERMISSIONS", given)
    _raises([f"[unix] socket_permissions = {given!r}",
             "environment variable SOCKCLI_UNIX__SOCKET_PERMISSIONS"], load_settings)


def test_environment_octal_permissions_reach_the_socket(monkeypatch: pytest.MonkeyPatch,
                                                        sock_dir: Path) -> None:
    import stat

    monkeypatch.setenv("SOCKCLI_UNIX__SOCKET_PERMISSIONS", "0o640")
    reset_settings_cache()
    hub = create_server("unix", "ev", socket_dir=sock_dir)
    hub.start(blocking=False)
    try:
        assert stat.S_IMODE(os.lstat(sock_dir / "ev.sock").st_mode) == 0o640
    finally:
        hub.stop()


def test_port_range_order_enforced(user_file: Path) -> None:
    text = _raises([], load_settings, port_range_start=47900, port_range_end=47800)
    assert text == ("invalid settings in [tcp]: port_range_start (47900) must not exceed "
                    "port_range_end (47800)")
    user_file.write_text("[tcp]\nport_range_start = 5000\nport_range_end = 4000\n")
    _raises(["port_range_start (5000) must not exceed port_range_end (4000)"], load_settings)
    s = load_settings(port_range_start=4000)  # equal ends: a one-port range is fine
    assert (s.tcp.port_range_start, s.tcp.port_range_end) == (4000, 4000)
    with pytest.raises(ValueError, match="must not exceed"):  # pydantic's, at model level
        TcpSocketConfig(port_range_start=2, port_range_end=1)


def test_unknown_key_in_user_file(user_file: Path) -> None:
    user_file.write_text("bufer_size = 1\n")
    text = _raises([], load_settings)
    assert text.startswith(f"unknown setting bufer_size in {user_file}: known keys are "
                           "allow_client_send, ")
    assert text.endswith("and the sections [unix], [tcp] and [bridge]")
    user_file.write_text("[tcp]\nprot = 1\n")
    text = _raises([], load_settings)
    assert text == (f"unknown setting [tcp] prot in {user_file}: known keys are host, "
                    "insecure, max_connections, port, port_range_end, port_range_start, "
                    "tls_ca, tls_cert, tls_key, token_file")
    user_file.write_text("[ssl]\nverify = true\n")
    _raises([f"unknown setting ssl in {user_file}"], load_settings)


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[unix]\nsocket_perms = \"0600\"\n")
    _raises([f"unknown setting [unix] socket_perms in {path}"], load_settings, path)


def test_invalid_toml(user_file: Path, tmp_path: Path) -> None:
    user_file.write_text("buffer_size = [\n")
    text = _raises([], load_settings)
    assert text.startswith(f"settings file {user_file} is not valid TOML: ")
    bad = tmp_path / "bad.toml"
    bad.write_text("[unix\n")
    _raises([f"settings file {bad} is not valid TOML"], load_settings, bad)
    _raises([f"settings file {bad} is not valid TOML"], create_server, "unix", "ev",
            config_file=bad)


def test_unknown_timezone_refused(user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _raises([], load_settings, timezone="Mars/Olympus")
    assert text == ("invalid setting timezone = 'Mars/Olympus' from keyword argument timezone=: "
                    "unknown timezone 'Mars/Olympus': use an IANA name such as 'UTC' or "
                    "'Europe/Paris', or 'local'")
    user_file.write_text('timezone = "Nowhere/Land"\n')
    _raises(["timezone = 'Nowhere/Land'", str(user_file), "unknown timezone"], load_settings)
    user_file.unlink()
    monkeypatch.setenv("SOCKCLI_TIMEZONE", "../etc/passwd")
    _raises(["timezone = '../etc/passwd'", "environment variable SOCKCLI_TIMEZONE",
             "unknown timezone"], load_settings)
    for good in ("UTC", "local", "Europe/Paris", "America/New_York"):
        assert load_settings(timezone=good).socket.timezone == good


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.socket.buffer_size = 1  # type: ignore[misc]
    assert s.with_overrides() is s
    t = s.with_overrides(buffer_size=2048)
    assert (t.socket.buffer_size, s.socket.buffer_size) == (2048, 65536)


@pytest.mark.parametrize("given", [0o640, 600, 416])
def test_integer_permissions_are_refused_as_ambiguous(given: int, user_file: Path) -> None:
    """0o640 is the integer 416: read as octal digits it would silently become mode 0416."""
    text = _raises([], load_settings, socket_permissions=given)
    assert text == (f"invalid setting [unix] socket_permissions = {given} from keyword argument "
                    "socket_permissions=: must be an octal string such as \"0600\", not a number")
    with pytest.raises(ValueError, match="not a number"):
        UnixSocketConfig(socket_permissions=given)  # type: ignore[arg-type]
    user_file.write_text(f"[unix]\nsocket_permissions = {oct(given)}\n")
    _raises([f"[unix] socket_permissions = {given} from {user_file}", "not a number"],
            load_settings)


# -- sections by name ----------------------------------------------------------------------


def test_every_section_by_name() -> None:
    settings = load_settings()
    cached = load_settings()  # the same values, from the cache
    assert isinstance(settings, Settings) and not isinstance(cached, Settings)
    for form in (settings, cached):
        assert form.section("unix") is form.unix and form.section("tcp") is form.tcp
        for name in ("socket", "nope"):
            with pytest.raises(ValidationError) as info:
                form.section(name)
            assert str(info.value) == \
                f"no settings section {name!r}: the sections are bridge, tcp, unix"
    assert settings.as_json() == cached.as_json()
    assert set(settings.as_json()) == {"socket", "unix", "tcp", "bridge"}


def test_a_section_that_is_not_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKCLI_TCP", "5")
    _raises(["invalid settings section [tcp]: it must be a table of keys, not int"],
            load_settings)

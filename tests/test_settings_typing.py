"""config/views.py: the protocols of the settings, the pydantic models and the cached form
name the same keys with the same values, mypy checks code written against them, and the
cached form stays off typing, dataclasses, pathlib and pydantic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sockcli.config.cache import (
    CachedBridge,
    CachedSettings,
    CachedSocket,
    CachedTcp,
    CachedUnix,
)
from sockcli.config.loader import load_settings
from sockcli.config.models import (
    BridgeConfig,
    Settings,
    SocketConfig,
    TcpSocketConfig,
    UnixSocketConfig,
)
from sockcli.config.views import BridgeView, SettingsView, SocketView, TcpView, UnixView

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]

#: (protocol, model, cached class, the members that are not settings keys)
PARTS = [
    (SocketView, SocketConfig, CachedSocket, set()),
    (UnixView, UnixSocketConfig, CachedUnix, {"mode"}),
    (TcpView, TcpSocketConfig, CachedTcp, set()),
    (BridgeView, BridgeConfig, CachedBridge, set()),
]


def members(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if isinstance(value, property)}


def cached_members(cls: type) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        names |= set(vars(klass).get("__annotations__", {}))
        names |= {n for n, v in vars(klass).items() if isinstance(v, property)}
    return names


@pytest.mark.parametrize(("view", "model", "cached", "derived"), PARTS,
                         ids=lambda p: getattr(p, "__name__", ""))
def test_the_three_forms_list_the_same_keys(view: type, model: type, cached: type,
                                            derived: set[str]) -> None:
    assert members(view) == set(model.model_fields) | derived  # type: ignore[attr-defined]
    assert cached_members(cached) == members(view)


def test_the_settings_view_lists_the_parts() -> None:
    assert members(SettingsView) == {"socket", "unix", "tcp", "bridge"}
    assert {"section", "as_json", "with_overrides"} <= set(vars(SettingsView))


def test_the_cached_form_holds_what_the_model_holds(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    token = tmp_path / "token"
    config.write_text(textwrap.dedent(f"""\
        socket_dir = "{tmp_path / 'run'}"
        timezone = "UTC"
        message_types = ["warning"]
        [unix]
        allowed_uids = [1000, 1001]
        socket_permissions = "0640"
        [tcp]
        token_file = "{token}"
        tls_ca = "{tmp_path / 'ca.pem'}"
        port = 47811
        [bridge]
        url = "mqtts://broker.lan:8883"
        password_file = "{tmp_path / 'password'}"
        queue_size = 5
        """))
    model = load_settings(config)
    cached = load_settings(config)
    assert isinstance(model, Settings)
    assert isinstance(cached, CachedSettings)
    for part, (view, _, _, _) in zip(("socket", "unix", "tcp", "bridge"), PARTS, strict=True):
        for name in sorted(members(view)):
            want = getattr(getattr(model, part), name)
            got = getattr(getattr(cached, part), name)
            assert (got, type(got)) == (want, type(want)), f"{part}.{name}"
    assert cached.as_json() == model.as_json()
    assert cached.tcp.tls_key is None and cached.unix.mode == 0o640
    with pytest.raises(AttributeError, match="frozen"):
        cached.socket.buffer_size = 1  # type: ignore[misc]


def test_mypy_checks_code_written_against_the_settings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(textwrap.dedent("""\
        from sockcli.config.cache import CachedSettings
        from sockcli.config.loader import get_settings, load_settings
        from sockcli.config.models import Settings
        from sockcli.config.views import SettingsView
        from sockcli.hub.unix import UnixSocketServer

        settings = load_settings()
        port: int = settings.tcp.port
        mode: int = get_settings().unix.mode
        either: SettingsView = Settings()
        either = CachedSettings(Settings().as_json())
        either = either.with_overrides(buffer_size=2048)
        timeout: float = UnixSocketServer("ev").config.frame_timeout
        wrong: str = settings.socket.buffer_size
        settings.socket.buffer_sise
        settings.socket.buffer_size = 1
        """))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(sample)],
        capture_output=True, text=True, cwd=REPO, timeout=110, check=False)
    errors = [line.split(": error: ")[1] for line in done.stdout.splitlines()
              if ": error: " in line]
    lines = [int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error: " in line]
    assert lines == [14, 15, 16], done.stdout + done.stderr
    assert errors[0].startswith('Incompatible types in assignment (expression has type "int"')
    assert errors[1].startswith('"SocketView" has no attribute "buffer_sise"')
    assert "read-only" in errors[2]


def test_a_cached_load_imports_nothing_heavy(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    # A user file to validate: with none, even the first load is light (config/defaults.py).
    (tmp_path / "config" / "sockcli").mkdir(parents=True)
    (tmp_path / "config" / "sockcli" / "settings.toml").write_text("buffer_size = 65536\n")
    code = ("import json, sys\n"
            "from sockcli.config.loader import load_settings_data\n"
            "data = load_settings_data()\n"
            "print(json.dumps([sorted(data), sorted(m for m in ('typing', 'dataclasses',"
            " 'pathlib', 'pydantic', 'dynaconf', 'tomllib') if m in sys.modules)]))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=60, check=False) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(run.stdout) for run in runs)
    assert first[0] == second[0] == ["bridge", "socket", "tcp", "unix"]
    assert "pydantic" in first[1]  # the probe sees a heavy import when there is one
    assert second[1] == []

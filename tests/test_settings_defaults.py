"""sockcli/config/defaults.py: the packaged settings validated ahead of time, which a first
run uses instead of pydantic and dynaconf. They must be what pydantic and dynaconf make of
config/settings.toml in the same environment, and be used only when nothing else could change
the result."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sockcli.config import cache, defaults, loader
from sockcli.timestamps import default_timezone, set_default_timezone

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_defaults",
                                                  ROOT / "tools" / "settings_defaults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validated(**overrides: Any) -> dict[str, Any]:
    """What pydantic and dynaconf make of the settings in this environment, now."""
    data: dict[str, Any] = loader._load_and_validate(None, overrides).as_json()
    return data


def _first_run(**overrides: Any) -> dict[str, Any]:
    """load_settings_data() with an empty cache, as a first ``sockcli send`` calls it."""
    path = cache.cache_file()
    if os.path.exists(path):
        os.unlink(path)
    return loader.load_settings_data(**overrides)


def test_the_module_is_what_the_generator_writes() -> None:
    assert _generator().render() == (ROOT / "sockcli" / "config" / "defaults.py").read_text(), \
        "sockcli/config/defaults.py is out of date: run python tools/settings_defaults.py"


@pytest.mark.parametrize("runtime", ["/run/user/1000", "/tmp/a b/ü", "/x/../y", None, ""],
                         ids=["usual", "spaces", "dotdot", "unset", "empty"])
def test_first_run_values_are_pydantics(monkeypatch: pytest.MonkeyPatch,
                                        runtime: str | None) -> None:
    if runtime is None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    assert loader._prevalidated(None, {}) is not None  # the shortcut is taken...
    first = _first_run()
    assert first == _validated()  # ...and gives what a validation gives
    expected = f"{runtime}/sockcli" if runtime else f"/tmp/sockcli-{os.getuid()}"
    assert first["socket"]["socket_dir"] == expected
    # What it cached is what the next run reads, for sockcli and the library alike.
    assert loader.load_settings_data() == first
    assert loader.load_settings().as_json() == first


def test_socket_dir_option_is_taken_as_the_model_takes_it(tmp_path: Path) -> None:
    assert _first_run(socket_dir=str(tmp_path)) == _validated(socket_dir=str(tmp_path))
    assert _first_run(socket_dir="") == _validated(socket_dir="")


@pytest.mark.parametrize("socket_dir", ["/run//user/", "/run/./x", "/", "rel", "~/s"])
def test_paths_pathlib_would_rewrite_are_left_to_pydantic(monkeypatch: pytest.MonkeyPatch,
                                                          socket_dir: str) -> None:
    assert loader._prevalidated(None, {"socket_dir": socket_dir}) is None
    monkeypatch.setenv("XDG_RUNTIME_DIR", socket_dir)
    assert loader._prevalidated(None, {}) is None
    if socket_dir.startswith("/"):
        assert _first_run() == _validated()


def test_anything_to_validate_is_validated(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    assert loader._prevalidated(None, {}) is not None
    config = tmp_path / "given.toml"
    config.write_text("buffer_size = 2048\n")
    assert loader._prevalidated(str(config), {}) is None
    assert loader._prevalidated(None, {"buffer_size": 2048}) is None
    for name in ("SOCKCLI_BUFFER_SIZE", "DYNACONF_BUFFER_SIZE", "INCLUDES_FOR_DYNACONF"):
        monkeypatch.setenv(name, "2048")
        assert loader._prevalidated(None, {}) is None, name
        monkeypatch.delenv(name)
    # Variables that are not settings change nothing.
    for name in ("SOCKCLI_EVENT", "SOCKCLI_TOKEN", "SOCKCLI_DATA"):
        monkeypatch.setenv(name, "x")
    assert loader._prevalidated(None, {}) is not None
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "sockcli" / "settings.toml"
    user.parent.mkdir(parents=True)
    user.write_text("buffer_size = 2048\n")
    assert loader._prevalidated(None, {}) is None
    assert _first_run()["socket"]["buffer_size"] == 2048


def test_dynaconf_variables_reach_the_settings_and_their_cache_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """dynaconf reads DYNACONF_* besides SOCKCLI_*: such a variable must not be served
    stale values, neither by the first-run shortcut nor by the cache."""
    plain = _first_run()
    monkeypatch.setenv("DYNACONF_BUFFER_SIZE", "2048")
    assert loader.load_settings_data()["socket"]["buffer_size"] == 2048
    assert loader.load_settings_data() == _validated() != plain


def test_a_changed_packaged_file_or_registry_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "SOURCE_CRC32", defaults.SOURCE_CRC32 ^ 1)
    assert loader._prevalidated(None, {}) is None
    monkeypatch.undo()
    monkeypatch.setattr(defaults, "SOURCE_SIZE", defaults.SOURCE_SIZE + 1)
    assert loader._prevalidated(None, {}) is None
    monkeypatch.undo()
    monkeypatch.setattr(defaults, "REGISTRY", (*defaults.REGISTRY, ("vsock", "m:VsockConfig")))
    assert loader._prevalidated(None, {}) is None


def test_each_call_gives_new_objects() -> None:
    first = defaults.settings_data("/run/a")
    first["socket"]["message_types"].append("warning")
    assert defaults.settings_data("/run/a")["socket"]["message_types"] == []


def test_the_timezone_becomes_the_default() -> None:
    set_default_timezone("UTC")  # as settings loaded earlier in the process would
    _first_run()
    assert default_timezone() == "local"


_PROBE = """
import json, sys
from sockcli.cli import main
rc = main(["send", "ev", "-d", '{"n": 1}'])
heavy = sorted(m for m in ("pydantic", "dynaconf", "click", "typing", "dataclasses", "pathlib")
               if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


def test_a_first_send_validates_nothing_and_fills_the_cache(cli: Any) -> None:
    cli.serve("ev")
    entry = Path(cli.env["XDG_CACHE_HOME"]) / "sockcli" / "settings.json"
    entry.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env=cli.env, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"rc": 0, "heavy": []}
    # The entry it wrote is what a validation in that environment gives.
    check = ("import json\nfrom sockcli.config.loader import _load_and_validate\n"
             "print(json.dumps(_load_and_validate(None, {}).as_json()))")
    validated = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                               env=cli.env, timeout=30, check=True)
    assert json.loads(entry.read_text())["settings"] == json.loads(validated.stdout)

"""Importing sockcli is cheap, and everything it exports is importable.

Each check runs in a fresh interpreter: this process has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["rich", "pydantic", "dynaconf", "click"]


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded_after(statement: str) -> dict[str, bool]:
    out = run(f"import sys, json\n{statement}\n"
              f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))")
    return dict(json.loads(out))


@pytest.mark.timeout(120)
def test_import_sockcli_is_light() -> None:
    assert loaded_after("import sockcli") == dict.fromkeys(HEAVY, False)


@pytest.mark.timeout(120)
def test_messages_and_errors_stay_light() -> None:
    # Building a message with explicit timestamps needs no configuration.
    statement = ("import sockcli\n"
                 "m = sockcli.SocketMessage('x', timestamp_ms=0, timestamp_iso='t')\n"
                 "sockcli.MessageType.parse('DATA'); sockcli.SocketType.parse('tcp')\n"
                 "import sockcli.protocol.codec, sockcli.protocol.frames")
    assert loaded_after(statement) == dict.fromkeys(HEAVY, False)


@pytest.mark.timeout(120)
def test_the_check_can_fail() -> None:
    # The probe itself must see a heavy import when there is one.
    assert loaded_after("import sockcli, sockcli.config.models")["pydantic"] is True


@pytest.mark.timeout(120)
def test_every_exported_name_is_importable() -> None:
    code = """
import json, sockcli
missing = [n for n in sockcli.__all__ if getattr(sockcli, n, None) is None]
star = {}
exec("from sockcli import *", star)
print(json.dumps({"all": sorted(sockcli.__all__), "missing": missing,
                  "star": sorted(k for k in star if k != "__builtins__"),
                  "dir": sorted(dir(sockcli))}))
"""
    out = json.loads(run(code))
    assert out["missing"] == []
    assert out["star"] == out["all"]
    assert out["dir"] == out["all"]
    for name in ("SocketMessage", "MessageType", "SocketType", "create_server", "create_client",
                 "UnixSocketServer", "UnixSocketClient", "TcpSocketServer", "TcpSocketClient",
                 "SocketServer", "SocketClient", "ClientInfo", "SocketConfig", "Settings",
                 "UnixSocketConfig", "TcpSocketConfig", "load_settings", "SocketError",
                 "ConnectionError", "MaxConnectionsError", "MessageError", "TimeoutError",
                 "ValidationError", "__version__"):
        assert name in out["all"], name


@pytest.mark.timeout(120)
def test_exports_are_the_real_objects() -> None:
    code = """
import sockcli
from sockcli.factory import create_client, create_server
from sockcli.hub.unix import UnixSocketServer
from sockcli.client.unix import UnixSocketClient
from sockcli.hub.tcp import TcpSocketServer
from sockcli.client.tcp import TcpSocketClient
from sockcli.config.models import SocketConfig, Settings
from sockcli.types import SocketMessage
assert sockcli.create_server is create_server and sockcli.create_client is create_client
assert sockcli.UnixSocketServer is UnixSocketServer and sockcli.UnixSocketClient is UnixSocketClient
assert sockcli.TcpSocketServer is TcpSocketServer and sockcli.TcpSocketClient is TcpSocketClient
assert sockcli.SocketConfig is SocketConfig and sockcli.Settings is Settings
assert sockcli.SocketMessage is SocketMessage
assert issubclass(sockcli.UnixSocketServer, sockcli.SocketServer)
assert issubclass(sockcli.TcpSocketClient, sockcli.SocketClient)
assert sockcli.__version__ == "0.1.0"
print("ok")
"""
    assert run(code).strip() == "ok"


@pytest.mark.timeout(120)
def test_unknown_attribute_is_an_attribute_error() -> None:
    code = """
import sockcli
try:
    sockcli.NoSuchThing
except AttributeError as exc:
    print(exc)
"""
    assert run(code).strip() == "module 'sockcli' has no attribute 'NoSuchThing'"

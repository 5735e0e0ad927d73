"""Build the wheel, install it (not editable) in a fresh venv, and use it from there: the
packaged defaults must travel inside the wheel and the code must not come from the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# [tool.hatch.build.targets.wheel.shared-data] in pyproject.toml: checkout path -> prefix path.
SHARED_DATA = {
    "man/sockcli.1": "share/man/man1/sockcli.1",
    "completions/sockcli.bash": "share/bash-completion/completions/sockcli",
    "completions/_sockcli": "share/zsh/site-functions/_sockcli",
    "completions/sockcli.fish": "share/fish/vendor_completions.d/sockcli.fish",
}

# Runs inside the fresh venv, from a directory outside the checkout.
SCRIPT = textwrap.dedent("""
    import json, shutil, sys, tempfile
    import sockcli
    from sockcli import MessageType, SocketMessage, create_client, create_server, load_settings
    from sockcli.config.loader import default_settings_file

    print("file", sockcli.__file__)
    print("defaults", default_settings_file())
    s = load_settings()
    print("settings", s.socket.buffer_size, s.socket.timezone, s.unix.socket_permissions)
    d = tempfile.mkdtemp(prefix="sk-wheel-", dir="/tmp")
    try:
        with create_server("unix", "wheel", socket_dir=d) as hub:
            sub = create_client("unix", "wheel", socket_dir=d, name="sub")
            sub.connect(timeout=5)
            snd = create_client("unix", "wheel", socket_dir=d, subscribe=False)
            snd.connect(timeout=5)
            snd.send(SocketMessage("wheel", timestamp_ms=86_400_000,
                                   message_type=MessageType.CONTROL,
                                   data={"from": "wheel", "n": [1, 2.5, None, True]}))
            got = sub.receive(timeout=5)
            print("received", json.dumps(got.as_dict(), sort_keys=True))
            print("clients", sorted(c.name or "-" for c in hub.get_connected_clients()))
            snd.disconnect()
            sub.disconnect()
        print("left", sorted(__import__("os").listdir(d)))
    finally:
        shutil.rmtree(d, ignore_errors=True)
""")


def _run(cmd: list[str], *, timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, (
        f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_and_works_in_fresh_venv(tmp_path: Path) -> None:
    # Build.
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist)], cwd=REPO,
         timeout=180)
    wheels = sorted(dist.glob("sockcli-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert wheel.name.endswith("-py3-none-any.whl")

    # The defaults ship inside the package, byte for byte.
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "sockcli/config/settings.toml" in names
        assert zf.read("sockcli/config/settings.toml") == \
            (REPO / "config" / "settings.toml").read_bytes()
        assert {"sockcli/__init__.py", "sockcli/py.typed", "sockcli/hub/unix.py",
                "sockcli/config/loader.py"} <= names
        assert not any(n.startswith(("tests/", "config/")) for n in names)
        # The man page and the completions, as data files of the installation prefix.
        for source, target in SHARED_DATA.items():
            member = f"sockcli-{wheel.name.split('-')[1]}.data/data/{target}"
            assert member in names, f"{member} missing from the wheel"
            assert zf.read(member) == (REPO / source).read_bytes(), member

    # A fresh venv that sees nothing of the development one.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = venv / "bin" / "python"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOCKCLI_", "PYTHON", "VIRTUAL_ENV"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # no user settings file
    _run([str(python), "-m", "pip", "install", "--no-input", str(wheel)], env=env,
         cwd=tmp_path, timeout=240)
    purelib = Path(_run([str(python), "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        env=env, cwd=tmp_path, timeout=60).stdout.strip())
    assert purelib.is_relative_to(venv)
    for target in SHARED_DATA.values():  # `man sockcli` with the venv's share/man on MANPATH
        assert (venv / target).is_file(), f"{target} not installed in the venv"

    # Use it, from outside the checkout so the repo's sockcli/ cannot shadow the install.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env["SOCKCLI_TIMEZONE"] = "UTC"
    out = _run([str(python), "-c", SCRIPT], env=env, cwd=run_dir, timeout=60).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(lines) == {"file", "defaults", "settings", "received", "clients", "left"}, out

    module_file = Path(lines["file"]).resolve()
    assert module_file == (purelib / "sockcli" / "__init__.py").resolve()
    assert not module_file.is_relative_to(REPO)
    assert Path(lines["defaults"]).resolve() == \
        (purelib / "sockcli" / "config" / "settings.toml").resolve()
    assert lines["settings"] == "65536 UTC 0600"
    assert json.loads(lines["received"]) == {
        "event_name": "wheel",
        "timestamp_ms": 86_400_000,
        "timestamp_iso": "1970-01-02T00:00:00.000+00:00",
        "message_type": "control",
        "data": {"from": "wheel", "n": [1, 2.5, None, True]},
    }
    assert lines["clients"] == "['-', 'sub']"
    assert lines["left"] == "[]"  # socket and record removed on stop

"""Shell completion: the committed scripts are click's own, and bash really completes with them.

The scripts in completions/ only ask the installed ``sockcli`` for candidates
(``_SOCKCLI_COMPLETE=bash_complete``), so what they complete comes from the click command tree
at completion time: subcommands, options, --type choices, and the events of the running hubs
(through ``complete_events``, the EVENT argument's callback).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from sockcli.cli.app import cli as group
from tests.clitools import SOCKCLI

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
COMPLETIONS = REPO / "completions"
BASH_SCRIPT = COMPLETIONS / "sockcli.bash"
SCRIPTS = {"bash": "sockcli.bash", "zsh": "_sockcli", "fish": "sockcli.fish"}
BIN = str(Path(SOCKCLI).parent)
FUNCTION = "_sockcli_completion"

# Sources the script as an interactive shell's rc file would, then plays bash's part: the words
# of the command line, the index of the word under the cursor, COMP_LINE and COMP_POINT, then a
# call of the function that `complete -p sockcli` names, with bash's three arguments.
COMPLETE = r"""
source "$1" || exit 90
shift
spec=$(complete -p sockcli) || exit 91
fn=${spec#*-F }
fn=${fn%% *}
printf 'FUNCTION %s\n' "$fn"
printf 'WHICH %s\n' "$(command -v sockcli)"
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" sockcli "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" || exit 92
for reply in "${COMPREPLY[@]}"; do printf 'REPLY %s\n' "$reply"; done
"""


def _clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if not k.startswith(("SOCKCLI_", "_SOCKCLI_"))}


def bash_complete(*words: str, env: dict[str, str]) -> list[str]:
    """COMPREPLY after typing ``words`` (the last one is the word being completed, maybe "")."""
    env = {**_clean_env(env), "PATH": f"{BIN}:{env.get('PATH', os.defpath)}"}
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", COMPLETE, "bash", str(BASH_SCRIPT), *words],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"bash exited {proc.returncode}: {proc.stderr}"
    assert proc.stderr == "", f"completion wrote on stderr: {proc.stderr}"
    lines = proc.stdout.splitlines()
    assert f"FUNCTION {FUNCTION}" in lines, f"completion function is not {FUNCTION}: {lines}"
    assert f"WHICH {SOCKCLI}" in lines, f"not the venv's sockcli on PATH: {lines}"
    return [line.removeprefix("REPLY ") for line in lines if line.startswith("REPLY ")]


def _root() -> click.Context:
    return click.Context(group, info_name="sockcli", **group.context_settings)


def _long_options(name: str) -> list[str]:
    """The long options click offers after ``sockcli NAME --``, from the command tree."""
    root = _root()
    command = group.get_command(root, name)
    assert command is not None, name
    ctx = click.Context(command, info_name=name, parent=root, **command.context_settings)
    return [opt for param in command.get_params(ctx) if isinstance(param, click.Option)
            and not param.hidden for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("--")]


# -- the committed scripts ------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_committed_script_is_what_click_generates(shell: str) -> None:
    path = COMPLETIONS / SCRIPTS[shell]
    generated = subprocess.run(
        [SOCKCLI], env={**_clean_env(), "_SOCKCLI_COMPLETE": f"{shell}_source"},
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.strip(), f"click generated no {shell} script"
    assert path.is_file(), f"{path.relative_to(REPO)} is missing: run `make completions`"
    assert path.read_bytes() == generated.stdout, (
        f"{path.relative_to(REPO)} differs from what click generates now "
        f"(_SOCKCLI_COMPLETE={shell}_source sockcli): run `make completions` and commit it")


def test_scripts_register_the_completion_function() -> None:
    assert f"complete -o nosort -F {FUNCTION} sockcli" in BASH_SCRIPT.read_text()
    zsh = (COMPLETIONS / "_sockcli").read_text()
    assert zsh.startswith("#compdef sockcli\n"), "zsh autoloads _sockcli from fpath by this line"
    assert f"compdef {FUNCTION} sockcli" in zsh
    assert "complete --no-files --command sockcli" in (COMPLETIONS / "sockcli.fish").read_text()


# -- bash, for real ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_bash_completes_subcommands(cli: Any) -> None:
    root = _root()
    names = group.list_commands(root)
    assert {"serve", "send", "listen", "list"} <= set(names)
    assert bash_complete("sockcli", "", env=cli.env) == names
    assert bash_complete("sockcli", "li", env=cli.env) == ["listen", "list"]
    assert bash_complete("sockcli", "-v", "se", env=cli.env) == ["serve", "send"]


@pytest.mark.timeout(60)
def test_bash_completes_options(cli: Any) -> None:
    replies = bash_complete("sockcli", "listen", "--", env=cli.env)
    assert {"--type", "--count", "--timeout", "--name", "--no-reconnect", "--wait", "--json",
            "--connect", "--help"} <= set(replies)
    assert sorted(replies) == sorted(_long_options("listen"))
    assert bash_complete("sockcli", "serve", "--no", env=cli.env) == \
        ["--no-client-send", "--no-retain", "--no-fifo"]
    assert bash_complete("sockcli", "--so", env=cli.env) == ["--socket-dir"]


@pytest.mark.timeout(60)
def test_bash_completes_message_types(cli: Any) -> None:
    assert bash_complete("sockcli", "listen", "--type", "", env=cli.env) == \
        ["data", "error", "control"]
    assert bash_complete("sockcli", "send", "-t", "e", env=cli.env) == ["error"]
    assert bash_complete("sockcli", "listen", "-t", "error", "--type", "c", env=cli.env) == \
        ["control"]


@pytest.mark.timeout(90)
def test_bash_completes_running_hubs(cli: Any) -> None:
    # Nothing running: no candidates, and no error either.
    assert bash_complete("sockcli", "send", "", env=cli.env) == []

    cli.serve("wallpaper_change")
    cli.serve("backup-progress", "--tcp")
    hubs = ["backup-progress", "wallpaper_change"]
    assert sorted(bash_complete("sockcli", "send", "", env=cli.env)) == hubs
    assert sorted(bash_complete("sockcli", "listen", "", env=cli.env)) == hubs
    assert bash_complete("sockcli", "send", "wall", env=cli.env) == ["wallpaper_change"]
    assert bash_complete("sockcli", "listen", "--type", "error", "b", env=cli.env) == \
        ["backup-progress"]
    assert bash_complete("sockcli", "send", "x", env=cli.env) == []

    # The global --socket-dir given before the command decides where completion looks.
    elsewhere = cli.root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    env = {**cli.env, "XDG_RUNTIME_DIR": str(elsewhere)}
    assert bash_complete("sockcli", "send", "", env=env) == []
    assert sorted(bash_complete("sockcli", "--socket-dir", str(cli.socket_dir), "send", "",
                                env=env)) == hubs

"""The man page: valid roff that man(1) renders, and complete against the code.

Completeness is checked against the source of truth, not a list kept here: the click command
tree (every option of the group and of each command), the exit codes of sockcli/cli/errors.py
and of the group's help, and the keys of config/settings.toml. A new option, exit code or
setting without a line in man/sockcli.1 fails a test that names it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import click
import pytest

import sockcli
from sockcli.cli import errors
from sockcli.cli.app import cli as group

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
MANPAGE = REPO / "man" / "sockcli.1"
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT",
            "FILES", "EXAMPLES", "SEE ALSO"]
GLOBAL = "Global options"
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")

_ESCAPES = {"\\-": "-", "\\(aq": "'", "\\(lq": '"', "\\(rq": '"', "\\e": "\\", "\\&": "",
            "\\(em": "--", "\\ ": " "}


def plain(roff: str) -> str:
    """Roff text without font changes and with the escapes this page uses spelled out."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", roff)
    for escape, char in _ESCAPES.items():
        text = text.replace(escape, char)
    return text


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the man page tests need it "
                    f"(apt-get install {'man-db' if name == 'man' else name}; .ci/run does)")
    return path


@cache
def sections() -> dict[str, list[str]]:
    """The lines of each .SH section, by heading."""
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in MANPAGE.read_text().splitlines():
        if line.startswith(".SH "):
            current = result.setdefault(plain(line[4:]).strip().strip('"'), [])
        else:
            current.append(line)
    return result


def subsections(lines: list[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if line.startswith(".SS "):
            current = result.setdefault(plain(line[4:]).strip().strip('"'), [])
        else:
            current.append(line)
    return result


def tags(lines: list[str]) -> list[str]:
    """The tag line of every .TP item, as plain text without its macro."""
    found = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() == ".TP":
            tag = lines[i + 1]
            if tag.startswith("."):
                tag = tag.split(None, 1)[1] if " " in tag else ""
            found.append(plain(tag).replace('"', ""))
    return found


@cache
def _root() -> click.Context:
    return click.Context(group, info_name="sockcli", **group.context_settings)


def _context(command: click.Command) -> click.Context:
    """A context as click makes one: the group's settings (-h) reach its commands."""
    if command is group:
        return _root()
    return click.Context(command, info_name=command.name, parent=_root(),
                         **command.context_settings)


@cache
def commands() -> dict[str, click.Command]:
    """The commands of the group, by name, as the LazyGroup loads them."""
    ctx = _root()
    found = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        found[name] = command
    return found


def options_of(command: click.Command) -> set[str]:
    """Every option string (with the --no-x halves of on/off flags) of a command."""
    names: set[str] = set()
    for param in command.get_params(_context(command)):
        if isinstance(param, click.Option) and not param.hidden:
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def help_options(command: click.Command) -> set[str]:
    option = command.get_help_option(_context(command))
    return set(option.opts) if option is not None else set()


def documented() -> dict[str, set[str]]:
    """Options in the tags of each COMMANDS subsection: '' for the global ones, else by command."""
    assert "COMMANDS" in sections(), "no COMMANDS section"
    result: dict[str, set[str]] = {}
    for title, lines in subsections(sections()["COMMANDS"]).items():
        if title == GLOBAL:
            key = ""
        else:
            assert title.startswith("sockcli "), f"unexpected subsection {title!r} in COMMANDS"
            key = title.split()[1]
        result[key] = {opt for tag in tags(lines) for opt in OPTION.findall(tag)}
    return result


# -- the page is valid and renders -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_mandoc_lint_has_no_warnings() -> None:
    mandoc = _tool("mandoc")
    proc = subprocess.run([mandoc, "-T", "lint", "-W", "warning", str(MANPAGE)],
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_man_renders_every_section() -> None:
    man = _tool("man")
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100",
           "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([man, "-P", "cat", "-l", str(MANPAGE)], capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    text = proc.stdout
    assert text.startswith("SOCKCLI(1)"), text[:200]
    missing = [h for h in SECTIONS if not re.search(rf"^{h}$", text, re.MULTILINE)]
    assert not missing, f"sections missing from the rendered page: {missing}"
    for name in commands():
        assert re.search(rf"^ +sockcli {name}\b", text, re.MULTILINE), f"no subsection {name}"


def test_sections_in_order_and_title() -> None:
    assert list(sections())[: len(SECTIONS)] == SECTIONS
    title = next(line for line in MANPAGE.read_text().splitlines() if line.startswith(".TH "))
    assert title.startswith(".TH SOCKCLI 1 "), title
    assert f'"sockcli {sockcli.__version__}"' in title, \
        f"the .TH line does not name version {sockcli.__version__}: {title}"


# -- complete against the code -------------------------------------------------------------


def test_every_command_has_a_subsection_with_its_arguments() -> None:
    titles = set(subsections(sections()["COMMANDS"]))
    assert GLOBAL in titles
    for name, command in commands().items():
        words = [f"sockcli {name}"]
        for param in command.params:
            if isinstance(param, click.Argument):
                arg = param.name or ""
                if param.nargs == -1:  # listen's [EVENT|PATTERN]...: its metavar
                    words.append((param.metavar or f"[{arg}]...").lower())
                else:
                    words.append(arg if param.required else f"[{arg}]")
        expected = " ".join(words)
        assert expected in titles, f"no '.SS {expected}' in COMMANDS (found {sorted(titles)})"


def test_every_option_is_documented() -> None:
    docs = documented()
    missing = [f"sockcli {opt}" for opt in sorted(options_of(group) - docs.get("", set()))]
    for name, command in commands().items():
        have = docs.get(name, set())
        # -h/--help is documented once, with the global options, for every command.
        missing += [f"sockcli {name} {opt}" for opt in sorted(options_of(command) - have)
                    if opt not in help_options(command) or opt not in docs.get("", set())]
    assert not missing, ("options without an entry in man/sockcli.1 (COMMANDS, under their "
                         f"command): {', '.join(missing)}")


def test_no_documented_option_is_gone() -> None:
    stale = []
    for key, opts in documented().items():
        command = group if key == "" else commands().get(key)
        assert command is not None, f"COMMANDS documents 'sockcli {key}', which does not exist"
        stale += [f"sockcli {key} {opt}".replace("  ", " ") for opt in
                  sorted(opts - options_of(command))]
    assert not stale, f"man/sockcli.1 documents options the CLI does not have: {stale}"


def expected_exit_codes() -> set[int]:
    codes = {0, click.UsageError.exit_code}
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, click.ClickException):
            codes.add(value.exit_code)
        elif name.startswith("EXIT_") and isinstance(value, int):
            codes.add(value)
    # The table of the module's docstring, and the summary in the group's help.
    assert errors.__doc__ and group.help
    codes.update(int(c) for c in re.findall(r"^(\d+) {2,}\S", errors.__doc__, re.MULTILINE))
    summary = group.help.split("Exit status:", 1)[1]
    codes.update(int(c) for c in re.findall(r"(?<![\w-])(\d+) [a-z]", summary))
    return codes


def test_exit_status_lists_every_code() -> None:
    expected = expected_exit_codes()
    assert {0, 1, 2, 64, 65, 68, 69, 75, 77, 78, 124, 130} <= expected
    listed = [tag.strip() for tag in tags(sections()["EXIT STATUS"])]
    assert all(tag.isdigit() for tag in listed), listed
    codes = [int(tag) for tag in listed]
    assert codes == sorted(set(codes)), f"EXIT STATUS: codes repeated or out of order: {codes}"
    assert not expected - set(codes), \
        f"exit codes missing from EXIT STATUS: {sorted(expected - set(codes))}"
    assert not set(codes) - expected, \
        f"EXIT STATUS lists codes the code never uses: {sorted(set(codes) - expected)}"


def test_environment_lists_every_variable() -> None:
    with (REPO / "config" / "settings.toml").open("rb") as fh:
        settings = tomllib.load(fh)
    expected = {"SOCKCLI_EVENT", "SOCKCLI_CONFIG", "SOCKCLI_DEBUG", "NO_COLOR",
                "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"}
    for key, value in settings.items():
        if isinstance(value, dict):
            expected.update(f"SOCKCLI_{key.upper()}__{sub.upper()}" for sub in value)
        else:
            expected.add(f"SOCKCLI_{key.upper()}")
    for command in [group, *commands().values()]:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if envvar:
                expected.update([envvar] if isinstance(envvar, str) else envvar)
    listed = {tag.strip() for tag in tags(sections()["ENVIRONMENT"])}
    assert not expected - listed, \
        f"variables missing from ENVIRONMENT: {sorted(expected - listed)}"
    text = plain("\n".join(sections()["ENVIRONMENT"]))
    for prefix in ("SOCKCLI_", "SOCKCLI_UNIX__", "SOCKCLI_TCP__"):  # .BI SOCKCLI_ KEY
        assert re.search(rf"\b{prefix} ?KEY\b", text), f"{prefix}<KEY> is not explained"


def test_files_and_see_also() -> None:
    files = {tag.strip() for tag in tags(sections()["FILES"])}
    assert {"{socket_dir}/{event}.sock", "{socket_dir}/{event}.hub",
            "$XDG_CONFIG_HOME/sockcli/settings.toml", "sockcli/config/settings.toml"} <= files
    see_also = plain("\n".join(sections()["SEE ALSO"]))
    for page in ("socat", "ncat", "mosquitto_pub", "mosquitto_sub"):
        assert re.search(rf"^\.BR {page} \(1\)", see_also, re.MULTILINE), page
    examples = plain("\n".join(sections()["EXAMPLES"]))
    for needle in ("sockcli serve", "sockcli send", "sockcli listen", "sockcli list",
                   "--lines", "--type error"):
        assert needle in examples, needle

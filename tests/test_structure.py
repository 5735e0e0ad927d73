"""The shape of the package, checked from its source: the rules of the restructuring issue.

- no import circle anywhere in sockcli/ (imports that run: TYPE_CHECKING blocks excluded,
  function-level imports included);
- sockcli/protocol/ is sans-I/O: no socket, select, selectors, ssl or threading;
- no class over 400 lines, no module over 650;
- the handshake (welcome and its proof) lives in sockcli/protocol/handshake.py, and the
  acknowledgement bookkeeping in sockcli/protocol/acks.py;
- ``import sockcli`` and a message with default timestamps stay light (no pydantic, no
  dynaconf).

Everything but the last check reads the files with :mod:`ast`; nothing is imported, so the
checks see every module, including those an import would never reach. Each analysis is also run
on a small fake package (under tmp_path) to prove that it finds what it looks for.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sockcli"

MAX_CLASS_LINES = 400
MAX_MODULE_LINES = 650
SANS_IO_FORBIDDEN = frozenset({"socket", "select", "selectors", "ssl", "threading"})


# -- reading the package -------------------------------------------------------------------------


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (a package by its
    ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:`` (the block never runs)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at any depth (functions included), except in the
    body of an ``if TYPE_CHECKING:`` block (its ``else`` runs, so it is kept)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            stack.append(node.test)
            continue
        stack.extend(ast.iter_child_nodes(node))


def all_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, TYPE_CHECKING blocks included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name an ``ImportFrom`` imports from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def with_packages(name: str, modules: dict[str, Path]) -> list[str]:
    """The module ``name`` and every package above it (importing ``a.b.c`` runs ``a`` and
    ``a.b`` first): those of them that are modules of the package."""
    parts = name.split(".")
    names = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [n for n in names if n in modules]


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def import_graph(root: Path, package: str, *,
                 own_packages: bool = False) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line of the first such import}}`` for the imports that
    run, between modules of ``package``.

    An import of ``p.q.m`` also imports the packages ``p`` and ``p.q`` (their ``__init__``
    runs first), except a package the importing module is itself part of: that one is
    already imported by the time any of its modules runs, so the import adds nothing
    (``own_packages=True`` adds those edges too, the literal reading of the rule). A
    ``from p import name`` whose name is not a submodule needs ``p``'s ``__init__`` itself,
    and always makes an edge to ``p``. ``from p import x`` imports the module ``p.x`` when
    there is one. The strings of a lazy table (``_LAZY = {"Name": "p.mod"}``) are not
    imports: they load only when the name is asked for, so they make no edge.
    """
    modules = module_files(root, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, int] = {}

        def add(target: str, line: int, edges: dict[str, int] = edges, name: str = name) -> None:
            for dep in with_packages(target, modules):
                ancestor = dep != target
                if dep == name or (ancestor and inside(name, dep) and not own_packages):
                    continue
                edges.setdefault(dep, line)

        nodes = sorted(runtime_imports(parse(path)), key=lambda n: (n.lineno, n.col_offset))
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if inside(alias.name, package):
                        add(alias.name, node.lineno)
                continue
            source = resolve_from(name, is_package, node)
            if not inside(source, package):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in modules else source, node.lineno)
                if submodule not in modules and source != name:
                    edges.setdefault(source, node.lineno)  # a name of source's own code
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components with more than one module, or one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, {})):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def simple_cycles(graph: dict[str, dict[str, int]], component: list[str],
                  limit: int = 50) -> list[list[str]]:
    """The elementary cycles inside one component, each starting at its smallest module, at
    most ``limit`` of them."""
    members = set(component)
    cycles: list[list[str]] = []
    for start in sorted(component):
        allowed = {m for m in members if m >= start}

        def walk(path: list[str], allowed: set[str] = allowed, start: str = start) -> None:
            for dep in sorted(graph[path[-1]]):
                if len(cycles) >= limit:
                    return
                if dep == start:
                    cycles.append([*path, start])
                elif dep in allowed and dep not in path:
                    walk([*path, dep])

        walk([start])
    return cycles


def describe_cycles(graph: dict[str, dict[str, int]], modules: dict[str, Path],
                    root: Path) -> list[str]:
    lines = []
    for component in strongly_connected(graph):
        lines.append(f"import circle among {len(component)} modules: {', '.join(component)}")
        for cycle in simple_cycles(graph, component):
            steps = [f"{a} ({modules[a].relative_to(root)}:{graph[a][b]})"
                     for a, b in itertools.pairwise(cycle)]
            lines.append("  " + " -> ".join([*steps, cycle[-1]]))
    return lines


# -- (a) no import circle -------------------------------------------------------------------


def test_no_import_circle() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph) > 30  # the walk found the package
    cycles = describe_cycles(graph, module_files(ROOT, PACKAGE), ROOT)
    assert not cycles, "import circles in sockcli/ (module (file:line of the import)):\n" + \
        "\n".join(cycles)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


FAKE = {
    "fake/__init__.py": (
        "from fake._lazy import table\n"
        "TYPE_CHECKING = False\n"
        "if TYPE_CHECKING:\n"
        "    from fake.sub.b import B\n"
        "_LAZY = {'B': 'fake.sub.b', 'A': 'fake.a'}\n"),
    "fake/_lazy.py": "table = {}\n",
    "fake/a.py": (
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from . import c\n"
        "if TYPE_CHECKING:\n"
        "    from fake.sub import b\n"
        "else:\n"
        "    import fake.plain\n"),
    "fake/c.py": (
        "def later():\n"
        "    from .sub.b import B\n"
        "    return B\n"),
    "fake/d.py": (
        "from fake import table\n"
        "import fake.sub.b\n"),
    "fake/plain.py": "",
    "fake/sub/__init__.py": "",
    "fake/sub/b.py": (
        "import typing\n"
        "if typing.TYPE_CHECKING:\n"
        "    import fake.plain\n"
        "from fake import a\n"
        "class B: ...\n"),
}


def test_import_graph_of_a_fake_package(tmp_path: Path) -> None:
    write_tree(tmp_path, FAKE)
    graph = import_graph(tmp_path, "fake")
    assert graph == {
        "fake": {"fake._lazy": 1},
        "fake._lazy": {},
        "fake.a": {"fake.c": 3, "fake.plain": 7},
        "fake.c": {"fake.sub": 2, "fake.sub.b": 2},
        "fake.d": {"fake": 1, "fake.sub": 2, "fake.sub.b": 2},
        "fake.plain": {},
        "fake.sub": {},
        "fake.sub.b": {"fake.a": 4},
    }
    assert strongly_connected(graph) == [["fake.a", "fake.c", "fake.sub.b"]]
    lines = describe_cycles(graph, module_files(tmp_path, "fake"), tmp_path)
    assert lines == [
        "import circle among 3 modules: fake.a, fake.c, fake.sub.b",
        "  fake.a (fake/a.py:3) -> fake.c (fake/c.py:2) -> fake.sub.b (fake/sub/b.py:4) -> "
        "fake.a",
    ]
    strict = import_graph(tmp_path, "fake", own_packages=True)
    assert strict["fake.a"] == {"fake": 3, "fake.c": 3, "fake.plain": 7}
    assert strict["fake.sub.b"] == {"fake": 4, "fake.a": 4}


def test_a_package_and_its_own_modules(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pk/__init__.py": "VERSION = 1\ndef main():\n    from pk.x import X\n",
                          "pk/x.py": "from pk.y import Y\nX = Y\n",
                          "pk/y.py": "from pk import VERSION\nY = VERSION\n"})
    graph = import_graph(tmp_path, "pk")
    # pk.x importing its sibling pk.y does not import pk again; pk.y needs pk's own code.
    assert graph == {"pk": {"pk.x": 3}, "pk.x": {"pk.y": 1}, "pk.y": {"pk": 1}}
    assert strongly_connected(graph) == [["pk", "pk.x", "pk.y"]]
    strict = import_graph(tmp_path, "pk", own_packages=True)
    assert strict["pk.x"] == {"pk": 1, "pk.y": 1}


# -- (b) the protocol is sans-I/O -------------------------------------------------------------


def forbidden_imports(root: Path, package: str, forbidden: frozenset[str]) -> list[str]:
    """``file:line: import`` for every import of a forbidden module (at any depth, in
    TYPE_CHECKING blocks too) in the modules of ``package``."""
    found = []
    for name, path in module_files(root, package).items():
        for node in all_imports(parse(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif node.level:
                continue
            else:
                names = [node.module or ""]
            for imported in names:
                if imported.split(".")[0] in forbidden:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {name} imports "
                                 f"{imported}")
    return found


def test_protocol_imports_no_io() -> None:
    modules = module_files(ROOT, "sockcli/protocol")
    assert {"sockcli.protocol.codec", "sockcli.protocol.handshake"} <= set(modules)
    offenders = forbidden_imports(ROOT, "sockcli/protocol", SANS_IO_FORBIDDEN)
    assert not offenders, "sockcli/protocol/ must not do I/O:\n" + "\n".join(offenders)


def test_what_the_protocol_imports_does_no_io_either() -> None:
    """The modules of sockcli/ that sockcli/protocol/ imports at run time, directly or not
    (function-level imports included), import none of those modules either."""
    graph = import_graph(ROOT, PACKAGE)
    modules = module_files(ROOT, PACKAGE)
    reached: dict[str, str] = {}  # module -> the protocol module it is reached from
    todo = [(name, name) for name in graph if inside(name, "sockcli.protocol")]
    while todo:
        name, origin = todo.pop()
        if name not in reached:
            reached[name] = origin
            todo.extend((dep, origin) for dep in graph[name])
    assert "sockcli.exceptions" in reached
    offenders = []
    for name in sorted(reached):
        for node in runtime_imports(parse(modules[name])):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [] if node.level else [node.module or ""]
            offenders += [f"{modules[name].relative_to(ROOT)}:{node.lineno}: {name} (reached "
                          f"from {reached[name]}) imports {m}"
                          for m in imported if m.split(".")[0] in SANS_IO_FORBIDDEN]
    assert not offenders, "sockcli/protocol/ reaches I/O:\n" + "\n".join(offenders)


def test_forbidden_import_check_can_fail(tmp_path: Path) -> None:
    write_tree(tmp_path, {"proto/__init__.py": "",
                          "proto/a.py": "import os\nimport socket as s\n",
                          "proto/b.py": ("def f():\n    from selectors import DefaultSelector\n"
                                         "    import threading, json\n"),
                          "proto/c.py": ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n"
                                         "    import ssl.SSLContext\n"),
                          "proto/d.py": "from . import socket\nimport selectorsx\n"})
    assert forbidden_imports(tmp_path, "proto", SANS_IO_FORBIDDEN) == [
        "proto/a.py:2: proto.a imports socket",
        "proto/b.py:2: proto.b imports selectors",
        "proto/b.py:3: proto.b imports threading",
        "proto/c.py:3: proto.c imports ssl.SSLContext",
    ]


# -- (c) size limits --------------------------------------------------------------------------


def oversized(root: Path, package: str) -> list[str]:
    """Modules over MAX_MODULE_LINES and classes over MAX_CLASS_LINES (decorators included)."""
    found = []
    for path in module_files(root, package).values():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root)
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"module {where}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                size = node.end_lineno - first + 1
                if size > MAX_CLASS_LINES:
                    found.append(f"class {node.name} in {where}:{node.lineno}: {size} lines "
                                 f"(limit {MAX_CLASS_LINES})")
    return found


def test_size_limits() -> None:
    offenders = oversized(ROOT, PACKAGE)
    assert not offenders, "too large:\n" + "\n".join(offenders)


def test_size_check_can_fail(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_CLASS_LINES))
    write_tree(tmp_path, {
        "big/__init__.py": "",
        "big/ok.py": "class Small:\n" + "\n".join(f"    x{i} = {i}"
                                                   for i in range(MAX_CLASS_LINES - 1)) + "\n",
        "big/cls.py": f"@decorator\nclass Large:\n{body}\n",
        "big/mod.py": "\n" * MAX_MODULE_LINES + "x = 1\n",
    })
    assert oversized(tmp_path, "big") == [
        f"class Large in big/cls.py:2: {MAX_CLASS_LINES + 2} lines (limit {MAX_CLASS_LINES})",
        f"module big/mod.py: {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})",
    ]


# -- (d) one handshake, one ledger ------------------------------------------------------------

#: Calls that only the named modules may make: the welcome and the proof of the token.
CALLS_ALLOWED_IN = {
    "Welcome": {"sockcli/protocol/handshake.py", "sockcli/protocol/frames.py"},
    "check_welcome": {"sockcli/protocol/handshake.py", "sockcli/protocol/frames.py"},
    "ClientAuth": {"sockcli/protocol/handshake.py"},
    "HubChallenge": {"sockcli/protocol/handshake.py"},
}
#: The acknowledgement ledger's state and operations: defined in acks.py only.
LEDGER_ATTRIBUTES = frozenset({"_acked", "_lost_upto", "_failed", "_refusals", "_refused",
                               "acked", "lost_upto"})
LEDGER_METHODS = frozenset({"sent_one", "pop_refusal", "lose_pending", "is_acked", "is_lost"})
LEDGER_MODULE = "sockcli/protocol/acks.py"


def called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def misplaced_calls(root: Path, package: str,
                    allowed: dict[str, set[str]]) -> list[str]:
    found: list[tuple[int, str]] = []
    for path in module_files(root, package).values():
        where = path.relative_to(root).as_posix()
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call):
                name = called_name(node)
                if name in allowed and where not in allowed[name]:
                    found.append((node.lineno, f"{where}:{node.lineno}: {name}(...)"))
    return [text for _, text in sorted(found)]


def defined_attributes(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Attribute names a module defines: ``x.name = ...`` targets (augmented and annotated
    ones too), class-level names, and ``__slots__`` strings."""
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute):
                    yield sub.attr, sub.lineno
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                value: ast.expr | None
                if isinstance(item, ast.Assign):
                    names, value = item.targets, item.value
                elif isinstance(item, ast.AnnAssign):
                    names, value = [item.target], item.value
                else:
                    continue
                for target in names:
                    if isinstance(target, ast.Name):
                        yield target.id, target.lineno
                        if target.id == "__slots__" and value is not None:
                            for const in ast.walk(value):
                                if isinstance(const, ast.Constant) and \
                                        isinstance(const.value, str):
                                    yield const.value, const.lineno


def misplaced_ledger(root: Path, package: str, home: str) -> list[str]:
    found = []
    for path in module_files(root, package).values():
        where = path.relative_to(root).as_posix()
        if where == home:
            continue
        tree = parse(path)
        for name, line in defined_attributes(tree):
            if name in LEDGER_ATTRIBUTES:
                found.append(f"{where}:{line}: attribute {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in LEDGER_METHODS:
                        found.append(f"{where}:{item.lineno}: {node.name}.{item.name}()")
    return found


def test_the_handshake_lives_in_one_module() -> None:
    offenders = misplaced_calls(ROOT, PACKAGE, CALLS_ALLOWED_IN)
    assert not offenders, ("only sockcli/protocol/handshake.py welcomes clients and checks the "
                           "hub's proof:\n" + "\n".join(offenders))
    # The rule is not vacuous: the handshake does make those calls.
    handshake = {called_name(n) for n in ast.walk(parse(ROOT / "sockcli/protocol/handshake.py"))
                 if isinstance(n, ast.Call)}
    assert {"Welcome", "check_welcome", "ClientAuth", "HubChallenge"} <= handshake


def test_the_ack_ledger_lives_in_one_module() -> None:
    offenders = misplaced_ledger(ROOT, PACKAGE, LEDGER_MODULE)
    assert not offenders, ("the acknowledgement bookkeeping belongs in "
                           f"{LEDGER_MODULE} (AckLedger):\n" + "\n".join(offenders))
    home = {name for name, _ in defined_attributes(parse(ROOT / LEDGER_MODULE))}
    assert {"acked", "lost_upto", "_refused"} <= home


def test_placement_checks_can_fail(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/protocol/__init__.py": "",
        "pkg/protocol/acks.py": "class AckLedger:\n    __slots__ = ('acked',)\n"
                                "    def is_acked(self, seq): ...\n",
        "pkg/protocol/handshake.py": "w = fr.Welcome(client_id='c', event_name='e')\n",
        "pkg/client.py": (
            "from pkg.protocol import frames as fr\n"
            "class Client:\n"
            "    __slots__ = ('_refusals', 'other')\n"
            "    _failed: dict[int, str]\n"
            "    def __init__(self):\n"
            "        self._acked = 0\n"
            "        self.x.lost_upto += 1\n"
            "    def pop_refusal(self, upto): ...\n"
            "    def run(self):\n"
            "        self.proof.check_welcome(None)\n"
            "        return fr.Welcome(client_id='c', event_name='e')\n"),
    })
    allowed = {"Welcome": {"pkg/protocol/handshake.py"},
               "check_welcome": {"pkg/protocol/handshake.py"}}
    assert misplaced_calls(tmp_path, "pkg", allowed) == [
        "pkg/client.py:10: check_welcome(...)",
        "pkg/client.py:11: Welcome(...)",
    ]
    assert sorted(misplaced_ledger(tmp_path, "pkg", "pkg/protocol/acks.py")) == [
        "pkg/client.py:3: attribute _refusals",
        "pkg/client.py:4: attribute _failed",
        "pkg/client.py:6: attribute _acked",
        "pkg/client.py:7: attribute lost_upto",
        "pkg/client.py:8: Client.pop_refusal()",
    ]


# -- (e) the light import ---------------------------------------------------------------------


def heavy_modules_after(code: str, tmp_path: Path) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter with no settings file and an empty settings cache;
    return which of pydantic and dynaconf it imported (and the message it built)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKCLI_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    probe = (f"import sys, json\n{code}\n"
             "print(json.dumps({'heavy': sorted(m for m in ('pydantic', 'dynaconf') "
             "if m in sys.modules), 'message': [m.event_name, m.timestamp_iso]}))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=30, check=False, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out: dict[str, list[str]] = json.loads(result.stdout)
    return out


def test_a_message_with_default_timestamps_needs_no_configuration(tmp_path: Path) -> None:
    out = heavy_modules_after("import sockcli\nm = sockcli.SocketMessage('e')", tmp_path)
    assert out["message"][0] == "e" and out["message"][1]  # stamped
    assert out["heavy"] == [], ("import sockcli + SocketMessage('e') imported "
                                f"{' and '.join(out['heavy'])}")


def test_the_light_import_probe_can_fail(tmp_path: Path) -> None:
    out = heavy_modules_after("import sockcli.config.models\nimport sockcli\n"
                              "m = sockcli.SocketMessage('e', timestamp_ms=0, "
                              "timestamp_iso='t')", tmp_path)
    assert out == {"heavy": ["pydantic"], "message": ["e", "t"]} or \
        out == {"heavy": ["dynaconf", "pydantic"], "message": ["e", "t"]}

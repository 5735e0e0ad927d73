"""The public surface is data: tests/api_surface.txt lists every name the public packages
export, with its kind and signature, and this test fails when the code no longer matches it.

A refactor that drops, renames or changes the signature of an exported name fails here, with
a diff. An intended change regenerates the list, in the same commit as the change::

    .venv/bin/python -m pytest tests/test_api_surface.py --update-api-surface

One line per item, sorted. For each name in a package's ``__all__``: a class (its bases, its
constructor, and each public method, property and class-level attribute that sockcli itself
defines, inherited ones included; enum members with their values), a function (its
signature) or a constant (its type). Annotations are written as in the source, sockcli's
module paths are left out (moving a class between modules is not an API change), and
defaults are written without memory addresses, so that the list is the same on every run.
Attributes assigned only in ``__init__`` are not seen: declare them at class level (an
annotation) to have them listed.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

SURFACE_FILE = Path(__file__).with_name("api_surface.txt")
PUBLIC_PACKAGES = ("sockcli", "sockcli.protocol", "sockcli.hub", "sockcli.client",
                   "sockcli.config")
REGENERATE = ".venv/bin/python -m pytest tests/test_api_surface.py --update-api-surface"
#: Dunder methods that are part of a class's contract (context managers, iteration, ...).
PUBLIC_DUNDERS = frozenset({"__enter__", "__exit__", "__iter__", "__next__", "__len__",
                            "__contains__", "__call__", "__getitem__", "__bool__"})

_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
_OWN_MODULE = re.compile(r"\bsockcli(?:\.[a-z_][a-z0-9_]*)*\.(?=[A-Za-z_])")
_SIMPLE = (type(None), bool, int, float, str, bytes)


class _Text:
    """Stands for an annotation or a default in a Signature: its repr is the given text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def clean(text: str) -> str:
    """No memory addresses, no sockcli module paths."""
    return _OWN_MODULE.sub("", _ADDRESS.sub("", text))


def annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):  # postponed annotations: as written in the source
        return clean(annotation)
    return clean(inspect.formatannotation(annotation))


def value_text(value: Any) -> str:
    """A repr that is the same on every run, or the value's type where it would not be."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, _SIMPLE):
        return repr(value)
    if isinstance(value, tuple | list):
        items = ", ".join(value_text(v) for v in value)
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) \
            else f"[{items}]"
    if isinstance(value, frozenset | set):
        items = ", ".join(sorted(value_text(v) for v in value))
        return f"{type(value).__name__}({{{items}}})"
    if isinstance(value, dict):
        pairs = ", ".join(f"{value_text(k)}: {value_text(v)}"
                          for k, v in sorted(value.items(), key=lambda kv: repr(kv[0])))
        return f"{{{pairs}}}"
    text = repr(value)
    if _ADDRESS.search(text) or "object>" in text:
        return f"<{type(value).__qualname__}>"
    return clean(text)


def signature_text(obj: Any, source: dict[str, Any] | None = None) -> str:
    """``(params) -> return`` with stable annotations and defaults; ``(...)`` when Python
    has no signature for it (a built-in constructor).

    ``source`` maps parameter names to annotations as written in the class (pydantic builds
    its models' signatures from evaluated types, whose text depends on pydantic's version).
    """
    try:
        sig = inspect.signature(obj)
    except (ValueError, TypeError):
        return "(...)"
    source = source or {}

    def annotation(p: inspect.Parameter) -> Any:
        if p.annotation is p.empty:
            return p.empty
        written = source.get(p.name)
        if isinstance(written, str) and not isinstance(p.annotation, str):
            return _Text(clean(written))
        return _Text(annotation_text(p.annotation))

    params = [
        p.replace(annotation=annotation(p),
                  default=p.empty if p.default is p.empty else _Text(value_text(p.default)))
        for p in sig.parameters.values()
    ]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=sig.empty if ret is sig.empty
                      else _Text(annotation_text(ret)))
    return str(sig)


def is_own(cls: type) -> bool:
    return cls.__module__ == "sockcli" or cls.__module__.startswith("sockcli.")


def class_name(cls: type) -> str:
    return cls.__qualname__ if is_own(cls) else f"{cls.__module__}.{cls.__qualname__}"


def public_bases(cls: type) -> list[str]:
    """The direct bases, a private sockcli base replaced by its own bases."""
    names: list[str] = []
    for base in cls.__bases__:
        if base is object:
            continue
        if is_own(base) and base.__name__.startswith("_"):
            names.extend(n for n in public_bases(base) if n not in names)
        elif class_name(base) not in names:
            names.append(class_name(base))
    return names


def is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def class_annotations(cls: type) -> dict[str, Any]:
    """The public names sockcli's classes in the MRO of ``cls`` annotate, nearest last."""
    annotations: dict[str, Any] = {}
    for klass in reversed([c for c in cls.__mro__ if is_own(c)]):
        annotations.update({k: v for k, v in vars(klass).get("__annotations__", {}).items()
                            if is_public(k)})
    return annotations


def member_lines(cls: type) -> list[str]:
    """``name: kind ...`` for each public member sockcli defines on ``cls`` or its bases."""
    own = [c for c in cls.__mro__ if is_own(c)]
    seen: dict[str, str] = {}
    members: dict[str, Any] = dict(cls.__members__) if isinstance(cls, enum.EnumMeta) else {}
    for name, member in members.items():
        seen[name] = f"member = {value_text(member.value)}"
    annotations = class_annotations(cls)
    for klass in own:
        for name, raw in vars(klass).items():
            if name in seen or not is_public(name):
                continue
            abstract = "abstract " if getattr(raw, "__isabstractmethod__", False) else ""
            if isinstance(raw, property):
                ret = inspect.signature(raw.fget).return_annotation if raw.fget else None
                access = "read-write" if raw.fset is not None else "read-only"
                seen[name] = f"{abstract}property ({access})" + \
                    ("" if ret in (None, inspect.Signature.empty) else
                     f" -> {annotation_text(ret)}")
            elif isinstance(raw, classmethod | staticmethod):
                kind = "classmethod" if isinstance(raw, classmethod) else "staticmethod"
                seen[name] = f"{abstract}{kind} {signature_text(getattr(cls, name))}"
            elif inspect.isfunction(raw):
                seen[name] = f"{abstract}method {signature_text(raw)}"
            elif isinstance(raw, types.MemberDescriptorType):  # a __slots__ entry
                ann = annotations.get(name)
                seen[name] = "attribute" + ("" if ann is None else f": {annotation_text(ann)}")
            elif name != "__slots__":
                ann = annotations.get(name)
                seen[name] = "attribute" + ("" if ann is None else
                                            f": {annotation_text(ann)}") + \
                    f" = {value_text(raw)}"
    for name, ann in annotations.items():  # declared, with no value at class level
        seen.setdefault(name, f"attribute: {annotation_text(ann)}")
    return [f".{name}: {text}" for name, text in seen.items()]


def item_lines(package: str, name: str, value: Any) -> list[str]:
    prefix = f"{package}.{name}"
    if inspect.isclass(value):
        kind = "enum" if isinstance(value, enum.EnumMeta) else "class"
        bases = ", ".join(public_bases(value))
        ctor = "" if kind == "enum" else f" {signature_text(value, class_annotations(value))}"
        lines = [f"{prefix}: {kind}({bases}){ctor}"]
        return lines + [prefix + line for line in member_lines(value)]
    if inspect.isroutine(value):
        return [f"{prefix}: function {signature_text(value)}"]
    if isinstance(value, types.GenericAlias) or type(value).__module__ == "typing":
        return [f"{prefix}: type alias = {annotation_text(value)}"]
    return [f"{prefix}: constant {type(value).__name__}"]


def surface_lines(packages: tuple[str, ...] = PUBLIC_PACKAGES) -> list[str]:
    lines: list[str] = []
    for package in packages:
        module = importlib.import_module(package)
        exported = list(getattr(module, "__all__", ()))
        assert exported, f"{package} has no __all__"
        lines.append(f"{package}: package, {len(exported)} names")
        for name in exported:
            lines += item_lines(package, name, getattr(module, name))
    # By name: a class's line comes before its members' (plain sorting would put
    # "C.member" before "C: class", "." being less than ":").
    return sorted(set(lines), key=lambda line: line.split(": ", 1)[0])


def surface_text() -> str:
    header = ("# The public API of sockcli: one line per exported name and class member.\n"
              f"# Generated by tests/test_api_surface.py; regenerate with\n#   {REGENERATE}\n"
              "# in the same commit as an intended change.\n")
    return header + "\n".join(surface_lines()) + "\n"


# -- the check ----------------------------------------------------------------------------------


def test_public_api_matches_the_checked_in_list(request: pytest.FixtureRequest) -> None:
    current = surface_text()
    if request.config.getoption("--update-api-surface"):
        SURFACE_FILE.write_text(current, encoding="utf-8")
        return
    if not SURFACE_FILE.exists():
        pytest.fail(f"{SURFACE_FILE} is missing: generate it with\n  {REGENERATE}")
    expected = SURFACE_FILE.read_text(encoding="utf-8")
    if current != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), current.splitlines(keepends=True),
            fromfile="tests/api_surface.txt (checked in)", tofile="the code now"))
        pytest.fail("the public API differs from tests/api_surface.txt:\n" + diff +
                    "\nIf the change is intended, regenerate the list in the same commit:\n  " +
                    REGENERATE, pytrace=False)


def test_the_list_is_the_same_in_a_fresh_interpreter() -> None:
    """Deterministic: another process, with another hash seed, writes the same text."""
    code = ("import sys; sys.path.insert(0, '.')\n"
            "from tests.test_api_surface import surface_text\n"
            "sys.stdout.write(surface_text())\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=50, check=False, env=env,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == surface_text()


def test_every_public_package_is_listed() -> None:
    lines = surface_lines()
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            assert any(line.startswith(f"{package}.{name}: ") for line in lines), name
    assert not [line for line in lines if _ADDRESS.search(line)]


# -- the rendering, on small examples: it sees what it must -------------------------------------


class _Token:
    pass


SENTINEL = _Token()


def example(a: int, /, b: str = "x", *args: Any, c: _Token = SENTINEL, d: Any = print,
            **kw: Any) -> None:
    """An example function."""


def test_signatures_are_stable_and_complete() -> None:
    assert signature_text(example) == (
        "(a: int, /, b: str = 'x', *args: Any, c: _Token = <_Token>, "
        "d: Any = <built-in function print>, **kw: Any) -> None")
    assert signature_text(lambda: None) == "()"
    assert signature_text(Exception) == "(...)"


def test_classes_list_members_and_changes_show() -> None:
    from sockcli.kinds import MessageType

    class Base:
        __module__ = "sockcli.fake"
        __slots__ = ("slot",)
        slot: int
        limit: int = 3
        declared: str

        def run(self, n: int) -> str:
            return ""

        @property
        def size(self) -> int:
            return 0

        @classmethod
        def make(cls, text: str) -> Base:
            return cls()

        def __enter__(self) -> Base:
            return self

        def _private(self) -> None:
            pass

    lines = sorted(item_lines("pkg", "Base", Base))
    assert lines == sorted([
        "pkg.Base: class() ()",
        "pkg.Base.slot: attribute: int",
        "pkg.Base.limit: attribute: int = 3",
        "pkg.Base.run: method (self, n: int) -> str",
        "pkg.Base.size: property (read-only) -> int",
        "pkg.Base.make: classmethod (text: str) -> Base",
        "pkg.Base.__enter__: method (self) -> Base",
        "pkg.Base.declared: attribute: str",
    ])
    enum_lines = item_lines("pkg", "MessageType", MessageType)
    assert enum_lines[0] == "pkg.MessageType: enum(enum.StrEnum)"
    assert "pkg.MessageType.DATA: member = 'data'" in enum_lines
    assert any(line.startswith("pkg.MessageType.parse: classmethod (value: object)")
               for line in enum_lines)

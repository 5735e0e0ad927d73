"""Immutable value classes without dataclasses.

:class:`Value` gives a class with ``__slots__`` equality, hashing and a repr by field, and
refuses assignment after construction; ``__init__`` sets the fields with :data:`set_field`.
It exists because the modules on ``sockcli send``'s path (the frames, the transport registry)
must not import :mod:`dataclasses`: ``import dataclasses`` alone costs 9.8 ms (python -X
importtime, bytecode cached) where ``python -c pass`` takes 8 ms.
"""

from __future__ import annotations

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Value", "set_field"]

#: How ``__init__`` sets a field of a :class:`Value`.
set_field = object.__setattr__


class Value:
    """Immutable value semantics from ``__slots__``: equality, hashing and repr by field."""

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), *(_hashable(v) for v in self._values())))

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")


def _hashable(value: Any) -> Any:
    return tuple(sorted(value.items(), key=repr)) if isinstance(value, dict) else value

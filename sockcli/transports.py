"""The transports, as data: for each name, the hub class, the client class and, if it has
one, its settings section with the section's model.

The standard library's socketserver makes a Unix server out of a TCP one by changing one
attribute; here a transport is one :class:`Transport` record. ``create_server``,
``create_client`` (:mod:`sockcli.factory`) and the configuration loader read this registry,
so adding a transport is a hub module, a client module, a section model if it has settings of
its own, and one call::

    register_transport("vsock", server="mypkg.hub:VsockServer",
                       client="mypkg.client:VsockClient", model="mypkg.config:VsockConfig")

after which ``create_server("vsock", "ev")`` works and a ``[vsock]`` table of settings.toml
(and ``SOCKCLI_VSOCK__KEY`` variables) is validated by ``VsockConfig`` and read with
``settings.section("vsock")``. Register before settings are loaded: a section is read when
the settings are (the shared settings of :func:`~sockcli.config.loader.get_settings` are
loaded again when the registry has changed since).

Classes are named "module:Class" and imported on first use, because ``import sockcli`` and
every ``sockcli send`` read this module and must not pay for hubs, clients or pydantic.
"""

from __future__ import annotations

from sockcli.exceptions import ValidationError
from sockcli.values import Value, set_field

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from typing import Any

    from sockcli.client.base import SocketClient
    from sockcli.hub.base import SocketServer

__all__ = ["Transport", "get_transport", "register_transport", "registry_key", "transport_names",
           "transports", "unregister_transport"]


class Transport(Value):
    """One transport: its name, its hub and client classes, its settings section and model.

    ``server``, ``client`` and ``model`` are "module:Class" references; ``section`` is the
    settings table (``[unix]``) and the infix of its variables (``SOCKCLI_UNIX__...``).
    A transport without settings of its own has neither (None): the top level serves it.

    Immutable (:class:`~sockcli.values.Value`, not a dataclass: the configuration loader reads
    the registry on every ``sockcli send``, for its cache key).
    """

    __slots__ = ("client", "model", "name", "section", "server")

    name: str
    server: str
    client: str
    section: str | None
    model: str | None

    def __init__(self, name: str, *, server: str, client: str, section: str | None = None,
                 model: str | None = None) -> None:
        if (section is None) != (model is None):
            raise ValidationError(f"transport {name!r}: a settings section needs its model, "
                                  "and a model its section")
        for slot, value in (("name", name), ("server", server), ("client", client),
                            ("section", section), ("model", model)):
            set_field(self, slot, value)

    def __repr__(self) -> str:
        return (f"Transport({self.name!r}, server={self.server!r}, client={self.client!r}, "
                f"section={self.section!r}, model={self.model!r})")

    def server_class(self) -> type[SocketServer]:
        """The hub class, imported now. Raises ValidationError if it cannot be imported."""
        cls: type[SocketServer] = _load(self.server, f"hub of transport {self.name!r}")
        return cls

    def client_class(self) -> type[SocketClient]:
        """The client class, imported now. Raises ValidationError if it cannot be imported."""
        cls: type[SocketClient] = _load(self.client, f"client of transport {self.name!r}")
        return cls

    def model_class(self) -> type[Any] | None:
        """The pydantic model of the section, imported now (this imports pydantic); None
        for a transport without a section."""
        if self.model is None:
            return None
        model: type[Any] = _load(self.model, f"settings model of transport {self.name!r}")
        return model


def _load(reference: str, what: str) -> Any:
    import importlib

    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"cannot import the {what}, {reference!r}: {exc}") from exc


_BUILT_IN = ("unix", "tcp")
_REGISTRY: dict[str, Transport] = {
    "unix": Transport("unix", server="sockcli.hub.unix:UnixSocketServer",
                      client="sockcli.client.unix:UnixSocketClient", section="unix",
                      model="sockcli.config.models:UnixSocketConfig"),
    "tcp": Transport("tcp", server="sockcli.hub.tcp:TcpSocketServer",
                     client="sockcli.client.tcp:TcpSocketClient", section="tcp",
                     model="sockcli.config.models:TcpSocketConfig"),
}


def _check_reference(reference: object, role: str) -> str:
    if not isinstance(reference, str):
        raise ValidationError(f"the {role} of a transport must be a 'module:Class' string, "
                              f"not {type(reference).__name__}")
    module, colon, attribute = reference.partition(":")
    if not (module and colon and attribute.isidentifier()):
        raise ValidationError(f"invalid {role} {reference!r}: name it 'module:Class'")
    return reference


def register_transport(name: str, *, server: str, client: str, model: str | None = None,
                       section: str | None = None) -> Transport:
    """Add the transport ``name`` (any case, kept in lower case) and return its record.

    ``server`` and ``client`` name the hub and client classes ("module:Class"; subclasses of
    :class:`~sockcli.hub.base.SocketServer` and :class:`~sockcli.client.base.SocketClient`
    taking ``(event_name, **kwargs)`` as the built-in ones do), ``model`` the pydantic model
    of its settings section (if it has one; every key needs a default), and ``section`` that
    section's name (the transport's name by default). Nothing is imported until used.
    Registering the same record again returns it; a different record under a taken name or
    section is a ValidationError, as is a name that is not a lower-case identifier (it
    becomes a TOML table and a variable infix).
    """
    import re

    key = name.lower() if isinstance(name, str) else name
    if section is None and model is not None:
        section = key
    for what, value in (("name", key), ("section", section)):
        if value is None and what == "section":
            continue
        if not isinstance(value, str) or re.fullmatch(r"[a-z][a-z0-9_]{0,31}", value) is None:
            raise ValidationError(f"invalid transport {what} {value!r}: it must be a letter "
                                  "then up to 31 lower-case letters, digits or '_'")
    if section == "socket":
        raise ValidationError("invalid transport section 'socket': it names the top level")
    record = Transport(key, server=_check_reference(server, "server"),
                       client=_check_reference(client, "client"), section=section,
                       model=None if model is None else _check_reference(model, "model"))
    known = _REGISTRY.get(key)
    if known is not None:
        if known == record:
            return known
        raise ValidationError(f"transport {key!r} is already registered: {known!r}")
    for other in _REGISTRY.values():
        if section is not None and other.section == section:
            raise ValidationError(f"settings section {section!r} already belongs to "
                                  f"transport {other.name!r}")
    _REGISTRY[key] = record
    return record


def unregister_transport(name: str) -> None:
    """Remove a registered transport; the built-in ones stay. Raises ValidationError for a
    built-in or unknown name."""
    record = get_transport(name)
    if record.name in _BUILT_IN:
        raise ValidationError(f"transport {record.name!r} is built in and cannot be removed")
    del _REGISTRY[record.name]


def get_transport(socket_type: object) -> Transport:
    """The transport named ``socket_type``: a :class:`~sockcli.kinds.SocketType` member or a
    name in any case. Anything else is a ValidationError naming the choices."""
    record = _REGISTRY.get(socket_type.lower()) if isinstance(socket_type, str) else None
    if record is None:
        raise ValidationError(f"unknown socket type {socket_type!r}: choose one of "
                              f"{', '.join(transport_names())}")
    return record


def transports() -> tuple[Transport, ...]:
    """Every transport, the built-in ones first, then in the order of registration."""
    return tuple(_REGISTRY.values())


def transport_names() -> list[str]:
    """The names of every transport, sorted."""
    return sorted(_REGISTRY)


def registry_key() -> tuple[tuple[str, str], ...]:
    """What settings depend on in the registry, (section, model) pairs: a cache of settings
    loaded under another registry is stale."""
    return tuple((t.section, t.model) for t in _REGISTRY.values()
                 if t.section is not None and t.model is not None)

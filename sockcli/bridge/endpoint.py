"""Where and as whom the bridge connects: the broker's URL, the credentials, the TLS context.

Everything here is checked before the hub starts (``serve --bridge`` exits 78 with one line
for a bad URL, an unsafe password file or an unreadable CA file), and nothing secret is ever
shown: :attr:`Endpoint.url` has no user or password, and the password never comes from the
command line (``SOCKCLI_BRIDGE_PASSWORD``, else the ``password_file`` setting, mode 0600
checked as token files are).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sockcli.exceptions import ValidationError
from sockcli.protocol.auth import check_private_file

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping
    from pathlib import Path

    from sockcli.config.views import BridgeView

__all__ = ["ENV_PASSWORD", "Endpoint", "make_endpoint", "parse_url", "read_password_file",
           "resolve_password", "tls_context"]

#: The variable that holds the broker password (it wins over the password_file setting).
ENV_PASSWORD = "SOCKCLI_BRIDGE_PASSWORD"
_PORTS = {"mqtt": 1883, "mqtts": 8883}
_MAX_PASSWORD_BYTES = 65535  # what an MQTT password field holds
_FORM = "mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"


class Endpoint:
    """A broker to connect to: ``host``, ``port``, whether over TLS (``tls_context``, or
    None), and the credentials (``username``, ``password``: None when not given)."""

    __slots__ = ("host", "password", "port", "scheme", "tls_context", "username")

    def __init__(self, *, scheme: str, host: str, port: int, username: str | None = None,
                 password: str | None = None, tls_context: ssl.SSLContext | None = None) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls_context = tls_context

    @property
    def url(self) -> str:
        """``scheme://host:port``, without user or password: what logs and figures show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:  # never the password
        return f"Endpoint({self.url!r}, username={self.username!r})"


def parse_url(url: str) -> tuple[str, str, int, str | None]:
    """(scheme, host, port, username or None) of ``mqtt://[USER@]HOST[:PORT]`` or
    ``mqtts://...`` (default ports 1883 and 8883). ValidationError for anything else, and for
    a password in the URL: it would be seen by every user in the process list."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"invalid bridge URL {_shown(text)!r}: {exc}; use {_FORM}") \
            from None
    scheme = parts.scheme.lower()
    if scheme not in _PORTS:
        raise ValidationError(f"invalid bridge URL {_shown(text)!r}: use {_FORM}")
    if parts.password is not None:
        raise ValidationError(f"the bridge URL {_shown(text)!r} holds a password: put it in "
                              f"the file of the [bridge] password_file setting (mode 0600) or "
                              f"in {ENV_PASSWORD}, never on the command line")
    if not parts.hostname:
        raise ValidationError(f"invalid bridge URL {_shown(text)!r}: no host; use {_FORM}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(f"invalid bridge URL {_shown(text)!r}: a broker URL has no path "
                              f"or query; use {_FORM} (topics come from the [bridge] "
                              "topic_prefix setting)")
    if port == 0:
        raise ValidationError(f"invalid bridge URL {_shown(text)!r}: port 0")
    username = unquote(parts.username) if parts.username else None
    return scheme, parts.hostname, port if port is not None else _PORTS[scheme], username


def _shown(url: str) -> str:
    """``url`` with any password replaced by ``***``, for an error message."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and ":" in user:
        user = user.split(":", 1)[0] + ":***"
    return f"{head}{sep}{user}{at}{host}{slash}{tail}"


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The password in ``path`` (its line end removed), refusing a file that others could
    read or change: a regular file of this user (or root), no permission for group or
    others, as token files (:func:`sockcli.protocol.auth.check_private_file`). ValidationError."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO put there must be refused, not wait for a writer.
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ValidationError(f"cannot read the bridge's password file {name}: "
                              f"{exc.strerror or exc}") from None
    try:
        check_private_file(fd, f"the bridge's password file {name}", name)
        data = os.read(fd, _MAX_PASSWORD_BYTES + 3)
    except OSError as exc:
        raise ValidationError(f"cannot read the bridge's password file {name}: "
                              f"{exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return _password(data.removesuffix(b"\n").removesuffix(b"\r"), f"password file {name}")


def _password(raw: bytes, where: str) -> str:
    if not raw:
        raise ValidationError(f"the bridge's {where} is empty")
    if len(raw) > _MAX_PASSWORD_BYTES:
        raise ValidationError(f"the bridge's {where} is longer than {_MAX_PASSWORD_BYTES} "
                              "bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"the bridge's {where} is not UTF-8 text") from None


def resolve_password(password_file: Path | None,
                     environ: Mapping[str, str] | None = None) -> str | None:
    """The broker password: ``SOCKCLI_BRIDGE_PASSWORD`` when set and not empty, else the
    content of ``password_file``, else None."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_PASSWORD, "")
    if value:
        return _password(value.encode("utf-8", "surrogateescape"), f"variable {ENV_PASSWORD}")
    if password_file is not None and str(password_file):
        return read_password_file(password_file)
    return None


def tls_context(ca_file: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """A client context for mqtts://: TLS 1.2 or newer, the broker's certificate checked
    against ``ca_file`` (PEM) or the system's CAs, and its name against the URL's host."""
    import ssl

    try:
        context = ssl.create_default_context(
            cafile=os.fspath(ca_file) if ca_file is not None else None)
    except FileNotFoundError as exc:
        raise ValidationError(f"cannot read the bridge's tls_ca {ca_file}: "
                              f"{exc.strerror}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValidationError(f"cannot load the bridge's tls_ca {ca_file}: "
                              f"{getattr(exc, 'reason', None) or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def make_endpoint(url: str, settings: BridgeView,
                  environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint of ``url`` with the ``[bridge]`` settings: the URL's user, else the
    ``username`` setting; the password (:func:`resolve_password`); for mqtts:// the TLS
    context of the ``tls_ca`` setting. ValidationError for what is wrong."""
    scheme, host, port, user = parse_url(url)
    username = user or settings.username or None
    password = resolve_password(settings.password_file, environ)
    tls_ca = settings.tls_ca
    context = tls_context(tls_ca if tls_ca is not None and str(tls_ca) else None) \
        if scheme == "mqtts" else None
    return Endpoint(scheme=scheme, host=host, port=port, username=username, password=password,
                    tls_context=context)

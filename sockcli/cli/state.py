"""What the global options decide, shared by every command through click's context object.

Click itself is imported only where a method needs it: ``sockcli serve``'s fast path makes a
CliState without click, which would stay in the hub's memory (sockcli.cli.servecore).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sockcli.cli.errors import ConfigError
from sockcli.exceptions import SocketError, ValidationError

if TYPE_CHECKING:
    import click

__all__ = ["CliState"]


@dataclass
class CliState:
    """The global options, and the settings they lead to (loaded on first use)."""

    config_file: str | None = None
    socket_dir: str | None = None
    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    #: --token-file and --tls-ca of the command that runs (send, listen, list).
    token_file: str | None = None
    tls_ca: str | None = None
    _settings: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, ctx: click.Context) -> CliState:
        """The CliState of this command line: the group's, or during shell completion (when
        the group's callback does not run) one made from the root's --config and
        --socket-dir."""
        state = ctx.find_object(cls)
        if state is None:
            root = ctx.find_root()
            state = cls(config_file=root.params.get("config_file"),
                        socket_dir=root.params.get("socket_dir"))
        return state

    def configure_logging(self) -> None:
        level = logging.WARNING
        if self.quiet:
            level = logging.ERROR
        elif self.verbose >= 2 or self.debug:
            level = logging.DEBUG
        elif self.verbose == 1:
            level = logging.INFO
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="sockcli: %(levelname)s: %(message)s")

    def settings(self) -> Any:
        """The validated settings; an invalid one is a ConfigError (exit 78)."""
        if self._settings is None:
            from sockcli.config.loader import load_settings
            from sockcli.runtime import check_socket_dir

            overrides: dict[str, Any] = {}
            if self.socket_dir:
                overrides["socket_dir"] = os.path.abspath(self.socket_dir)
            try:
                settings = load_settings(self.config_file, **overrides)
                # An unsafe socket_dir is a configuration error for every command alike.
                check_socket_dir(settings.socket.socket_dir)
            except SocketError as exc:  # ValidationError included
                raise ConfigError(str(exc)) from None
            self._settings = settings
        return self._settings

    def security(self) -> dict[str, Any]:
        """Keyword arguments of a client for --token-file and --tls-ca (when given; without
        them the client takes $SOCKCLI_TOKEN and the settings). A bad file is exit 78."""
        from sockcli.cli.sendopts import token_from_option

        kwargs: dict[str, Any] = {}
        token = token_from_option(self.token_file)
        if token is not None:
            kwargs["token"] = token
        if self.tls_ca is not None:
            kwargs["tls_ca"] = os.path.abspath(self.tls_ca)
        return kwargs

    def info(self, text: str) -> None:
        """A progress note on stderr, unless --quiet."""
        if not self.quiet:
            import click

            click.echo(f"sockcli: {text}", err=True)

    def resolve_event(self, event: str | None, connect: tuple[str, int] | None = None, *,
                      wait: float = 0.0, on_wait: Callable[[], None] | None = None) -> str:
        """EVENT, else $SOCKCLI_EVENT, else the only hub there is (remote with --connect).

        The local hub to pick is waited for up to ``wait`` seconds (math.inf: until one runs),
        ``on_wait()`` called once if it is not there at once; NoEventError (64) when several
        run, NoHubError (69) when none came in time.
        """
        from sockcli.cli.sendopts import event_or_env
        from sockcli.types import validate_event_name

        event, source = event_or_env(event)
        if event is not None:
            try:
                return validate_event_name(event)
            except ValidationError as exc:
                import click

                raise click.BadParameter(str(exc), param_hint=source) from None
        if connect is not None:
            return self._remote_event(connect)
        from sockcli.cli.sendcore import pick_event

        try:
            return pick_event(str(self.settings().socket.socket_dir), wait, on_wait)
        except SocketError as exc:
            raise ConfigError(str(exc)) from None

    def _remote_event(self, connect: tuple[str, int]) -> str:
        """Ask the hub at HOST:PORT which event it serves (its welcome frame says)."""
        from sockcli.cli.errors import from_library
        from sockcli.client.tcp import TcpSocketClient

        try:
            probe = TcpSocketClient("probe", host=connect[0], port=connect[1], subscribe=False,
                                    auto_reconnect=False, settings=self.settings(),
                                    **self.security())
        except SocketError as exc:  # a bad token file or CA file
            raise ConfigError(str(exc)) from None
        try:
            probe.connect(timeout=self.settings().socket.default_timeout)
        except SocketError as exc:
            raise from_library(exc) from None
        try:
            assert probe.welcome is not None
            return probe.welcome.event_name
        finally:
            probe.disconnect()

    def client(self, event: str, connect: tuple[str, int] | None = None, **kwargs: Any) -> Any:
        """A client of the local hub of ``event`` (any transport), or of HOST:PORT."""
        settings = self.settings()
        kwargs.update(self.security())
        try:
            if connect is not None:
                from sockcli.client.tcp import TcpSocketClient

                return TcpSocketClient(event, host=connect[0], port=connect[1],
                                       settings=settings, **kwargs)
            from sockcli.client.discovery import LocalHubClient

            return LocalHubClient(event, settings=settings, **kwargs)
        except SocketError as exc:  # a bad token, token file or CA file
            raise ConfigError(str(exc)) from None


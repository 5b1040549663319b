"""What every CLI command shares: the container (settings, service, bus, opened lazily), the
console, the actor. Only CLI concerns live here; every part comes from `nervenbahn.container`.

The container module (and the domain's commands) are imported when a command first needs
them, not when the CLI starts: `nervenbahn --help` and a usage error need neither."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from domain.errors import InvalidCommandError
from nervenbahn.logging import configure_logging

if TYPE_CHECKING:
    from domain.application.cases import CaseService, CommandResult
    from nervenbahn.config import Settings
    from nervenbahn.container import Container

__all__ = ["Session", "parse_as_of", "session"]


@dataclass
class Session:
    """Per-invocation state of the CLI: output, the actor, and the container."""

    as_json: bool = False
    actor_spec: str | None = None
    console: Console = field(default_factory=lambda: _console())
    _container: Container | None = None
    _logging: bool = False

    @property
    def settings(self) -> Settings:
        """The container's settings (from the environment, read on first use, which also
        configures logging)."""
        settings = self._opened().settings
        if not self._logging:
            configure_logging(settings.log_format, settings.log_level)
            self._logging = True
        return settings

    @property
    def container(self) -> Container:
        """The process's container (logging configured from its settings first)."""
        self.settings  # noqa: B018 - read for its side effect: logging is configured
        return self._opened()

    def _opened(self) -> Container:
        """The container, made (not opened: it opens its parts on use) on first need."""
        if self._container is None:
            from nervenbahn.container import Container

            self._container = Container()
        return self._container

    @property
    def service(self) -> CaseService:
        """The case service on the configured store, opened on first use."""
        return self.container.service

    def close(self) -> None:
        """Close what the container opened (it opens it again on next use)."""
        if self._container is not None:
            self._container.close()

    def actor(self) -> dict[str, str]:
        """The acting user from --actor or NERVENBAHN_ACTOR, as USER:ROLE:ORGANISATION."""
        spec = self.actor_spec or self.settings.cli.actor
        if not spec:
            raise InvalidCommandError(
                "command", [("actor", "set --actor USER:ROLE:ORGANISATION or NERVENBAHN_ACTOR")]
            )
        parts = spec.split(":")
        if len(parts) != 3:
            raise InvalidCommandError(
                "command", [("actor", f"{spec!r} is not USER:ROLE:ORGANISATION")]
            )
        return dict(zip(("user_id", "role", "organisation"), parts, strict=True))

    def declared_actor(self) -> str | None:
        """The actor declared (--actor or NERVENBAHN_ACTOR) as USER:ROLE:ORGANISATION, checked
        for its form; None if none was declared (for what records who did it, not requires)."""
        if not (self.actor_spec or self.settings.cli.actor):
            return None
        return ":".join(self.actor().values())

    def run(self, name: str, data: dict[str, Any], correlation_id: str | None) -> CommandResult:
        """Validate and execute one command, then report what was recorded."""
        from domain.commands import CaseCommand, parse_command

        from .render import emit_json

        payload = {key: value for key, value in data.items() if value is not None}
        payload["actor"] = self.actor()
        payload["correlation_id"] = correlation_id or str(uuid.uuid4())
        command = parse_command(name, payload)
        result = self.service.execute(command)
        if self.as_json:
            emit_json(
                self.console,
                {
                    "case_id": result.case_id,
                    "version": result.version,
                    "events": list(result.events),
                    "correlation_id": command.correlation_id,
                },
            )
        else:
            verb = "opened" if not isinstance(command, CaseCommand) else "updated"
            self.console.print(
                f"case {result.case_id} {verb}: {', '.join(result.events)} "
                f"(version {result.version})"
            )
        return result


def _console() -> Console:
    """A console as wide as the terminal, or 160 columns when output goes to a file or pipe."""
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else None
    probe = Console()
    return Console(width=width or (probe.width if probe.is_terminal else 160))


def session(ctx: typer.Context) -> Session:
    """The Session of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Session)
    return obj


def parse_as_of(text: str, command: str = "show", field: str = "as_of") -> datetime:
    """An ISO date (meaning the end of that day, Swiss time) or an ISO date-time, within the
    bounds of `nervenbahn.bounds`; InvalidCommandError naming `field` if not."""
    from nervenbahn.bounds import parse_moment

    try:
        return parse_moment(text)
    except ValueError as exc:
        raise InvalidCommandError(command, [(field, str(exc))]) from None

"""What every CLI command shares: settings, the service (opened lazily), output, the actor."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from domain.application.cases import CaseService, CommandResult
from domain.commands import CaseCommand, parse_command
from domain.errors import InvalidCommandError
from nervenbahn.bootstrap import build_service, close_service
from nervenbahn.bounds import parse_moment
from nervenbahn.config import ConfigError, Settings, load_settings
from nervenbahn.logging import configure_logging
from nervenbahn.wiring import Bus, open_bus

from .render import emit_json

__all__ = ["Runtime", "parse_as_of", "runtime"]


@dataclass
class Runtime:
    """Per-invocation state of the CLI."""

    as_json: bool = False
    actor_spec: str | None = None
    console: Console = field(default_factory=lambda: _console())
    _settings: Settings | None = None
    _service: CaseService | None = None
    _bus: Bus | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the environment, read on first use."""
        if self._settings is None:
            self._settings = load_settings()
            configure_logging(self._settings.log_format, self._settings.log_level)
        return self._settings

    @property
    def service(self) -> CaseService:
        """The case service on the configured store, opened on first use."""
        if self._service is None:
            self._service = build_service(self.settings)
        return self._service

    @property
    def bus(self) -> Bus:
        """The bus on NERVENBAHN_KAFKA (settings read on first use)."""
        if self._bus is None:
            kafka = self.settings.kafka
            if not kafka.bootstrap_servers:
                raise ConfigError(
                    "NERVENBAHN_KAFKA: no broker configured; set it to host:port[,host:port] "
                    "or start the embedded one with `nervenbahn broker`"
                )
            self._bus = open_bus(self.service, self.settings.store, kafka,
                                 self.settings.registry.url)
        return self._bus

    def close(self) -> None:
        """Close the bus and the store if they were opened."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        if self._service is not None:
            close_service(self._service)
            self._service = None

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

    def run(self, name: str, data: dict[str, Any], correlation_id: str | None) -> CommandResult:
        """Validate and execute one command, then report what was recorded."""
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


def runtime(ctx: typer.Context) -> Runtime:
    """The Runtime of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Runtime)
    return obj


def parse_as_of(text: str, command: str = "show", field: str = "as_of") -> datetime:
    """An ISO date (meaning the end of that day, Swiss time) or an ISO date-time, within the
    bounds of `nervenbahn.bounds`; InvalidCommandError naming `field` if not."""
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise InvalidCommandError(command, [(field, str(exc))]) from None

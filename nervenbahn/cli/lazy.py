"""Sub-commands loaded on demand: the root group knows each command's name, module and the
line `--help` lists, and imports the module only when the command runs (or its own `--help`
is asked for).

Why: the test suite and scripts start the CLI thousands of times, and importing every
sub-app up front (FastAPI, kafka-python, psycopg, xmlschema, every codec) took about 1 s per
start on 2 idle cores; `nervenbahn --help` now imports none of them. The listed line is kept
here, in `LazyCommand.help`, so that listing does not import anything; a test compares it with
the real command's first help paragraph (tests/cli/test_cli_start.py).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar

import typer
from typer import _click as click  # Typer's own copy of click, which its groups are made of
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo, TyperInfo

__all__ = ["LazyCommand", "LazyGroup", "listed_help"]


@dataclass(frozen=True)
class LazyCommand:
    """One command of a group: `module.attribute` is a Typer app (a sub-group) or a command
    function; `help` is the line the group's `--help` lists for it."""

    name: str
    module: str
    attribute: str
    help: str

    def load(self, group: TyperGroup) -> click.Command:
        """Import the module and build the click command exactly as `app.add_typer(…)` /
        `app.command(name)(…)` on the root would have."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            return typer.main.get_group_from_info(
                TyperInfo(target, name=self.name),
                pretty_exceptions_short=True,
                rich_markup_mode=group.rich_markup_mode,
                suggest_commands=group.suggest_commands,
            )
        return typer.main.get_command_from_info(
            CommandInfo(name=self.name, callback=target),
            pretty_exceptions_short=True,
            rich_markup_mode=group.rich_markup_mode,
        )

    def listing(self) -> click.Command:
        """A stand-in that carries only the name and the listed line (for the group's help)."""
        return TyperCommand(self.name, help=self.help)


def listed_help(command: click.Command) -> str:
    """The part of a command's help that a group's `--help` lists: the first paragraph."""
    text = command.short_help or command.help or ""
    return inspect.cleandoc(text).split("\n\n")[0].strip()


class LazyGroup(TyperGroup):
    """A Typer group whose `lazy_commands` are imported when first used. Commands registered
    on the Typer app itself (tests wire some that way) come first when a name is looked up."""

    lazy_commands: ClassVar[tuple[LazyCommand, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every lazy command in table order, then any registered on the app itself."""
        names = [entry.name for entry in self.lazy_commands]
        return names + [name for name in super().list_commands(ctx) if name not in names]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`: its module is imported now (unless the group is
        only listing its commands for `--help`)."""
        registered = super().get_command(ctx, cmd_name)
        if registered is not None:
            return registered
        entry = next((e for e in self.lazy_commands if e.name == cmd_name), None)
        if entry is None:
            return None
        if self._listing:
            return entry.listing()
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = entry.load(self)
        return self._loaded[cmd_name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As Typer's, with "Did you mean …?" drawn from the lazy commands too."""
        try:
            return self._click_resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_commands and matches:
                suggestions = ", ".join(f"{match!r}" for match in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's help, listing the commands from the table without importing them."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

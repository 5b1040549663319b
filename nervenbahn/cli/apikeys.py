"""`nervenbahn apikeys …`: give API consumers keys bound to a scope, list them, revoke them,
and show who added and revoked which key when (`apikeys history`).

The key file is NERVENBAHN_API_KEYS (default `<store folder>/api-keys.json`); it holds only
SHA-256 hashes. A new key is printed once and cannot be shown again. Each addition and
revocation records the operating-system user of the process and the actor it declared (if
any) in the file's history (`nervenbahn.api.keys`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from domain.errors import InvalidCommandError
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api.errors import ApiError
from nervenbahn.api.keys import ApiKeyRegistry, KeyChanger
from nervenbahn.api.scopes import parse_scope
from nervenbahn.api.settings import load_api_settings
from nervenbahn.identity import process_identity

from .render import emit_json
from .session import Session, session

__all__ = ["app"]

app = typer.Typer(help="API keys of the HTTP API's consumers.", no_args_is_help=True)


def _registry() -> ApiKeyRegistry:
    return ApiKeyRegistry(load_api_settings().api_keys)


def _changer(rt: Session) -> KeyChanger:
    """Who this invocation is: the process's operating-system user and the declared actor."""
    return KeyChanger(str(process_identity()), rt.declared_actor())


@app.command("add")
def add(
    ctx: typer.Context,
    consumer: Annotated[str, typer.Option(help="The consumer's name, e.g. akso-olten-desk.")],
    scope: Annotated[
        str,
        typer.Option(
            help="branch_office:ID | region:ID | canton | auditor | bus_reader, "
            "e.g. region:so-olten."
        ),
    ],
) -> None:
    """Give a consumer a new random key bound to a scope; the key is printed once."""
    rt = session(ctx)
    registry = _registry()
    try:
        bound = parse_scope(
            scope,
            branch_offices=load_branch_offices(),
            regions=load_reference_data().regions,
        )
        key = registry.add(consumer, bound, now=datetime.now(UTC), by=_changer(rt))
    except ApiError as exc:
        raise InvalidCommandError("apikeys add", [("consumer/scope", str(exc))]) from exc
    if rt.as_json:
        emit_json(rt.console, {"consumer": consumer, "scope": str(bound), "key": key})
        return
    rt.console.print(f"consumer {consumer} added with scope {bound} in {registry.path}")
    rt.console.print("its key (shown this once; only its hash is stored):")
    rt.console.print(key, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_consumers(ctx: typer.Context) -> None:
    """The consumers with a key: name, scope, created when and by whom (never the keys)."""
    rt = session(ctx)
    try:
        consumers = _registry().consumers()
    except ApiError as exc:
        raise InvalidCommandError("apikeys list", [("file", str(exc))]) from exc
    _emit(rt, "API consumers", ("consumer", "scope", "created_at", "created_by"), [
        {"consumer": c.name, "scope": str(c.scope), "created_at": c.created_at.isoformat(),
         "created_by": str(c.created_by)}
        for c in consumers
    ])


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Consumer name.")]) -> None:
    """Revoke a consumer's key; a running server refuses it from its next request on."""
    rt = session(ctx)
    try:
        gone = _registry().revoke(name, now=datetime.now(UTC), by=_changer(rt))
    except ApiError as exc:
        raise InvalidCommandError("apikeys revoke", [("name", str(exc))]) from exc
    if rt.as_json:
        emit_json(rt.console, {"consumer": gone.name, "revoked": True})
    else:
        rt.console.print(f"key of consumer {gone.name} ({gone.scope}) revoked")


@app.command("history")
def history(ctx: typer.Context) -> None:
    """Every key added or revoked: when, which consumer and scope, by whom (the operating-system
    user, and the actor declared)."""
    rt = session(ctx)
    try:
        changes = _registry().history()
    except ApiError as exc:
        raise InvalidCommandError("apikeys history", [("file", str(exc))]) from exc
    _emit(rt, "API key history", ("at", "action", "consumer", "scope", "by (established)",
                                  "actor declared"), [
        {"at": h.at.isoformat(), "action": h.action, "consumer": h.consumer,
         "scope": str(h.scope), "identity": h.by.identity, "actor": h.by.actor}
        for h in changes
    ])


def _emit(rt: Session, title: str, columns: tuple[str, ...],
          rows: list[dict[str, str | None]]) -> None:
    """The rows as JSON, or as a table with these column titles (None shown as -)."""
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(escape(value) if value is not None else "-" for value in row.values()))
    rt.console.print(table)

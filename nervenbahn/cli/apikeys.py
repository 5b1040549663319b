"""`nervenbahn apikeys …`: give API consumers keys bound to a scope, list them, revoke them.

The key file is NERVENBAHN_API_KEYS (default `<store folder>/api-keys.json`); it holds only
SHA-256 hashes. A new key is printed once and cannot be shown again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from domain.errors import InvalidCommandError
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api.errors import ApiError
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import parse_scope
from nervenbahn.api.settings import load_api_settings

from .render import emit_json
from .session import session

__all__ = ["app"]

app = typer.Typer(help="API keys of the HTTP API's consumers.", no_args_is_help=True)


def _registry() -> ApiKeyRegistry:
    return ApiKeyRegistry(load_api_settings().api_keys)


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
        key = registry.add(consumer, bound, now=datetime.now(UTC))
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
    """The consumers with a key: name, scope, created (never the keys)."""
    rt = session(ctx)
    try:
        consumers = _registry().consumers()
    except ApiError as exc:
        raise InvalidCommandError("apikeys list", [("file", str(exc))]) from exc
    rows = [
        {"consumer": c.name, "scope": str(c.scope), "created_at": c.created_at.isoformat()}
        for c in consumers
    ]
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table(title="API consumers", title_justify="left")
    for column in ("consumer", "scope", "created_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    rt.console.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Consumer name.")]) -> None:
    """Revoke a consumer's key; a running server refuses it from its next request on."""
    rt = session(ctx)
    try:
        gone = _registry().revoke(name)
    except ApiError as exc:
        raise InvalidCommandError("apikeys revoke", [("name", str(exc))]) from exc
    if rt.as_json:
        emit_json(rt.console, {"consumer": gone.name, "revoked": True})
    else:
        rt.console.print(f"key of consumer {gone.name} ({gone.scope}) revoked")

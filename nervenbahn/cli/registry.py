"""`nervenbahn registry serve`: the schema registry alone, over HTTP at the root path.

For an installation whose outside applications need the writer schemas but whose API runs
elsewhere (or not at all): the same read-only, Confluent-compatible app `serve` mounts under
/registry (`nervenbahn.api.registry`), readers authenticated by `bus_reader` keys.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.registry import create_registry_app

from .session import session

__all__ = ["app"]

app = typer.Typer(help="The schema registry served over HTTP.", no_args_is_help=True)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the registry.", min=1, max=65535)] = 8081,
) -> None:
    """Serve the store's schema registry the way Confluent's is (read only) until Ctrl-C.

    Point clients at http://HOST:PORT with HTTP Basic `consumer-name:api-key` of a key made by
    `nervenbahn apikeys add --consumer NAME --scope bus_reader`.
    """
    rt = session(ctx)
    keys = ApiKeyRegistry(rt.settings.api.api_keys)
    registry_app = create_registry_app(rt.container.registry, keys)
    rt.console.print(f"schema registry serving on http://{host}:{port}; Ctrl-C stops")
    uvicorn.run(registry_app, host=host, port=port, log_level="warning")

"""`nervenbahn asyncapi [--out FILE]`: the bus's AsyncAPI 3.0.0 document (JSON).

Generated from the code's own catalogue (`bus.asyncapi`) and the Kafka settings (topic prefix,
partitions, brokers); needs neither a broker nor a store. Malformed Kafka settings are refused
naming the variable (exit 3, as every configuration error).

The schema registry's address (the server binding's `schemaRegistryUrl`) is `--registry-url`,
else NERVENBAHN_SCHEMA_REGISTRY when that is an external http(s) registry, else left out: the
embedded registry is served by `serve` under /registry, whose address only `serve` knows (its
`GET /asyncapi.json` names it). The option wins over the variable, so that a document can name
the address integrators reach (a proxy) rather than the one the core uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from bus.asyncapi import asyncapi_document, published_schemas
from nervenbahn.config import load_kafka_settings, load_registry_url

from .session import session

__all__ = ["asyncapi"]


def asyncapi(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the document to this file (default: stdout).",
                     dir_okay=False),
    ] = None,
    registered: Annotated[
        bool,
        typer.Option("--registered", help="Give each message's schema id in the installation's "
                     "registry (x-schema-id; opens the store or NERVENBAHN_SCHEMA_REGISTRY)."),
    ] = False,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="The schema registry's URL for integrators "
                     "(schemaRegistryUrl; default: NERVENBAHN_SCHEMA_REGISTRY if http(s))."),
    ] = None,
) -> None:
    """Write the AsyncAPI 3.0.0 document of every topic this installation uses."""
    kafka = load_kafka_settings()
    registry = _registry_url(registry_url)
    ids: dict[str, int] = {}
    if registered:
        # The message payload is the latest released schema: its id, where registered.
        for found in published_schemas(kafka, session(ctx).container.registry):
            ids.pop(found.subject, None)
            if found.schema_id is not None:
                ids[found.subject] = found.schema_id
    text = json.dumps(asyncapi_document(kafka, ids, registry), indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


def _registry_url(option: str | None) -> str | None:
    """The registry's address for the document: the option, else an http(s)
    NERVENBAHN_SCHEMA_REGISTRY, else None; any user name or password in it left out."""
    url = option if option is not None else load_registry_url()
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if option is None:
            return None  # not an external registry's URL: nothing to name
        raise typer.BadParameter(f"{option!r} is not an http(s) URL", param_hint="--registry-url")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))

"""`nervenbahn asyncapi [--out FILE]`: the bus's AsyncAPI 3.0.0 document (JSON).

Generated from the code's own catalogue (`bus.asyncapi`) and the Kafka settings (topic prefix,
partitions, brokers); needs neither a broker nor a store. Malformed Kafka settings are refused
naming the variable (exit 3, as every configuration error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bus.asyncapi import asyncapi_document, published_schemas
from nervenbahn.config import load_kafka_settings

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
) -> None:
    """Write the AsyncAPI 3.0.0 document of every topic this installation uses."""
    kafka = load_kafka_settings()
    ids: dict[str, int] = {}
    if registered:
        # The message payload is the latest released schema: its id, where registered.
        for found in published_schemas(kafka, session(ctx).container.registry):
            ids.pop(found.subject, None)
            if found.schema_id is not None:
                ids[found.subject] = found.schema_id
    text = json.dumps(asyncapi_document(kafka, ids), indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)

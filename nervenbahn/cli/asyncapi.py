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

from bus.asyncapi import asyncapi_document
from nervenbahn.config import load_kafka_settings

__all__ = ["asyncapi"]


def asyncapi(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the document to this file (default: stdout).",
                     dir_okay=False),
    ] = None,
) -> None:
    """Write the AsyncAPI 3.0.0 document of every topic this installation uses."""
    text = json.dumps(asyncapi_document(load_kafka_settings()), indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)

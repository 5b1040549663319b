"""`nervenbahn connectors …` and `nervenbahn connector new` (being written)."""

from __future__ import annotations

import typer

__all__ = ["app", "connector_app"]

app = typer.Typer(help="Run connectors and show their status.", no_args_is_help=True)
connector_app = typer.Typer(help="Write a new connector.", no_args_is_help=True)

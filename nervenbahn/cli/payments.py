"""`nervenbahn payments …` (being written)."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="Monthly payment runs.", no_args_is_help=True)

"""`nervenbahn demo`: a synthetic canton to try the core on."""

from __future__ import annotations

from typing import Annotated

import typer

from .session import session

__all__ = ["demo"]


def demo(
    ctx: typer.Context,
    households: Annotated[
        int, typer.Option(help="Households in the synthetic canton.", min=1, max=200_000)
    ] = 4000,
    seed: Annotated[
        int, typer.Option(help="Random seed (the demo is deterministic).", min=0, max=2**63 - 1)
    ] = 2026,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the SQLite store first.")] = False,
    bus: Annotated[
        bool, typer.Option("--bus/--no-bus", help="Also relay to Kafka and subscribe.")
    ] = True,
) -> None:
    """Seed a synthetic canton (13 social regions, two years of cases) and summarise it."""
    from nervenbahn.demo import run_demo

    rt = session(ctx)
    run_demo(rt.container, rt.console, households=households, seed=seed, reset=reset, bus=bus)

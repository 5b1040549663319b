"""`nervenbahn relay …`: publish recorded events to the bus, and show how far behind it is."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.table import Table

from bus.topics import ensure_topics

from .render import emit_json
from .runtime import runtime

app = typer.Typer(help="The relay: every recorded event onto the bus.", no_args_is_help=True)


@app.command("run")
def run(
    ctx: typer.Context,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Stop once nothing is left to publish.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Events per producer flush.")] = 500,
) -> None:
    """Publish recorded events until stopped (Ctrl-C / SIGTERM) or caught up."""
    rt = runtime(ctx)
    bus = rt.bus
    ensure_topics(bus.kafka, list(bus.topics.values()))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with bus.relay(batch_size=batch_size) as relay:
        status = relay.run(stop, until_caught_up=until_caught_up)
    _print_status(ctx, status.position, status.head, status.lag, status.published)


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Position, head of the store and lag of the relay."""
    with runtime(ctx).bus.relay() as relay:
        current = relay.status()
    _print_status(ctx, current.position, current.head, current.lag, current.published)


def _print_status(ctx: typer.Context, position: int, head: int, lag: int, published: int) -> None:
    rt = runtime(ctx)
    figures = {"position": position, "head": head, "lag": lag, "published": published}
    if rt.as_json:
        emit_json(rt.console, figures)
        return
    table = Table(title="Relay case-events", title_justify="left", show_header=False)
    for key, value in figures.items():
        table.add_row(key, str(value))
    rt.console.print(table)

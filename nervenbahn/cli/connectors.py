"""`nervenbahn connectors list|run|status|errors|catalogue` and `nervenbahn connector new`.

See `connectors.host` for the configuration file and what a run does, and
docs/connectors.md for the tutorial.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from connectors.host import ConnectorHost
from connectors.scaffold import ScaffoldError, config_entry, write_connector
from domain.errors import InvalidCommandError
from nervenbahn.connector_catalogue import Format, render, sink_catalogue
from nervenbahn.container import connectors_file

from .render import emit_json
from .session import session

__all__ = ["app", "connector_app"]

app = typer.Typer(help="Run connectors and show their status.", no_args_is_help=True)
connector_app = typer.Typer(help="Write a new connector.", no_args_is_help=True)

EXIT_STOPPED = 1


@contextmanager
def _connectors(ctx: typer.Context) -> Iterator[ConnectorHost]:
    rt = session(ctx)
    connectors = rt.container.connector_host()
    try:
        yield connectors
    finally:
        connectors.close()


@app.command("list")
def list_connectors(ctx: typer.Context) -> None:
    """The configured connectors: name, kind, class."""
    rt = session(ctx)
    path = connectors_file(rt.settings)
    with _connectors(ctx) as connectors:
        specs = list(connectors.specs.values())
    if rt.as_json:
        emit_json(
            rt.console,
            {
                "file": str(path),
                "connectors": [
                    {"name": s.name, "kind": s.kind, "class": s.class_path, "options": s.options}
                    for s in specs
                ],
            },
        )
        return
    if not specs:
        rt.console.print(f"no connectors configured in {path}")
        return
    table = Table(title=f"Connectors in {path}", title_justify="left")
    for column in ("name", "kind", "class", "description"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, s.kind, s.class_path, s.description)
    rt.console.print(table)


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connector's name in the configuration file.")],
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="Stop when nothing is left (a source at the end of its input, a sink caught "
            "up with its topic) instead of running until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Run a connector until stopped (Ctrl-C / SIGTERM) or, with --until-idle, done."""
    rt = session(ctx)
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        with _connectors(ctx) as connectors:
            report = connectors.run(name, stop, until_idle=until_idle)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if rt.as_json:
        emit_json(rt.console, {**vars(report), "ok": report.ok})
    else:
        rt.console.print(f"connector {name} ({report.kind}): {report.summary()}")
        for written in report.delivered:
            rt.console.print(f"  delivered {written}")
    if not report.ok:
        raise typer.Exit(EXIT_STOPPED)


@app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this connector.")] = None,
) -> None:
    """Position, lag, errors (count and most recent) and last run of each connector."""
    rt = session(ctx)
    with _connectors(ctx) as connectors:
        statuses = [connectors.status_of(name)] if name else connectors.status()
    if rt.as_json:
        emit_json(rt.console, statuses)
        return
    if not statuses:
        rt.console.print(f"no connectors configured in {connectors_file(rt.settings)}")
        return
    table = Table(title="Connectors", title_justify="left")
    for column in ("name", "kind", "position", "lag", "errors", "last error", "last run"):
        table.add_column(column)
    for s in statuses:
        table.add_row(
            s.name,
            s.kind,
            s.position or "-",
            str(s.lag) if s.lag is not None else f"? {s.lag_note}",
            str(s.error_count),
            s.errors[0] if s.errors else "",
            s.last_run or "never",
        )
    rt.console.print(table)


@app.command("errors")
def errors(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connector's name.")],
) -> None:
    """Every error recorded for a connector, most recent first."""
    rt = session(ctx)
    with _connectors(ctx) as connectors:
        connectors.spec(name)
        entries = connectors.state.errors(name)
    if rt.as_json:
        emit_json(rt.console, entries)
        return
    if not entries:
        rt.console.print(f"connector {name}: no errors")
    for entry in entries:
        rt.console.print(entry.line())


@app.command("catalogue")
def catalogue(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (default: print it).")
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="md (docs/connector-catalogue.md) or json.")
    ] = "md",
) -> None:
    """What a sink receives: every event on every topic, its fields (bus and domain names,
    type, meaning), the phase changes of a case, an example `Received` per event."""
    text = render(sink_catalogue(), fmt)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")


@connector_app.command("new")
def new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Package name: lower-case letters, digits, '_'.")],
    kind: Annotated[str, typer.Option("--kind", help="source or sink.")] = "source",
    into: Annotated[
        Path, typer.Option("--into", help="The project folder (holding connectors/ and tests/).")
    ] = Path("."),
) -> None:
    """Write a working connector `connectors/NAME/` and its passing tests."""
    rt = session(ctx)
    try:
        written = write_connector(name, kind, into)
    except ScaffoldError as exc:
        raise InvalidCommandError("connector new", [(exc.field, str(exc))]) from None
    entry = config_entry(name, kind)
    if rt.as_json:
        emit_json(rt.console, {"written": [str(p) for p in written], "config": entry})
        return
    for path in written:
        rt.console.print(f"wrote {path}")
    rt.console.print("\nadd to your connectors file (NERVENBAHN_CONNECTORS):\n")
    rt.console.print(entry, markup=False, highlight=False)

"""`nervenbahn projections …` and `nervenbahn region …`: rebuild read models and query them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.commands import swiss_today
from domain.errors import InvalidCommandError
from nervenbahn.bounds import parse_bounded_day
from nervenbahn.paths import projection_path as projection_path  # re-exported
from projections import READ_MODELS
from projections.region import RegionProjection, caseload, work_list
from projections.storage import SQLConnection, read_model_built, read_model_connection

from .reads import require_region
from .render import emit_json
from .session import session

app = typer.Typer(help="Read models: rebuild them from the event store.", no_args_is_help=True)
region_app = typer.Typer(help="The social region's read model.", no_args_is_help=True)



@app.command("rebuild")
def rebuild_command(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Projection name.")]
) -> None:
    """Rebuild a projection from scratch, straight from the event store (stop its consumer);
    in the read model's turn, so that a `serve` refreshing it at the same time waits."""
    rt = session(ctx)
    if name not in READ_MODELS:
        known = ", ".join(sorted(READ_MODELS))
        raise InvalidCommandError("rebuild", [("name", f"no projection {name!r}; known: {known}")])
    target = rt.container.read_model(name)
    where = str(target) if isinstance(target, Path) else f"PostgreSQL schema {target.schema}"
    with Progress(
        TextColumn(f"Rebuilding {name:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=rt.console,
    ) as progress:
        task = progress.add_task(name, total=None)
        events = rt.container.rebuild_read_model(
            name, progress=lambda done, total: progress.update(task, completed=done, total=total)
        )
    if rt.as_json:
        emit_json(rt.console, {"projection": name, "events": events, "path": where})
    else:
        rt.console.print(f"projection {name} rebuilt from {events} events into {where}")


@region_app.command("caseload")
def region_caseload(ctx: typer.Context, region: Annotated[str, typer.Argument()]) -> None:
    """Cases of a social region by phase."""
    rt = session(ctx)
    require_region(rt, region)
    with _region_db(ctx) as db:
        counts = caseload(db, region)
    if rt.as_json:
        emit_json(rt.console, counts)
        return
    table = Table(title=f"Caseload of {region}", title_justify="left")
    table.add_column("phase")
    table.add_column("cases", justify="right")
    for phase, count in sorted(counts.items()):
        table.add_row(phase, str(count))
    rt.console.print(table)


@region_app.command("worklist")
def region_worklist(
    ctx: typer.Context,
    region: Annotated[str, typer.Argument()],
    today: Annotated[str | None, typer.Option(help="The day to judge by (default today).")] = None,
) -> None:
    """Assessments, reviews and goals of a region that are due or overdue."""
    rt = session(ctx)
    require_region(rt, region)
    day = _today("region worklist", today)
    with _region_db(ctx) as db:
        items = work_list(db, region, day)
    if rt.as_json:
        emit_json(rt.console, items)
        return
    table = Table(title=f"Work list of {region} on {day}", title_justify="left")
    for column in ("due", "what", "case", "overdue", "detail"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item.due.isoformat(),
            item.kind,
            item.case_id,
            "OVERDUE" if item.overdue else "",
            item.detail,
        )
    rt.console.print(table)


def _today(command: str, text: str | None) -> date:
    try:
        return parse_bounded_day(text) if text else swiss_today()
    except ValueError as exc:
        raise InvalidCommandError(command, [("today", str(exc))]) from None


@contextmanager
def _region_db(ctx: typer.Context) -> Iterator[SQLConnection]:
    target = session(ctx).container.read_model(RegionProjection.name)
    if not read_model_built(target, RegionProjection.tables[0]):
        raise InvalidCommandError(
            "region",
            [
                (
                    "projection",
                    "the region read model is not built yet; run "
                    "`nervenbahn projections rebuild region`",
                )
            ],
        )
    with read_model_connection(target) as db:
        yield db

"""`nervenbahn budgets adjust-basic-needs YEAR [--preview]`: the yearly adjustment of basic
needs to the year's rate, across every running case (`domain.application.adjustment`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from domain.application.adjustment import AdjustmentRun, BasicNeedsAdjustments
from domain.commands import Actor, invalid_command
from domain.errors import InvalidCommandError

from .render import emit_json
from .session import session

__all__ = ["app"]

_ACTOR = TypeAdapter(Actor)

app = typer.Typer(help="Budgets of all running cases.", no_args_is_help=True)


@app.command("adjust-basic-needs")
def adjust_basic_needs(
    ctx: typer.Context,
    year: Annotated[int, typer.Argument(help="The year whose rate applies from 1 January.",
                                        min=2000, max=2100)],
    preview: Annotated[
        bool, typer.Option("--preview", help="List what would be recorded; record nothing.")
    ] = False,
) -> None:
    """Record basic needs at YEAR's rate from 1 January for every running case whose budget is
    not at it (a system actor, one correlation id, reason yearly_adjustment); only the
    basic-needs line changes. Running it again records nothing."""
    rt = session(ctx)
    try:
        operator = _ACTOR.validate_python(rt.actor())
    except ValidationError as exc:
        refused = invalid_command("adjust-basic-needs", exc)
        raise InvalidCommandError("adjust-basic-needs", refused.problems) from None
    adjustments = BasicNeedsAdjustments(rt.service)
    run = adjustments.preview(year, operator) if preview else adjustments.run(year, operator)
    if rt.as_json:
        emit_json(rt.console, _as_json(run))
        return
    rt.console.print(_summary(run))
    if run.rows:
        rt.console.print(_table(run))


def _summary(run: AdjustmentRun) -> str:
    rate = run.rate
    decision = rate.decision or "no decision recorded"
    head = (f"basic needs {run.year}: {rate.source} CHF {rate.one_person} for one person from "
            f"{rate.valid_from} ({decision}{'' if rate.confirmed else ', unconfirmed'}); "
            f"{run.cases_looked_at} running cases, {len(run.rows)} not at this rate")
    if run.correlation_id is None:
        return head + " (preview: nothing recorded)"
    return (head + f"; recorded {run.count('recorded')}, concurrent {run.count('concurrent')}, "
            f"refused {run.count('refused')} (correlation id {run.correlation_id})")


def _table(run: AdjustmentRun) -> Table:
    table = Table("case", "region", "persons", "old CHF", "new CHF", "difference", "outcome",
                  title_justify="left")
    for row in run.rows:
        table.add_row(str(row.case_id), row.social_region, str(row.adjustment.household_size),
                      str(row.before), str(row.after), str(row.adjustment.difference),
                      row.refusal or row.outcome)
    return table


def _as_json(run: AdjustmentRun) -> dict[str, Any]:
    rate = run.rate
    return {
        "year": run.year,
        "preview": run.correlation_id is None,
        "correlation_id": str(run.correlation_id) if run.correlation_id else None,
        "rate": {"valid_from": rate.valid_from.isoformat(), "one_person": str(rate.one_person),
                 "source": rate.source, "cited": rate.cited, "decision": rate.decision,
                 "confirmed": rate.confirmed},
        "cases_looked_at": run.cases_looked_at,
        "rows": [
            {"case_id": str(row.case_id), "social_region": row.social_region,
             "household_size": row.adjustment.household_size,
             "effective_date": row.adjustment.effective_date.isoformat(),
             "old": str(row.before), "new": str(row.after),
             "difference": str(row.adjustment.difference), "outcome": row.outcome,
             "refusal": row.refusal}
            for row in run.rows
        ],
    }

"""`nervenbahn report …`: reports for the canton from the reporting read model.

`report backlog 2026-W49 [--out DIR] [--known-at TIME]` writes `backlog-2026-W49.html` (the
benefit applications' backlog per branch office, social region and canton, and the canton's
trend over 26 weeks) and `backlog-2026-W49.csv` (a row per unit and week), from the benefits
store as known at TIME (default now); the processing target is NERVENBAHN_BENEFITS_TARGET_MONTHS.

`report quarterly 2026Q1 [--out DIR]` writes `report-2026Q1.html` (tables and bar charts
comparing the social regions, self-contained) and `report-2026Q1.csv` (a row per region).
Reports are made to leave the canton: counts below `--min-count` (default 5), and what would
reveal them, read `x` (`projections.reporting_disclosure`); `--min-count 0` shows every
figure as it is, for the canton's own use. The advances in view of EL and their
reimbursement come from the region read model (`projections.advance_figures`); while it is
not built the report leaves them out (their CSV cells empty) and says so on the console.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import InvalidCommandError
from domain.reference import load_reference_data
from nervenbahn.availability import MonthAvailability, month_availability, quarter_months
from nervenbahn.backlog_report import BacklogReport, backlog_of, unit_names, write_backlog_report
from nervenbahn.bounds import parse_bounded_quarter
from nervenbahn.quarterly_report import AdvanceSection, ReportInput, write_quarterly_report
from projections.advance_figures import advance_figures, withheld_advances
from projections.backlog import IsoWeek, ProcessingTarget
from projections.region import RegionProjection
from projections.reporting import (
    Quarter,
    ReportingProjection,
    canton_figures,
    quarterly_figures,
)
from projections.reporting_disclosure import DEFAULT_MIN_COUNT, withheld
from projections.storage import (
    ReadModelTarget,
    SQLConnection,
    read_model_built,
    read_model_connection,
)

from .render import emit_json
from .session import session

__all__ = ["app"]

app = typer.Typer(help="Reports for the canton, from the read models.", no_args_is_help=True)


@app.command("quarterly")
def quarterly(
    ctx: typer.Context,
    quarter: Annotated[str, typer.Argument(help="The quarter, e.g. 2026Q1.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the report into (created if needed).")
    ] = Path("."),
    min_count: Annotated[
        int,
        typer.Option(
            "--min-count", min=0,
            help="Withhold counts below this (and medians and shares over fewer cases, and "
            "what would reveal them); 0 shows every figure.",
        ),
    ] = DEFAULT_MIN_COUNT,
) -> None:
    """Figures per social region for a quarter, as HTML (tables and charts) and CSV."""
    rt = session(ctx)
    try:
        period = parse_bounded_quarter(quarter)
    except ValueError as exc:
        raise InvalidCommandError("report", [("quarter", str(exc))]) from None
    now = datetime.now(UTC)
    incidents = rt.container.incidents()
    try:
        recorded = incidents.incidents()
    finally:
        incidents.close_connection()
    availability = [month_availability(month, recorded, now)
                    for month in quarter_months(period.start)]
    target = ProcessingTarget(rt.settings.benefits.target_months)
    last_week = IsoWeek.of(period.end)  # the last ISO week that ends in the quarter
    if last_week.end > period.end:
        last_week = last_week.back(1)
    (backlog,) = backlog_of(rt.container.benefits, last_week, target, now, weeks=1)
    advances = _advances(rt.container.read_model(RegionProjection.name), period, min_count)
    with _reporting_db(rt.container.read_model(ReportingProjection.name)) as db:
        regions, canton = quarterly_figures(db, period), canton_figures(db, period)
        report = ReportInput(
            quarter=period,
            regions=regions,
            canton=canton,
            region_names={r.id: r.name for r in load_reference_data().regions.values()},
            facts_recorded_until=_last_recorded(db),
            generated_at=now,
            withheld=withheld(regions, canton, min_count),
            min_count=min_count,
            availability=availability,
            backlog=backlog,
            advances=advances,
        )
    html_path, csv_path = write_quarterly_report(report, out)
    if rt.as_json:
        emit_json(rt.console, {"quarter": str(period), "html": str(html_path),
                               "csv": str(csv_path), "canton": report.canton,
                               "min_count": min_count, "withheld": sorted(report.withheld),
                               "availability": [_month_json(m) for m in availability],
                               "advances": advances.canton if advances else None})
        return
    if advances is None:
        rt.console.print("advances in view of EL left out: the region read model is not built "
                         "(`nervenbahn projections rebuild region`)")
    rt.console.print(f"quarterly report {period} written: {html_path} and {csv_path}")


@app.command("backlog")
def backlog(
    ctx: typer.Context,
    week: Annotated[str, typer.Argument(help="The ISO week, e.g. 2026-W49.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the report into (created if needed).")
    ] = Path("."),
    known_at: Annotated[
        str | None,
        typer.Option("--known-at", help="Take the applications as known at this recorded time "
                     "(ISO 8601 with offset, e.g. 2026-12-01T00:00:00+01:00); default now."),
    ] = None,
) -> None:
    """The benefit applications' backlog of a week, as HTML (tables, 26-week trend) and CSV."""
    rt = session(ctx)
    period = _week(week)
    now = datetime.now(UTC)
    known = _known_at(known_at) or now
    benefits = rt.container.benefits
    target = ProcessingTarget(rt.settings.benefits.target_months)
    report = BacklogReport(trend=backlog_of(benefits, period, target, known),
                           unit_names=unit_names(benefits), known_at=known, generated_at=now)
    html_path, csv_path = write_backlog_report(report, out)
    if rt.as_json:
        emit_json(rt.console, {"week": str(period), "html": str(html_path),
                               "csv": str(csv_path), "target_months": target.months,
                               "known_at": known.isoformat(),
                               "canton": report.trend[-1].canton})
        return
    rt.console.print(f"backlog report {period} (target {target.label}) written: {html_path} "
                     f"and {csv_path}")


def _week(text: str) -> IsoWeek:
    try:
        return IsoWeek.parse(text)
    except ValueError as exc:
        raise InvalidCommandError("report", [("week", str(exc))]) from None


def _known_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        known = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidCommandError("report", [("known_at", f"{text!r} is not an ISO 8601 time")]
                                  ) from None
    if known.tzinfo is None:
        raise InvalidCommandError("report", [("known_at", f"{text!r} needs a time zone offset")])
    return known


@contextmanager
def _reporting_db(target: ReadModelTarget) -> Iterator[SQLConnection]:
    if not read_model_built(target, ReportingProjection.tables[0]):
        raise InvalidCommandError(
            "report",
            [("read_model", "the reporting read model is not built yet; run "
              "`nervenbahn projections rebuild reporting` (or keep its consumer running)")],
        )
    with read_model_connection(target) as db:
        yield db


def _advances(target: ReadModelTarget, period: Quarter, min_count: int) -> AdvanceSection | None:
    """The advances' figures of the quarter from the region read model (None while it is
    not built), with the cells a report withholds at `min_count`."""
    if not read_model_built(target, RegionProjection.tables[0]):
        return None
    with read_model_connection(target) as db:
        regions, canton = advance_figures(db, period, load_reference_data().regions)
    return AdvanceSection(regions, canton, withheld_advances(regions, canton, min_count))


def _last_recorded(db: SQLConnection) -> datetime | None:
    (text,) = db.execute("SELECT max(recorded_at) FROM reporting_facts").fetchone()
    return datetime.fromisoformat(text) if text else None


def _month_json(month: MonthAvailability) -> dict[str, object]:
    return {"month": f"{month.month:%Y-%m}", "minutes": month.minutes,
            "minutes_out": month.minutes_out, "minutes_by_kind": month.minutes_by_kind,
            "availability_percent": month.availability_percent, "incidents": month.incidents}

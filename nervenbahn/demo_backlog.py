"""The demo's backlog table: the overview the audit committee missed, after the fund's decisions.

Once the reference fund application has decided its day's work over the bus, the demo prints
this week's backlog figures per social region and for the canton (`projections.backlog`, the
same figures as `nervenbahn report backlog` and `GET /v1/canton/benefits/backlog`) and writes
that report's HTML and CSV into the demo folder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from domain.case import SWISS_TIME
from nervenbahn.backlog_report import BacklogReport, backlog_of, unit_names, write_backlog_report
from nervenbahn.demo_session import DemoSession
from projections.backlog import BacklogFigures, IsoWeek, ProcessingTarget

__all__ = ["print_backlog"]

_COLUMNS = ("received", "decided", "pending at office", "pending at fund", "over target",
            "of them docs missing", "median days", "p90 days", "within target")


def print_backlog(rt: DemoSession, folder: Path) -> Path:
    """Print this week's backlog per social region and the canton, write the week's report
    (HTML with the 26-week trend, CSV) into `folder`; the HTML file's path."""
    now = datetime.now(UTC)
    week = IsoWeek.of(now.astimezone(SWISS_TIME).date())
    benefits = rt.container.benefits
    target = ProcessingTarget(rt.settings.benefits.target_months)
    trend = backlog_of(benefits, week, target, now)
    names = unit_names(benefits)
    backlog = trend[-1]
    table = Table(title=f"Backlog of benefit applications {week} (target {target.label}): per "
                  "social region and the canton", title_justify="left")
    table.add_column("unit")
    for column in _COLUMNS:
        table.add_column(column, justify="right")
    for row in [*backlog.regions, backlog.canton]:
        name = "[bold]canton[/bold]" if row.unit_kind == "canton" else names.get(row.unit, row.unit)
        table.add_row(name, *_cells(row))
    rt.console.print(table)
    html, _ = write_backlog_report(
        BacklogReport(trend=trend, unit_names=names, known_at=now, generated_at=now), folder)
    rt.console.print(f"Backlog report {week} with the 26-week trend: {html} (and .csv)")
    return html


def _cells(row: BacklogFigures) -> list[str]:
    within = row.share_decided_within_target
    return [str(row.received), str(row.decided), str(row.pending_at_office),
            str(row.pending_at_fund), str(row.pending_over_target),
            str(row.late_waiting_for_documents),
            "–" if row.median_days_to_decision is None else f"{row.median_days_to_decision:g}",
            "–" if row.p90_days_to_decision is None else str(row.p90_days_to_decision),
            "–" if within is None else f"{within:.0%}"]

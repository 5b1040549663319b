"""The backlog report of benefit applications for an ISO week: a self-contained HTML page
(tables for the canton, the social regions and the branch offices; the canton's trend over the
last 26 weeks as inline SVG bar charts; no JavaScript, no external assets) and a CSV with a
row per unit and week.

Presentation only: the figures and their definitions are `projections.backlog`'s (and
docs/benefits.md, "Backlog figures"); the page reuses the quarterly report's style, tables and
charts (`nervenbahn.quarterly_report`). Counts only: no applicant, no application id.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from domain.application.benefits import BenefitService
from domain.case import SWISS_TIME
from nervenbahn.quarterly_report import (
    BACKLOG_COLUMNS,
    REPORT_STYLE,
    Translate,
    as_is,
    backlog_table,
    format_number,
    titled_chart,
    write_html_and_csv,
)
from projections.backlog import (
    TREND_WEEKS,
    Backlog,
    BacklogFigures,
    IsoWeek,
    ProcessingTarget,
    backlog_trend,
    timelines,
)

__all__ = [
    "BACKLOG_CSV_COLUMNS", "BacklogReport", "backlog_charts", "backlog_of", "render_backlog_csv",
    "render_backlog_html", "unit_names", "write_backlog_report",
]

BACKLOG_CSV_COLUMNS = (
    "unit_kind", "unit", "unit_name", "week", "target_months",
    *(column for _, column, _ in BACKLOG_COLUMNS),
)
"""One row per unit (branch office, social region, canton) and week, one column per figure."""
_BLUE, _ORANGE, _GREY = "#1b6ca8", "#e07a1f", "#6b6b6b"


@dataclass(frozen=True)
class BacklogReport:
    """Everything a backlog report shows: the weeks of the trend, oldest first, the last one
    being the report's week."""

    trend: Sequence[Backlog]
    unit_names: dict[str, str]
    """Names of the branch offices and social regions by id."""
    known_at: datetime
    """The recorded time the applications are taken as known at."""
    generated_at: datetime

    @property
    def week(self) -> IsoWeek:
        """The report's week."""
        return self.trend[-1].week

    @property
    def target(self) -> ProcessingTarget:
        """The processing target the figures are counted against."""
        return self.trend[-1].target

    def name(self, unit: str) -> str:
        """A unit's name (`Canton` for the canton; a region's without `Sozialregion`)."""
        if unit == "canton":
            return "Canton"
        return self.unit_names.get(unit, unit).removeprefix("Sozialregion ")


def backlog_of(benefits: BenefitService, week: IsoWeek, target: ProcessingTarget,
               known_at: datetime, weeks: int = TREND_WEEKS) -> list[Backlog]:
    """The backlog figures of the `weeks` weeks up to `week` (oldest first) from the benefits
    store's applications as known at `known_at`: every branch office and social region gets
    a row, zeros too."""
    reference = benefits.reference

    def region_of(bfs: int) -> str:
        return reference.municipality(bfs).region_id

    apps = timelines(benefits.application_histories(), region_of, known_at)
    return backlog_trend(apps, week, target, benefits.offices, reference.regions, weeks)


def unit_names(benefits: BenefitService) -> dict[str, str]:
    """The names of the branch offices and social regions by id (no personal data)."""
    return ({office.id: office.name for office in benefits.offices.values()}
            | {region.id: region.name for region in benefits.reference.regions.values()})


def write_backlog_report(report: BacklogReport, folder: Path) -> tuple[Path, Path]:
    """Write `backlog-<week>.html` and `backlog-<week>.csv` into `folder`; their paths."""
    return write_html_and_csv(folder, f"backlog-{report.week}", render_backlog_html(report),
                              render_backlog_csv(report))


def render_backlog_csv(report: BacklogReport) -> str:
    """The figures as CSV: a header, then per week (oldest first) the branch offices, the
    social regions and the canton; an empty cell: no applications to take a median or share
    of. Shares are between 0 and 1, with three decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BACKLOG_CSV_COLUMNS)
    for backlog in report.trend:
        for row in backlog.rows:
            writer.writerow(_csv_row(row, report.name(row.unit)))
    return buffer.getvalue()


def _csv_row(row: BacklogFigures, name: str) -> list[str]:
    def text(column: str) -> str:
        value = getattr(row, column)
        if value is None:
            return ""
        return f"{value:.3f}" if column.startswith("share_") else format_number(value)

    return [row.unit_kind, row.unit, name, row.week, str(row.target_months),
            *(text(column) for _, column, _ in BACKLOG_COLUMNS)]


def render_backlog_html(report: BacklogReport) -> str:
    """The report as one self-contained HTML page."""
    week, backlog = report.week, report.trend[-1]
    names = {unit: report.name(unit) for unit in report.unit_names} | {"canton": "Canton"}
    known = report.known_at.astimezone(SWISS_TIME)
    title = f"Backlog of benefit applications, week {week}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{REPORT_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">EL and premium-reduction applications of canton Solothurn at the '
        f"AKSO branch offices and the fund, Monday {week.start:%Y-%m-%d} to Sunday "
        f"{week.end:%Y-%m-%d} (Swiss dates). Processing target: "
        f'<strong data-target-months="{report.target.months}">{escape(report.target.label)}'
        f"</strong> from receipt to decision. As known on {known:%Y-%m-%d %H:%M} (Swiss time); "
        f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC.</p>",
        "<h2>Canton and social regions</h2>",
        backlog_table([*backlog.regions, backlog.canton], names, "Social region"),
        "<h2>Branch offices</h2>",
        backlog_table(backlog.offices, names, "Branch office"),
        f"<h2>The canton's last {len(report.trend)} weeks</h2>",
        '<div class="charts">',
        *backlog_charts(report),
        "</div>",
        _definitions(report.target),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def backlog_charts(
    report: BacklogReport, text: Translate = as_is, target_label: str | None = None
) -> list[str]:
    """The canton's trend over the report's weeks, each chart in a figure with its title;
    `text` gives each title and label in the reader's language, `target_label` names the
    processing target so (default: `3 months`)."""
    weeks = [str(backlog.week) for backlog in report.trend]
    canton = [backlog.canton for backlog in report.trend]
    target = target_label or report.target.label
    return [
        titled_chart(
            text("Received and decided per week"), weeks,
            [[f.received, f.decided] for f in canton],
            [(text("received"), _BLUE), (text("decided"), _ORANGE)], text=text),
        titled_chart(
            text("Pending at week end, by stage"), weeks,
            [[f.pending_at_office, f.pending_at_fund] for f in canton],
            [(text("at the branch office"), _BLUE), (text("at the fund"), _ORANGE)],
            stacked=True, text=text),
        titled_chart(
            text("Pending longer than the target ({target}), and of them waiting for "
                 "documents").format(target=target), weeks,
            [[f.pending_over_target, f.late_waiting_for_documents] for f in canton],
            [(text("over the target"), _ORANGE), (text("waiting for documents"), _GREY)],
            text=text),
        titled_chart(
            text("Days from receipt to decision (decided in the week)"), weeks,
            [[f.median_days_to_decision, f.p90_days_to_decision] for f in canton],
            [(text("median"), _BLUE), (text("p90"), _ORANGE)], text=text),
    ]


def _definitions(target: ProcessingTarget) -> str:
    items = [
        ("Week", "an ISO 8601 week, Monday to Sunday, in Swiss (Europe/Zurich) calendar dates; "
         "each event counts on its own date (received, forwarded, decided, withdrawn, "
         "documents received; a completeness check on the day it was recorded)."),
        ("Received, decided, withdrawn", "applications received, decided (granted or "
         "refused: the fund's first decision) or withdrawn in the week. A withdrawn "
         "application is closed but not decided."),
        ("Pending at week end", "received by the week's Sunday and neither decided nor "
         "withdrawn by then; at the branch office until forwarded, then at the fund."),
        (f"Pending longer than the target ({target.label})", "pending at week end, and the "
         f"Sunday lies after the day {target.label} after receipt (the month's last day if "
         "that month is shorter)."),
        ("Waiting for documents", "a completeness check found documents missing and not all "
         "of them have been received by the week's Sunday."),
        ("Median and p90 days to decision", "days from receipt to decision of the "
         "applications decided in the week; median: the middle value (the mean of the two "
         "middle ones for an even count); p90: nearest rank, the smallest value at least 90 % "
         "of the values do not exceed."),
        ("Share decided within the target", "of the applications decided in the week, those "
         f"decided at most {target.label} after receipt."),
    ]
    entries = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in items)
    return (f"<h2>Definitions</h2><dl>{entries}</dl>"
            '<p class="meta">Details: docs/benefits.md, "Backlog figures".</p>')

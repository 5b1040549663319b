"""The canton's quarterly report: figures per social region as a self-contained HTML page
(tables and inline SVG bar charts; no JavaScript, no external assets) and as CSV.

Presentation only: the figures come from `projections.reporting` (definitions in
docs/reporting.md), and the cells a report that leaves the canton must not show from
`projections.reporting_disclosure` (small counts): such a cell reads `x` in the CSV, the tables
and the charts. Built with the standard library (`html.escape`, `csv`).

The advances in view of EL and their reimbursement (issue 15) come from the region read model
(`projections.advance_figures`, with its own small-count rules): a table of their own in the
page and the `ADVANCE_CSV_COLUMNS` at the end of each CSV row (empty when the report was made
without them: the region read model not built).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from domain.case import SWISS_TIME
from nervenbahn.availability import MonthAvailability
from nervenbahn.incidents import KINDS
from projections.advance_figures import AdvanceFigures
from projections.backlog import Backlog, BacklogFigures
from projections.reporting import CLOSURE_REASONS, Quarter, RegionQuarter
from projections.reporting_disclosure import Cell

__all__ = [
    "ADVANCE_CSV_COLUMNS", "BACKLOG_COLUMNS", "CSV_COLUMNS", "FIGURE_COLUMNS", "REASON_LABELS",
    "REPORT_STYLE", "WITHHELD", "AdvanceSection", "ReportInput", "Translate", "as_is",
    "backlog_table", "bar_chart", "chart_figure", "format_number", "format_percent",
    "quarterly_charts", "render_csv", "render_html", "table_cell", "titled_chart",
    "write_html_and_csv", "write_quarterly_report",
]

ADVANCE_CSV_COLUMNS = (
    "advances_open", "advances_decided", "median_days_advance_to_decision", "claims_recorded",
    "claimed_chf", "surplus_chf", "reimbursements_paid", "reimbursed_chf",
)
"""The advances' figures (`projections.advance_figures.AdvanceFigures`, in its order; the
median renamed so that it is not taken for the intake's)."""
CSV_COLUMNS = (
    "region", "region_name", "quarter", "new_cases", "closed_cases",
    *(f"closed_{reason}" for reason in CLOSURE_REASONS),
    "median_duration_days", "decisions", "median_days_to_decision", "supported_cases",
    "with_goal_agreement", "goal_agreement_share", "measures_started", "measures_completed",
    *ADVANCE_CSV_COLUMNS,
)
"""One row per region (and a last one for the canton), one column per figure."""
WITHHELD = "x"
"""What a withheld cell shows (small counts, docs/reporting.md)."""

REASON_LABELS = {
    "employment": "employment",
    "other_insurance": "other insurance (IV, AHV, EL)",
    "moved_away": "moved away",
    "death": "death",
    "other": "other",
}
"""The closure reasons as the report names them."""
_REASON_COLOURS = ("#1b6ca8", "#58a4b0", "#e0a458", "#8c5e7a", "#b9b9b9")
_BLUE, _ORANGE, _GREY = "#1b6ca8", "#e07a1f", "#6b6b6b"


@dataclass(frozen=True)
class AdvanceSection:
    """The advances' figures of the quarter (`projections.advance_figures`) and the cells
    `(region, field)` withheld of them (`withheld_advances`)."""

    regions: Sequence[AdvanceFigures]
    canton: AdvanceFigures
    withheld: frozenset[Cell] = frozenset()

    def row(self, region: str) -> AdvanceFigures | None:
        """The figures of `region` (the canton's for "canton"), None if not listed."""
        rows = {r.region: r for r in [*self.regions, self.canton]}
        return rows.get(region)

    def cells(self, region: str) -> list[str]:
        """The CSV cells of `region` (`ADVANCE_CSV_COLUMNS`): `x` where withheld."""
        row = self.row(region)
        if row is None:
            return [""] * len(ADVANCE_CSV_COLUMNS)
        return [value if (region, name) not in self.withheld else WITHHELD
                for name, value in _advance_values(row)]


def _advance_values(row: AdvanceFigures) -> list[tuple[str, str]]:
    """(field, text) of each figure, in `ADVANCE_CSV_COLUMNS`' order."""
    return [
        ("advances_open", str(row.advances_open)),
        ("advances_decided", str(row.advances_decided)),
        ("median_days_to_decision", format_number(row.median_days_to_decision)),
        ("claims_recorded", str(row.claims_recorded)),
        ("claimed_chf", f"{row.claimed_chf:.2f}"),
        ("surplus_chf", f"{row.surplus_chf:.2f}"),
        ("reimbursements_paid", str(row.reimbursements_paid)),
        ("reimbursed_chf", f"{row.reimbursed_chf:.2f}"),
    ]


@dataclass(frozen=True)
class ReportInput:
    """Everything a quarterly report shows."""

    quarter: Quarter
    regions: Sequence[RegionQuarter]
    canton: RegionQuarter
    region_names: dict[str, str]
    facts_recorded_until: datetime | None
    generated_at: datetime
    withheld: frozenset[Cell] = frozenset()
    """Cells shown as `x` (`projections.reporting_disclosure.withheld`)."""
    min_count: int = 0
    """The smallest count shown (0 or 1: every figure as it is)."""
    availability: Sequence[MonthAvailability] = ()
    """Each month of the quarter's availability, from the incidents (`nervenbahn.availability`)."""
    backlog: Backlog | None = None
    """The benefit applications' backlog in the last ISO week ending in the quarter (None:
    not shown)."""
    advances: AdvanceSection | None = None
    """The advances in view of EL and their reimbursement (None: not shown, CSV cells empty)."""

    def shows(self, row: RegionQuarter, column: str) -> bool:
        """False if the figure in `column` of `row` is withheld."""
        return (row.region, column) not in self.withheld

    def name(self, region: str) -> str:
        """A region's name without the word `Sozialregion` (the canton's: `Canton`)."""
        if region == self.canton.region:
            return "Canton"
        return self.region_names.get(region, region).removeprefix("Sozialregion ")


def write_quarterly_report(report: ReportInput, folder: Path) -> tuple[Path, Path]:
    """Write `report-<quarter>.html` and `report-<quarter>.csv` into `folder`; their paths."""
    return write_html_and_csv(folder, f"report-{report.quarter}", render_html(report),
                              render_csv(report))


def write_html_and_csv(folder: Path, stem: str, html: str, csv_text: str) -> tuple[Path, Path]:
    """Write `<stem>.html` and `<stem>.csv` (UTF-8) into `folder` (created if needed); their
    paths."""
    folder.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = folder / f"{stem}.html", folder / f"{stem}.csv"
    html_path.write_text(html, encoding="utf-8")
    csv_path.write_text(csv_text, encoding="utf-8", newline="")
    return html_path, csv_path


# --- CSV -------------------------------------------------------------------------------------


def render_csv(report: ReportInput) -> str:
    """The figures as CSV: a header, a row per region, the canton last; empty = no cases."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report.regions, report.canton]:
        cells = _csv_row(row, report.name(row.region))
        cells += (report.advances.cells(row.region) if report.advances is not None
                  else [""] * len(ADVANCE_CSV_COLUMNS))
        writer.writerow(
            value if report.shows(row, column) else WITHHELD
            for column, value in zip(CSV_COLUMNS, cells, strict=True)
        )
    return buffer.getvalue()


def _csv_row(row: RegionQuarter, name: str) -> list[str]:
    share = row.goal_agreement_share
    return [
        row.region, name, row.quarter, str(row.new_cases), str(row.closed_cases),
        *(str(row.closures_by_reason[reason]) for reason in CLOSURE_REASONS),
        format_number(row.median_duration_days), str(row.decisions),
        format_number(row.median_days_to_decision), str(row.supported_cases),
        str(row.with_goal_agreement), "" if share is None else f"{share:.3f}",
        str(row.measures_started), str(row.measures_completed),
    ]


def format_number(value: float | None) -> str:
    """A whole number without decimals, else one decimal; empty for None."""
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:.1f}"


# --- HTML ------------------------------------------------------------------------------------

REPORT_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1180px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 30px; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th { background: #f2f4f7; font-weight: 600; vertical-align: bottom; white-space: normal; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: 600; border-top: 2px solid #888; }
td.none { color: #999; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr));
          gap: 18px 28px; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; fill: #333; }
svg text.value { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
dl { margin: 0; } dt { font-weight: 600; margin-top: 8px; } dd { margin-left: 0; color: #333; }
.caveats li { margin-bottom: 4px; }
"""


def render_html(report: ReportInput) -> str:
    """The report as one self-contained HTML page."""
    q = report.quarter
    until = (  # facts carry their recorded day only (midnight, Swiss time)
        f"{report.facts_recorded_until.astimezone(SWISS_TIME):%Y-%m-%d}"
        if report.facts_recorded_until else "no facts yet"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Quarterly report {q}: social assistance per social region</title>",
        f"<style>{REPORT_STYLE}</style></head><body>",
        f"<h1>Quarterly report {q}: social assistance per social region</h1>",
        f'<p class="meta">Canton of Solothurn, {q.start.day} {q.start:%B %Y} to '
        f"{q.end.day} {q.end:%B %Y}. "
        f"From the pseudonymised reporting read model (facts recorded up to and including "
        f"{escape(until)}); generated {report.generated_at:%Y-%m-%d %H:%M} UTC.</p>",
        *_withheld_note(report),
        "<h2>Figures per social region</h2>",
        _figures_table(report),
        "<h2>Closures by reason</h2>",
        _closures_table(report),
        "<h2>Regions compared</h2>",
        '<div class="charts">',
        *quarterly_charts(report),
        "</div>",
        *_advances_section(report),
        *_availability(report),
        *_backlog_section(report),
        _definitions(),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


Column = tuple[str, str, Callable[[RegionQuarter], str]]
"""A table column: heading, CSV column (to know whether it is withheld), value."""

FIGURE_COLUMNS: tuple[Column, ...] = (
    ("New cases", "new_cases", lambda r: str(r.new_cases)),
    ("Closed cases", "closed_cases", lambda r: str(r.closed_cases)),
    ("Median duration of closed cases (days)", "median_duration_days",
     lambda r: format_number(r.median_duration_days)),
    ("Decisions", "decisions", lambda r: str(r.decisions)),
    ("Median days intake → decision", "median_days_to_decision",
     lambda r: format_number(r.median_days_to_decision)),
    ("Cases supported", "supported_cases", lambda r: str(r.supported_cases)),
    ("… with goal agreement", "with_goal_agreement", lambda r: str(r.with_goal_agreement)),
    ("Share with goal agreement", "goal_agreement_share",
     lambda r: format_percent(r.goal_agreement_share)),
    ("Measures started", "measures_started", lambda r: str(r.measures_started)),
    ("Measures completed", "measures_completed", lambda r: str(r.measures_completed)),
)
"""The figures table's columns (heading, CSV column, value), in the report's order."""


def _figures_table(report: ReportInput) -> str:
    return _table(report, FIGURE_COLUMNS)


def _closures_table(report: ReportInput) -> str:
    def reason_count(reason: str) -> Callable[[RegionQuarter], str]:
        return lambda row: str(row.closures_by_reason[reason])

    columns = [
        (REASON_LABELS[r][:1].upper() + REASON_LABELS[r][1:], f"closed_{r}", reason_count(r))
        for r in CLOSURE_REASONS
    ]
    return _table(report, [*columns, ("Total", "closed_cases", lambda r: str(r.closed_cases))])


def _table(report: ReportInput, columns: Sequence[Column]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in ["Social region", *(c[0] for c in columns)])
    rows = []
    for row in [*report.regions, report.canton]:
        cells = "".join(
            table_cell(value(row) if report.shows(row, column) else WITHHELD)
            for _, column, value in columns
        )
        css = ' class="total"' if row is report.canton else ""
        rows.append(f"<tr{css}><td>{escape(report.name(row.region))}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def table_cell(text: str) -> str:
    """A table cell, escaped; empty or `–` is shown greyed as `–` (no value)."""
    if text in ("", "–"):
        return '<td class="none">–</td>'
    return f"<td>{escape(text)}</td>"


def _availability(report: ReportInput) -> list[str]:
    """The availability section: per month, minutes, minutes out per kind, availability and
    incidents (none if the report was made without it)."""
    if not report.availability:
        return []
    head = "".join(f"<th>{escape(h)}</th>" for h in (
        "Month", "Minutes", *(f"Minutes {kind}" for kind in KINDS), "Minutes out",
        "Availability", "Incidents"))
    rows = [
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in (
            f"{month.month:%B %Y}", month.minutes,
            *(month.minutes_by_kind.get(kind, 0) for kind in KINDS), month.minutes_out,
            f"{month.availability_percent:.2f} %", month.incidents)) + "</tr>"
        for month in report.availability
    ]
    return [
        "<h2>Availability</h2>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
        '<p class="meta">From the incidents serve recorded (`nervenbahn status --incidents`). '
        "A minute counts as out if any incident (a worker down, relay lag over the bound, "
        "broker or store unreachable) was open at any moment within it; availability is the "
        "share of the month's minutes (Swiss time) not out.</p>",
    ]


BACKLOG_COLUMNS: tuple[tuple[str, str, Callable[[BacklogFigures], str]], ...] = (
    ("Received", "received", lambda f: str(f.received)),
    ("Decided", "decided", lambda f: str(f.decided)),
    ("Withdrawn", "withdrawn", lambda f: str(f.withdrawn)),
    ("Pending at week end", "pending", lambda f: str(f.pending)),
    ("… at the branch office", "pending_at_office", lambda f: str(f.pending_at_office)),
    ("… at the fund", "pending_at_fund", lambda f: str(f.pending_at_fund)),
    ("Pending longer than the target", "pending_over_target",
     lambda f: str(f.pending_over_target)),
    ("… of them waiting for documents", "late_waiting_for_documents",
     lambda f: str(f.late_waiting_for_documents)),
    ("Share of the late ones waiting for documents", "share_late_waiting_for_documents",
     lambda f: format_percent(f.share_late_waiting_for_documents)),
    ("Median days to decision", "median_days_to_decision",
     lambda f: format_number(f.median_days_to_decision)),
    ("p90 days to decision", "p90_days_to_decision",
     lambda f: format_number(f.p90_days_to_decision)),
    ("Decided within the target", "decided_within_target",
     lambda f: str(f.decided_within_target)),
    ("Share decided within the target", "share_decided_within_target",
     lambda f: format_percent(f.share_decided_within_target)),
)
"""The backlog tables' columns: heading, figure (as in the backlog CSV), value."""


def backlog_table(rows: Sequence[BacklogFigures], names: dict[str, str], first: str) -> str:
    """A table of backlog figures, a row per unit (the canton's in bold), `first` heading the
    unit column; each row carries `data-unit="<kind>:<id>"` and each cell `data-figure`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in [first, *(c[0] for c in BACKLOG_COLUMNS)])
    body = []
    for row in rows:
        cells = "".join(table_cell(value(row)).replace("<td", f'<td data-figure="{column}"', 1)
                        for _, column, value in BACKLOG_COLUMNS)
        css = ' class="total"' if row.unit_kind == "canton" else ""
        name = names.get(row.unit, row.unit)
        body.append(f'<tr{css} data-unit="{escape(row.unit_kind)}:{escape(row.unit)}">'
                    f"<td>{escape(name)}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _backlog_section(report: ReportInput) -> list[str]:
    backlog = report.backlog
    if backlog is None:
        return []
    names = {region: report.name(region) for region in report.region_names} | {
        "canton": "Canton"}
    return [
        f"<h2>Benefit applications: backlog in week {escape(str(backlog.week))}</h2>",
        f'<p class="meta">EL and premium-reduction applications at the AKSO branch offices '
        f"and the fund, in the last ISO week ending in the quarter (to "
        f"{backlog.week.end:%Y-%m-%d}); "
        f"processing target: {escape(backlog.target.label)} from receipt to decision. Details "
        f"per branch office and the trend: `nervenbahn report backlog`; definitions: "
        f"docs/benefits.md.</p>",
        backlog_table([*backlog.regions, backlog.canton], names, "Social region"),
    ]


_ADVANCE_HEADINGS = (
    "Advances open at quarter end", "Advances decided", "Median days advance → decision",
    "Claims recorded", "CHF claimed (net of corrections)", "CHF surplus to persons",
    "Reimbursements paid", "CHF reimbursed (paid by the fund)",
)


def _advances_section(report: ReportInput) -> list[str]:
    """The advances in view of EL: a row per region and the canton's (none if the report
    was made without them)."""
    section = report.advances
    if section is None:
        return []
    head = "".join(f"<th>{escape(h)}</th>" for h in ("Social region", *_ADVANCE_HEADINGS))
    body = []
    for row in [*section.regions, section.canton]:
        cells = "".join(table_cell(text) for text in section.cells(row.region))
        css = ' class="total"' if row is section.canton else ""
        body.append(f'<tr{css} data-region="{escape(row.region)}">'
                    f"<td>{escape(report.name(row.region))}</td>{cells}</tr>")
    return [
        "<h2>Advances in view of EL and their reimbursement</h2>",
        f'<table id="advances"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>",
        '<p class="meta">From the region read model. Advances are counted where the case is '
        "now, decisions, claims and payments where the case was when they were recorded; "
        "CHF claimed is net of corrections recorded in the quarter (a correction returning "
        "part of a claim counts negative). Definitions: docs/reporting.md.</p>",
    ]


def _withheld_note(report: ReportInput) -> list[str]:
    if report.min_count <= 1:
        return []
    return [f'<p class="meta">Small counts: {WITHHELD} marks a figure withheld because it '
            f"counts fewer than {report.min_count} cases (or is a median or share over so "
            f"few), or because it would let such a figure be worked out from the others.</p>"]


def format_percent(share: float | None) -> str:
    """A share (0 to 1) as a whole percentage; `–` for None."""
    return "–" if share is None else f"{share * 100:.0f} %"


def _definitions() -> str:
    items = [
        ("New cases", "cases opened or reopened in the quarter, in the region the case was in "
         "then."),
        ("Closed cases", "cases closed in the quarter, by the region closing them; by reason."),
        ("Median duration", "of the cases closed in the quarter: days from their latest "
         "(re)opening to the closure."),
        ("Median days intake → decision", "for the first decision (granted or refused) after an "
         "intake, made in the quarter: days from the (re)opening to the decision."),
        ("Share with goal agreement", "of the cases supported at any time in the quarter "
         "(from the decision to grant until the closure): those with a goal agreed in that "
         "support by the quarter's last day; counted in the region of their last supported "
         "day in the quarter."),
        ("Measures", "integration measures started, and completed (not broken off), in the "
         "quarter."),
    ]
    entries = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in items)
    caveats = [
        "A case handed over to another region counts where it was when each thing happened: "
        "its opening in the old region, its closure and duration in the new one.",
        "A reopened case counts as a new case again; its duration starts at the reopening.",
        "Figures follow effective dates: a fact recorded late (e.g. a retroactive closure) "
        "changes the figures of an earlier quarter when the report is produced again.",
        "Cases are counted as dossiers of this system, not as in the federal social-assistance "
        "statistics (which close a dossier six months after the last payment).",
    ]
    notes = "".join(f"<li>{escape(c)}</li>" for c in caveats)
    return (f"<h2>Definitions</h2><dl>{entries}</dl><h2>Comparing regions: caveats</h2>"
            f'<ul class="caveats">{notes}</ul><p class="meta">Details: docs/reporting.md.</p>')


# --- charts ----------------------------------------------------------------------------------

Series = tuple[str, str]  # label, colour
Translate = Callable[[str], str]
"""Gives a chart's English text in the reader's language (`nervenbahn.web`'s pages)."""


def as_is(text: str) -> str:
    """The text as it is: the report's own pages are in English."""
    return text



Value = float | int | None | str
"""A bar's value: a number, None (no cases) or `WITHHELD`."""


def quarterly_charts(report: ReportInput, text: Translate = as_is) -> list[str]:
    """The report's charts comparing the social regions, each in a figure with its title;
    `text` gives each title and label in the reader's language (the web pages')."""
    regions = list(report.regions)
    names = [report.name(row.region).split(" (")[0] for row in regions]
    canton = report.canton

    def shown(row: RegionQuarter, *columns: str) -> Callable[[Value], Value]:
        visible = all(report.shows(row, column) for column in columns)
        return lambda value: value if visible else WITHHELD

    def reference(column: str, value: float | None) -> float | None:
        return value if report.shows(canton, column) else None

    def values(row: RegionQuarter, *pairs: tuple[str, Value]) -> list[Value]:
        return [shown(row, column)(value) for column, value in pairs]

    reasons = [f"closed_{k}" for k in CLOSURE_REASONS]
    return [
        titled_chart(
            text("New and closed cases"), names,
            [values(r, ("new_cases", r.new_cases), ("closed_cases", r.closed_cases))
             for r in regions],
            [(text("new"), _BLUE), (text("closed"), _ORANGE)], text=text),
        titled_chart(  # one withheld reason withholds the bar
            text("Closed cases by reason"), names,
            [[shown(r, *reasons)(r.closures_by_reason[k]) for k in CLOSURE_REASONS]
             for r in regions],
            list(zip((text(REASON_LABELS[k]) for k in CLOSURE_REASONS), _REASON_COLOURS,
                     strict=True)), stacked=True, text=text),
        titled_chart(
            text("Median duration of closed cases (days)"), names,
            [values(r, ("median_duration_days", r.median_duration_days)) for r in regions],
            [(text("days"), _BLUE)],
            reference=reference("median_duration_days", canton.median_duration_days),
            text=text),
        titled_chart(
            text("Median days from intake to decision"), names,
            [values(r, ("median_days_to_decision", r.median_days_to_decision))
             for r in regions], [(text("days"), _BLUE)],
            reference=reference("median_days_to_decision", canton.median_days_to_decision),
            text=text),
        titled_chart(
            text("Supported cases with a goal agreement (%)"), names,
            [values(r, ("goal_agreement_share", _share_percent(r))) for r in regions],
            [("%", _BLUE)], reference=reference("goal_agreement_share", _share_percent(canton)),
            scale_max=100.0, unit=" %", text=text),
        titled_chart(
            text("Integration measures started and completed"), names,
            [values(r, ("measures_started", r.measures_started),
                    ("measures_completed", r.measures_completed)) for r in regions],
            [(text("started"), _BLUE), (text("completed"), _ORANGE)], text=text),
    ]


def _share_percent(row: RegionQuarter) -> float | None:
    share = row.goal_agreement_share
    return None if share is None else round(share * 100, 1)


def chart_figure(title: str, svg: str) -> str:
    """A chart with its caption (escaped)."""
    return f"<figure><figcaption>{escape(title)}</figcaption>{svg}</figure>"


def titled_chart(
    title: str,
    labels: list[str],
    values: list[list[Value]],
    series: list[Series],
    *,
    stacked: bool = False,
    reference: float | None = None,
    scale_max: float | None = None,
    unit: str = "",
    text: Translate = as_is,
) -> str:
    """`bar_chart` in a figure captioned `title`, which is also the SVG's accessible name."""
    return chart_figure(title, bar_chart(
        labels, values, series, stacked=stacked, reference=reference, scale_max=scale_max,
        unit=unit, title=title, text=text))


_PLOT_W, _VALUE_W, _BAR_H, _GAP, _WIDTH = 280, 60, 11, 7, 540
_CHAR_W = 6.6
"""Roughly the width of a character of the 12 px chart font, to lay out labels."""


@dataclass(frozen=True)
class _Layout:
    label_w: float
    legend_h: float
    row_h: float
    top: float

    def x(self, value: float) -> float:
        return self.label_w + _PLOT_W * value / self.top


def bar_chart(
    labels: list[str],
    values: list[list[Value]],
    series: list[Series],
    *,
    stacked: bool = False,
    reference: float | None = None,
    scale_max: float | None = None,
    unit: str = "",
    title: str = "",
    text: Translate = as_is,
) -> str:
    """A horizontal bar chart: a row per region, a bar per series (or one stacked bar);
    `reference` draws the canton's value as a dashed line; missing values say `no cases`.
    The SVG is an image named `title` (`aria-label` and `<title>`); `text` translates its
    own words (`no cases`, `canton`)."""
    legend, legend_h = _legend(series if len(series) > 1 else [], reference is not None, text)
    per_row = 1 if stacked else len(series)
    label_w = min(max(len(label) for label in labels) * _CHAR_W + 12, 200)
    layout = _Layout(label_w, legend_h, per_row * _BAR_H + _GAP,
                     _scale_top(values, stacked, reference, scale_max))
    bottom = legend_h + len(labels) * layout.row_h
    width = max(_WIDTH, label_w + _PLOT_W + _VALUE_W)
    bars: list[str] = []
    texts: list[str] = []
    for index, (label, row) in enumerate(zip(labels, values, strict=True)):
        y = legend_h + index * layout.row_h + _GAP / 2
        texts.append(f'<text x="{label_w - 8:.1f}" y="{y + per_row * _BAR_H / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(label)}</text>')
        row_bars, row_texts = _row_bars(row, series, y, layout, stacked, unit, text)
        bars += row_bars
        texts += row_texts
    if reference is not None:
        x = layout.x(reference)
        bars.append(f'<line x1="{x:.1f}" y1="{legend_h}" x2="{x:.1f}" y2="{bottom}" '
                    f'stroke="{_GREY}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    name = f' aria-label="{escape(title)}"><title>{escape(title)}</title>' if title else ">"
    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{bottom + 24}" '
        f'viewBox="0 0 {width:.0f} {bottom + 24}" role="img"{name}',
        *legend, *_grid(layout, bottom, unit), *bars, *texts, "</svg>",
    ])


def _row_bars(
    row: list[Value], series: list[Series], y: float, layout: _Layout,
    stacked: bool, unit: str, text: Translate,
) -> tuple[list[str], list[str]]:
    """The bars of one row, and their value labels (drawn last, over any line)."""
    empty = text("no cases") if all(value is None for value in row) else None
    if stacked and WITHHELD in row:
        empty = f"{WITHHELD} ({text('small counts')})"
    if empty is not None:
        note = (f'<text x="{layout.label_w + 4:.1f}" y="{y + _BAR_H - 2:.1f}" fill="#999">'
                f"{escape(empty)}</text>")
        return [], [note]
    bars: list[str] = []
    texts: list[str] = []
    x = layout.label_w
    for index, (value, (label, colour)) in enumerate(zip(row, series, strict=True)):
        bar_y = y if stacked else y + index * _BAR_H
        if isinstance(value, str):  # withheld: no bar, only the mark
            texts.append(_value_label(layout.label_w + 4, bar_y, value))
            continue
        amount = float(value or 0)
        w = layout.x(amount) - layout.label_w
        if w > 0:
            bars.append(f'<rect x="{x:.1f}" y="{bar_y:.1f}" width="{w:.1f}" '
                        f'height="{_BAR_H - 1}" fill="{colour}"><title>{escape(label)}: '
                        f"{format_number(amount)}{escape(unit)}</title></rect>")
        if stacked:
            x += w
        else:
            texts.append(_value_label(layout.label_w + w + 4, bar_y, format_number(amount) + unit))
    if stacked:
        total = sum(_amount(v) for v in row)
        texts.append(_value_label(x + 4, y, format_number(total) + unit))
    return bars, texts


def _value_label(x: float, y: float, text: str) -> str:
    return f'<text class="value" x="{x:.1f}" y="{y + _BAR_H - 2:.1f}">{escape(text)}</text>'


def _legend(series: list[Series], reference: bool, text: Translate) -> tuple[list[str], float]:
    """Legend entries, wrapped onto further lines when the chart is too narrow; its height."""
    entries = [(label, colour, False) for label, colour in series]
    if reference:
        entries.append((text("canton"), _GREY, True))
    if not entries:
        return [], 0.0
    parts: list[str] = []
    x, line = 8.0, 0
    for label, colour, dashed in entries:
        item_w = 20 + _CHAR_W * len(label) + 12
        if x + item_w > _WIDTH and x > 8:
            x, line = 8.0, line + 1
        y = 4 + 16 * line
        if dashed:
            parts.append(f'<line x1="{x:.1f}" y1="{y + 5}" x2="{x + 14:.1f}" y2="{y + 5}" '
                         f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="4 3"/>')
        else:
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 18:.1f}" y="{y + 9}">{escape(label)}</text>')
        x += item_w
    return parts, 22.0 + 16 * line


def _grid(layout: _Layout, bottom: float, unit: str) -> list[str]:
    step = _nice_step(layout.top)
    parts = []
    tick = 0.0
    while tick <= layout.top + 1e-9:
        x = layout.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{layout.legend_h}" x2="{x:.1f}" y2="{bottom}" '
                     'stroke="#e3e3e3"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle" fill="#777">'
                     f"{format_number(tick)}{escape(unit)}</text>")
        tick += step
    return parts


def _amount(value: Value) -> float:
    """A bar's length in its unit (none for no cases or a withheld figure)."""
    return 0.0 if value is None or isinstance(value, str) else float(value)


def _scale_top(
    values: list[list[Value]], stacked: bool, reference: float | None,
    scale_max: float | None,
) -> float:
    if scale_max is not None:
        return scale_max
    sums = [sum(map(_amount, row)) if stacked else max(map(_amount, row)) for row in values]
    largest = max([*sums, reference or 0.0, 1.0])
    step = _nice_step(largest)
    return step * -(-largest // step)


def _nice_step(largest: float) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving at most five ticks."""
    magnitude = 1.0
    while magnitude * 10 <= largest:
        magnitude *= 10
    for factor in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0):
        step = max(factor * magnitude, 1.0)
        if largest / step <= 5:
            return step
    return 10 * magnitude

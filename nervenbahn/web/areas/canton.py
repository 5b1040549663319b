"""The canton's pages (role `canton`): the quarterly figures per social region and the backlog
of benefit applications, with the charts of the HTML reports. Aggregates only: no case, no
application, no person.

- `/web/canton/quarterly?quarter=2026Q3` (home): the figures of `GET /v1/canton/quarters/…`
  from the reporting read model, as `nervenbahn report quarterly` shows them, every figure as
  it is (the canton's own use, as the API answers it; a report that leaves the canton is made
  with the CLI's `--min-count`).
- `/web/canton/backlog?week=2026-W40`: the backlog of `GET /v1/canton/benefits/backlog` from
  the benefits store, per social region and branch office, and the canton's trend over the
  weeks before it, as `nervenbahn report backlog` shows it.

The charts are the reports' own (`nervenbahn.quarterly_report.quarterly_charts`,
`nervenbahn.backlog_report.backlog_charts`), given the reader's language: each is an SVG image
named by its title, and each number it draws is in a table on the same page. The reports'
English texts are listed in `REPORT_TEXTS`, so that the catalogues hold them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from markupsafe import Markup

from domain.case import SWISS_TIME
from nervenbahn.accounts import WebSession
from nervenbahn.api.errors import ReadModelUnavailableError
from nervenbahn.backlog_report import BacklogReport, backlog_charts, backlog_of, unit_names
from nervenbahn.bounds import EARLIEST_YEAR, LATEST_YEAR, parse_bounded_quarter
from nervenbahn.quarterly_report import (
    BACKLOG_COLUMNS,
    FIGURE_COLUMNS,
    REASON_LABELS,
    ReportInput,
    quarterly_charts,
)
from nervenbahn.web.actions import read_model
from nervenbahn.web.auth import Web, WebState, role_in
from nervenbahn.web.forms import Refusal
from nervenbahn.web.i18n import N_, translations
from nervenbahn.web.rendering import render
from projections.backlog import BacklogFigures, IsoWeek, ProcessingTarget
from projections.reporting import (
    CLOSURE_REASONS,
    Quarter,
    RegionQuarter,
    ReportingProjection,
    canton_figures,
    quarterly_figures,
)
from projections.storage import read_progress

__all__ = ["REPORT_TEXTS", "TREND_FIGURES", "router"]

router = APIRouter(prefix="/web/canton", include_in_schema=False)
Canton = Annotated[WebSession, Depends(role_in("canton"))]

REPORT_TEXTS = (
    # the quarterly report's figures and charts (nervenbahn.quarterly_report)
    N_("New cases"), N_("Closed cases"), N_("Median duration of closed cases (days)"),
    N_("Decisions"), N_("Median days intake → decision"), N_("Cases supported"),
    N_("… with goal agreement"), N_("Share with goal agreement"), N_("Measures started"),
    N_("Measures completed"), N_("employment"), N_("other insurance (IV, AHV, EL)"),
    N_("moved away"), N_("death"), N_("other"), N_("New and closed cases"), N_("new"),
    N_("closed"), N_("Closed cases by reason"), N_("days"),
    N_("Median days from intake to decision"), N_("Supported cases with a goal agreement (%)"),
    N_("Integration measures started and completed"), N_("started"), N_("completed"),
    N_("no cases"), N_("small counts"), N_("canton"),
    # the backlog report's figures and charts (nervenbahn.backlog_report)
    N_("Received"), N_("Decided"), N_("Withdrawn"), N_("Pending at week end"),
    N_("… at the branch office"), N_("… at the fund"), N_("Pending longer than the target"),
    N_("… of them waiting for documents"), N_("Share of the late ones waiting for documents"),
    N_("Median days to decision"), N_("p90 days to decision"), N_("Decided within the target"),
    N_("Share decided within the target"), N_("Received and decided per week"),
    N_("received"), N_("decided"), N_("Pending at week end, by stage"),
    N_("at the branch office"), N_("at the fund"),
    N_("Pending longer than the target ({target}), and of them waiting for documents"),
    N_("over the target"), N_("waiting for documents"),
    N_("Days from receipt to decision (decided in the week)"), N_("median"), N_("p90"),
)
"""Every English text of the reports' tables and charts these pages show (translated by the
catalogues; tests/web/test_canton.py checks that the charts use no other)."""

TREND_FIGURES = (
    "received", "decided", "pending_at_office", "pending_at_fund", "pending_over_target",
    "late_waiting_for_documents", "median_days_to_decision", "p90_days_to_decision",
)
"""The backlog figures the trend charts draw: the columns of the trend table."""

Row = tuple[str, list[str]]
"""A table row: the unit's name and its cells' texts."""


@router.get("/quarterly")
def quarterly(request: Request, web: Web, session: Canton, quarter: str = "") -> Response:
    """The quarterly figures per social region and for the canton, with the report's
    charts; the quarter chosen with a GET form (default: today's)."""
    asked = quarter.strip() or str(_quarter_of(_today(web)))
    try:
        period = parse_bounded_quarter(asked)
    except ValueError:
        problem = _("Write the quarter like 2026Q1 (Q1 to Q4), in the years %(first)s to "
                    "%(last)s.", session, first=EARLIEST_YEAR, last=LATEST_YEAR)
        return _page(request, session, "canton/quarterly.html", asked, problem)
    try:
        report, stamp = _quarter_report(web, period)
    except ReadModelUnavailableError:
        return _page(request, session, "canton/quarterly.html", asked, unavailable=True)
    language = session.user.language
    text = translations(language).gettext
    charts = web.memo.get(("quarter-charts", str(period), language), stamp,
                          lambda: quarterly_charts(report, text))
    return render(
        request, "canton/quarterly.html", session, asked=asked, errors=None, unavailable=False,
        report=report, quarter=period,
        figure_headings=[heading for heading, _column, _value in FIGURE_COLUMNS],
        figure_rows=_rows(report, [value for _h, _c, value in FIGURE_COLUMNS]),
        reason_headings=[REASON_LABELS[reason] for reason in CLOSURE_REASONS],
        reason_rows=_rows(report, [_reason(reason) for reason in CLOSURE_REASONS]),
        charts=[Markup(chart) for chart in charts],  # noqa: S704 (escaped by the report)
    )


@router.get("/backlog")
def backlog(request: Request, web: Web, session: Canton, week: str = "") -> Response:
    """The backlog of benefit applications in an ISO week per social region and branch
    office, and the canton's trend up to it (default: this week)."""
    asked = week.strip() or str(IsoWeek.of(_today(web)))
    try:
        period = IsoWeek.parse(asked)
    except ValueError:
        problem = _("Write the week like 2026-W49 (ISO week).", session)
        return _page(request, session, "canton/backlog.html", asked, problem)
    if web.context.benefits is None:
        return _page(request, session, "canton/backlog.html", asked, unavailable=True)
    benefits = web.context.benefits()
    target = ProcessingTarget(web.context.benefits_target_months)
    now = web.now()
    # The figures follow from the store's events and today's date: kept until either moves.
    stamp = (benefits.recorder.max_notification_id(), _today(web), target.months)

    def compute() -> BacklogReport:
        return BacklogReport(trend=backlog_of(benefits, period, target, now),
                             unit_names=unit_names(benefits), known_at=now, generated_at=now)

    report = web.memo.get(("backlog", str(period)), stamp, compute)
    known_at = report.known_at
    language = translations(session.user.language)
    target_label = (language.gettext("1 month") if target.months == 1 else
                    language.gettext("%(num)s months") % {"num": target.months})
    charts = web.memo.get(("backlog-charts", str(period), session.user.language), stamp,
                          lambda: backlog_charts(report, language.gettext, target_label))
    last = report.trend[-1]
    return render(
        request, "canton/backlog.html", session, asked=asked, errors=None, unavailable=False,
        week=period, target_label=target_label, known_at=known_at,
        headings=[heading for heading, _column, _value in BACKLOG_COLUMNS],
        region_rows=_backlog_rows(report, [*last.regions, last.canton]),
        office_rows=_backlog_rows(report, last.offices),
        trend_headings=[heading for heading, column, _v in BACKLOG_COLUMNS
                        if column in TREND_FIGURES],
        trend_rows=[(str(b.week), _backlog_cells(b.canton, TREND_FIGURES))
                    for b in report.trend],
        charts=[Markup(chart) for chart in charts],  # noqa: S704 (escaped by the report)
    )


# --- helpers -----------------------------------------------------------------------------------


def _quarter_report(web: WebState, period: Quarter) -> tuple[ReportInput, object]:
    """The quarter's figures from the reporting read model, as the quarterly report takes
    them (every figure shown), and the read model's progress they were computed at (kept in
    the memo until the read model applies more facts)."""
    regions = web.context.reference.regions
    with read_model(web, "reporting") as db:
        progress = read_progress(db, ReportingProjection.name)
        stamp = (progress.as_of, progress.applied_at) if progress else None

        def compute() -> ReportInput:
            return ReportInput(
                quarter=period, regions=quarterly_figures(db, period, list(regions)),
                canton=canton_figures(db, period),
                region_names={region.id: region.name for region in regions.values()},
                facts_recorded_until=progress.as_of if progress else None,
                generated_at=web.now(),
            )

        return web.memo.get(("quarter", str(period)), stamp, compute), stamp


def _rows(report: ReportInput, values: Sequence[Callable[[RegionQuarter], str]]) -> list[Row]:
    """A row per social region, the canton's last (named "" for the template to name it)."""
    return [("" if row is report.canton else report.name(row.region),
             [value(row) for value in values]) for row in [*report.regions, report.canton]]


def _reason(reason: str) -> Callable[[RegionQuarter], str]:
    return lambda row: str(row.closures_by_reason[reason])


def _backlog_rows(report: BacklogReport, rows: Sequence[BacklogFigures]) -> list[Row]:
    """A row per unit (the canton's named "" for the template to name it)."""
    every = tuple(column for _h, column, _v in BACKLOG_COLUMNS)
    return [("" if row.unit_kind == "canton" else report.name(row.unit),
             _backlog_cells(row, every)) for row in rows]


def _backlog_cells(row: BacklogFigures, columns: Sequence[str]) -> list[str]:
    return [value(row) for _h, column, value in BACKLOG_COLUMNS if column in columns]


def _page(
    request: Request, session: WebSession, template: str, asked: str, problem: str = "",
    *, unavailable: bool = False,
) -> Response:
    """The page with its form only: the period asked for refused next to its field (422), or
    the figures not available (503)."""
    field = "quarter" if template.endswith("quarterly.html") else "week"
    errors = Refusal(fields={field: [problem]}, translated=True) if problem else None
    return render(request, template, session, status=422 if problem else 503, asked=asked,
                  errors=errors, unavailable=unavailable)


def _(text: str, session: WebSession, **values: object) -> str:
    """`text` in the user's language, with `values` filled in."""
    return translations(session.user.language).gettext(text) % values


def _today(web: WebState) -> date:
    return web.now().astimezone(SWISS_TIME).date()


def _quarter_of(day: date) -> Quarter:
    return Quarter(day.year, (day.month - 1) // 3 + 1)

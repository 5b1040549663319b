"""The canton: quarterly key figures per social region and for the whole canton, from the
reporting read model (pseudonymised facts; aggregates only, never a case); the backlog of
benefit applications per week, from the benefits store (counts only, never an application);
the advances in view of EL and their reimbursement per quarter, from the region read model
(counts and CHF sums only, never a case: `projections.advance_figures`).

The backlog answer is computed from the benefits store itself, which has no read model: it
carries the same freshness headers as the read models' answers, `X-Read-Model: benefits` and
`X-Read-Model-As-Of` = the recorded time (UTC) of the newest event in the benefits store when
the request read it (left out while the store is empty)."""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from nervenbahn.api.answers import answer
from nervenbahn.api.context import ApiContext
from nervenbahn.api.guard import Context, canton_in_scope
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import (
    AdvanceQuarterFigures,
    BacklogFigures,
    CantonAdvances,
    CantonBacklog,
    CantonQuarter,
    QuarterFigures,
)
from nervenbahn.api.problems import PROBLEM_RESPONSES, ProblemError, invalid_parameter
from nervenbahn.api.readmodels import AS_OF_HEADER, READ_MODEL_HEADER, read_model
from nervenbahn.backlog_report import backlog_of
from nervenbahn.bounds import parse_bounded_quarter
from projections.advance_figures import AdvanceFigures, advance_figures
from projections.backlog import BacklogFigures as Figures
from projections.backlog import IsoWeek, ProcessingTarget
from projections.region import RegionProjection
from projections.reporting import (
    Quarter,
    RegionQuarter,
    ReportingProjection,
    aggregates_version,
    canton_figures,
    quarterly_figures,
    stored_figures,
)
from projections.storage import SQLConnection

__all__ = ["router"]

router = APIRouter(prefix="/v1/canton", tags=["canton"])

_ANSWERS: dict[tuple[str, str, int], CantonQuarter] = {}
"""Answers computed from every fact (a read model built before it kept the figures'
aggregates), by (read model, quarter, number of facts): facts are only ever added, so an
answer stays right until the next fact arrives. Bounded to `_KEEP` entries."""
_KEPT: dict[tuple[str, str, tuple[str, ...]], tuple[int, CantonQuarter]] = {}
"""Answers read from the aggregates, by (read model, quarter, regions), with the aggregates'
version they were read at (`aggregates_version`): given again while the version is the
same. Bounded to `_KEEP` entries."""
_KEEP = 64
_COMPUTING = threading.Lock()
"""One computation at a time: concurrent requests for a new answer wait for it, not redo it."""


@router.get("/quarters/{quarter}", response_model=CantonQuarter, responses=PROBLEM_RESPONSES)
def get_quarter(
    _canton: Annotated[Consumer, Depends(canton_in_scope)],
    ctx: Context,
    quarter: str,
    response: Response,
) -> Response:
    """Key figures of a quarter (written `2026Q1`): caseload flows, durations, time to
    decision, goal agreements, measures — per social region and for the canton."""
    period = _quarter(quarter)
    regions = tuple(ctx.reference.regions)
    with read_model(ctx.reporting_db, ReportingProjection.name, response) as db:
        # The version before the figures: kept under it, they are at least that new (a
        # version is drawn anew with every change, so an older one is never read again).
        version, kept_as = aggregates_version(db), (str(ctx.reporting_db), str(period), regions)
        kept = _KEPT.get(kept_as)
        if kept is not None and version is not None and kept[0] == version:
            return answer(kept[1], response)
        stored = stored_figures(db, period, list(regions))
        if stored is not None:  # the aggregates: a few hundred rows
            figures = _answer(period, *stored)
            if version is not None:
                _keep(_KEPT, kept_as, (version, figures))
            return answer(figures, response)
        facts = int(db.execute("SELECT count(*) FROM reporting_facts").fetchone()[0])
        key = (str(ctx.reporting_db), str(period), facts)
        computed = _ANSWERS.get(key)
        if computed is None:
            with _COMPUTING:
                computed = _ANSWERS.get(key) or _compute(db, period, ctx)
                _keep(_ANSWERS, key, computed)
    return answer(computed, response)


def _keep(answers: dict[Any, Any], key: object, value: object) -> None:
    """Keep `value` under `key`, the oldest entry dropped past `_KEEP` entries."""
    if key not in answers and len(answers) >= _KEEP:
        answers.pop(next(iter(answers)))
    answers[key] = value


@router.get("/benefits/backlog", response_model=CantonBacklog, responses=PROBLEM_RESPONSES)
def get_backlog(
    _canton: Annotated[Consumer, Depends(canton_in_scope)],
    ctx: Context,
    response: Response,
    week: Annotated[str, Query(description="The ISO week, e.g. 2026-W49")],
) -> Response:
    """The backlog of benefit applications in a week (written `2026-W49`): received,
    decided, pending by stage, pending longer than the processing target, days to decision —
    for the canton, each social region and each branch office, as known now."""
    period = _week(week)
    if ctx.benefits is None:
        raise ProblemError(
            "service-unavailable", "the benefits store is not connected to this API instance")
    benefits = ctx.benefits()
    known_at = ctx.clock()
    last = benefits.last_recorded_at()  # read before the data: at least this fresh
    response.headers[READ_MODEL_HEADER] = "benefits"
    if last is not None:
        response.headers[AS_OF_HEADER] = last.astimezone(UTC).isoformat().replace("+00:00", "Z")
    target = ProcessingTarget(ctx.benefits_target_months)
    (backlog,) = backlog_of(benefits, period, target, known_at, weeks=1)
    return answer(CantonBacklog(
        week=str(period), week_start=period.start, week_end=period.end,
        target_months=target.months, target=target.label, known_at=known_at,
        canton=_backlog(backlog.canton), regions=[_backlog(r) for r in backlog.regions],
        branch_offices=[_backlog(o) for o in backlog.offices],
    ), response)


@router.get("/benefits/advances", response_model=CantonAdvances, responses=PROBLEM_RESPONSES)
def get_advances(
    _canton: Annotated[Consumer, Depends(canton_in_scope)],
    ctx: Context,
    response: Response,
    quarter: Annotated[str, Query(description="The quarter, e.g. 2026Q2")],
) -> Response:
    """Advances in view of EL and their reimbursement in a quarter (written `2026Q2`):
    advances open at its end, decided in it and the median days to the decision, claims
    recorded and CHF claimed (net of corrections), surplus to persons, CHF reimbursed by the
    fund — per social region and for the canton; sums only, never a case. From the region
    read model (`X-Read-Model: region`)."""
    period = _parse_quarter(quarter, "query")
    with read_model(ctx.region_db, RegionProjection.name, response) as db:
        regions, canton = advance_figures(db, period, list(ctx.reference.regions))
    return answer(CantonAdvances(quarter=str(period), canton=_advances(canton),
                                 regions=[_advances(region) for region in regions]), response)


def _advances(figures: AdvanceFigures) -> AdvanceQuarterFigures:
    return AdvanceQuarterFigures(
        region=figures.region, advances_open=figures.advances_open,
        advances_decided=figures.advances_decided,
        median_days_to_decision=figures.median_days_to_decision,
        claims_recorded=figures.claims_recorded, claimed_chf=f"{figures.claimed_chf:.2f}",
        surplus_chf=f"{figures.surplus_chf:.2f}",
        reimbursements_paid=figures.reimbursements_paid,
        reimbursed_chf=f"{figures.reimbursed_chf:.2f}")


def _week(text: str) -> IsoWeek:
    try:
        return IsoWeek.parse(text)
    except ValueError as exc:
        raise invalid_parameter("week", "query", str(exc)) from None


def _backlog(figures: Figures) -> BacklogFigures:
    fields = asdict(figures)
    fields.pop("target_months")
    return BacklogFigures(**fields)


def _compute(db: SQLConnection, period: Quarter, ctx: ApiContext) -> CantonQuarter:
    regions = quarterly_figures(db, period, list(ctx.reference.regions))
    return _answer(period, regions, canton_figures(db, period))


def _answer(
    period: Quarter, regions: list[RegionQuarter], canton: RegionQuarter
) -> CantonQuarter:
    return CantonQuarter(quarter=str(period), canton=_figures(canton),
                         regions=[_figures(region) for region in regions])


def _quarter(text: str) -> Quarter:
    return _parse_quarter(text, "path")


def _parse_quarter(text: str, located_in: str) -> Quarter:
    try:
        return parse_bounded_quarter(text)
    except ValueError as exc:
        raise invalid_parameter("quarter", located_in, str(exc)) from None


def _figures(figures: RegionQuarter) -> QuarterFigures:
    return QuarterFigures(
        region=figures.region,
        new_cases=figures.new_cases,
        closed_cases=figures.closed_cases,
        closures_by_reason=dict(figures.closures_by_reason),
        median_duration_days=figures.median_duration_days,
        decisions=figures.decisions,
        median_days_to_decision=figures.median_days_to_decision,
        supported_cases=figures.supported_cases,
        with_goal_agreement=figures.with_goal_agreement,
        goal_agreement_share=figures.goal_agreement_share,
        measures_started=figures.measures_started,
        measures_completed=figures.measures_completed,
    )

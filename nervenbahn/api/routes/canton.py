"""The canton: quarterly key figures per social region and for the whole canton, from the
reporting read model (pseudonymised facts; aggregates only, never a case)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from nervenbahn.api.context import ApiContext
from nervenbahn.api.guard import Context, canton_in_scope
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import CantonQuarter, QuarterFigures
from nervenbahn.api.problems import PROBLEM_RESPONSES, invalid_parameter
from nervenbahn.api.readmodels import read_model
from nervenbahn.bounds import parse_bounded_quarter
from projections.reporting import (
    Quarter,
    RegionQuarter,
    ReportingProjection,
    canton_figures,
    quarterly_figures,
)
from projections.storage import SQLConnection

__all__ = ["router"]

router = APIRouter(prefix="/v1/canton", tags=["canton"])

_ANSWERS: dict[tuple[str, str, int], CantonQuarter] = {}
"""Computed answers by (read model, quarter, number of facts): facts are only ever added, so
an answer stays right until the next fact arrives. Bounded to `_KEEP` entries."""
_KEEP = 64
_COMPUTING = threading.Lock()
"""One computation at a time: concurrent requests for a new answer wait for it, not redo it."""


@router.get("/quarters/{quarter}", response_model=CantonQuarter, responses=PROBLEM_RESPONSES)
def get_quarter(
    _canton: Annotated[Consumer, Depends(canton_in_scope)],
    ctx: Context,
    quarter: str,
    response: Response,
) -> CantonQuarter:
    """Key figures of a quarter (written `2026Q1`): caseload flows, durations, time to
    decision, goal agreements, measures — per social region and for the canton."""
    period = _quarter(quarter)
    with read_model(ctx.reporting_db, ReportingProjection.name, response) as db:
        facts = int(db.execute("SELECT count(*) FROM reporting_facts").fetchone()[0])
        key = (str(ctx.reporting_db), str(period), facts)
        answer = _ANSWERS.get(key)
        if answer is None:
            with _COMPUTING:
                answer = _ANSWERS.get(key) or _compute(db, period, ctx)
                if len(_ANSWERS) >= _KEEP:
                    _ANSWERS.pop(next(iter(_ANSWERS)))
                _ANSWERS[key] = answer
    return answer


def _compute(db: SQLConnection, period: Quarter, ctx: ApiContext) -> CantonQuarter:
    regions = quarterly_figures(db, period, list(ctx.reference.regions))
    return CantonQuarter(
        quarter=str(period),
        canton=_figures(canton_figures(db, period)),
        regions=[_figures(region) for region in regions],
    )


def _quarter(text: str) -> Quarter:
    try:
        return parse_bounded_quarter(text)
    except ValueError as exc:
        raise invalid_parameter("quarter", "path", str(exc)) from None


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

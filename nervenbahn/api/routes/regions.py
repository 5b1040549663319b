"""Social regions (Sozialregionen): caseload by phase and the caseworkers' work list."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from domain.case import SWISS_TIME
from nervenbahn.api.answers import answer
from nervenbahn.api.guard import Context, region_in_scope
from nervenbahn.api.models import Caseload, WorkItem, WorkList
from nervenbahn.api.problems import PROBLEM_RESPONSES, invalid_parameter
from nervenbahn.api.readmodels import PageLimit, PageOffset, read_model
from nervenbahn.bounds import bounded_day
from projections.region import caseload, work_page

__all__ = ["router"]

router = APIRouter(prefix="/v1/regions", tags=["social regions"])
Region = Annotated[str, Depends(region_in_scope)]


@router.get("/{region_id}/caseload", response_model=Caseload, responses=PROBLEM_RESPONSES)
def get_caseload(region: Region, ctx: Context, response: Response) -> Response:
    """The region's cases by phase."""
    with read_model(ctx.region_db, "region", response) as db:
        counts = caseload(db, region)
    return answer(Caseload(region_id=region, total=sum(counts.values()), by_phase=counts),
                  response)


@router.get("/{region_id}/worklist", response_model=WorkList, responses=PROBLEM_RESPONSES)
def get_work_list(
    region: Region,
    ctx: Context,
    response: Response,
    today: date | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> Response:
    """Assessments, reviews, goals and register proposals due or overdue, judged on `today`
    (default: today in Switzerland), soonest first: a page of `limit` items from `offset`,
    with `total`, the number of items in the whole list."""
    day = today or ctx.clock().astimezone(SWISS_TIME).date()
    try:
        bounded_day(day)
    except ValueError as exc:
        raise invalid_parameter("today", "query", str(exc)) from None
    with read_model(ctx.region_db, "region", response) as db:
        items, total = work_page(db, region, day, limit=limit, offset=offset)
    return answer(WorkList(
        region_id=region,
        today=day,
        total=total,
        limit=limit,
        offset=offset,
        # Read from the items' attributes: `dataclasses.asdict` copied each item first, which
        # took 4 of every 5 ms of a long list (1,910 items: 25 -> 6.5 ms).
        items=[WorkItem.model_validate(item, from_attributes=True) for item in items],
    ), response)

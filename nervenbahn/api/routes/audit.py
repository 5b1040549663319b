"""Auditors: the access log, by person and/or case; a case as known at a recorded time (its
state and timeline, a month's budget, what changed about a month between two times).

The case answers name no person, but a case's data concerns its household (data on social
assistance is sensitive personal data): each of these reads is appended to the access log,
one entry per household member, before it is answered — as the CLI's `audit` reads are."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from domain.application.bitemporal import StateAsOf, plain
from domain.application.cases import CaseService
from domain.application.history import HistoryEntry
from domain.case import Case
from nervenbahn.api.answers import answer
from nervenbahn.api.context import ApiContext
from nervenbahn.api.guard import Context, auditor_in_scope, endpoint
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import AccessLogEntry, AccessLogPage
from nervenbahn.api.problems import (
    PROBLEM_RESPONSES,
    ProblemError,
    invalid_parameter,
)
from nervenbahn.audit.access_log import case_read_entries
from nervenbahn.bounds import MAX_INTEGER, parse_bounded_month, parse_moment

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/access-log", response_model=AccessLogPage, responses=PROBLEM_RESPONSES)
def read_access_log(
    _auditor: Annotated[Consumer, Depends(auditor_in_scope)],
    ctx: Context,
    person_id: UUID | None = None,
    case_id: UUID | None = None,
    gt: Annotated[
        int, Query(ge=0, le=MAX_INTEGER, description="Only entries after this id.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Who read whose personal data, which fields, when: oldest first."""
    logged = ctx.access_log.select(
        person_id=str(person_id) if person_id else None,
        case_id=str(case_id) if case_id else None,
        gt=gt,
        limit=limit,
    )
    return answer(AccessLogPage(
        entries=[
            AccessLogEntry(
                id=item.id,
                at=item.entry.at,
                consumer=item.entry.consumer,
                scope=item.entry.scope,
                case_id=item.entry.case_id,
                person_id=item.entry.person_id,
                fields=list(item.entry.fields),
                endpoint=item.entry.endpoint,
            )
            for item in logged
        ]
    ))


# --- bitemporal queries on the event store (auditor scope) ---------------------------------

AS_OF_HELP = (
    "A recorded time: an ISO date (the end of that day, Swiss time) or an ISO date-time "
    "(without offset: Swiss time)."
)


class ActorModel(BaseModel):
    """Who recorded an event."""

    user_id: str
    role: str
    organisation: str


class EventRefModel(BaseModel):
    """A recorded event: when, from when, who, what (no personal data)."""

    version: int
    event: str
    recorded_at: datetime
    effective_date: date
    actor: ActorModel
    imported: bool
    recorded_by: str = "unknown"
    """The identity the recording edge established: `os:<user>@<host>` (CLI, connectors),
    `web:<user name>`, or `unknown` (recorded before identities were)."""


class TimelineEntry(EventRefModel):
    """An event of the case's timeline; `total` for budget events (CHF a month); `source`:
    live, or imported with its origin (importer, time, file, SHA-256)."""

    total: str | None = None
    source: str = "live"


class BudgetLineModel(BaseModel):
    """A line of a budget version (CHF a month; income negative)."""

    code: str
    amount: str
    basis: str


class BudgetVersionModel(BaseModel):
    """A budget version: from its effective date, as recorded at a time."""

    effective_date: date
    recorded_at: datetime
    reason: str
    total: str
    lines: list[BudgetLineModel]
    changed: list[str] | None = None
    """The lines this version changes; None: every line (a grant, or a change recorded before
    budget lines had timelines of their own)."""


class BudgetBasisModel(BudgetVersionModel):
    """A budget version in force during the month and the event that recorded it."""

    event: EventRefModel


class SupportPeriodModel(BaseModel):
    """A support period; `until` is the last supported day (None while it lasts)."""

    start: date
    until: date | None


class SegmentModel(BaseModel):
    """A run of supported days under one budget version: its pro-rata amount."""

    first_day: date
    last_day: date
    days: int
    monthly_total: str
    amount: str
    budget_event_version: int | None
    """The recorded version the segment's budget is dated by (the latest effective of those
    its lines come from)."""
    budget_event_versions: list[int | None] = []
    """Every recorded version a line of the segment's budget comes from (each line has a
    timeline of its own)."""


class LineShareModel(BaseModel):
    """A budget line's pro-rata share of the month."""

    code: str
    amount: str


class MonthAsKnown(BaseModel):
    """What a case was owed for a month as known at a time, and what it rests on."""

    case_id: UUID
    month: str
    known_at: datetime
    case_version: int
    amount: str
    supported_days: int
    days_in_month: int
    segments: list[SegmentModel]
    lines: list[LineShareModel]
    budgets: list[BudgetBasisModel]
    periods: list[SupportPeriodModel]
    rests_on: list[EventRefModel]


class LineDifferenceModel(BaseModel):
    """A budget line's share of the month before and after."""

    code: str
    before: str
    after: str
    difference: str


class MonthDiff(BaseModel):
    """What changed about a month between two knowledge times, and which events changed it."""

    case_id: UUID
    month: str
    known_at: datetime
    compared_to: datetime
    before: str
    after: str
    difference: str
    lines: list[LineDifferenceModel]
    caused_by: list[EventRefModel]
    answer_before: MonthAsKnown
    answer_after: MonthAsKnown


class CaseAsOf(BaseModel):
    """The state of a case as recorded up to a time, and its timeline up to then; no personal
    data (the household is counted, not named)."""

    case_id: UUID
    as_of: datetime
    version: int
    last_recorded_at: datetime
    phase: str
    social_region: str
    municipality_bfs: int
    opened_on: date
    household_size: int
    persons: int
    assessment: dict[str, Any] | None
    decision: dict[str, Any] | None
    support_periods: list[SupportPeriodModel]
    budget: BudgetVersionModel | None
    budget_versions: int
    goals: list[dict[str, Any]]
    measures: list[dict[str, Any]]
    last_review_on: date | None
    next_review_due: date | None
    handovers: list[dict[str, Any]]
    closure: dict[str, Any] | None
    reopenings: list[dict[str, Any]]
    timeline: list[TimelineEntry]


@router.get("/audit/cases/{case_id}", response_model=CaseAsOf, responses=PROBLEM_RESPONSES)
def case_as_of(
    auditor: Annotated[Consumer, Depends(auditor_in_scope)],
    request: Request,
    ctx: Context,
    case_id: UUID,
    as_of: Annotated[str, Query(description=AS_OF_HELP)],
) -> Response:
    """The state of a case as recorded up to `as_of`, with its timeline up to then."""
    service, moment = _service(ctx), _moment("as_of", as_of)
    case = service.case_as_of(case_id, moment)
    timeline = [
        _timeline_entry(entry) for entry in service.history(case_id)
        if entry.recorded_at <= moment
    ]
    state = CaseAsOf.model_validate({**StateAsOf.of(case, moment).as_dict(),
                                     "timeline": timeline})
    _log_read(ctx, auditor, case, ("case_state", "timeline"), request)
    return answer(state)


@router.get(
    "/audit/cases/{case_id}/months/{month}", response_model=MonthAsKnown,
    responses=PROBLEM_RESPONSES,
)
def month_as_known(
    auditor: Annotated[Consumer, Depends(auditor_in_scope)],
    request: Request,
    ctx: Context,
    case_id: UUID,
    month: Annotated[str, Path(description="The month, YYYY-MM.")],
    as_known_at: Annotated[str, Query(description=AS_OF_HELP)],
) -> Response:
    """What the case was owed for `month` as known at `as_known_at` (retroactive changes
    recorded until then included), the budget versions and events it rests on."""
    service, first = _service(ctx), _month(month)
    moment = _moment("as_known_at", as_known_at)
    case = service.case_as_of(case_id, moment)
    known = MonthAsKnown.model_validate(
        service.budget_as_known_at(case_id, first, moment).as_dict()
    )
    _log_read(ctx, auditor, case, ("budget_month",), request)
    return answer(known)


@router.get(
    "/audit/cases/{case_id}/months/{month}/diff", response_model=MonthDiff,
    responses=PROBLEM_RESPONSES,
)
def month_diff(
    auditor: Annotated[Consumer, Depends(auditor_in_scope)],
    request: Request,
    ctx: Context,
    case_id: UUID,
    month: Annotated[str, Path(description="The month, YYYY-MM.")],
    known_at: Annotated[str, Query(description=f"The earlier time. {AS_OF_HELP}")],
    compared_to: Annotated[str, Query(description=f"The later time. {AS_OF_HELP}")],
) -> Response:
    """What changed about `month` between what was known at `known_at` and at `compared_to`:
    the amount and each line before and after, and the events recorded in between that
    changed it."""
    service, first = _service(ctx), _month(month)
    earlier, later = _moment("known_at", known_at), _moment("compared_to", compared_to)
    case = service.case_as_of(case_id, max(earlier, later))
    result = MonthDiff.model_validate(
        service.diff_as_known(case_id, first, earlier, later).as_dict()
    )
    _log_read(ctx, auditor, case, ("budget_month_diff",), request)
    return answer(result)


def _log_read(
    ctx: ApiContext, auditor: Consumer, case: Case, fields: tuple[str, ...], request: Request
) -> None:
    """Append the auditor's read of the case to the access log, one entry per household
    member, before the answer leaves (no personal field is answered, but the case's data
    concerns them; docs/audit.md); if that fails, the answer is not sent."""
    for entry in case_read_entries(
        case, at=ctx.clock(), consumer=auditor.name, scope=str(auditor.scope), fields=fields,
        endpoint=endpoint(request),
    ):
        ctx.access_log.append(entry)


def _service(ctx: ApiContext) -> CaseService:
    if ctx.service is None:
        raise ProblemError(
            "service-unavailable", "the event store is not connected to this API instance"
        )
    return ctx.service


def _month(text: str) -> date:
    try:
        return parse_bounded_month(text)
    except ValueError as exc:
        raise invalid_parameter("month", "path", str(exc)) from None


def _moment(name: str, text: str) -> datetime:
    """An ISO date (the end of that day, Swiss time) or date-time (naive: Swiss time)."""
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise invalid_parameter(name, "query", str(exc)) from None


def _timeline_entry(entry: HistoryEntry) -> dict[str, Any]:
    total = entry.details.get("total")
    return {
        "version": entry.version,
        "event": entry.event,
        "recorded_at": entry.recorded_at,
        "effective_date": entry.effective_date,
        "actor": plain(entry.actor),
        "imported": entry.imported,
        "recorded_by": str(entry.recorded_by),
        "source": entry.source,
        "total": None if total is None else str(total),
    }

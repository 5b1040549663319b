"""Social regions: the reimbursement claims recorded on a case of the region, and the person's
statement of each (issue 15, points 2 and 3).

A claim is one `ReimbursementRecorded` of the case (the first computation of an advance, or
a correction of it), named by its application and `sequence` 1, 2, … in the order the case
recorded that application's claims, as `nervenbahn advances claims|statement` and the claims
topic (`ReimbursementClaim.sequence`) number them. The list answers every month's figures as known
when the claim was recorded and the corrections it made (amounts as strings with two
decimals, "1234.50": exact, no binary floating point); the statement is the page and CSV of
`nervenbahn.reimbursement_statement`, as the person receives it.

Read from the event store (the case as recorded), not a read model: the claims' months and
the person's name and address are in no read model, and the statement must show the figures
the case recorded. Scope as `regions`, by the region the case is in now: the claims are part of
the case file and follow it when it is handed over (the new region answers the person; the
region the claim was made for is still the one the fund pays and the one the canton's figures
count it in). A case of another region, or none, is the same 404;
an unknown sequence of a case in scope is a 404 naming it. Each read is appended to the
access log before it is answered, like every read of personal data: the page under
`STATEMENT_FIELDS` for the person it names (the one the advance was made for) and under
`FIGURES_FIELDS` for every other member of the household (the case's figures concern them,
their names are not on it), the CSV, which names no one, under `FIGURES_FIELDS` for everyone
(`statement_read_entries`); the list under `claims` (the CLI's `advances claims` logs the
same).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from domain.application.cases import CaseService
from domain.case import Case
from domain.errors import RuleViolationError
from domain.events import Claim, ClaimFigures, claims_of
from nervenbahn.api.answers import answer
from nervenbahn.api.context import ApiContext
from nervenbahn.api.guard import Authenticated, Context, endpoint, region_in_scope
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import ChfAmount
from nervenbahn.api.problems import PROBLEM_RESPONSES, ProblemError, not_found
from nervenbahn.audit.access_log import case_read_entries
from nervenbahn.bounds import MAX_INTEGER
from nervenbahn.reimbursement_statement import (
    Statement,
    render_statement_csv,
    render_statement_html,
    statement_for_claim,
    statement_read_entries,
)

__all__ = ["CLAIMS_FIELDS", "CaseClaims", "ClaimMonth", "RecordedClaim", "router"]

router = APIRouter(prefix="/v1/regions", tags=["social regions"])
Region = Annotated[str, Depends(region_in_scope)]
ClaimNumber = Annotated[int, Path(ge=1, le=MAX_INTEGER,
                               description="The claim's number among its application's claims "
                                           "on the case: 1 the claim, 2, … its corrections")]

CLAIMS_FIELDS = ("claims",)
"""What the list of claims shows (the access log's `fields`): figures, no name."""

Amount = ChfAmount


class ClaimMonth(BaseModel):
    """One month's figures (a correction: the difference to what was recorded before)."""

    month: str = Field(description="The month, YYYY-MM")
    paid: Amount = Field(description="What social assistance paid for the month's living costs")
    el: Amount = Field(description="The EL owed for the month")
    ipv_offset: Amount = Field(description="The premium reduction offset (ELV Art. 22 para. 5)")
    claim: Amount = Field(description="The social service's claim: min(paid, EL − offset)")
    surplus: Amount = Field(description="The person's: EL − offset − claim")


class RecordedClaim(BaseModel):
    """One recorded claim or correction of an advance."""

    sequence: int = Field(description="1, 2, … in the order the case recorded the claims of "
                                      "its application (1: the claim, then corrections)")
    kind: str = Field(description='"claim" (the first of its advance) or "correction"')
    application_id: UUID = Field(description="The EL application the advance was made for")
    recorded_on: str = Field(description="The day it was recorded (ISO date)")
    months: list[ClaimMonth] = Field(description="Every month as known when recorded")
    corrections: list[ClaimMonth] = Field(
        description="What this record changed per month (the first claim: all of it)")
    claim_total: Amount = Field(description="The claim this record adds (negative: returned)")
    surplus_total: Amount = Field(description="What the person gets with this record")
    ipv_offset_total: Amount = Field(description="The premium reduction this record offsets")
    paid_on: str | None = Field(
        default=None, description="The day the fund paid it (ISO date); null: not paid yet")
    paid_to_region: Amount | None = Field(
        default=None, description="What the fund paid the social region: max(claim_total, 0)")
    paid_to_person: Amount | None = Field(
        default=None, description="What the fund paid the person: max(surplus_total, 0)")
    payment_message_id: str | None = Field(
        default=None, description="The fund's payment file (pain.001 MsgId) that paid it; for "
        "a claim that paid nothing (totals 0 or negative) the id of the fund's mark instead")


class CaseClaims(BaseModel):
    """The claims recorded on a case, oldest first."""

    region_id: str
    case_id: UUID
    claims: list[RecordedClaim]


@router.get("/{region_id}/cases/{case_id}/claims", response_model=CaseClaims,
            responses=PROBLEM_RESPONSES)
def list_claims(
    region: Region, consumer: Authenticated, ctx: Context, case_id: UUID, request: Request,
) -> Response:
    """The reimbursement claims and corrections recorded on a case of the region, month by
    month; the read is recorded in the access log."""
    case = _case_in_region(ctx, region, case_id)
    recorded = claims_of(case)
    claims = CaseClaims(region_id=region, case_id=case.id, claims=[
        _recorded(_sequence(recorded, index), claim, recorded[:index])
        for index, claim in enumerate(recorded)])
    _log_read(ctx, consumer, case, CLAIMS_FIELDS, request)
    return answer(claims)


_STATEMENT_RESPONSES = {**PROBLEM_RESPONSES, 200: {
    "content": {"text/html": {"schema": {"type": "string"}}},
    "description": "The statement as one self-contained HTML page (German)"}}
_CSV_RESPONSES = {**PROBLEM_RESPONSES, 200: {
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "description": "The statement's figures per month, then a `total` row (no name)"}}


@router.get("/{region_id}/cases/{case_id}/claims/{application_id}/{sequence}/statement",
            response_class=Response, responses=_STATEMENT_RESPONSES)
def get_statement(
    region: Region, consumer: Authenticated, ctx: Context, case_id: UUID, application_id: UUID,
    sequence: ClaimNumber, request: Request,
) -> Response:
    """The person's statement of a recorded claim (or correction), as the HTML page
    `nervenbahn advances statement` writes; a read of personal data, recorded in the access
    log before it is answered."""
    statement = _read_statement(ctx, region, consumer, case_id, application_id, sequence,
                                request, names_shown=True)
    return Response(render_statement_html(statement), media_type="text/html; charset=utf-8")


@router.get("/{region_id}/cases/{case_id}/claims/{application_id}/{sequence}/statement.csv",
            response_class=Response, responses=_CSV_RESPONSES)
def get_statement_csv(
    region: Region, consumer: Authenticated, ctx: Context, case_id: UUID, application_id: UUID,
    sequence: ClaimNumber, request: Request,
) -> Response:
    """The statement's per-month figures as CSV; recorded in the access log like the page."""
    statement = _read_statement(ctx, region, consumer, case_id, application_id, sequence,
                                request, names_shown=False)
    return Response(render_statement_csv(statement), media_type="text/csv; charset=utf-8")


def _read_statement(ctx: ApiContext, region: str, consumer: Consumer, case_id: UUID,
                    application_id: UUID, sequence: int, request: Request, *,
                    names_shown: bool) -> Statement:
    """The statement of a claim of a case in `region`, its read appended to the access log;
    404 naming what is missing if the case recorded no such claim."""
    case = _case_in_region(ctx, region, case_id)
    try:
        statement = statement_for_claim(case, application_id, sequence)
    except RuleViolationError as exc:
        raise ProblemError("not-found", str(exc)) from exc
    for entry in statement_read_entries(  # what it shows of whom (the page names the person)
        case, statement, names_shown=names_shown, at=ctx.clock(), consumer=consumer.name,
        scope=str(consumer.scope), endpoint=endpoint(request),
    ):
        ctx.access_log.append(entry)
    return statement


def _sequence(recorded: list[Claim], index: int) -> int:
    """The number of claim `index` of the case among its application's claims (from 1)."""
    application = recorded[index].application_id
    return sum(c.application_id == application for c in recorded[:index + 1])


def _case_in_region(ctx: ApiContext, region: str, case_id: UUID) -> Case:
    """The case as recorded, if it is in `region` now; the one 404 otherwise (missing or
    another region's: no difference to see)."""
    case = _service(ctx).get_case(case_id)  # CaseNotFoundError: the one 404
    if case.social_region != region:
        raise not_found()
    return case


def _service(ctx: ApiContext) -> CaseService:
    if ctx.service is None:
        raise ProblemError(
            "service-unavailable", "the event store is not connected to this API instance")
    return ctx.service


def _recorded(number: int, claim: Claim, before: list[Claim]) -> RecordedClaim:
    first = not any(c.application_id == claim.application_id for c in before)
    return RecordedClaim(
        sequence=number, kind="claim" if first else "correction",
        application_id=claim.application_id, recorded_on=claim.recorded_on.isoformat(),
        months=[_month(m) for m in claim.months],
        corrections=[_month(m) for m in claim.corrections],
        claim_total=_chf(claim.claim_total), surplus_total=_chf(claim.surplus_total),
        ipv_offset_total=_chf(claim.ipv_offset_total),
        paid_on=None if claim.paid_on is None else claim.paid_on.isoformat(),
        paid_to_region=None if claim.paid_to_region is None else _chf(claim.paid_to_region),
        paid_to_person=None if claim.paid_to_person is None else _chf(claim.paid_to_person),
        payment_message_id=claim.payment_message_id)


def _month(figures: ClaimFigures) -> ClaimMonth:
    return ClaimMonth(month=f"{figures.month:%Y-%m}", paid=_chf(figures.paid),
                      el=_chf(figures.el), ipv_offset=_chf(figures.ipv_offset),
                      claim=_chf(figures.claim), surplus=_chf(figures.surplus))


def _chf(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _log_read(ctx: ApiContext, consumer: Consumer, case: Case, fields: tuple[str, ...],
              request: Request) -> None:
    """Append the read to the access log, one entry per person of the household, before the
    answer leaves; if that fails, nothing is answered."""
    for entry in case_read_entries(
        case, at=ctx.clock(), consumer=consumer.name, scope=str(consumer.scope),
        fields=fields, endpoint=endpoint(request),
    ):
        ctx.access_log.append(entry)

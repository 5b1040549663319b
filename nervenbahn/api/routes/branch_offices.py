"""Branch offices (Zweigstellen): the cases of their municipalities; the applicant on request.

The list carries no personal data. The detail decrypts the applicant, and the read is
appended to the access log before the answer leaves.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from domain.personal_data import ErasedPersonalData, PersonalData
from domain.reference import BranchOffice
from nervenbahn.api.answers import answer
from nervenbahn.api.context import ApiContext
from nervenbahn.api.guard import Authenticated, Context, endpoint, office_in_scope
from nervenbahn.api.keys import Consumer
from nervenbahn.api.models import (
    APPLICANT_FIELDS,
    Applicant,
    OfficeCaseDetail,
    OfficeCaseList,
    OfficeCaseSummary,
    Phase,
)
from nervenbahn.api.problems import PROBLEM_RESPONSES, not_found
from nervenbahn.api.readmodels import PageLimit, PageOffset, read_model
from nervenbahn.audit.access_log import AccessEntry
from projections.branch_office import OfficeCase, office_case, office_cases

__all__ = ["log_applicant_read", "router"]

router = APIRouter(prefix="/v1/branch-offices", tags=["branch offices"])
Office = Annotated[BranchOffice, Depends(office_in_scope)]


@router.get("/{office_id}/cases", response_model=OfficeCaseList, responses=PROBLEM_RESPONSES)
def list_cases(
    office: Office,
    ctx: Context,
    response: Response,
    phase: Phase | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> Response:
    """The cases of the office's municipalities, newest first, without personal data."""
    with read_model(ctx.branch_office_db, "branch_office", response) as db:
        cases = office_cases(db, office.municipalities, phase=phase, limit=limit, offset=offset)
    return answer(OfficeCaseList(
        office_id=office.id,
        limit=limit,
        offset=offset,
        cases=[OfficeCaseSummary.model_validate(_summary(ctx, case)) for case in cases],
    ), response)


@router.get(
    "/{office_id}/cases/{case_id}", response_model=OfficeCaseDetail, responses=PROBLEM_RESPONSES
)
def get_case(
    office: Office,
    consumer: Authenticated,
    ctx: Context,
    case_id: UUID,
    request: Request,
    response: Response,
) -> Response:
    """One case with the applicant's personal data; the read is recorded in the access log."""
    with read_model(ctx.branch_office_db, "branch_office", response) as db:
        case = office_case(db, office.municipalities, str(case_id))
    if case is None:
        raise not_found()
    person = ctx.vault.decrypt(case.applicant_sealed)
    detail = OfficeCaseDetail.model_validate(
        _summary(ctx, case)
        | {
            "social_region": case.social_region,
            "opened_on": case.opened_on,
            "applicant": _applicant(person),
        }
    )
    _log_read(ctx, consumer, case, request)
    return answer(detail, response)


def _summary(ctx: ApiContext, case: OfficeCase) -> dict[str, object]:
    municipality = ctx.reference.municipalities.get(case.municipality_bfs)
    return {
        "case_id": case.case_id,
        "municipality_bfs": case.municipality_bfs,
        "municipality": municipality.name if municipality else str(case.municipality_bfs),
        "phase": case.phase,
        "household_size": case.household_size,
        "support_since": case.support_since,
        "support_until": case.support_until,
    }


def _applicant(person: PersonalData | ErasedPersonalData) -> Applicant:
    plain = person.to_plain()
    return Applicant(erased=person.is_erased, **plain)


def _log_read(ctx: ApiContext, consumer: Consumer, case: OfficeCase, request: Request) -> None:
    log_applicant_read(ctx, consumer, request, case.case_id, case.applicant_person_id)


def log_applicant_read(
    ctx: ApiContext, consumer: Consumer, request: Request, record_id: str, person_id: str
) -> None:
    """Append a read of an applicant's data (`APPLICANT_FIELDS`) to the access log, under the
    id of the case (or benefit application) read; if that fails, the answer is not sent."""
    ctx.access_log.append(
        AccessEntry(
            at=ctx.clock(),
            consumer=consumer.name,
            scope=str(consumer.scope),
            case_id=record_id,
            person_id=person_id,
            fields=APPLICANT_FIELDS,
            endpoint=endpoint(request),
        )
    )

"""Branch offices (AKSO Zweigstellen): the benefit applications of their municipalities and
the tasks the fund delegated to them (issue 14, point 5).

As the office's cases (`nervenbahn.api.routes.branch_offices`): the key is the office's
(`office_in_scope`; another office's id answers 404 as an unknown one), the list carries no
personal data, the detail opens the applicant's seal and appends the read to the access log
before the answer leaves (the application id in the entry's `case_id`), and every answer
names its read model and how fresh it is. An application of another office answers 404,
exactly as one that does not exist. Days since receipt count to today in Swiss time.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from domain.case import SWISS_TIME
from domain.reference import BranchOffice
from nervenbahn.api.answers import answer
from nervenbahn.api.context import ApiContext
from nervenbahn.api.errors import ReadModelUnavailableError
from nervenbahn.api.guard import Authenticated, Context, office_in_scope
from nervenbahn.api.models import (
    Applicant,
    BenefitApplicationDetail,
    BenefitApplicationList,
    BenefitApplicationSummary,
    BenefitKindName,
    BenefitStage,
    DelegationList,
    DelegationView,
)
from nervenbahn.api.problems import PROBLEM_RESPONSES, not_found
from nervenbahn.api.readmodels import PageLimit, PageOffset, read_model
from nervenbahn.api.routes.branch_offices import log_applicant_read
from projections.benefit_applications import (
    DocumentRequestRow,
    OfficeApplication,
    days_since_receipt,
    office_application,
    office_applications,
    office_delegations,
)
from projections.errors import ReadModelUnreadableError
from projections.storage import ReadModelTarget

__all__ = ["router"]

router = APIRouter(prefix="/v1/branch-offices", tags=["branch offices"])
Office = Annotated[BranchOffice, Depends(office_in_scope)]
_NAME = "benefit_applications"


@router.get(
    "/{office_id}/benefit-applications",
    response_model=BenefitApplicationList,
    responses=PROBLEM_RESPONSES,
)
def list_applications(
    office: Office,
    ctx: Context,
    response: Response,
    stage: BenefitStage | None = None,
    kind: BenefitKindName | None = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> Response:
    """The benefit applications of the office's municipalities, newest received first,
    without personal data."""
    with read_model(_target(ctx), _NAME, response) as db:
        found = office_applications(db, office.id, stage=stage, kind=kind, limit=limit,
                                    offset=offset)
    today = _today(ctx)
    return answer(BenefitApplicationList(
        office_id=office.id, today=today, limit=limit, offset=offset,
        applications=[BenefitApplicationSummary.model_validate(application_fields(
            ctx, a, today)) for a in found],
    ), response)


@router.get(
    "/{office_id}/benefit-applications/{application_id}",
    response_model=BenefitApplicationDetail,
    responses=PROBLEM_RESPONSES,
)
def get_application(
    office: Office,
    consumer: Authenticated,
    ctx: Context,
    application_id: UUID,
    request: Request,
    response: Response,
) -> Response:
    """One application with the applicant's personal data; the read is recorded in the
    access log."""
    with read_model(_target(ctx), _NAME, response) as db:
        application = office_application(db, office.id, str(application_id))
    if application is None:
        raise not_found()
    person = ctx.vault.decrypt(application.applicant_sealed)
    detail = BenefitApplicationDetail.model_validate(
        application_fields(ctx, application, _today(ctx))
        | {
            "documents_present": application.documents_present,
            "document_requests": [_request(r) for r in application.requests],
            "applicant": Applicant(erased=person.is_erased, **person.to_plain()),
        }
    )
    log_applicant_read(ctx, consumer, request, application.application_id,
                       application.applicant_person_id)
    return answer(detail, response)


@router.get(
    "/{office_id}/delegations", response_model=DelegationList, responses=PROBLEM_RESPONSES
)
def list_delegations(office: Office, ctx: Context, response: Response) -> Response:
    """The tasks the fund delegated to the office, their periods and status today, and the
    forwarded applications a live one lets the office complete."""
    today = _today(ctx)
    with read_model(_target(ctx), _NAME, response) as db:
        found = office_delegations(db, office.id, today)
    return answer(DelegationList(
        office_id=office.id, today=today,
        delegations=[
            DelegationView.model_validate({
                "delegation_id": d.delegation_id, "task": d.task, "valid_from": d.valid_from,
                "valid_until": d.valid_until, "revoked_on": d.revoked_on, "status": d.status,
                "open_tasks": [{"application_id": t.application_id, "task": t.task,
                                "missing_documents": t.missing} for t in d.open_tasks],
            })
            for d in found
        ],
    ), response)


def application_fields(
    ctx: ApiContext, application: OfficeApplication, today: date
) -> dict[str, object]:
    """An application's fields without personal data (the list's, and the detail's base)."""
    municipality = ctx.reference.municipalities.get(application.municipality_bfs)
    return {
        "application_id": application.application_id,
        "kind": application.kind,
        "municipality_bfs": application.municipality_bfs,
        "municipality": municipality.name if municipality else str(application.municipality_bfs),
        "stage": application.stage,
        "received_on": application.received_on,
        "days_since_receipt": days_since_receipt(application, today),
        "checked": application.checked,
        "missing_documents": application.missing,
        "open_document_requests": [_request(r) for r in application.open_requests],
        "forwarded_on": application.forwarded_on,
        "decision": _decision(application),
    }


def _decision(application: OfficeApplication) -> dict[str, object] | None:
    if application.decided_on is None:
        return None
    return {
        "outcome": "granted" if application.granted_from is not None else "refused",
        "decided_on": application.decided_on,
        "granted_from": application.granted_from,
        "last_month": application.last_month,
        "refusal_reason": application.refusal_reason,
    }


def _request(request: DocumentRequestRow) -> dict[str, object]:
    return {"documents": request.documents, "requested_on": request.requested_on,
            "due_on": request.due_on, "open": request.open}


def _target(ctx: ApiContext) -> ReadModelTarget:
    """The read model, brought up to date first where no consumer does it yet."""
    if ctx.benefit_applications_db is None:
        raise ReadModelUnavailableError(_NAME, "is not configured")
    if ctx.refresh_benefit_applications is not None:
        try:
            ctx.refresh_benefit_applications()
        except ReadModelUnreadableError as exc:  # locked longer than the read timeout
            raise ReadModelUnavailableError(_NAME, exc.reason) from exc
    return ctx.benefit_applications_db


def _today(ctx: ApiContext) -> date:
    return ctx.clock().astimezone(SWISS_TIME).date()



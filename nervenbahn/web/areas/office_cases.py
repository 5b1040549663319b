"""The social-assistance cases of the branch office's municipalities (issue 16, point 2).

The list is the branch offices' read model as `GET /v1/branch-offices/{office}/cases` answers
it, without personal data; a case's page opens the applicant's seal and appends the read to
the access log first (`APPLICANT_FIELDS` under the case's id). A case of another office's
municipalities is the 404 page, as a missing one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.web.actions import log_read, read_model
from nervenbahn.web.auth import PageNotFound, Web, WebState
from nervenbahn.web.rendering import render
from projections.branch_office import OfficeCase, office_case, office_cases

from .office_shared import PHASES, Office, branch_office, id_of

__all__ = ["router"]

router = APIRouter(prefix="/web/office/{office_id}", include_in_schema=False)

_LIST_LIMIT = 200


@router.get("/cases")
def cases(request: Request, office_id: str, web: Web, session: Office) -> Response:
    """The cases of the office's municipalities, newest first, without personal data."""
    office = branch_office(web, office_id)
    with read_model(web, "branch_office") as db:
        found = office_cases(db, office.municipalities, limit=_LIST_LIMIT)
    return render(request, "office/cases.html", session, office_id=office_id,
                  rows=[_summary(web, c) for c in found], limit=_LIST_LIMIT)


@router.get("/cases/{case_id}")
def case(request: Request, office_id: str, case_id: str, web: Web, session: Office
         ) -> Response:
    """One case with its applicant; the read is logged before the page is answered."""
    office = branch_office(web, office_id)
    with read_model(web, "branch_office") as db:
        found = office_case(db, office.municipalities, id_of(case_id))
    if found is None:
        raise PageNotFound
    person = web.context.vault.decrypt(found.applicant_sealed)
    log_read(web, session, request, record_id=found.case_id,
             person_ids=[found.applicant_person_id], fields=APPLICANT_FIELDS)
    region = web.context.reference.regions.get(found.social_region)
    return render(request, "office/case.html", session, office_id=office_id,
                  c=_summary(web, found), applicant=person.to_plain(),
                  erased=person.is_erased, opened_on=found.opened_on,
                  region=region.name if region else found.social_region)


def _summary(web: WebState, c: OfficeCase) -> dict[str, Any]:
    names = web.context.reference.municipalities
    return {
        "id": c.case_id, "short_id": c.case_id[:8],
        "municipality": names[c.municipality_bfs].name if c.municipality_bfs in names
        else str(c.municipality_bfs),
        "phase": PHASES.get(c.phase, c.phase), "household_size": c.household_size,
        "support_since": c.support_since, "support_until": c.support_until,
    }

"""The caseworker's and supervisor's reading pages of their social region (`/web/region/…`).

- `work`: the work list (`projections.region.work_page`, as `GET /v1/regions/{r}/worklist`):
  what is due or overdue, and the open proposals of connected registers and of the fund, each
  with a link to accept it (the command page that acts on it) and one to dismiss it.
- `cases`: the region's cases, without personal data, by phase, a page at a time.
- `cases/{case_id}`: one case as `nervenbahn case show` and `case history` show it (the
  household's personal data, so the read goes to the access log first); see
  `nervenbahn.web.areas.region_case`.

The command pages the links lead to (`cases/{case_id}/do/{command}`, `cases/new`) are the
`region_commands` area's.
"""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from domain.case import SWISS_TIME, Case
from domain.errors import CaseNotFoundError
from nervenbahn.accounts import WebSession
from nervenbahn.web.actions import log_read, read_model
from nervenbahn.web.areas.region_case import CASE_PAGE_FIELDS, case_page, persons_of
from nervenbahn.web.auth import PageNotFound, Web, WebState, region_in_scope
from nervenbahn.web.i18n import N_
from nervenbahn.web.labels import PHASES
from nervenbahn.web.rendering import render
from projections.region import region_cases, work_page

__all__ = ["KIND_LABELS", "PAGE_SIZE", "PROPOSAL_ACTIONS", "router"]

router = APIRouter(prefix="/web/region/{region_id}", include_in_schema=False)
InRegion = Annotated[WebSession, Depends(region_in_scope)]

PAGE_SIZE = 50
"""Cases on one page of the list."""

KIND_LABELS = {
    "assessment": N_("Initial assessment (Erstabklärung)"),
    "review": N_("Periodic review"),
    "goal": N_("Goal due (Zielvereinbarung)"),
    "handover_proposal": N_("Proposal: hand the case over (move)"),
    "closure_proposal": N_("Proposal: close the case"),
    "budget_proposal": N_("Proposal: count EL as income (budget change)"),
    "advance": N_("Advance in view of EL"),
}
"""What a work-list item asks for."""

PROPOSAL_ACTIONS = {
    "handover": "hand_over_case", "closure": "close_case", "budget_change": "change_budget",
    "handover_proposal": "hand_over_case", "closure_proposal": "close_case",
    "budget_proposal": "change_budget",
}
"""The command that accepts a proposal, by the proposal's kind (or its work-list kind)."""


@router.get("/work")
def work(
    request: Request, region_id: str, session: InRegion, web: Web, page: str = "1"
) -> Response:
    """The region's work list, a page at a time: due and overdue items, open proposals to
    accept or dismiss."""
    today = web.now().astimezone(SWISS_TIME).date()
    number = _page_number(page)
    first = (number - 1) * PAGE_SIZE
    with read_model(web, "region") as db:
        items, total = work_page(db, region_id, today, limit=PAGE_SIZE, offset=first)
    return render(request, "region/work.html", session, region_id=region_id, today=today,
                  items=items, total=total, page=number, more=total > first + PAGE_SIZE,
                  kinds=KIND_LABELS, accept=PROPOSAL_ACTIONS)


def _page_number(page: str) -> int:
    """A page number from the query (1 for anything else); at most 9 digits, SQLite's range."""
    return max(int(page), 1) if page.isdigit() and len(page) <= 9 else 1


@router.get("/cases")
def cases(
    request: Request, region_id: str, session: InRegion, web: Web, phase: str = "",
    page: str = "1",
) -> Response:
    """The region's cases (no personal data), by phase, a page at a time."""
    chosen = phase if phase in PHASES else ""
    number = _page_number(page)
    with read_model(web, "region") as db:
        found = region_cases(db, region_id, phase=chosen or None, limit=PAGE_SIZE + 1,
                             offset=(number - 1) * PAGE_SIZE)
    return render(request, "region/cases.html", session, region_id=region_id,
                  cases=found[:PAGE_SIZE], more=len(found) > PAGE_SIZE, page=number,
                  phase=chosen, phases=PHASES)


@router.get("/cases/{case_id}")
def case(
    request: Request, region_id: str, case_id: str, session: InRegion, web: Web,
    recorded: str = "",
) -> Response:
    """One case of the region, with its household: the read is logged before it is shown.
    `recorded` (event names, comma-separated) is what a command page just recorded."""
    found = _case_in_region(web, region_id, case_id)
    page = case_page(found, web, region_id)
    log_read(web, session, request, record_id=str(found.id),
             person_ids=[str(person.person_id) for person in persons_of(found)],
             fields=CASE_PAGE_FIELDS)
    return render(request, "region/case.html", session, region_id=region_id, page=page,
                  accept=PROPOSAL_ACTIONS,
                  proposal_kinds=_PROPOSAL_LABELS, recorded=_event_names(recorded))


_PROPOSAL_LABELS = {kind: KIND_LABELS[f"{kind}_proposal"] for kind in ("handover", "closure")}
_PROPOSAL_LABELS["budget_change"] = KIND_LABELS["budget_proposal"]
_EVENT_NAME = re.compile(r"[A-Z][A-Za-z]{2,40}")


def _event_names(recorded: str) -> list[str]:
    """The event names of `?recorded=` (anything else in it is dropped)."""
    return [name for name in recorded.split(",")[:10] if _EVENT_NAME.fullmatch(name)]


def _case_in_region(web: WebState, region_id: str, case_id: str) -> Case:
    """The case if it is one of the region's now; the 404 page otherwise (also for an id that
    is no UUID; and when this instance has no case store, which `serve` always connects)."""
    service = web.context.service
    try:
        uid = UUID(case_id)
    except ValueError:
        raise PageNotFound from None
    if service is None:
        raise PageNotFound
    try:
        found = service.get_case(uid)
    except CaseNotFoundError:
        raise PageNotFound from None
    if found.social_region != region_id:
        raise PageNotFound
    return found

"""The branch office's benefit applications: today's list, a new application, the detail
with the desk's actions (issue 16, point 2).

The list is the benefit applications' read model as `GET /v1/branch-offices/{office}/
benefit-applications` answers it (no personal data) beside the office's delegations' open
tasks. The detail opens the applicant's seal and appends the read to the access log first (as
the API's detail, `APPLICANT_FIELDS` under the application's id). Every action is a benefit
command recorded as the signed-in user (`actions.record_benefit`): whatever the domain refuses
is shown next to the field it names, with the page again (422), nothing recorded. An action
on a forwarded application is offered under the fund's active delegation for its task; the
domain decides whether it holds.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from domain.errors import DomainError
from domain.reference import load_benefit_checklists
from nervenbahn.accounts import WebSession
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.web.actions import log_read, read_model, record_benefit
from nervenbahn.web.auth import Form, PageNotFound, Web, WebState
from nervenbahn.web.forms import Refusal, refusal_of
from nervenbahn.web.rendering import render
from projections.benefit_applications import (
    OfficeApplication,
    OfficeDelegation,
    days_since_receipt,
    office_application,
    office_applications,
    office_delegations,
)
from projections.branch_office import OfficeCase, office_case

from .office_shared import (
    DELEGATION_STATUSES,
    DOCUMENTS,
    EVENTS,
    KINDS,
    STAGES,
    TASKS,
    WITHDRAWAL_REASONS,
    Office,
    branch_office,
    day_of,
    id_of,
    labelled,
    recorded_events,
    today,
)

__all__ = ["router"]

router = APIRouter(prefix="/web/office/{office_id}", include_in_schema=False)

_LIST_LIMIT = 200
_APPLICANT = ("given_name", "family_name", "ahvn13", "birth_date", "street", "postal_code",
              "town")
_NEW_FIELDS = ("kind", "municipality_bfs", *_APPLICANT, "received_on")
_PERSON = ("case", "person_id")
"""A case's applicant's form: the case, and the person id the application takes over."""
_DEFAULT_DUE_DAYS = 30
"""The due date a document request form proposes (the domain decides what it accepts)."""


# --- the list ----------------------------------------------------------------------------------


@router.get("/applications")
def applications(request: Request, office_id: str, web: Web, session: Office) -> Response:
    """Today's applications of the office's municipalities, without personal data."""
    day = today(web)
    with read_model(web, "benefit_applications") as db:
        found = office_applications(db, office_id, limit=_LIST_LIMIT)
        delegations = office_delegations(db, office_id, day)
    tasks: dict[str, list[str]] = {}
    for delegation in delegations:
        for task in delegation.open_tasks:
            tasks.setdefault(task.application_id, []).append(TASKS[task.task])
    rows = [_summary(web, a, day) | {"delegated": tasks.get(a.application_id, [])}
            for a in found]
    return render(request, "office/applications.html", session, rows=rows, today=day,
                  delegations=[_delegation(d) for d in delegations], office_id=office_id,
                  limit=_LIST_LIMIT)


# --- a new application ---------------------------------------------------------------------


@router.get("/applications/new")
def new_application(request: Request, office_id: str, web: Web, session: Office,
                    case: str = "") -> Response:
    """The form of a new application (received today unless said otherwise); with `case`
    (one of the office's social-assistance cases), for the case's applicant: their data
    filled in (the read logged first) and their person id carried along."""
    values = {"received_on": today(web).isoformat(), "kind": "el_ahv"}
    if case:
        found = _case_of(web, office_id, case)
        person = web.context.vault.decrypt(found.applicant_sealed)
        log_read(web, session, request, record_id=found.case_id,
                 person_ids=[found.applicant_person_id], fields=APPLICANT_FIELDS)
        plain = {} if person.is_erased else person.to_plain()
        values |= {name: plain[name] for name in _APPLICANT if name in plain}
        values |= {"municipality_bfs": str(found.municipality_bfs), "case": found.case_id,
                   "person_id": found.applicant_person_id}
    return _new_form(request, web, session, office_id, values)


@router.post("/applications/new")
def receive_application(
    request: Request, office_id: str, web: Web, session: Office, form: Form
) -> Response:
    """Record the application received; its page, or the form with the refusal. With a case
    (`case`, `person_id`: the form of a case's applicant), the application is the case
    applicant's: the person id must be the applicant's of one of the office's cases (the 404
    page otherwise, nothing recorded)."""
    values = {name: str(form.get(name, "")).strip() for name in (*_NEW_FIELDS, *_PERSON)}
    bfs = values["municipality_bfs"]
    applicant = {name: values[name] for name in _APPLICANT if values[name]}
    if values["case"] or values["person_id"]:
        found = _case_of(web, office_id, values["case"])
        if found.applicant_person_id != values["person_id"]:
            raise PageNotFound
        applicant["person_id"] = found.applicant_person_id
    try:
        result = record_benefit(web, session, "receive_application", {
            "kind": values["kind"], "municipality_bfs": int(bfs) if bfs.isdigit() else bfs,
            "applicant": applicant, "received_on": values["received_on"]})
    except DomainError as exc:
        return _new_form(request, web, session, office_id, values,
                         refusal_of(exc, _NEW_FIELDS), status=422)
    return _recorded(office_id, str(result.id), result.events)


def _case_of(web: WebState, office_id: str, case_id: str) -> OfficeCase:
    """One of the office's municipalities' cases; the 404 page for a malformed id, a missing
    case and another office's alike."""
    wanted = id_of(case_id)
    with read_model(web, "branch_office") as db:
        found = office_case(db, branch_office(web, office_id).municipalities, wanted)
    if found is None:
        raise PageNotFound
    return found


def _new_form(request: Request, web: WebState, session: WebSession, office_id: str,
              values: dict[str, str], errors: Refusal | None = None, status: int = 200
              ) -> Response:
    names = web.context.reference.municipalities
    municipalities = sorted(
        ((str(bfs), names[bfs].name if bfs in names else str(bfs))
         for bfs in branch_office(web, office_id).municipalities), key=lambda m: m[1])
    return render(request, "office/application_new.html", session, status=status,
                  values=values, errors=errors, kinds=list(KINDS.items()),
                  municipalities=municipalities, office_id=office_id)


# --- the detail and the desk's actions -----------------------------------------------------


@router.get("/applications/{application_id}")
def application(request: Request, office_id: str, application_id: str, web: Web,
                session: Office) -> Response:
    """One application with its applicant (the read logged first) and the desk's forms."""
    recorded = recorded_events(request.query_params.get("recorded"))
    return _detail(request, web, session, office_id, application_id, recorded=recorded)


@router.post("/applications/{application_id}/check")
def check(request: Request, office_id: str, application_id: str, web: Web, session: Office,
          form: Form) -> Response:
    """Check the application for completeness against its kind's checklist."""
    return _act(request, web, session, office_id, application_id, form, "check_completeness",
                {"documents_present": form.getlist("documents_present")})


@router.post("/applications/{application_id}/request")
def request_documents(request: Request, office_id: str, application_id: str, web: Web,
                      session: Office, form: Form) -> Response:
    """Ask the applicant for missing documents by a due date."""
    return _act(request, web, session, office_id, application_id, form, "request_documents",
                {"documents": form.getlist("documents"), "due_on": day_of(form, "due_on")})


@router.post("/applications/{application_id}/received")
def documents_received(request: Request, office_id: str, application_id: str, web: Web,
                       session: Office, form: Form) -> Response:
    """Record documents the applicant handed in later."""
    return _act(request, web, session, office_id, application_id, form,
                "record_documents_received",
                {"documents": form.getlist("documents"),
                 "received_on": day_of(form, "received_on")})


@router.post("/applications/{application_id}/forward")
def forward(request: Request, office_id: str, application_id: str, web: Web, session: Office,
            form: Form) -> Response:
    """Forward the application to the fund (with documents missing only with a reason)."""
    return _act(request, web, session, office_id, application_id, form, "forward_application",
                {"override_reason": str(form.get("override_reason", "")).strip()})


@router.post("/applications/{application_id}/withdraw")
def withdraw(request: Request, office_id: str, application_id: str, web: Web,
             session: Office, form: Form) -> Response:
    """Record that the applicant withdrew the application."""
    return _act(request, web, session, office_id, application_id, form, "withdraw_application",
                {"reason": str(form.get("reason", ""))})


_DELEGABLE = {"check_completeness", "request_documents", "record_documents_received"}


def _act(request: Request, web: WebState, session: WebSession, office_id: str,
         application_id: str, form: FormData, name: str, data: dict[str, Any]) -> Response:
    """Record command `name` on the office's application (another office's: the 404 page,
    nothing recorded); the page again with the refusal next to its field if refused."""
    found = _application(web, office_id, application_id)
    if name in _DELEGABLE:
        data["delegation_id"] = str(form.get("delegation_id", ""))
    try:
        result = record_benefit(web, session, name,
                                {"application_id": found.application_id, **data})
    except DomainError as exc:
        values = {key: value for key, value in data.items() if key != "delegation_id"}
        return _detail(request, web, session, office_id, application_id, status=422,
                       failed=name, errors=refusal_of(exc, [*data, "application_id"]),
                       values=values)
    return _recorded(office_id, found.application_id, result.events)


def _detail(request: Request, web: WebState, session: WebSession, office_id: str,
            application_id: str, *, status: int = 200, failed: str = "",
            errors: Refusal | None = None, values: dict[str, Any] | None = None,
            recorded: list[str] | None = None) -> Response:
    day = today(web)
    found = _application(web, office_id, application_id)
    with read_model(web, "benefit_applications") as db:
        delegations = office_delegations(db, office_id, day)
    person = web.context.vault.decrypt(found.applicant_sealed)
    log_read(web, session, request, record_id=found.application_id,
             person_ids=[found.applicant_person_id], fields=APPLICANT_FIELDS)
    checklist = [d.code for d in load_benefit_checklists().get(found.kind, ())]
    return render(
        request, "office/application.html", session, status=status, office_id=office_id,
        a=_summary(web, found, day), applicant=person.to_plain(), erased=person.is_erased,
        present=labelled(found.documents_present, DOCUMENTS),
        checklist=labelled(checklist, DOCUMENTS),
        missing_choices=labelled(found.missing, DOCUMENTS),
        requests=[_request(r, day) for r in found.requests],
        timeline=_timeline(web, found.application_id),
        under=_delegations_by_task(delegations, found.stage),
        reasons=list(WITHDRAWAL_REASONS.items()),
        due_default=(day + timedelta(days=_DEFAULT_DUE_DAYS)).isoformat(),
        today_iso=day.isoformat(), failed=failed, errors=errors, values=values or {},
        recorded=[EVENTS[name] for name in recorded or []],
    )


def _application(web: WebState, office_id: str, application_id: str) -> OfficeApplication:
    """The office's application; the 404 page for a malformed id, a missing one and
    another office's alike."""
    wanted = id_of(application_id)
    with read_model(web, "benefit_applications") as db:
        found = office_application(db, office_id, wanted)
    if found is None:
        raise PageNotFound
    return found


def _recorded(office_id: str, application_id: str, events: tuple[str, ...]) -> Response:
    return RedirectResponse(f"/web/office/{office_id}/applications/{application_id}"
                            f"?recorded={','.join(events)}", 303)


def _summary(web: WebState, a: OfficeApplication, day: date) -> dict[str, Any]:
    """An application's fields without personal data (the list's row, the detail's head)."""
    names = web.context.reference.municipalities
    return {
        "id": a.application_id, "short_id": a.application_id[:8], "kind": a.kind,
        "kind_label": KINDS.get(a.kind, a.kind), "stage": a.stage,
        "stage_label": STAGES.get(a.stage, a.stage),
        "municipality": names[a.municipality_bfs].name if a.municipality_bfs in names
        else str(a.municipality_bfs),
        "received_on": a.received_on, "days": days_since_receipt(a, day),
        "checked": a.checked, "missing": labelled(a.missing, DOCUMENTS),
        "open_requests": [_request(r, day) for r in a.open_requests],
        "forwarded_on": a.forwarded_on, "decided_on": a.decided_on,
        "granted_from": a.granted_from, "refusal_reason": a.refusal_reason,
        "last_month": a.last_month,
    }


def _request(r: Any, day: date) -> dict[str, Any]:
    return {"documents": labelled(r.documents, DOCUMENTS), "open": labelled(r.open, DOCUMENTS),
            "requested_on": r.requested_on, "due_on": r.due_on,
            "overdue": bool(r.open) and r.due_on < day}


def _delegation(d: OfficeDelegation) -> dict[str, Any]:
    return {"id": d.delegation_id, "task": TASKS.get(d.task, d.task),
            "valid_from": d.valid_from, "valid_until": d.valid_until,
            "revoked_on": d.revoked_on, "status": DELEGATION_STATUSES.get(d.status, d.status)}


def _delegations_by_task(delegations: list[OfficeDelegation], stage: str
                         ) -> dict[str, list[dict[str, Any]]]:
    """The active delegations a forwarded application's forms are offered under, by task
    (the forms of an application still at the office need none)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    if stage != "forwarded":
        return by_task
    for d in delegations:
        if d.status == "active":
            by_task.setdefault(d.task, []).append(_delegation(d))
    return by_task


def _timeline(web: WebState, application_id: str) -> list[dict[str, Any]]:
    """What was recorded on the application, oldest first (no personal data: the applicant
    of `ApplicationReceived` is not shown)."""
    if web.context.benefits is None:
        return []
    events: list[Any] = list(web.context.benefits().events.get(UUID(application_id)))
    return [{"at": e.timestamp, "what": EVENTS.get(type(e).__name__, type(e).__name__),
             "by": e.actor.user_id, "organisation": e.actor.organisation,
             "recorded_by": str(e.recorded_by),
             "delegation": getattr(e, "delegation_id", None)} for e in events]

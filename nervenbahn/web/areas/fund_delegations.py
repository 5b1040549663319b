"""The fund officer's delegations (role `fund_officer`): the tasks the fund delegated to the
branch offices, granting and revoking them, and what the offices did under them.

- `/web/fund/delegations`: every office's delegations with their status today (the branch
  offices' read model, as `GET /v1/branch-offices/{office}/delegations` for each office), the
  form to delegate a task (as `nervenbahn benefits delegate`), and the actions done under
  any delegation (as `nervenbahn benefits delegated-actions`: events, offices and staff, no
  applicant).
- `/web/fund/delegations/{id}`: one delegation, the applications it leaves open to its
  office, what was done under it, and, while it is active or not yet valid, the form to take
  it back (as `benefits revoke-delegation`).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from domain.application.benefits import DelegatedAction
from domain.errors import DomainError
from nervenbahn.accounts import WebSession
from nervenbahn.web.actions import read_model, record_benefit
from nervenbahn.web.areas.fund import (
    EVENT_LABELS,
    Form,
    Fund,
    Web,
    form_text,
    recorded_labels,
    recorded_redirect,
    swiss_today,
)
from nervenbahn.web.auth import PageNotFound, WebState
from nervenbahn.web.forms import Refusal, refusal_of
from nervenbahn.web.i18n import N_
from nervenbahn.web.rendering import render
from projections.benefit_applications import OfficeDelegation, office_delegations

__all__ = ["STATUS_LABELS", "TASK_LABELS", "router"]

router = APIRouter(prefix="/web/fund/delegations", include_in_schema=False)

TASK_LABELS = {
    "completeness_check": N_("completeness check"), "document_request": N_("document request"),
    "documents_received": N_("recording documents received"),
}
"""The fund's tasks it may delegate (`domain.benefit_commands.DelegableTask`)."""
STATUS_LABELS = {
    "active": N_("active"), "not_yet_valid": N_("not yet valid"), "expired": N_("expired"),
    "revoked": N_("revoked"),
}
_GRANT_FIELDS = ("branch_office", "task", "valid_from", "valid_until")
_REVOCABLE = ("active", "not_yet_valid")


@router.get("")
def delegations(request: Request, web: Web, session: Fund) -> Response:
    """The delegations of every office, the form to delegate a task, the delegated actions."""
    return _overview(request, web, session)


@router.post("")
def delegate(request: Request, web: Web, session: Fund, form: Form) -> Response:
    """Delegate a task to a branch office for a period."""
    data = {name: form_text(form, name) for name in _GRANT_FIELDS}
    try:
        result = record_benefit(web, session, "grant_delegation", data)
    except DomainError as exc:
        return _overview(request, web, session, form=form, status=422,
                         errors=refusal_of(exc, _GRANT_FIELDS))
    return recorded_redirect(f"/web/fund/delegations/{result.id}", result.events)


@router.get("/{delegation_id}")
def delegation(request: Request, web: Web, session: Fund, delegation_id: str) -> Response:
    """One delegation, its open tasks, what was done under it, the form to revoke it."""
    return _detail(request, web, session, _delegation(web, delegation_id))


@router.post("/{delegation_id}/revoke")
def revoke(request: Request, web: Web, session: Fund, form: Form, delegation_id: str
           ) -> Response:
    """Take a delegated task back before its period ends."""
    found = _delegation(web, delegation_id)
    data = {"delegation_id": found.delegation_id, "reason": form_text(form, "reason")}
    try:
        result = record_benefit(web, session, "revoke_delegation", data)
    except DomainError as exc:
        return _detail(request, web, session, found, form=form, status=422,
                       errors=refusal_of(exc, ("reason",)))
    return recorded_redirect(f"/web/fund/delegations/{found.delegation_id}", result.events)


# --- helpers -----------------------------------------------------------------------------------


def _overview(
    request: Request, web: WebState, session: WebSession, *, form: FormData | None = None,
    status: int = 200, errors: Refusal | None = None,
) -> Response:
    today = swiss_today(web)
    with read_model(web, "benefit_applications") as db:
        found = [d for office in sorted(web.context.branch_offices)
                 for d in office_delegations(db, office, today)]
    found.sort(key=lambda d: (d.valid_from, d.branch_office, d.delegation_id), reverse=True)
    return render(
        request, "fund/delegations.html", session, status=status, delegations=found,
        offices=_offices(web), tasks=TASK_LABELS, statuses=STATUS_LABELS,
        actions=_actions(web, None), events=EVENT_LABELS, errors=errors,
        values={k: str(v) for k, v in form.items()} if form else {"valid_from": str(today)},
    )


def _detail(
    request: Request, web: WebState, session: WebSession, found: OfficeDelegation, *,
    form: FormData | None = None, status: int = 200, errors: Refusal | None = None,
) -> Response:
    return render(
        request, "fund/delegation.html", session, status=status, delegation=found,
        offices=_offices(web), tasks=TASK_LABELS, statuses=STATUS_LABELS,
        revocable=found.status in _REVOCABLE, actions=_actions(web, found.delegation_id),
        events=EVENT_LABELS, errors=errors, recorded=recorded_labels(request),
        reason=form_text(form, "reason") if form else "",
    )


def _delegation(web: WebState, delegation_id: str) -> OfficeDelegation:
    """The delegation of that id (of any office); PageNotFound if there is none (also for a
    malformed id)."""
    try:
        wanted = str(UUID(delegation_id))
    except ValueError:
        raise PageNotFound from None
    today = swiss_today(web)
    with read_model(web, "benefit_applications") as db:
        for office in sorted(web.context.branch_offices):
            for found in office_delegations(db, office, today):
                if found.delegation_id == wanted:
                    return found
    raise PageNotFound


def _actions(web: WebState, delegation_id: str | None) -> list[DelegatedAction] | None:
    """What was done under the delegations (under one); None without the benefits store.
    Read from every event of the benefits store, so kept until the store records more."""
    if web.context.benefits is None:
        return None
    benefits = web.context.benefits()
    wanted = UUID(delegation_id) if delegation_id else None
    return web.memo.get(
        ("delegated-actions", delegation_id), benefits.recorder.max_notification_id(),
        lambda: sorted(benefits.delegated_actions(wanted), key=lambda a: a.recorded_at,
                       reverse=True))


def _offices(web: WebState) -> dict[str, str]:
    return {office.id: office.name for office in
            sorted(web.context.branch_offices.values(), key=lambda o: o.name)}

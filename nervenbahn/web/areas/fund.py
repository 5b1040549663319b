"""The compensation fund's officer (role `fund_officer`): the applications the branch offices
forwarded to the fund, its decisions on them, and the tasks it delegates to the offices.

- `/web/fund/applications` (home): the forwarded applications of every office (the branch
  offices' read model, as `nervenbahn benefits list` shows a fund officer), by stage, oldest
  forwarded first; no personal data.
- `/web/fund/applications/{id}`: one forwarded application with its applicant (the read goes
  to the access log first, as `nervenbahn benefits show`) and, while it awaits the decision,
  the forms to grant (monthly amounts from a month, as `benefits grant`) or refuse it (a
  reason, as `benefits refuse`). An application not forwarded to the fund is the office's
  only: it answers as a missing one.
- `/web/fund/delegations…`: `nervenbahn.web.areas.fund_delegations`.

Decisions go through the benefits service as the signed-in officer (`actions.record_benefit`);
the domain refuses what is wrong, shown next to the field it names, and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from domain.case import SWISS_TIME
from domain.errors import DomainError
from nervenbahn.accounts import WebSession
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.web.actions import log_read, read_model, record_benefit
from nervenbahn.web.auth import Form, PageNotFound, Web, WebState, role_in
from nervenbahn.web.forms import Refusal, refusal_of
from nervenbahn.web.i18n import N_
from nervenbahn.web.labels import BENEFIT_EVENTS as EVENT_LABELS
from nervenbahn.web.labels import BENEFIT_KINDS as KIND_LABELS
from nervenbahn.web.rendering import render
from projections.benefit_applications import (
    OfficeApplication,
    days_since_receipt,
    office_application,
    office_applications,
)

__all__ = ["EVENT_LABELS", "KIND_LABELS", "REFUSAL_REASONS", "STAGE_LABELS", "Form", "Fund", "Web",
           "form_text", "recorded_labels", "recorded_redirect", "router", "swiss_today"]

router = APIRouter(prefix="/web/fund", include_in_schema=False)
Fund = Annotated[WebSession, Depends(role_in("fund_officer"))]

STAGE_LABELS = {
    "forwarded": N_("awaiting the decision"), "granted": N_("granted"),
    "refused": N_("refused"), "ended": N_("ended"), "withdrawn": N_("withdrawn"),
}
"""The stages an application forwarded to the fund can be in."""
REFUSAL_REASONS = {
    "income_sufficient": N_("income sufficient"),
    "assets_above_limit": N_("assets above the limit"),
    "not_resident": N_("not resident"), "no_pension": N_("no pension"),
    "documents_missing": N_("documents missing"), "other": N_("other reason"),
}
"""The reasons of `RefuseBenefit`, as the form offers them."""
LATER_PERIODS = 2
"""Rows of the grant form for amounts changing after the first month (no script adds rows)."""
_FIELDS: dict[str, tuple[str, ...]] = {"grant_benefit": ("from_month", "amounts.0.monthly_chf",
                 *(f"amounts.{n}.{part}" for n in range(1, LATER_PERIODS + 1)
                   for part in ("from_month", "monthly_chf"))),
    "refuse_benefit": ("reason", "note")}
"""Each decision form's fields (a refusal naming another is shown above the form)."""
_REFUSE_FIELDS = _FIELDS["refuse_benefit"]


@dataclass(frozen=True)
class Listed:
    """A forwarded application as the list shows it: no personal data."""

    application: OfficeApplication
    office: str
    municipality: str
    days: int


@router.get("/applications")
def applications(request: Request, web: Web, session: Fund, stage: str = "forwarded"
                 ) -> Response:
    """The applications forwarded to the fund, of every office, in a stage (or all)."""
    wanted = stage if stage in STAGE_LABELS else None
    with read_model(web, "benefit_applications") as db:
        found = [a for office in sorted(web.context.branch_offices)
                 for a in office_applications(db, office, stage=wanted, limit=None)
                 if a.forwarded_on is not None]
    found.sort(key=lambda a: (a.forwarded_on or a.received_on, a.application_id))
    today = swiss_today(web)
    return render(request, "fund/applications.html", session, stage=wanted or "all",
                  stages=STAGE_LABELS, kinds=KIND_LABELS,
                  applications=[_listed(web, a, today) for a in found])


@router.get("/applications/{application_id}")
def application(request: Request, web: Web, session: Fund, application_id: str) -> Response:
    """One forwarded application with its applicant (the read logged first), and the
    decision's forms while it awaits one."""
    found = _forwarded(web, application_id)
    return _detail(request, web, session, found)


@router.post("/applications/{application_id}/grant")
def grant(request: Request, web: Web, session: Fund, form: Form, application_id: str
          ) -> Response:
    """Grant the benefit from a month with its monthly amounts."""
    found = _forwarded(web, application_id)
    month = form_text(form, "from_month")
    periods = [_period(month, form_text(form, "amounts.0.monthly_chf"))]
    for n in range(1, LATER_PERIODS + 1):
        later = form_text(form, f"amounts.{n}.from_month")
        amount = form_text(form, f"amounts.{n}.monthly_chf")
        if later or amount:
            periods.append(_period(later, amount))
    return _decide(request, web, session, found, form, "grant_benefit",
                   {"from_month": month, "amounts": periods})


@router.post("/applications/{application_id}/refuse")
def refuse(request: Request, web: Web, session: Fund, form: Form, application_id: str
           ) -> Response:
    """Refuse the benefit with a reason."""
    found = _forwarded(web, application_id)
    return _decide(request, web, session, found, form, "refuse_benefit",
                   {name: form_text(form, name) for name in _REFUSE_FIELDS})


# --- helpers -----------------------------------------------------------------------------------


def _decide(
    request: Request, web: WebState, session: WebSession, found: OfficeApplication,
    form: FormData, command: str, data: dict[str, Any],
) -> Response:
    """Record the decision `command`; back to the application saying so, or its page again
    with the refusal at the form's fields (422)."""
    try:
        result = record_benefit(web, session, command,
                                data | {"application_id": found.application_id})
    except DomainError as exc:
        return _detail(request, web, session, found, form=form, status=422,
                       errors={command: refusal_of(exc, _FIELDS[command])})
    return recorded_redirect(f"/web/fund/applications/{found.application_id}", result.events)


def _detail(
    request: Request, web: WebState, session: WebSession, found: OfficeApplication, *,
    form: FormData | None = None, status: int = 200, errors: dict[str, Refusal] | None = None,
) -> Response:
    """The application's page; the applicant's read appended to the access log first."""
    log_read(web, session, request, record_id=found.application_id,
             person_ids=[found.applicant_person_id], fields=APPLICANT_FIELDS)
    person = web.context.vault.decrypt(found.applicant_sealed)
    values: Mapping[str, str] = {k: str(v) for k, v in form.items()} if form else {}
    return render(
        request, "fund/application.html", session, status=status,
        listed=_listed(web, found, swiss_today(web)), applicant=person.to_plain(),
        erased=person.is_erased, stages=STAGE_LABELS, kinds=KIND_LABELS,
        reasons=REFUSAL_REASONS, later_periods=LATER_PERIODS, values=values,
        grant_errors=(errors or {}).get("grant_benefit"),
        refuse_errors=(errors or {}).get("refuse_benefit"),
        recorded=recorded_labels(request),
    )


def _forwarded(web: WebState, application_id: str) -> OfficeApplication:
    """The application if it was forwarded to the fund; PageNotFound otherwise (also for
    a malformed id: the same page as a missing one)."""
    try:
        uid = UUID(application_id)
    except ValueError:
        raise PageNotFound from None
    with read_model(web, "benefit_applications") as db:
        found = office_application(db, None, str(uid))
    if found is None or found.forwarded_on is None:
        raise PageNotFound
    return found


def _listed(web: WebState, found: OfficeApplication, today: date) -> Listed:
    office = web.context.branch_offices.get(found.branch_office)
    municipality = web.context.reference.municipalities.get(found.municipality_bfs)
    return Listed(found, office.name if office else found.branch_office,
                  municipality.name if municipality else str(found.municipality_bfs),
                  days_since_receipt(found, today))


def _period(month: str, amount: str) -> dict[str, str]:
    """A period of the grant as the command takes it (empty fields left out, so that the
    domain names the missing one)."""
    return {key: value for key, value in (("from_month", month), ("monthly_chf", amount))
            if value}


def form_text(form: FormData, name: str) -> str:
    """A form field's text, stripped ("" if absent)."""
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def recorded_redirect(page: str, events: tuple[str, ...]) -> Response:
    """POST → 303 to `page`, saying which events were recorded (`?recorded=A,B`)."""
    return RedirectResponse(f"{page}?{urlencode({'recorded': ','.join(events)})}", 303)


def recorded_labels(request: Request) -> list[str]:
    """The English labels of the events a redirect says were recorded (`?recorded=A,B`;
    unknown names left out)."""
    names = request.query_params.get("recorded", "").split(",")
    return [EVENT_LABELS[name] for name in names if name in EVENT_LABELS]


def swiss_today(web: WebState) -> date:
    """Today in Swiss time, by the app's clock."""
    return web.now().astimezone(SWISS_TIME).date()

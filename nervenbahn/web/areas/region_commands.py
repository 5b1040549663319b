"""The caseworker's commands: a form for opening a case (`cases/new`) and one for every
command of the case process (`cases/{case_id}/do/{command}`), under a social region's pages.

Each form is described once (`region_commands_forms.FORMS`) and rendered by one template. A
form is loaded with the case's version (`expected_version`); the command goes through the
domain as the signed-in user (`actions.record_case`). What the domain refuses is shown next to
the field it names and nothing is recorded; a case changed meanwhile is explained from its
history (who recorded what, when) with a link to load the form anew; a recorded command leads
to the case page naming the events recorded. `?proposal=<external_reference>` fills a form in
from an open proposal of the work list (an EL decision's budget change, a register's handover
or closure, or the proposal to dismiss).

A case of another region, a missing one and a malformed id get the same 404 page: the case
is looked up as the user may act on it (`CaseService.case_for`), in the event store, so a case
opened a moment ago is found before the read models have caught up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from domain.application.ports import CommandResult
from domain.case import ADVANCE_BENEFIT_KINDS, PENDING_BENEFIT_STAGES, SWISS_TIME, Case
from domain.entitlement import budget_in_force, month_of
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
)
from domain.events import Proposal, advances_of, proposals_of
from nervenbahn.accounts import UserError, WebSession
from nervenbahn.web.actions import log_read, record_case
from nervenbahn.web.areas.region_case import (
    APPLICATION_FIELDS,
    HouseholdApplication,
    household_applications,
    persons_of,
)
from nervenbahn.web.areas.region_commands_forms import (
    FORMS,
    CommandForm,
    Input,
    integer_or_text,
    payload_of,
    values_of,
)
from nervenbahn.web.auth import (
    Form,
    PageNotFound,
    Web,
    WebState,
    domain_actor,
    region_in_scope,
)
from nervenbahn.web.forms import Refusal, refusal_of
from nervenbahn.web.i18n import N_, day, moment, translations
from nervenbahn.web.labels import CASE_EVENTS, CHOICES
from nervenbahn.web.rendering import render

__all__ = ["router"]

router = APIRouter(prefix="/web/region/{region_id}", include_in_schema=False)
InRegion = Annotated[WebSession, Depends(region_in_scope)]
Gettext = Callable[[str], str]

_PROPOSAL_KINDS = {"change_budget": ("budget_change",), "hand_over_case": ("handover",),
                   "close_case": ("closure",),
                   "dismiss_proposal": ("budget_change", "handover", "closure")}
"""Which proposals fill in which form (`?proposal=`)."""
_NAMED = re.compile(r"([a-z_]+): (.+)", re.DOTALL)


@dataclass
class _Page:
    """What the command template shows."""

    form: CommandForm
    region_id: str
    case: Case | None = None
    values: dict[str, Any] = field(default_factory=dict)
    errors: Refusal | None = None
    conflict: dict[str, Any] | None = None
    proposal: str = ""
    applications: list[HouseholdApplication] | None = None
    """The household's benefit applications, where the form offers one (None: unknown)."""


# --- opening a case ----------------------------------------------------------------------------


@router.get("/cases/new")
def open_case_form(request: Request, region_id: str, web: Web, session: InRegion) -> Response:
    """The intake form (Anmeldung) for a household of one of the region's municipalities."""
    return _show(request, web, session, _Page(FORMS["open_case"], region_id))


@router.post("/cases/new")
def open_case(
    request: Request, region_id: str, web: Web, session: InRegion, form: Form
) -> Response:
    """Open the case; to its page, or the form again with the refusal."""
    spec = FORMS["open_case"]
    try:
        result = record_case(web, session, spec.command, payload_of(spec, form))
    except DomainError as exc:
        page = _Page(spec, region_id, values=values_of(spec, form))
        return _refused(request, web, session, page, exc, form)
    return _recorded(region_id, result)


# --- commands on a case ------------------------------------------------------------------------


@router.get("/cases/{case_id}/do/{command}")
def command_form(
    request: Request, region_id: str, case_id: str, command: str, web: Web, session: InRegion,
    proposal: str = "",
) -> Response:
    """The command's form, at the case's current version (filled in from `proposal`)."""
    spec = _spec(command)
    case = _case(web, session, case_id)
    found = _proposal(spec, case, proposal)
    values = {"expected_version": str(case.version)} | _prefill(spec, case, found, _today(web))
    page = _Page(spec, region_id, case, values, proposal=proposal if found else "")
    return _show(request, web, session, page)


@router.post("/cases/{case_id}/do/{command}")
def record_command(
    request: Request, region_id: str, case_id: str, command: str, web: Web, session: InRegion,
    form: Form,
) -> Response:
    """Record the command as the user; to the case page, or the form again with the refusal
    (or with who changed the case meanwhile)."""
    spec = _spec(command)
    case = _case(web, session, case_id)
    payload = payload_of(spec, form) | {
        "case_id": str(case.id),
        "expected_version": integer_or_text(str(form.get("expected_version", "")).strip()),
    }
    try:
        result = record_case(web, session, spec.command, payload)
    except CaseNotFoundError as exc:
        raise PageNotFound from exc
    except DomainError as exc:
        values = values_of(spec, form) | {"expected_version": payload["expected_version"]}
        page = _Page(spec, region_id, case, values, proposal=str(form.get("proposal", "")))
        return _refused(request, web, session, page, exc, form)
    return _recorded(region_id, result)


# --- answers -----------------------------------------------------------------------------------


def _show(request: Request, web: WebState, session: WebSession, page: _Page, *,
          status: int = 200) -> Response:
    gettext = translations(session.user.language).gettext
    if page.case is not None and any(i.kind == "application" for i in page.form.inputs):
        page.applications = household_applications(web, page.case)
        log_read(web, session, request, record_id=str(page.case.id),
                 person_ids=[str(p.person_id) for p in persons_of(page.case)],
                 fields=APPLICATION_FIELDS)
    case_url = f"/web/region/{page.region_id}/cases/{page.case.id}" if page.case else ""
    return render(
        request, "region_commands/command.html", session, status=status, spec=page.form,
        fields=[_field(page, item, web, gettext) for item in page.form.inputs],
        values=page.values, errors=page.errors, conflict=page.conflict, case=page.case,
        case_url=case_url, proposal=page.proposal,
        reload_url=request.url.path + (f"?{urlencode({'proposal': page.proposal})}"
                                       if page.proposal else ""),
    )


def _refused(request: Request, web: WebState, session: WebSession, page: _Page,
             exc: DomainError, form: FormData) -> Response:
    if isinstance(exc, ConcurrentChangeError) and page.case is not None:
        since = page.values.get("expected_version")
        page.conflict = _changes(web, page.case.id, since if isinstance(since, int) else 0)
        return _show(request, web, session, page, status=409)
    page.errors = (Refusal(general=[str(exc)]) if isinstance(exc, ConcurrentChangeError)
                   else refusal_of(_field_named(exc), page.form.names))
    return _show(request, web, session, page, status=422)


def _field_named(exc: DomainError) -> DomainError:
    """A check across fields names the whole command, and its field at the start of its
    reason (`household_structure: one_person does not fit …`): that field, then."""
    if not isinstance(exc, InvalidCommandError):
        return exc
    problems = [(found[1], found[2]) if name == "command" and (found := _NAMED.match(reason))
                else (name, reason) for name, reason in exc.problems]
    return InvalidCommandError(exc.command, problems)


def _recorded(region_id: str, result: CommandResult) -> Response:
    """To the case page naming the events recorded; after a handover, whose case page the
    region no longer sees, to its case list."""
    query = urlencode({"recorded": ",".join(result.events)})
    if "CaseHandedOver" in result.events:
        return RedirectResponse(f"/web/region/{region_id}/cases?{query}", 303)
    return RedirectResponse(f"/web/region/{region_id}/cases/{result.case_id}?{query}", 303)


def _changes(web: WebState, case_id: UUID, since: int) -> dict[str, Any]:
    """Who recorded what on the case after version `since`, and when the last of it."""
    assert web.context.service is not None
    after = [e for e in web.context.service.history(case_id) if e.version > since]
    return {
        "users": ", ".join(dict.fromkeys(_named(web, e.actor.user_id) for e in after)),
        "events": [CASE_EVENTS.get(e.event, e.event) for e in after],
        "time": moment(after[-1].recorded_at) if after else "",
    }


def _named(web: WebState, user_id: str) -> str:
    """`Ursula Keller (ursula.keller)` for a web account, else the user id as recorded (a
    connector's, the CLI's)."""
    try:
        shown = web.users.get(user_id).display_name
    except UserError:
        return user_id
    return user_id if shown == user_id else f"{shown} ({user_id})"


# --- the case, the form, its choices -----------------------------------------------------------


def _spec(command: str) -> CommandForm:
    spec = FORMS.get(command)
    if spec is None or command == "open_case":
        raise PageNotFound
    return spec


def _case(web: WebState, session: WebSession, case_id: str) -> Case:
    """The case, if the user may act on it; the 404 page otherwise (also for a bad id)."""
    service = web.context.service
    if service is None:
        raise PageNotFound
    try:
        return service.case_for(domain_actor(session.user), UUID(case_id))
    except (ValueError, CaseNotFoundError) as exc:
        raise PageNotFound from exc


def _today(web: WebState) -> date:
    return web.now().astimezone(SWISS_TIME).date()


def _proposal(spec: CommandForm, case: Case, reference: str) -> Proposal | None:
    found = proposals_of(case).get(reference) if reference else None
    kinds = _PROPOSAL_KINDS.get(spec.command, ())
    return found if found and found.status == "open" and found.kind in kinds else None


def _prefill(spec: CommandForm, case: Case, proposal: Proposal | None, today: date
             ) -> dict[str, str]:
    """The form's values from the open proposal (and a budget change's from the budget in
    force: on the proposal's month, or today)."""
    if spec.command == "change_budget":
        return _budget_values(case, proposal, today)
    if proposal is None:
        return {}
    if spec.command == "hand_over_case":
        return {"to_municipality_bfs": str(proposal.to_municipality_bfs),
                "effective_date": proposal.proposed_on.isoformat()}
    if spec.command == "close_case":
        return {"reason": proposal.reason, "closing_date": proposal.proposed_on.isoformat()}
    return {"external_reference": proposal.external_reference}


def _budget_values(case: Case, proposal: Proposal | None, today: date) -> dict[str, str]:
    """The housing, premium and income of the budget in force; from an EL proposal: its
    monthly EL added to the income, from the decision's month, as an income change."""
    from_month = month_of(proposal.proposed_on) if proposal else today
    budget = budget_in_force(case.budgets, from_month)
    if budget is None:
        return {}
    lines = {line.code: line.amount for line in budget.lines}
    income = -lines.get("income", Decimal(0))
    if proposal is not None and proposal.income is not None:
        income += proposal.income
    values = {"housing": str(lines.get("housing", "")),
              "health_insurance": str(lines.get("health_insurance", "")),
              "income": str(income)}
    if proposal is not None:
        values |= {"effective_date": from_month.isoformat(), "reason": "income_change"}
    return values


def _field(page: _Page, item: Input, web: WebState, gettext: Gettext) -> dict[str, Any]:
    """How the template shows one field: type, label, hint, whether required, choices."""
    spec = page.form
    shown: dict[str, Any] = {"name": item.name, "label": item.label, "hint": item.hint,
                             "required": spec.required(item), "type": item.kind,
                             "options": None}
    if item.kind in ("select", "checkboxes"):
        shown["options"] = [(v, gettext(CHOICES.get(v, v))) for v in spec.choices(item)]
    elif item.kind in ("municipality", "goal", "measure", "proposal", "advance"):
        shown["options"] = _case_choices(page, item.kind, web, gettext)
        shown["type"] = "select"
    elif item.kind == "application":
        shown["options"] = _application_choices(page, web, gettext)
        shown["type"] = "select"
        if page.applications is None:
            shown["hint"] = _UNREADABLE
        elif not shown["options"]:
            shown["hint"] = _NO_APPLICATION
    if shown["type"] == "select":
        shown["options"] = [("", gettext("Choose …")), *shown["options"]]
    return shown


def _case_choices(page: _Page, kind: str, web: WebState, gettext: Gettext
                  ) -> list[tuple[str, str]]:
    """The region's municipalities (or, for a handover, those of the other regions), or the
    case's open goals, running measures, open proposals or open advances."""
    case = page.case

    def label(value: str) -> str:
        return gettext(CHOICES.get(value, value))

    if kind == "municipality":
        return _municipalities(web, page.region_id, handover=case is not None)
    assert case is not None
    if kind == "goal":
        return [(g.goal_id.hex, f"{g.title} – {label(g.category)} – {day(g.due_date)}")
                for g in case.goals.values() if g.status == "open"]
    if kind == "measure":
        return [(m.measure_id.hex, f"{label(m.kind)} – {day(m.start_date)}")
                for m in case.measures.values() if m.status == "running"]
    if kind == "proposal":
        return [(p.external_reference,
                 f"{label(p.kind)} – {day(p.proposed_on)} – {p.external_reference}")
                for p in proposals_of(case).values() if p.status == "open"]
    return [(str(a.application_id),
             f"{label(a.benefit_kind)} – {day(a.started_on)} – {a.application_id}")
            for a in advances_of(case) if a.is_open]


_NO_APPLICATION = N_("No pending EL application is recorded for the persons of the household; "
                     "the branch office records applications.")
_UNREADABLE = N_("The benefit applications cannot be read here.")


def _application_choices(page: _Page, web: WebState, gettext: Gettext
                         ) -> list[tuple[str, str]]:
    """The household's pending EL applications: benefit, received day, office and id (the
    domain decides whether an advance may be made in view of the one chosen)."""
    received = gettext("received on %(day)s")
    return [(a.application_id,
             f"{gettext(CHOICES.get(a.kind, a.kind))} – "
             f"{received % {'day': day(a.received_on)}} – {a.office} – {a.application_id}")
            for a in page.applications or []
            if a.kind in ADVANCE_BENEFIT_KINDS and a.stage in PENDING_BENEFIT_STAGES]


def _municipalities(web: WebState, region_id: str, *, handover: bool) -> list[tuple[str, str]]:
    reference = web.context.reference
    chosen = [m for m in reference.municipalities.values()
              if (m.region_id != region_id) == handover]
    return [(str(m.bfs), f"{m.name} ({m.bfs})" + (
        f" – {reference.regions[m.region_id].name}" if handover else ""))
        for m in sorted(chosen, key=lambda m: m.name)]

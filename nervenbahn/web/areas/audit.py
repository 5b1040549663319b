"""The auditor's pages under /web/audit/: a case as known at a time, what changed about a
month between two knowledge times, the hash chains' verification and the access log. Only
auditors reach them; anyone else gets the 404 page, as for a page that does not exist.

- `case`, `case/diff` mirror the API's auditor endpoints (`nervenbahn/api/routes/audit.py`)
  and `nervenbahn audit state|budget|diff`, on the same queries of the case service
  (`case_as_of`, `budget_by_month`, `budget_as_known_at`, `diff_as_known`, `history`). They
  name no person, but a case's data concerns its household: each read is appended to the
  access log before the page is answered, one entry per household member, as the API does.
- `chains`: what `nervenbahn audit verify` reports of the running installation (each chain of
  the store and the access log: records, head, the last signed checkpoint it matched, intact
  or where it breaks and why; rejected checkpoints; notes). A verification reads every record
  (0.1 s on the demo's 29,432 events idle, 1.3 s with five users at once): the page shows one
  at most a minute old, says when it ran, and its "verify now" button runs one at once.
- `access`: the access log of a person and/or a case, oldest first, 100 entries a page, as the
  API's `GET /v1/access-log` and `nervenbahn audit access` answer it (by person id or case
  id; neither looks a person up by AHV number). Reading the log is not itself logged, as
  neither the API nor the CLI logs it: it names ids, no personal data.

Every page is a GET form (nothing is recorded). A time is typed as a Swiss date (31.12.2026,
the end of that day), a Swiss date and time (31.12.2026 14:05) or in ISO form, all Swiss
time; empty means now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from domain.application.bitemporal import StateAsOf
from domain.application.cases import CaseService
from domain.case import SWISS_TIME, Case
from domain.errors import CaseNotFoundError, DomainError, InvalidCommandError
from nervenbahn.accounts import WebSession
from nervenbahn.audit.access_log import AccessEntry, case_read_entries
from nervenbahn.audit.hashing import ChainVerification
from nervenbahn.audit.verify import AuditReport
from nervenbahn.bounds import parse_bounded_month, parse_moment
from nervenbahn.config import ConfigError
from nervenbahn.web.actions import consumer_of, endpoint_of, scope_of
from nervenbahn.web.auth import Form, PageNotFound, Web, WebState, role_in
from nervenbahn.web.forms import Refusal, refusal_of
from nervenbahn.web.rendering import render

__all__ = ["PAGE_SIZE", "parse_time", "parse_uuid", "router"]

log = structlog.get_logger("nervenbahn.web.audit")

Auditor = Annotated[WebSession, Depends(role_in("auditor"))]

CASE_FIELDS = ("case_state", "timeline", "budget_month")
"""What the case page shows of a case (logged under each household member)."""
DIFF_FIELDS = ("budget_month_diff",)
"""What the difference page shows (as the API's month diff logs it)."""
PAGE_SIZE = 100
"""Access-log entries on one page (the API's default page)."""

router = APIRouter(prefix="/web/audit", include_in_schema=False,
                   dependencies=[Depends(role_in("auditor"))])

_SWISS_DATE = re.compile(
    r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})"
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?"
)


def parse_time(name: str, text: str, now: datetime) -> datetime:
    """A time typed into a form: empty is `now`; a Swiss date (the end of that day) or date
    and time; else ISO as the API takes it (`parse_moment`). InvalidCommandError naming
    `name` if it is none of these."""
    typed = text.strip()
    if not typed:
        return now
    iso = typed
    if found := _SWISS_DATE.fullmatch(typed):
        iso = f"{found['y']}-{int(found['m']):02d}-{int(found['d']):02d}"
        if found["H"] is not None:
            iso += f"T{int(found['H']):02d}:{found['M']}:{found['S'] or '00'}"
    try:
        return parse_moment(iso)
    except ValueError as exc:
        reason = str(exc) if iso == typed else str(exc).replace(repr(iso), repr(typed))
        raise InvalidCommandError("audit", [(name, reason)]) from None


def parse_uuid(name: str, text: str) -> UUID:
    """An id typed into a form; InvalidCommandError naming `name` if it is not a UUID."""
    try:
        return UUID(text.strip())
    except ValueError:
        raise InvalidCommandError("audit", [(name, f"{text!r} is not a UUID")]) from None


def _month(text: str) -> date:
    try:
        return parse_bounded_month(text.strip())
    except ValueError as exc:
        raise InvalidCommandError("audit", [("month", str(exc))]) from None


# --- a case as known at a time -------------------------------------------------------------


@router.get("/case")
def case_page(
    request: Request, web: Web, session: Auditor, case_id: str = "", as_of: str = ""
) -> HTMLResponse:
    """The form; with a case id, the case's state, budget by month and timeline as recorded
    up to `as_of` (now if empty), each month beside what is known now."""
    form = {"case_id": case_id, "as_of": as_of}
    if not case_id.strip():
        return render(request, "audit/case.html", session, form=form, errors=None, view=None)
    service = _service(web)
    now = web.now()
    try:
        uid, moment = parse_uuid("case_id", case_id), parse_time("as_of", as_of, now)
        then, current = service.case_as_of(uid, moment), service.case_as_of(uid, max(moment, now))
        view = _case_view(service, then, moment, now)
    except CaseNotFoundError as exc:
        return _not_recorded(request, session, "audit/case.html", form, exc)
    except DomainError as exc:
        return render(request, "audit/case.html", session, status=422, form=form,
                      errors=refusal_of(exc, form), view=None)
    _log_case_read(web, session, request, (current, then), CASE_FIELDS)
    return render(request, "audit/case.html", session, form=form, errors=None, view=view)


def _case_view(service: CaseService, case: Case, moment: datetime, now: datetime
               ) -> dict[str, Any]:
    """What the case page shows: the state, each month as known then and now, the timeline
    up to then (no personal data)."""
    months = [
        {"answer": answer, "now": service.budget_as_known_at(case.id, answer.month, now)}
        for answer in service.budget_by_month(case.id, moment)
    ]
    return {
        "state": StateAsOf.of(case, moment),
        "moment": moment,
        "now": now,
        "now_text": now.astimezone(SWISS_TIME).isoformat(),
        "months": months,
        "timeline": [e for e in service.history(case.id) if e.recorded_at <= moment],
        "region": _region_name(service, case.social_region),
    }


# --- what changed about a month ------------------------------------------------------------


@router.get("/case/diff")
def diff_page(
    request: Request, web: Web, session: Auditor, case_id: str = "", month: str = "",
    known_at: str = "", compared_to: str = "",
) -> HTMLResponse:
    """The form; with a case id and month, what changed about the month between what was
    known at `known_at` and at `compared_to` (now if empty), line by line, and the events
    recorded in between that changed it."""
    form = {"case_id": case_id, "month": month, "known_at": known_at,
            "compared_to": compared_to}
    if not case_id.strip():
        return render(request, "audit/diff.html", session, form=form, errors=None, diff=None)
    service = _service(web)
    now = web.now()
    try:
        uid, first = parse_uuid("case_id", case_id), _month(month)
        earlier = parse_time("known_at", known_at, now)
        later = parse_time("compared_to", compared_to, now)
        case = service.case_as_of(uid, max(earlier, later))
        diff = service.diff_as_known(uid, first, earlier, later)
    except CaseNotFoundError as exc:
        return _not_recorded(request, session, "audit/diff.html", form, exc)
    except DomainError as exc:
        return render(request, "audit/diff.html", session, status=422, form=form,
                      errors=refusal_of(exc, form), diff=None)
    _log_case_read(web, session, request, (case,), DIFF_FIELDS)
    return render(request, "audit/diff.html", session, form=form, errors=None, diff=diff,
                  region=_region_name(service, case.social_region))


# --- the hash chains and the access log ------------------------------------------------------


CHAINS_MAX_AGE = timedelta(seconds=60)
"""How old a verification the chains page shows may be (it says when it ran; "verify now"
runs one at once): a full verification reads every record (1.3 s on the demo's data under
load), which five auditors looking at once must not repeat five times."""


@router.get("/chains")
def chains_page(request: Request, web: Web, session: Auditor) -> HTMLResponse:
    """Every hash chain and the access log, verified against the signed checkpoints (at most
    `CHAINS_MAX_AGE` ago; the page says when)."""
    return _chains(request, web, session, fresh=False)


@router.post("/chains")
def verify_now(request: Request, web: Web, session: Auditor, form: Form) -> HTMLResponse:
    """Verify the chains now, whatever the last verification's age."""
    return _chains(request, web, session, fresh=True)


def _chains(request: Request, web: WebState, session: WebSession, *, fresh: bool
            ) -> HTMLResponse:
    verify = web.context.verify_chains
    report: AuditReport | None = None
    problem = ""
    verified_at = web.now()
    if verify is not None:
        try:
            report, verified_at = web.memo.recent(("chains",), web.now(), CHAINS_MAX_AGE,
                                                  verify, fresh=fresh)
        except ConfigError as exc:
            problem = str(exc)
    if report is not None:
        log.info("web chain verification", username=session.user.username, fresh=fresh,
                 ok=report.ok, exit_code=report.exit_code, verified_at=verified_at.isoformat())
    return render(request, "audit/chains.html", session, report=report, rows=_rows(report),
                  configured=verify is not None, problem=problem, verified_at=verified_at)


def _rows(report: AuditReport | None) -> list[dict[str, Any]]:
    """One row per chain (the access log last), with the checkpoint it last matched."""
    if report is None:
        return []
    chains = [*report.chains, *([report.access_log] if report.access_log else [])]
    return [{"v": v, "access_log": v is report.access_log, "checkpoint": _checkpoint(v)}
            for v in chains]


def _checkpoint(v: ChainVerification) -> dict[str, Any] | None:
    """The latest signed checkpoint the chain matched: its number, time and position."""
    if v.checkpoint is None:
        return None
    created = v.checkpoint.get("created_at")
    try:
        at = datetime.fromisoformat(str(created)) if created else None
    except ValueError:
        at = None
    return {"sequence": v.checkpoint.get("sequence"), "at": at, "text": created,
            "position": v.checkpoint.get("position")}


@router.get("/access")
def access_page(
    request: Request, web: Web, session: Auditor, person_id: str = "", case_id: str = "",
    gt: str = "0",
) -> HTMLResponse:
    """The form; with a person id and/or case id, who read their data, oldest first."""
    form = {"person_id": person_id, "case_id": case_id}
    if not person_id.strip() and not case_id.strip():
        return render(request, "audit/access.html", session, form=form, errors=None,
                      entries=None, later=None)
    try:
        person = str(parse_uuid("person_id", person_id)) if person_id.strip() else None
        case = str(parse_uuid("case_id", case_id)) if case_id.strip() else None
    except InvalidCommandError as exc:
        return render(request, "audit/access.html", session, status=422, form=form,
                      errors=refusal_of(exc, form), entries=None, later=None)
    if not gt.isdigit() or len(gt) > 18:
        raise PageNotFound  # only the page's own "later entries" link sets it
    entries = web.context.access_log.select(person_id=person, case_id=case, gt=int(gt),
                                            limit=PAGE_SIZE)
    later = None
    if len(entries) == PAGE_SIZE:
        query = {k: v for k, v in (("person_id", person), ("case_id", case)) if v}
        later = "/web/audit/access?" + urlencode({**query, "gt": entries[-1].id})
    return render(request, "audit/access.html", session, form=form, errors=None,
                  entries=entries, later=later, person=person, first=gt == "0")


# --- shared --------------------------------------------------------------------------------


def _service(web: WebState) -> CaseService:
    """The case service; without one (an app on read models only) there is nothing to audit."""
    if web.context.service is None:
        raise PageNotFound
    return web.context.service


def _region_name(service: CaseService, region_id: str) -> str:
    region = service.reference.regions.get(region_id)
    return region.name if region is not None else region_id


def _not_recorded(request: Request, session: WebSession, template: str, form: dict[str, str],
                  exc: CaseNotFoundError) -> HTMLResponse:
    """The form again, saying next to the case id that no such case was recorded (by then)."""
    refusal = Refusal(fields={"case_id": [str(exc)]})
    values: dict[str, Any] = {"view": None} if template == "audit/case.html" else {"diff": None}
    return render(request, template, session, status=404, form=form, errors=refusal, **values)


def _log_case_read(web: WebState, session: WebSession, request: Request,
                   cases: Iterable[Case], fields: tuple[str, ...]) -> None:
    """One access-log entry per member of the household (at any of the times read), before
    the page is answered, as the API's auditor endpoints log theirs."""
    seen: set[str] = set()
    entries: list[AccessEntry] = []
    for case in cases:
        for entry in case_read_entries(
            case, at=web.now(), consumer=consumer_of(session), scope=scope_of(session),
            fields=fields, endpoint=endpoint_of(request),
        ):
            if entry.person_id not in seen:
                seen.add(entry.person_id)
                entries.append(entry)
    for entry in entries:
        web.context.access_log.append(entry)

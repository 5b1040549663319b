"""`nervenbahn benefits …`: the compensation fund's pathway at the desk (issue 14, point 5).

Each command gathers its options into a benefit command (`domain.benefit_commands`) recorded
through the benefits service as the acting user (--actor or NERVENBAHN_ACTOR): branch-office
staff (`USER:branch_office:OFFICE`) receive, check, request and record documents, forward and
withdraw; fund officers (`USER:fund_officer:akso`) decide and delegate. Malformed input is
refused naming the field, a rule naming the rule (`DomainError`, exit 1), nothing recorded.

Reads: `list` and `show` read the branch offices' read model (`projections.
benefit_applications`, brought up to date first) in the actor's scope: an office sees its own
applications only (another office's answers as one that does not exist), a fund officer every
one. `show` opens the applicant's seal and appends the read to the access log first, as
`case show` does. `delegated-actions` is the auditor's view of what was done under which
delegation (no personal data).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, cast
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.table import Table

from domain.benefit_commands import BENEFIT_COMMANDS
from domain.benefits import OFFICE_ROLE, require_benefit_role
from domain.case import SWISS_TIME
from domain.commands import Actor, invalid_command
from domain.errors import ApplicationNotFoundError, InvalidCommandError, RuleViolationError
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.audit.access_log import AccessEntry
from projections.benefit_applications import (
    OfficeApplication,
    days_since_receipt,
    office_application,
    office_applications,
)
from projections.storage import SQLConnection, open_read_model

from .options import (
    AhvNumber,
    BirthDate,
    FamilyName,
    GivenName,
    PostalCode,
    Street,
    Town,
    applicant_input,
)
from .reads import CANTON_WIDE_ROLES, log_reads
from .render import emit_json
from .session import Session, session

__all__ = ["app"]

app = typer.Typer(help="Benefit applications (EL, IPV) and the fund's delegations.",
                  no_args_is_help=True)

_READ_MODEL = "benefit_applications"
ApplicationId = Annotated[str, typer.Argument(help="The application id (UUID).")]
Delegation = Annotated[
    str | None,
    typer.Option(help="The delegation a branch office acts under on a forwarded application."),
]
Correlation = Annotated[
    str | None, typer.Option("--correlation-id", help="Correlation id (default: a new one).")
]
Documents = Annotated[list[str], typer.Option("--document", help="A document code (repeatable).")]
Day = Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today (Swiss time).")]


# --- the branch office's desk ------------------------------------------------------------------


@app.command("receive")
def receive(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option(help="el_ahv, el_iv or ipv.")],
    municipality: Annotated[int, typer.Option(help="BFS number of the applicant's municipality.")],
    given_name: GivenName,
    family_name: FamilyName,
    ahvn13: AhvNumber,
    birth_date: BirthDate,
    street: Street,
    postal_code: PostalCode,
    town: Town,
    received_on: Day = None,
    application_id: Annotated[
        str | None, typer.Option(help="Application id (default: a new one).")
    ] = None,
    person_id: Annotated[
        str | None, typer.Option(help="The applicant's person id if nervenbahn knows them "
                                      "already (e.g. a social-assistance case's applicant), "
                                      "so that erasing the person reaches this application "
                                      "too (default: a new person).")
    ] = None,
    correlation_id: Correlation = None,
) -> None:
    """Receive an application at the branch office of the applicant's municipality."""
    applicant: dict[str, str] = applicant_input(given_name, family_name, ahvn13, birth_date,
                                                street, postal_code, town)
    if person_id is not None:
        applicant["person_id"] = person_id
    _record(ctx, "receive_application", correlation_id, application_id=application_id,
            kind=kind, municipality_bfs=municipality, applicant=applicant,
            received_on=received_on or _today())


@app.command("check")
def check(
    ctx: typer.Context,
    application_id: ApplicationId,
    present: Annotated[
        list[str] | None, typer.Option(help="A document handed in (repeatable).")
    ] = None,
    delegation_id: Delegation = None,
    correlation_id: Correlation = None,
) -> None:
    """Check for completeness: the documents handed in against the kind's checklist."""
    _record(ctx, "check_completeness", correlation_id, application_id=application_id,
            documents_present=present or [], delegation_id=delegation_id)


@app.command("request-documents")
def request_documents(
    ctx: typer.Context,
    application_id: ApplicationId,
    document: Documents,
    due_on: Annotated[str, typer.Option(help="Due date YYYY-MM-DD.")],
    delegation_id: Delegation = None,
    correlation_id: Correlation = None,
) -> None:
    """Ask the applicant for missing documents by a due date."""
    _record(ctx, "request_documents", correlation_id, application_id=application_id,
            documents=document, due_on=due_on, delegation_id=delegation_id)


@app.command("record-documents")
def record_documents(
    ctx: typer.Context,
    application_id: ApplicationId,
    document: Documents,
    received_on: Day = None,
    delegation_id: Delegation = None,
    correlation_id: Correlation = None,
) -> None:
    """Record documents the applicant handed in later."""
    _record(ctx, "record_documents_received", correlation_id, application_id=application_id,
            documents=document, received_on=received_on or _today(),
            delegation_id=delegation_id)


@app.command("forward")
def forward(
    ctx: typer.Context,
    application_id: ApplicationId,
    override_reason: Annotated[
        str | None, typer.Option(help="Why it goes to the fund with documents missing.")
    ] = None,
    correlation_id: Correlation = None,
) -> None:
    """Forward the application to the fund (with documents missing only with a reason)."""
    _record(ctx, "forward_application", correlation_id, application_id=application_id,
            override_reason=override_reason)


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    application_id: ApplicationId,
    reason: Annotated[str, typer.Option(help="applicant_request, death, moved_away or other.")],
    correlation_id: Correlation = None,
) -> None:
    """Record that the applicant withdrew the application (before the decision)."""
    _record(ctx, "withdraw_application", correlation_id, application_id=application_id,
            reason=reason)


# --- the fund ------------------------------------------------------------------------------


@app.command("grant")
def grant(
    ctx: typer.Context,
    application_id: ApplicationId,
    from_month: Annotated[str, typer.Option(help="First month owed YYYY-MM.")],
    amount: Annotated[
        list[str], typer.Option(help="A period's monthly CHF as YYYY-MM=AMOUNT (repeatable; "
                                     "the first from FROM_MONTH).")
    ],
    correlation_id: Correlation = None,
) -> None:
    """The fund's decision: grant the benefit from a month, with monthly amounts."""
    _record(ctx, "grant_benefit", correlation_id, application_id=application_id,
            from_month=from_month, amounts=[_period(text) for text in amount])


@app.command("refuse")
def refuse(
    ctx: typer.Context,
    application_id: ApplicationId,
    reason: Annotated[str, typer.Option(help="income_sufficient, assets_above_limit, "
                                             "not_resident, no_pension, documents_missing "
                                             "or other.")],
    note: Annotated[str | None, typer.Option(help="A note in words.")] = None,
    correlation_id: Correlation = None,
) -> None:
    """The fund's decision: refuse the benefit with a reason."""
    _record(ctx, "refuse_benefit", correlation_id, application_id=application_id,
            reason=reason, note=note)


@app.command("delegate")
def delegate(
    ctx: typer.Context,
    office: Annotated[str, typer.Option(help="The branch office, e.g. akso-grenchen.")],
    task: Annotated[str, typer.Option(help="completeness_check, document_request or "
                                           "documents_received.")],
    valid_from: Annotated[str, typer.Option(help="First day YYYY-MM-DD.")],
    valid_until: Annotated[str, typer.Option(help="Last day YYYY-MM-DD (inclusive).")],
    delegation_id: Annotated[
        str | None, typer.Option(help="Delegation id (default: a new one).")
    ] = None,
    correlation_id: Correlation = None,
) -> None:
    """Delegate a task of the fund to a branch office for a period."""
    _record(ctx, "grant_delegation", correlation_id, delegation_id=delegation_id,
            branch_office=office, task=task, valid_from=valid_from, valid_until=valid_until)


@app.command("revoke-delegation")
def revoke_delegation(
    ctx: typer.Context,
    delegation_id: Annotated[str, typer.Argument(help="The delegation id (UUID).")],
    reason: Annotated[str, typer.Option(help="Why the fund takes the task back.")],
    correlation_id: Correlation = None,
) -> None:
    """Take a delegated task back before its period ends."""
    _record(ctx, "revoke_delegation", correlation_id, delegation_id=delegation_id,
            reason=reason)


# --- reads -------------------------------------------------------------------------------------


@app.command("list")
def list_applications(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    office: Annotated[
        str | None, typer.Option(help="The branch office (fund officers; default: all).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """The applications in the actor's scope (an office: its own), newest received first;
    no personal data."""
    rt = session(ctx)
    scope = _office_of(rt, office)
    offices = [scope] if scope else sorted(rt.container.benefits.offices)
    with _read_model(rt) as db:
        found = [a for office_id in offices
                 for a in office_applications(db, office_id, stage=stage, kind=kind, limit=limit)]
    found.sort(key=lambda a: (a.received_on, a.application_id), reverse=True)
    rows = [_row(a) for a in found[:limit]]
    if rt.as_json:
        emit_json(rt.console, {"today": _today(), "applications": rows})
        return
    table = Table("application", "kind", "office", "municipality", "stage", "received",
                  "days", "missing", "due", title="Benefit applications", title_justify="left")
    for row in rows:
        due = min((r["due_on"] for r in row["open_document_requests"]), default="")
        table.add_row(row["application_id"], row["kind"], row["branch_office"],
                      str(row["municipality_bfs"]), row["stage"], row["received_on"],
                      str(row["days_since_receipt"]), ", ".join(row["missing_documents"]), due)
    rt.console.print(table)


@app.command("show")
def show(ctx: typer.Context, application_id: ApplicationId) -> None:
    """One application with the applicant's personal data (the read is logged first)."""
    rt = session(ctx)
    office = _office_of(rt, None)
    uid = _uuid(application_id, "application_id")
    with _read_model(rt) as db:
        application = office_application(db, office, str(uid))
    if application is None:
        raise ApplicationNotFoundError(uid)
    actor = _actor(rt)
    log_reads(rt, [AccessEntry(
        at=datetime.now(UTC), consumer=f"cli:{actor.user_id}",
        scope=f"{actor.role}:{actor.organisation}", case_id=application.application_id,
        person_id=application.applicant_person_id, fields=APPLICANT_FIELDS,
        endpoint="nervenbahn benefits show")], "application")
    person = rt.container.benefits.vault.decrypt(application.applicant_sealed)
    view = _row(application) | {"documents_present": application.documents_present,
                                "applicant": person.to_plain()}
    if rt.as_json:
        emit_json(rt.console, view)
        return
    for key, value in view.items():
        rt.console.print(f"{key}: {value}")


@app.command("delegated-actions")
def delegated_actions(
    ctx: typer.Context,
    delegation_id: Annotated[str | None, typer.Option(help="Only under this one.")] = None,
) -> None:
    """What was done under which delegation (auditors, administrators, fund officers)."""
    rt = session(ctx)
    actor = _actor(rt)
    if actor.role not in {*CANTON_WIDE_ROLES, "fund_officer"}:
        raise RuleViolationError(
            "delegated-actions-readers",
            f"actor.role: a {actor.role} does not read the delegated actions (auditor, "
            "administrator, system or fund_officer)")
    wanted = _uuid(delegation_id, "delegation_id") if delegation_id else None
    actions = rt.container.benefits.delegated_actions(wanted)
    if rt.as_json:
        emit_json(rt.console, {"actions": actions})
        return
    table = Table("recorded at", "delegation", "application", "event", "user", "office",
                  "recorded by", title="Delegated actions", title_justify="left")
    for a in actions:
        table.add_row(a.recorded_at.astimezone(SWISS_TIME).isoformat(timespec="seconds"),
                      str(a.delegation_id), str(a.application_id), a.event, a.user_id,
                      a.branch_office, a.recorded_by)
    rt.console.print(table)


# --- helpers -----------------------------------------------------------------------------------


def _record(ctx: typer.Context, name: str, correlation_id: str | None, **data: Any) -> None:
    """Validate and execute benefit command `name` as the acting user; report the result."""
    rt = session(ctx)
    payload = {key: value for key, value in data.items() if value is not None}
    payload |= {"actor": rt.actor(), "correlation_id": correlation_id or str(uuid.uuid4())}
    try:
        command = BENEFIT_COMMANDS[name].model_validate(payload)
    except ValidationError as exc:
        raise invalid_command(name, exc) from exc
    result = rt.container.benefits.execute(command)
    if rt.as_json:
        emit_json(rt.console, {"id": result.id, "version": result.version,
                               "events": list(result.events),
                               "correlation_id": command.correlation_id})
    else:
        what = "delegation" if "delegation" in name else "application"
        rt.console.print(f"{what} {result.id}: {', '.join(result.events)} "
                         f"(version {result.version})")


def _actor(rt: Session) -> Actor:
    """The acting user (any role: the benefit rules decide what it may do)."""
    return Actor(**cast(dict[str, Any], rt.actor()))


def _office_of(rt: Session, wanted: str | None) -> str | None:
    """The office whose applications the actor reads: its own for branch-office staff (any
    other asked for is refused), `wanted` or every one (None) for a fund officer."""
    actor = _actor(rt)
    require_benefit_role(actor)
    if actor.role == OFFICE_ROLE:
        if wanted is not None and wanted != actor.organisation:
            raise RuleViolationError(
                "office-own-municipalities",
                f"office: {actor.organisation} reads its own applications, not {wanted}'s")
        return actor.organisation
    return wanted


@contextmanager
def _read_model(rt: Session) -> Iterator[SQLConnection]:
    """The read model, brought up to date first (no consumer keeps it so yet)."""
    rt.container.refresh_read_model(_READ_MODEL)
    target = rt.container.read_model(_READ_MODEL)
    with open_read_model(target, "benefit_applications") as db:
        yield db


def _row(application: OfficeApplication) -> dict[str, Any]:
    decision = None
    if application.decided_on is not None:
        decision = {"outcome": "granted" if application.granted_from else "refused",
                    "decided_on": application.decided_on.isoformat(),
                    "granted_from": _iso(application.granted_from),
                    "last_month": _iso(application.last_month),
                    "refusal_reason": application.refusal_reason}
    return {
        "application_id": application.application_id, "kind": application.kind,
        "branch_office": application.branch_office,
        "municipality_bfs": application.municipality_bfs, "stage": application.stage,
        "received_on": application.received_on.isoformat(),
        "days_since_receipt": days_since_receipt(application, datetime.now(SWISS_TIME).date()),
        "missing_documents": application.missing,
        "open_document_requests": [
            {"documents": r.documents, "due_on": r.due_on.isoformat(), "open": r.open}
            for r in application.open_requests],
        "forwarded_on": _iso(application.forwarded_on), "decision": decision,
    }


def _iso(day: Any) -> str | None:
    return day.isoformat() if day is not None else None


def _period(text: str) -> dict[str, str]:
    month, sep, chf = text.partition("=")
    if not sep:
        raise InvalidCommandError("grant_benefit", [("amounts", f"{text!r} is not "
                                                     "YYYY-MM=AMOUNT, e.g. 2026-01=812.40")])
    return {"from_month": month.strip(), "monthly_chf": chf.strip()}


def _uuid(text: str, field: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError("benefits", [(field, f"{text!r} is not a UUID")]) from None


def _today() -> str:
    return datetime.now(SWISS_TIME).date().isoformat()

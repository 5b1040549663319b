"""`nervenbahn advances claim|list|show|claims`: the claims recorded from decided advances.

`claim` runs the claims process (`domain.application.claims.AdvanceClaims`) once: it records,
for every advance whose EL was decided, the claim or the correction that the facts as known
now call for, and nothing where they did not change; run it again at any time (after a
crash, after a late payment correction or an amended decision). `list`, `show` and `claims`
read with the scope of `case` (a caseworker or supervisor: their own region's cases only);
`show` and `claims` also say which claims the fund reported paid (`ReimbursementPaid`: the
day, the payment file and the amounts to the region and to the person).

The commands are added to the `advances` group by `add_commands` (`nervenbahn.cli.advances`),
beside the group's other commands.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from pydantic import TypeAdapter
from rich.table import Table

from domain.application.claims import AdvanceClaims
from domain.case import SWISS_TIME, Case
from domain.commands import Actor
from domain.errors import ApplicationNotFoundError, InvalidCommandError, RuleViolationError
from domain.events import Advance, Claim, advances_of, claims_of
from domain.money import ZERO

from .reads import log_case_read, readable_case, reader, require_region
from .render import emit_json, jsonable
from .session import Session, session

__all__ = ["add_commands"]

CaseId = Annotated[str, typer.Argument(help="The case id (UUID).")]


def claim(
    ctx: typer.Context,
    case_id: Annotated[
        list[str] | None, typer.Option("--case", help="Only this case (repeatable).")
    ] = None,
) -> None:
    """Record the claims and corrections that decided advances call for (a system actor;
    idempotent: the same facts record nothing)."""
    rt = session(ctx)
    actor = rt.actor()
    if actor["role"] != "system":
        raise RuleViolationError(
            "reimbursement-by-system",
            f"actor.role: {actor['role']} may not record reimbursements; the claims process "
            "runs as a system actor (e.g. advance-claims:system:so-canton)")
    cases = [_uuid(text) for text in case_id] if case_id else None
    container = rt.container
    claims = AdvanceClaims(container.service, container.benefits, container.payments,
                           actor=TypeAdapter(Actor).validate_python(actor))
    outcomes = claims.run(cases)
    rows: list[dict[str, Any]] = [
        {"case_id": o.case_id, "application_id": o.application_id, "events": list(o.events),
         "concurrent": o.concurrent} for o in outcomes]
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    recorded = sum(1 for o in outcomes if o.events)
    rt.console.print(f"{len(outcomes)} decided advance(s) looked at, {recorded} with something "
                     f"new recorded, {sum(o.concurrent for o in outcomes)} postponed")
    for row in rows:
        if row["events"]:
            rt.console.print(f"case {row['case_id']}: {', '.join(row['events'])}")


def list_advances(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(help="Only this social region id.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open advances.")] = False,
) -> None:
    """The advances of the cases the actor reads, with the application's stage and age (days
    since it was received); no personal data."""
    rt = session(ctx)
    if region:
        require_region(rt, region)
    who = reader(rt)
    today = datetime.now(SWISS_TIME).date()
    rows: list[dict[str, Any]] = []
    for uid in rt.service.case_ids():
        case = rt.service.get_case(uid)
        if (region and case.social_region != region) or not who.may_read(case.social_region):
            continue
        rows.extend(_advance_row(rt, case, a, today) for a in advances_of(case)
                    if a.is_open or not open_only)
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table("case", "region", "application", "stage", "received", "days", "from",
                  "ended", "reason", title=f"Advances ({len(rows)})", title_justify="left")
    for row in jsonable(rows):
        table.add_row(*(str(row[k] if row[k] is not None else "-") for k in (
            "case_id", "social_region", "application_id", "application_stage",
            "application_received_on", "application_age_days", "advance_from", "ended_on",
            "end_reason")))
    rt.console.print(table)


def show(ctx: typer.Context, case_id: CaseId) -> None:
    """A case's advances, the totals claimed for each and what the fund paid of them."""
    rt = session(ctx)
    case = readable_case(rt, _uuid(case_id))
    log_case_read(rt, case, ("advances",), "advances show")
    today = datetime.now(SWISS_TIME).date()
    rows: list[dict[str, Any]] = []
    for advance in advances_of(case):
        claims = [c for c in claims_of(case) if c.application_id == advance.application_id]
        rows.append({**_advance_row(rt, case, advance, today),
                     "commitment_kind": advance.commitment_kind,
                     "commitment_date": advance.commitment_date,
                     "claims_recorded": len(claims),
                     "claimed": sum((c.claim_total for c in claims), ZERO),
                     "surplus": sum((c.surplus_total for c in claims), ZERO),
                     "ipv_offset": sum((c.ipv_offset_total for c in claims), ZERO),
                     **_paid(claims)})
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    for row in jsonable(rows):
        rt.console.print(" ".join(f"{key}={value}" for key, value in row.items()))


def claims(ctx: typer.Context, case_id: CaseId) -> None:
    """Every recorded claim and correction of a case, month by month (CHF)."""
    rt = session(ctx)
    case = readable_case(rt, _uuid(case_id))
    log_case_read(rt, case, ("claims",), "advances claims")
    recorded = claims_of(case)
    if rt.as_json:
        emit_json(rt.console, recorded)
        return
    numbers: dict[UUID, int] = {}
    for c in recorded:  # numbered per application, as `advances statement --sequence` takes them
        number = numbers[c.application_id] = numbers.get(c.application_id, 0) + 1
        kind = "claim" if number == 1 else "correction"
        table = Table("month", "paid", "EL", "IPV offset", "claim", "surplus",
                      title=f"{kind} {number} of {c.application_id}, recorded {c.recorded_on}: "
                            f"claim {c.claim_total}, surplus {c.surplus_total}; {_payment(c)}",
                      title_justify="left")
        for m in c.corrections:
            table.add_row(f"{m.month:%Y-%m}", str(m.paid), str(m.el), str(m.ipv_offset),
                          str(m.claim), str(m.surplus))
        rt.console.print(table)


def _paid(claims: list[Claim]) -> dict[str, Any]:
    """What the fund reported paid of an advance's claims: how many, the amounts, the last
    day."""
    paid = [c for c in claims if c.is_paid]
    return {"claims_paid": len(paid),
            "paid_to_region": sum((c.paid_to_region or ZERO for c in paid), ZERO),
            "paid_to_person": sum((c.paid_to_person or ZERO for c in paid), ZERO),
            "last_paid_on": max((c.paid_on for c in paid if c.paid_on), default=None)}


def _payment(claim: Claim) -> str:
    if not claim.is_paid:
        return "not paid yet"
    return (f"paid {claim.paid_on} in {claim.payment_message_id}: region "
            f"{claim.paid_to_region}, person {claim.paid_to_person}")


def _advance_row(rt: Session, case: Case, advance: Advance, today: date) -> dict[str, Any]:
    try:
        application = rt.container.benefits.application(advance.application_id)
        stage, received = application.stage, application.received_on
    except ApplicationNotFoundError:
        stage, received = None, None
    return {
        "case_id": case.id, "social_region": case.social_region,
        "application_id": advance.application_id, "benefit_kind": advance.benefit_kind,
        "application_stage": stage, "application_received_on": received,
        "application_age_days": (today - received).days if received else None,
        "advance_from": advance.started_on, "ended_on": advance.ended_on,
        "end_reason": advance.end_reason,
    }


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError("advances", [("case_id", f"{text!r} is not a UUID")]) from None


def add_commands(app: typer.Typer) -> None:
    """Add `claim`, `list`, `show` and `claims` to the `advances` group `app`."""
    app.command("claim")(claim)
    app.command("list")(list_advances)
    app.command("show")(show)
    app.command("claims")(claims)

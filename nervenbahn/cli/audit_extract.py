"""`nervenbahn audit extract KIND`: the auditor's population to sample from, as CSV or JSON.

KIND is `retroactive`, `back-payments`, `claim-backs`, `imported`, `live` or `actions`
(`nervenbahn.audit.extract` says what each holds). Filters: `--region`, `--from`/`--to` (the
day recorded, Swiss time), `--user`, `--role`, `--min-days` (retroactive), `--min-amount`
(retroactive, back-payments, claim-backs). Each row points to its event (event id, chain,
position).

The extract reads every region's cases: auditors, administrators and system actors run it
(as the access log; `reads.require_canton_wide`). It names cases, not persons, but a case's
figures concern its household: like the other audit reads it is access-logged before it is
shown, one entry per person of every case it names (field `audit_extract`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import typer

from domain.commands import Role
from domain.errors import InvalidCommandError
from nervenbahn.audit.access_log import AccessEntry
from nervenbahn.audit.chain import chain_name
from nervenbahn.audit.extract import (
    KINDS,
    Extract,
    ExtractFilter,
    ExtractKind,
    RecordedLog,
    check_filter,
    extract,
)
from nervenbahn.private import write_private

from .audit_store import require_chains_verified
from .reads import log_reads, reader, require_canton_wide
from .render import jsonable
from .session import Session, session

__all__ = ["register"]

Format = Literal["csv", "json"]
_COMMAND = "audit extract"


def register(app: typer.Typer) -> None:
    """Add `extract` to the `audit` app."""
    app.command("extract")(extract_command)


def extract_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"What to list: {', '.join(KINDS)}.")],
    region: Annotated[str | None, typer.Option("--region", help="Only this social region "
                      "(the one responsible at the time; an order: the paying one).")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Recorded on or after this day "
                     "(YYYY-MM-DD, Swiss time).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Recorded on or before this day "
                  "(YYYY-MM-DD, Swiss time).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user: the declared "
                    "actor's user id or the established identity's user name (an order: "
                    "who prepared its run).")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this declared role.")] = None,
    min_days: Annotated[int | None, typer.Option("--min-days", help="retroactive: at least "
                        "this many days back.")] = None,
    min_amount: Annotated[str | None, typer.Option("--min-amount", help="CHF: retroactive: a "
                          "monthly difference at least this large either way; back-payments, "
                          "claim-backs: the amount.")] = None,
    format_: Annotated[str | None, typer.Option("--format", help="csv or json (default: csv; "
                       "json with the global --json).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (mode 0600) "
                   "instead of standard output.", dir_okay=False)] = None,
) -> None:
    """The auditor's population: every retroactive change, back-payment, claim-back, imported
    or live event, or action, each row pointing to its event (docs/audit.md)."""
    rt = session(ctx)
    require_canton_wide(rt, "the audit extract")
    require_chains_verified(rt, "the audit extract", {"everything"})
    chosen = _format(format_, rt.as_json)
    filters = _filters(rt, region, from_, to, user, role, min_days, min_amount)
    check_filter(kind, filters)
    result = extract(_kind(kind), _cases(rt), _payments(rt), filters,
                     _benefits(rt) if kind == "actions" else None)
    _log(rt, result)
    text = _csv(result) if chosen == "csv" else _json(result, filters)
    if out is None:
        rt.console.file.write(text)
        return
    write_private(out, text)
    rt.console.print(f"{len(result.rows)} rows ({kind}) written to {out}", markup=False,
                     highlight=False)


# --- input -----------------------------------------------------------------------------------


def _kind(kind: str) -> ExtractKind:
    assert kind in KINDS  # checked by check_filter
    return kind  # type: ignore[return-value]


def _format(text: str | None, as_json: bool) -> Format:
    chosen = text or ("json" if as_json else "csv")
    if chosen not in get_args(Format):
        raise InvalidCommandError(_COMMAND, [("--format", f"{chosen!r} is not csv or json")])
    return chosen  # type: ignore[return-value]


def _filters(
    rt: Session, region: str | None, from_: str | None, to: str | None, user: str | None,
    role: str | None, min_days: int | None, min_amount: str | None,
) -> ExtractFilter:
    problems: list[tuple[str, str]] = []
    if region is not None and region not in rt.service.reference.regions:
        problems.append(("--region", f"{region!r} is not a social region "
                                     f"({', '.join(sorted(rt.service.reference.regions))})"))
    if role is not None and role not in get_args(Role):
        problems.append(("--role", f"{role!r} is not one of {', '.join(get_args(Role))}"))
    gte, lte = _day("--from", from_, problems), _day("--to", to, problems)
    amount = _amount(min_amount, problems)
    if problems:
        raise InvalidCommandError(_COMMAND, problems)
    return ExtractFilter(region=region, recorded_gte=gte, recorded_lte=lte, user=user,
                         role=role, min_days=min_days, min_amount=amount)


def _day(option: str, text: str | None, problems: list[tuple[str, str]]) -> date | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problems.append((option, f"{text!r} is not a date YYYY-MM-DD"))
        return None
    if not 1900 <= day.year <= 2999:
        problems.append((option, f"{text} lies outside the years 1900-2999"))
    return day


def _amount(text: str | None, problems: list[tuple[str, str]]) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        problems.append(("--min-amount", f"{text!r} is not an amount in CHF"))
        return None
    return amount


def _cases(rt: Session) -> RecordedLog:
    service = rt.service
    return RecordedLog(service, _chain(service.recorder))


def _payments(rt: Session) -> RecordedLog:
    payments = rt.container.payments
    return RecordedLog(payments, _chain(payments.recorder))


def _benefits(rt: Session) -> RecordedLog:
    benefits = rt.container.benefits
    return RecordedLog(benefits, _chain(benefits.recorder))


def _chain(recorder: Any) -> str:
    """The chain over a recorder's events table, as `audit verify` names it."""
    return chain_name(str(getattr(recorder, "events_table_name", "stored_events")))


# --- the access log ----------------------------------------------------------------------------


def _log(rt: Session, result: Extract) -> None:
    """Log the read of every case the extract names, one entry per person of its household,
    before anything is shown or written (exit 3 if the log cannot be written)."""
    who = reader(rt)
    at = datetime.now(UTC)
    entries = [
        AccessEntry(at=at, consumer=who.consumer, scope=who.scope, case_id=str(case_id),
                    person_id=str(person_id), fields=("audit_extract",),
                    endpoint=f"nervenbahn {_COMMAND} {result.kind}")
        for case_id, persons in sorted(result.households.items())
        for person_id in persons
    ]
    log_reads(rt, entries, "extract")


# --- output ----------------------------------------------------------------------------------


def _csv(result: Extract) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=result.columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    return buffer.getvalue()


def _json(result: Extract, filters: ExtractFilter) -> str:
    document = {"kind": result.kind, "filters": jsonable(filters), "count": len(result.rows),
                "columns": list(result.columns), "rows": result.rows}
    return json.dumps(jsonable(document), ensure_ascii=False, indent=2) + "\n"

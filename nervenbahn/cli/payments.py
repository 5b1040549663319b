"""`nervenbahn payments …`: payout accounts, monthly payment runs, and their publication.

Each command gathers its options into a command; the rules live in `domain.payments` and
`domain.application.payments` (docs/payments.md).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from bus.topics import ensure_topics
from domain.application.payments import PaymentService, RunSummary
from domain.errors import InvalidCommandError
from domain.money import ZERO
from domain.payments import OrderDraft, RecordPayoutAccount, RunPayments
from nervenbahn.datasets import PAYMENT_ORDERS

from .reads import log_case_read, readable_case
from .render import emit_json
from .session import Session, session

__all__ = ["app"]

app = typer.Typer(help="Payout accounts and monthly payment runs.", no_args_is_help=True)

Correlation = Annotated[
    str | None, typer.Option("--correlation-id", help="Correlation id (default: a new one).")
]


@contextmanager
def _payments(rt: Session) -> Iterator[PaymentService]:
    """The container's payments service (closed with the container)."""
    yield rt.container.payments


def _command_fields(rt: Session, correlation_id: str | None) -> dict[str, Any]:
    return {"actor": rt.actor(), "correlation_id": correlation_id or str(uuid.uuid4())}


@app.command("account")
def account(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id (UUID).")],
    iban: Annotated[str, typer.Option(help="IBAN of a Swiss or Liechtenstein account.")],
    holder: Annotated[str, typer.Option(help="Name of the account holder.")],
    correlation_id: Correlation = None,
) -> None:
    """Record (or replace) the account a case's support is paid to (sealed)."""
    rt = session(ctx)
    command = RecordPayoutAccount(
        case_id=_uuid(case_id, "case_id"), iban=iban, holder=holder,
        **_command_fields(rt, correlation_id),
    )
    with _payments(rt) as payments:
        result = payments.record_account(command)
    if rt.as_json:
        emit_json(rt.console, {"case_id": result.case_id, "version": result.version,
                               "changed": result.changed})
    else:
        verb = "replaced" if result.changed else "recorded"
        rt.console.print(f"payout account of case {result.case_id} {verb} "
                         f"(version {result.version})")


@app.command("run")
def run(
    ctx: typer.Context,
    month: Annotated[str, typer.Argument(help="The month YYYY-MM (not after the current one).")],
    execution_date: Annotated[
        str | None, typer.Option(help="Requested execution date YYYY-MM-DD (default: today).")
    ] = None,
    correlation_id: Correlation = None,
) -> None:
    """Order what every case is owed up to MONTH and was not yet ordered (never twice)."""
    rt = session(ctx)
    fields = {"month": month, **_command_fields(rt, correlation_id)}
    if execution_date is not None:
        fields["execution_date"] = execution_date
    command = RunPayments(**fields)
    with _payments(rt) as payments:
        summary = payments.run(command)
    if rt.as_json:
        emit_json(rt.console, _summary_json(summary))
        return
    rt.console.print(summary.message)
    if summary.orders:
        rt.console.print(_orders_table(summary.orders))


@app.command("orders")
def orders(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id (UUID).")],
) -> None:
    """Every recorded order of a case, and what they add up to per month."""
    rt = session(ctx)
    uid = _uuid(case_id, "case_id")
    case = readable_case(rt, uid)
    with _payments(rt) as payments:
        found = list(payments.orders(uid))
    log_case_read(rt, case, ("payment_orders",), "payments orders")
    rows: list[dict[str, Any]] = [
        {"order_id": o.order_id, "run_id": o.originator_id, "for_month": f"{o.for_month:%Y-%m}",
         "kind": o.kind, "amount": o.amount, "held": o.held, "recorded_at": o.timestamp}
        for o in found
    ]
    if rt.as_json:
        emit_json(rt.console, {"case_id": uid, "orders": rows})
        return
    table = Table("for month", "kind", "amount CHF", "held", "recorded at", "run")
    for o in found:
        table.add_row(f"{o.for_month:%Y-%m}", o.kind, str(o.amount), "held" if o.held else "",
                      o.timestamp.isoformat(), str(o.originator_id))
    rt.console.print(table)


@app.command("runs")
def runs(ctx: typer.Context) -> None:
    """Every recorded payment run with its totals."""
    rt = session(ctx)
    with _payments(rt) as payments:
        rows = []
        for run_ in payments.runs():
            completed = payments.run_events(run_.id)[-1]
            rows.append({
                "run_id": run_.id, "month": f"{run_.month:%Y-%m}", "sequence": run_.sequence,
                "execution_date": run_.execution_date, "orders": completed.order_count,
                "paid_out": completed.paid_out_count, "control_sum": completed.control_sum,
                "claims": completed.claim_count, "claim_sum": completed.claim_sum,
                "held": completed.held_count, "recorded_at": run_.created_on,
            })
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table("month", "#", "payments", "CHF", "claims", "CHF", "held", "run id")
    for row in rows:
        table.add_row(row["month"], str(row["sequence"]), str(row["paid_out"]),
                      str(row["control_sum"]), str(row["claims"]), str(row["claim_sum"]),
                      str(row["held"]), str(row["run_id"]))
    rt.console.print(table)


@app.command("publish")
def publish(
    ctx: typer.Context,
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Stop once nothing is left to publish.")
    ] = False,
) -> None:
    """Run the payments relay: payment runs onto the payments topic (NERVENBAHN_KAFKA)."""
    rt = session(ctx)
    container = rt.container
    ensure_topics(container.kafka, [container.topic(PAYMENT_ORDERS)])
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with container.relay(PAYMENT_ORDERS) as relay:
        status = relay.run(stop, until_caught_up=until_caught_up)
    figures = {"relay": relay.name, "position": status.position, "head": status.head,
               "lag": status.lag, "published": status.published}
    if rt.as_json:
        emit_json(rt.console, figures)
    else:
        rt.console.print(f"payments relay at {status.position} of {status.head} "
                         f"(lag {status.lag}; {status.published} messages published)")


def _uuid(text: str, field: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommandError("payments", [(field, f"{text!r} is not a UUID")]) from None


def _summary_json(summary: RunSummary) -> dict[str, Any]:
    return {
        "month": f"{summary.month:%Y-%m}",
        "recorded": summary.recorded,
        "run_id": summary.run_id,
        "sequence": summary.sequence,
        "execution_date": summary.execution_date,
        "message": summary.message,
        "cases_checked": summary.cases_checked,
        "payments": len(summary.paid_out),
        "control_sum": summary.control_sum,
        "claims": len(summary.claims),
        "claim_sum": sum((o.amount for o in summary.claims), ZERO),
        "held": [_order_json(o) for o in summary.held],
        "orders": [_order_json(o) for o in summary.orders],
        "seconds": round(summary.seconds, 3),
    }


def _order_json(order: OrderDraft) -> dict[str, Any]:
    return {
        "case_id": order.case_id,
        "for_month": f"{order.for_month:%Y-%m}",
        "kind": order.kind,
        "amount": order.amount,
        "held": order.held,
        "social_region": order.social_region,
        "entitlement": order.entitlement,
        "previously_ordered": order.previously_ordered,
    }


def _orders_table(drafts: list[OrderDraft], limit: int = 20) -> Table:
    table = Table("case", "for month", "kind", "amount CHF", "held",
                  caption=f"first {limit} of {len(drafts)}" if len(drafts) > limit else None)
    for order in drafts[:limit]:
        table.add_row(str(order.case_id), f"{order.for_month:%Y-%m}", order.kind,
                      str(order.amount), "held" if order.held else "")
    return table

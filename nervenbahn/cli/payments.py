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
from domain.payments import (
    ApprovePaymentRun,
    HoldDraft,
    LargeBackPayment,
    OrderDraft,
    RecordPayoutAccount,
    RunPayments,
)
from nervenbahn.datasets import PAYMENT_ORDERS

from .audit_store import require_chains_verified
from .reads import log_case_read, readable_case
from .render import emit_json
from .session import Session, session

__all__ = ["app"]

app = typer.Typer(
    help="Payout accounts and monthly payment runs. A run is prepared by one person and "
    "approved by a second (`payments approve`) before its pain.001 file is released.",
    no_args_is_help=True,
)

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
    """Prepare the run of MONTH: order what every case is owed up to MONTH and was not yet
    ordered (never twice); hold cases with an open death or moved-away closure proposal. Its
    file is released only after a second person's `payments approve`."""
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
    if summary.holds:
        rt.console.print(_holds_table(summary.holds))
    if summary.large_back_payments:
        rt.console.print(_large_table(summary.large_back_payments, "to acknowledge at approval"))


@app.command("approve")
def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run id (UUID) of a prepared run.")],
    acknowledge: Annotated[
        list[str] | None,
        typer.Option("--acknowledge", help="A case whose back-payment above the approval "
                     "threshold you checked (repeat for each one the refusal lists)."),
    ] = None,
    correlation_id: Correlation = None,
) -> None:
    """Approve a prepared run (four-eyes): an administrator other than the one who prepared
    it; every case back-paid more than NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD in the run must
    be acknowledged with --acknowledge. Releases the run's pain.001 file."""
    rt = session(ctx)
    command = ApprovePaymentRun(
        run_id=_uuid(run_id, "run_id"),
        acknowledged=[_uuid(text, "acknowledged") for text in acknowledge or []],
        **_command_fields(rt, correlation_id),
    )
    with _payments(rt) as payments:
        result = payments.approve(command)
    large = result.large_back_payments
    if rt.as_json:
        emit_json(rt.console, {
            "run_id": result.run_id, "approved_by": result.approved_by,
            "threshold": result.threshold,
            "large_back_payments": [_large_json(b) for b in large],
        })
        return
    rt.console.print(f"payment run {result.run_id} approved by {result.approved_by}; its "
                     f"file is released ({len(large)} back-payments above CHF "
                     f"{result.threshold} acknowledged)")


@app.command("orders")
def orders(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id (UUID).")],
) -> None:
    """Every recorded order of a case, and what they add up to per month."""
    rt = session(ctx)
    uid = _uuid(case_id, "case_id")
    case = readable_case(rt, uid)
    require_chains_verified(rt, "the payment orders", {"payments"})
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
    """Every recorded payment run with its totals, who prepared and who approved it (held:
    orders without payout account + cases held for a closure proposal)."""
    rt = session(ctx)
    require_chains_verified(rt, "the payment runs", {"payments"})
    with _payments(rt) as payments:
        rows = []
        for run_ in payments.runs():
            events = payments.run_events(run_.id)
            completed = next(e for e in events if type(e).__name__ == "PaymentRunCompleted")
            approval = payments.approval_of(run_.id)
            rows.append({
                "run_id": run_.id, "month": f"{run_.month:%Y-%m}", "sequence": run_.sequence,
                "execution_date": run_.execution_date, "orders": completed.order_count,
                "paid_out": completed.paid_out_count, "control_sum": completed.control_sum,
                "claims": completed.claim_count, "claim_sum": completed.claim_sum,
                "held": completed.held_count, "recorded_at": run_.created_on,
                "prepared_by": run_.actor.user_id,
                "held_for_proposals": len(run_.holds),
                "approved_by": approval.actor.user_id if approval else None,
                "approved_at": approval.timestamp if approval else None,
                "large_back_payments": [
                    _large_json(b) for b in payments.pending_approval(run_.id)
                ],
            })
    if rt.as_json:
        emit_json(rt.console, rows)
        return
    table = Table("month", "#", "payments", "CHF", "claims", "CHF", "held", "prepared by",
                  "approved by", "run id")
    for row in rows:
        table.add_row(row["month"], str(row["sequence"]), str(row["paid_out"]),
                      str(row["control_sum"]), str(row["claims"]), str(row["claim_sum"]),
                      f"{row['held']} + {row['held_for_proposals']}", row["prepared_by"],
                      row["approved_by"] or "awaiting approval", str(row["run_id"]))
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
        "holds": [_hold_json(h) for h in summary.holds],
        "large_back_payments": [_large_json(b) for b in summary.large_back_payments],
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


def _hold_json(hold: HoldDraft) -> dict[str, Any]:
    return {
        "case_id": hold.case_id,
        "reason": hold.reason,
        "proposal": hold.proposal,
        "proposal_effective_date": hold.proposal_effective_date,
        "held_from": hold.held_from,
        "held_amount": hold.held_amount,
        "social_region": hold.social_region,
    }


def _large_json(large: LargeBackPayment) -> dict[str, Any]:
    return {"case_id": large.case_id, "amount": large.amount,
            "months": [f"{m:%Y-%m}" for m in large.months]}


def _holds_table(holds: list[HoldDraft]) -> Table:
    table = Table("case", "held because", "proposal", "held from", "CHF not ordered",
                  title="held for an open closure proposal")
    for hold in holds:
        table.add_row(str(hold.case_id), hold.reason, hold.proposal, str(hold.held_from),
                      str(hold.held_amount))
    return table


def _large_table(large: list[LargeBackPayment], title: str) -> Table:
    table = Table("case", "back-paid CHF", "months", title=f"back-payments above the "
                  f"approval threshold ({title})")
    for item in large:
        table.add_row(str(item.case_id), str(item.amount), str(len(item.months)))
    return table


def _orders_table(drafts: list[OrderDraft], limit: int = 20) -> Table:
    table = Table("case", "for month", "kind", "amount CHF", "held",
                  caption=f"first {limit} of {len(drafts)}" if len(drafts) > limit else None)
    for order in drafts[:limit]:
        table.add_row(str(order.case_id), f"{order.for_month:%Y-%m}", order.kind,
                      str(order.amount), "held" if order.held else "")
    return table

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
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from bus.topics import ensure_topics
from connectors.payments.reconciliation import BankFileError, read_bank_file
from domain.application.payments import PaymentService, RunSummary
from domain.application.settlement import (
    ClaimBack,
    MonthSettlement,
    ReconcileResult,
    Settlements,
)
from domain.errors import DomainError, InvalidCommandError
from domain.money import ZERO
from domain.payments import (
    ApprovePaymentRun,
    HoldDraft,
    LargeBackPayment,
    OrderDraft,
    RecordPayoutAccount,
    RunPayments,
    parse_month,
)
from domain.settlement import ReconcileBankFile, RecoverClaimBack, WriteOffClaimBack, reason_label
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
         "kind": o.kind, "amount": o.amount, "held": o.held, "held_reason": o.held_reason,
         "recorded_at": o.timestamp}
        for o in found
    ]
    if rt.as_json:
        emit_json(rt.console, {"case_id": uid, "orders": rows})
        return
    table = Table("for month", "kind", "amount CHF", "held", "recorded at", "run")
    for o in found:
        table.add_row(f"{o.for_month:%Y-%m}", o.kind, str(o.amount), _held(o.held, o.held_reason),
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


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="pain.002 or camt.054 files (XML).")],
    correlation_id: Correlation = None,
) -> None:
    """Read the bank's pain.002 status reports and camt.054 notifications: orders become
    executed, rejected (with the reason) or returned. Each file is validated against its
    schema and recorded whole or not at all; a file read before records nothing. Exits 1 if
    any file was refused (the others are recorded)."""
    rt = session(ctx)
    fields = _command_fields(rt, correlation_id)
    outcomes: list[dict[str, Any]] = []
    with _payments(rt) as payments:
        settlements = Settlements(payments)
        for path in files:
            outcomes.append(_reconcile_one(settlements, path, fields))
    if rt.as_json:
        emit_json(rt.console, outcomes)
    else:
        for outcome in outcomes:
            rt.console.print(outcome["message"], markup=False)
    if any(o["refused"] for o in outcomes):
        raise typer.Exit(1)


@app.command("status")
def status(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option(help="Only this month YYYY-MM.")] = None,
) -> None:
    """Ordered vs executed per month (the month the payments are for): orders paid out,
    executed by the bank, rejected, returned, and still open, with counts and CHF."""
    rt = session(ctx)
    only = None
    if month is not None:
        try:
            only = parse_month(month)
        except ValueError as exc:
            raise InvalidCommandError("payments status", [("month", str(exc))]) from None
    with _payments(rt) as payments:
        months = Settlements(payments).by_month(only)
    if rt.as_json:
        emit_json(rt.console, [_month_json(m) for m in months])
        return
    table = Table("month", "ordered", "CHF", "executed", "CHF", "rejected", "CHF", "returned",
                  "CHF", "open", "CHF")
    for m in months:
        cells = [f"{m.month:%Y-%m}"]
        for name in ("ordered", "executed", "rejected", "returned", "open"):
            cells += [str(m.counts[name]), str(m.amounts[name])]
        table.add_row(*cells)
    rt.console.print(table)


@app.command("claim-backs")
def claim_backs(ctx: typer.Context) -> None:
    """Every claim-back: the amount, what was recovered or written off, what is outstanding."""
    rt = session(ctx)
    with _payments(rt) as payments:
        found = Settlements(payments).claim_backs()
    if rt.as_json:
        emit_json(rt.console, [_claim_json(c) for c in found])
        return
    table = Table("order", "case", "for month", "CHF", "recovered", "written off",
                  "outstanding", "status")
    for c in found:
        table.add_row(str(c.order_id), str(c.case_id), f"{c.for_month:%Y-%m}", str(c.amount),
                      str(c.recovered), str(c.written_off), str(c.outstanding), c.status)
    rt.console.print(table)


@app.command("recover")
def recover(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The claim-back's order id (UUID).")],
    amount: Annotated[str, typer.Option(help="CHF recovered (at most what is outstanding).")],
    on: Annotated[str, typer.Option(help="Date recovered YYYY-MM-DD.")],
    note: Annotated[str | None, typer.Option(help="E.g. the booking's reference.")] = None,
    correlation_id: Correlation = None,
) -> None:
    """Record an amount recovered on a claim-back (partial recoveries allowed)."""
    rt = session(ctx)
    fields = {"amount": amount, "recovered_on": on, **_command_fields(rt, correlation_id)}
    command = RecoverClaimBack(order_id=_uuid(order_id, "order_id"), note=note, **fields)
    with _payments(rt) as payments:
        claim = Settlements(payments).recover(command)
    _print_claim(rt, claim, f"CHF {command.amount} recovered")


@app.command("write-off")
def write_off(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The claim-back's order id (UUID).")],
    reason: Annotated[str, typer.Option(help="Why it is written off (recorded).")],
    correlation_id: Correlation = None,
) -> None:
    """Write off what is outstanding on a claim-back (administrators only)."""
    rt = session(ctx)
    command = WriteOffClaimBack(order_id=_uuid(order_id, "order_id"), reason=reason,
                                **_command_fields(rt, correlation_id))
    with _payments(rt) as payments:
        claim = Settlements(payments).write_off(command)
    _print_claim(rt, claim, f"CHF {claim.written_off} written off")


def _reconcile_one(settlements: Settlements, path: Path, fields: dict[str, Any]
                   ) -> dict[str, Any]:
    """Read and record one bank file; what happened, or why it was refused (nothing
    recorded)."""
    try:
        bank_file = read_bank_file(_read(path), path.name)
        result = settlements.reconcile(ReconcileBankFile(
            file_name=path.name, file_sha256=bank_file.sha256, kind=bank_file.kind,
            message_id=bank_file.message_id, statuses=list(bank_file.statuses), **fields))
    except (BankFileError, DomainError) as exc:
        return {"file": str(path), "refused": True, "recorded": [],
                "message": f"{path.name}: refused, nothing recorded: {exc}"}
    return {"file": str(path), "refused": False, **_result_json(result, bank_file.ignored)}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidCommandError("payments reconcile", [("file", f"{path}: {exc.strerror}")]
                                  ) from None


def _result_json(result: ReconcileResult, ignored: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for settled in result.recorded:
        counts[settled.outcome] = counts.get(settled.outcome, 0) + 1
    if result.already_read:
        message = f"{result.file_name}: read before (same SHA-256); nothing recorded"
    else:
        what = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing"
        message = (f"{result.file_name} ({result.kind}): recorded {what}; {result.unchanged} "
                   f"already recorded, {ignored} without anything to record")
    return {
        "file_name": result.file_name, "sha256": result.file_sha256, "kind": result.kind,
        "already_read": result.already_read, "unchanged": result.unchanged,
        "ignored": ignored, "runs": result.runs, "message": message,
        "recorded": [{"order_id": s.order_id, "case_id": s.case_id, "run_id": s.run_id,
                      "for_month": f"{s.for_month:%Y-%m}", "outcome": s.outcome,
                      "amount": s.amount, "reason": reason_label(s.reason_code) or None}
                     for s in result.recorded],
    }


def _month_json(month: MonthSettlement) -> dict[str, Any]:
    return {"month": f"{month.month:%Y-%m}",
            **{name: {"count": month.counts[name], "amount": month.amounts[name]}
               for name in month.counts},
            "paid": month.paid}


def _claim_json(claim: ClaimBack) -> dict[str, Any]:
    return {"order_id": claim.order_id, "run_id": claim.run_id, "case_id": claim.case_id,
            "for_month": f"{claim.for_month:%Y-%m}", "amount": claim.amount,
            "recovered": claim.recovered, "written_off": claim.written_off,
            "written_off_reason": claim.written_off_reason,
            "outstanding": claim.outstanding, "status": claim.status}


def _print_claim(rt: Session, claim: ClaimBack, what: str) -> None:
    if rt.as_json:
        emit_json(rt.console, _claim_json(claim))
    else:
        rt.console.print(f"claim-back {claim.order_id}: {what}; CHF {claim.outstanding} "
                         f"outstanding ({claim.status})")


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
        "held_reason": order.held_reason,
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
                      str(order.amount), _held(order.held, order.held_reason))
    return table


def _held(held: bool, reason: str | None) -> str:
    """The held column: why an order is held (v1 orders name no reason), empty if not."""
    return f"held: {reason}" if held and reason else "held" if held else ""

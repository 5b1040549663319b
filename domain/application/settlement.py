"""Settlement of payment orders on the payments store: bank files, claim-backs, and the
figures "ordered vs executed" per month that `payments status` and the audit report show.

`Settlements` works on a `PaymentService` (same store, same transaction boundaries): it never
changes a run, it records on the run's `RunSettlement` (`domain.settlement`). A bank file is
checked whole before anything is recorded: every id it names must be one of our runs'
messages or orders, every status must follow what was recorded; otherwise nothing is.

Months are the months the orders are *for* (`PaymentOrdered.for_month`), as the entitlement
is, so that the audit report can set paid beside owed month by month.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain.application.payments import PaymentService
from domain.case import acts_canton_wide
from domain.errors import RuleViolationError
from domain.money import ZERO
from domain.payments import PaymentOrdered
from domain.settlement import (
    SETTLEMENT_EVENT_TYPES,
    SETTLEMENT_RULE,
    BankFileRead,
    BankStatus,
    ClaimBackRecovered,
    ClaimBackWrittenOff,
    PaymentExecuted,
    PaymentRejected,
    PaymentReturned,
    ReconcileBankFile,
    RecoverClaimBack,
    RunSettlement,
    WriteOffClaimBack,
    settlement_id,
)

__all__ = [
    "WRITE_OFF_ROLES",
    "ClaimBack",
    "MonthSettlement",
    "ReconcileResult",
    "SettledOrder",
    "Settlements",
]

log = structlog.get_logger("nervenbahn.payments.settlement")

_ALL = 2**62
WRITE_OFF_ROLES: frozenset[str] = frozenset({"administrator"})
"""Who may write off a claim-back: a person with the administrator role (not the system)."""
_EVENT_CLASS = {
    "executed": PaymentExecuted,
    "rejected": PaymentRejected,
    "returned": PaymentReturned,
}
_ALLOWED: dict[str, set[str | None]] = {
    "executed": {None},
    "rejected": {None},
    "returned": {"executed"},
}
"""From which recorded state each outcome may follow (the same state again is no change)."""


_FIGURES = ("ordered", "executed", "rejected", "returned", "open")


@dataclass(frozen=True)
class SettledOrder:
    """One outcome a bank file recorded for one order."""

    order_id: UUID
    case_id: UUID
    run_id: UUID
    for_month: date
    outcome: str
    amount: Decimal
    reason_code: str | None = None


@dataclass
class ReconcileResult:
    """What reading one bank file recorded."""

    file_name: str
    file_sha256: str
    kind: str
    already_read: bool = False
    """True if the file (its SHA-256) was read before: nothing was recorded."""
    recorded: list[SettledOrder] = field(default_factory=list)
    unchanged: int = 0
    """Statuses that repeated what was recorded already."""
    runs: list[UUID] = field(default_factory=list)


@dataclass
class MonthSettlement:
    """Ordered vs settled for one month (and one case, or all): counts and CHF.

    ordered: paid-out orders; executed: booked by the bank (returned ones included);
    rejected; returned (executed, then back); open: neither executed nor rejected yet."""

    month: date
    case_id: UUID | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_FIGURES, 0))
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(_FIGURES, ZERO))

    def add(self, figure: str, amount: Decimal) -> None:
        """Count one order of `amount` under `figure`."""
        self.counts[figure] += 1
        self.amounts[figure] += amount

    @property
    def paid(self) -> Decimal:
        """CHF that reached the payees: executed less returned."""
        return self.amounts["executed"] - self.amounts["returned"]


@dataclass(frozen=True)
class ClaimBack:
    """A claim-back order and how far it was recovered."""

    order_id: UUID
    run_id: UUID
    case_id: UUID
    for_month: date
    amount: Decimal
    recovered: Decimal
    written_off: Decimal
    written_off_reason: str | None

    @property
    def outstanding(self) -> Decimal:
        """CHF still to recover."""
        return self.amount - self.recovered - self.written_off

    @property
    def status(self) -> str:
        """outstanding, recovered or written_off."""
        if self.written_off:
            return "written_off"
        return "recovered" if self.outstanding == ZERO else "outstanding"


class Settlements:
    """Records bank files and claim-back recoveries on a payments store; answers what was
    ordered, executed, rejected and returned."""

    def __init__(self, payments: PaymentService) -> None:
        self.payments = payments

    # --- bank files --------------------------------------------------------------------------

    def reconcile(self, cmd: ReconcileBankFile) -> ReconcileResult:
        """Record what a bank file says, all of it or (on any unknown id or contradiction)
        nothing; a file read before records nothing."""
        _check_reader(cmd)
        result = ReconcileResult(cmd.file_name, cmd.file_sha256, cmd.kind)
        orders = _OrderIndex(self.payments.orders())
        targets = [(status, order) for status in cmd.statuses for order in orders.targets(status)]
        settlements: dict[UUID, RunSettlement] = {}
        for run_id in dict.fromkeys(order.originator_id for _, order in targets):
            settlements[run_id] = self._settlement(run_id) or RunSettlement.open(
                run_id, self.payments.now()
            )
        result.runs = list(settlements)
        if settlements and all(cmd.file_sha256 in s.files for s in settlements.values()):
            result.already_read = True
            return result
        now = self.payments.now()
        for status, order in targets:
            settled = self._settle(settlements[order.originator_id], status, order, cmd, now)
            if settled is None:
                result.unchanged += 1
            else:
                result.recorded.append(settled)
        for settlement in settlements.values():
            settlement.record(
                BankFileRead,
                now,
                file_name=cmd.file_name,
                file_sha256=cmd.file_sha256,
                kind=cmd.kind,
                message_id=cmd.message_id,
                **self._who(cmd),
            )
        self._save(list(settlements.values()), "file_sha256", f"bank file {cmd.file_name}")
        log.info(
            "bank file reconciled",
            file=cmd.file_name,
            sha256=cmd.file_sha256,
            kind=cmd.kind,
            recorded=len(result.recorded),
            unchanged=result.unchanged,
            runs=len(settlements),
            actor=cmd.actor.user_id,
            correlation_id=str(cmd.correlation_id),
        )
        return result

    def _settle(
        self,
        settlement: RunSettlement,
        status: BankStatus,
        order: PaymentOrdered,
        cmd: ReconcileBankFile,
        now: Any,
    ) -> SettledOrder | None:
        """Record one status on the order's settlement; None if it repeats what was recorded;
        RuleViolationError if it contradicts it."""
        state = settlement.state_of(order.order_id)
        if state == status.outcome or (status.outcome == "executed" and state == "returned"):
            return None
        if state not in _ALLOWED[status.outcome]:
            raise RuleViolationError(SETTLEMENT_RULE, _contradiction(status, order, state))
        amount = _settled_amount(status, order)
        fields: dict[str, Any] = {
            "order_id": order.order_id,
            "case_id": order.case_id,
            "for_month": order.for_month,
            "amount": amount,
            "file_sha256": cmd.file_sha256,
            **self._who(cmd),
        }
        # The bank's free text (AddtlInf) is never recorded: it may name the payee, and a
        # settlement event is not sealed with the person's key, so erasure could not reach it.
        # The ISO reason code says why; the bank's file keeps the rest.
        if status.outcome == "rejected":
            fields.update(scope=status.scope, reason_code=status.reason_code, reason_text=None)
        else:
            if status.booking_date is None:
                raise RuleViolationError(
                    "booking-date",
                    f"{status.where}: BookgDt: an execution or return needs the booking date",
                )
            fields.update(booking_date=status.booking_date, bank_reference=status.bank_reference)
            if status.outcome == "returned":
                fields.update(reason_code=status.reason_code, reason_text=None)
        settlement.record(_EVENT_CLASS[status.outcome], now, **fields)
        return SettledOrder(
            order.order_id,
            order.case_id,
            order.originator_id,
            order.for_month,
            status.outcome,
            amount,
            status.reason_code,
        )

    # --- claim-backs -------------------------------------------------------------------------

    def recover(self, cmd: RecoverClaimBack) -> ClaimBack:
        """Record a recovered amount of a claim-back: never more than is outstanding."""
        if not acts_canton_wide(cmd.actor):
            raise RuleViolationError(
                "claim-back-by-administrator",
                f"actor.role: a recovery is recorded by an administrator or the system, not a "
                f"{cmd.actor.role}",
            )
        order, settlement = self._claim(cmd.order_id)
        outstanding = settlement.outstanding(order.order_id, order.amount)
        if cmd.amount > outstanding:
            raise RuleViolationError(
                "recovery-within-outstanding",
                f"amount: CHF {cmd.amount} is more than the CHF {outstanding} outstanding on "
                f"claim-back {order.order_id}",
            )
        settlement.record(
            ClaimBackRecovered,
            self.payments.now(),
            order_id=order.order_id,
            case_id=order.case_id,
            for_month=order.for_month,
            amount=cmd.amount,
            recovered_on=cmd.recovered_on,
            outstanding=outstanding - cmd.amount,
            note=cmd.note,
            **self._who(cmd),
        )
        self._save([settlement], "order_id", f"claim-back {order.order_id}")
        return self.claim_back(order.order_id)

    def write_off(self, cmd: WriteOffClaimBack) -> ClaimBack:
        """Write off what is outstanding on a claim-back (administrators only, with reason)."""
        if cmd.actor.role not in WRITE_OFF_ROLES:
            raise RuleViolationError(
                "write-off-by-administrator",
                f"actor.role: a claim-back is written off by an administrator, not a "
                f"{cmd.actor.role}",
            )
        order, settlement = self._claim(cmd.order_id)
        outstanding = settlement.outstanding(order.order_id, order.amount)
        settlement.record(
            ClaimBackWrittenOff,
            self.payments.now(),
            order_id=order.order_id,
            case_id=order.case_id,
            for_month=order.for_month,
            amount=outstanding,
            reason=cmd.reason,
            **self._who(cmd),
        )
        self._save([settlement], "order_id", f"claim-back {order.order_id}")
        return self.claim_back(order.order_id)

    def _claim(self, order_id: UUID) -> tuple[PaymentOrdered, RunSettlement]:
        order = next((o for o in self.payments.orders() if o.order_id == order_id), None)
        if order is None or order.kind != "claim_back" or order.held:
            raise RuleViolationError(
                "known-claim-back", f"order_id: {order_id} is no claim-back order"
            )
        settlement = self._settlement(order.originator_id) or RunSettlement.open(
            order.originator_id, self.payments.now()
        )
        if str(order.order_id) in settlement.written_off:
            raise RuleViolationError(
                "claim-back-settled-once",
                f"order_id: claim-back {order_id} was written off already",
            )
        if settlement.outstanding(order.order_id, order.amount) == ZERO:
            raise RuleViolationError(
                "claim-back-settled-once",
                f"order_id: claim-back {order_id} is recovered in full already",
            )
        return order, settlement

    # --- queries -----------------------------------------------------------------------------

    def events(self) -> Iterator[Any]:
        """Every settlement event, in recording order."""
        for notification in self.payments.recorder.select_notifications(
            start=None, limit=_ALL, topics=[get_topic(cls) for cls in SETTLEMENT_EVENT_TYPES]
        ):
            yield self.payments.mapper.to_domain_event(notification)

    def answers_for(self, case_id: UUID) -> list[Any]:
        """The bank's answers (executed, rejected, returned events) to one case's orders, in
        recording order: what the audit report sets beside its payments."""
        return [event for event in self.events()
                if getattr(event, "outcome", "") and event.case_id == case_id]

    def by_case_and_month(
        self, case_id: UUID | None = None
    ) -> dict[tuple[UUID, date], MonthSettlement]:
        """Ordered, executed, rejected, returned and open per case and month (the month the
        orders are for) — what the audit report sets beside the entitlement."""
        states = self._states()
        figures: dict[tuple[UUID, date], MonthSettlement] = {}
        for order in self.payments.orders(case_id):
            if not order.paid_out:
                continue
            key = (order.case_id, order.for_month)
            month = figures.setdefault(key, MonthSettlement(order.for_month, order.case_id))
            _count(month, order.amount, states.get(order.order_id))
        return dict(sorted(figures.items(), key=lambda item: (item[0][1], str(item[0][0]))))

    def by_month(self, month: date | None = None) -> list[MonthSettlement]:
        """The same figures added up per month (one month only, if given)."""
        months: dict[date, MonthSettlement] = {}
        for (_, for_month), figures in self.by_case_and_month().items():
            if month is not None and for_month != month:
                continue
            total = months.setdefault(for_month, MonthSettlement(for_month))
            for name in _FIGURES:
                total.counts[name] += figures.counts[name]
                total.amounts[name] += figures.amounts[name]
        return [months[m] for m in sorted(months)]

    def claim_backs(self) -> list[ClaimBack]:
        """Every claim-back order with what was recovered or written off."""
        recovered: dict[UUID, Decimal] = {}
        written: dict[UUID, tuple[Decimal, str]] = {}
        for event in self.events():
            if isinstance(event, ClaimBackRecovered):
                recovered[event.order_id] = recovered.get(event.order_id, ZERO) + event.amount
            elif isinstance(event, ClaimBackWrittenOff):
                written[event.order_id] = (event.amount, event.reason)
        return [
            ClaimBack(
                o.order_id,
                o.originator_id,
                o.case_id,
                o.for_month,
                o.amount,
                recovered.get(o.order_id, ZERO),
                written.get(o.order_id, (ZERO, ""))[0],
                written.get(o.order_id, (ZERO, None))[1],
            )
            for o in self.payments.orders()
            if o.kind == "claim_back" and not o.held
        ]

    def claim_back(self, order_id: UUID) -> ClaimBack:
        """One claim-back's state."""
        return next(c for c in self.claim_backs() if c.order_id == order_id)

    # --- helpers -----------------------------------------------------------------------------

    def _states(self) -> dict[UUID, tuple[str, Decimal]]:
        """Each settled order's last outcome, with what came back for a returned one."""
        states: dict[UUID, tuple[str, Decimal]] = {}
        for event in self.events():
            outcome = getattr(event, "outcome", "")
            if outcome:
                states[event.order_id] = (outcome, event.amount)
        return states

    def _settlement(self, run_id: UUID) -> RunSettlement | None:
        try:
            return cast(RunSettlement, self.payments.repository.get(settlement_id(run_id)))
        except AggregateNotFoundError:
            return None

    def _save(self, settlements: list[RunSettlement], field_name: str, what: str) -> None:
        try:
            self.payments.save(*settlements)
        except IntegrityError as exc:
            raise RuleViolationError(
                "one-change-at-a-time",
                f"{field_name}: the settlement of a run in {what} was recorded meanwhile; "
                "nothing was recorded, retry",
            ) from exc

    def _who(self, cmd: Any) -> dict[str, Any]:
        return {
            "actor": cmd.actor,
            "recorded_by": str(self.payments.cases.identity),
            "correlation_id": cmd.correlation_id,
        }


class _OrderIndex:
    """The recorded orders by end-to-end id (an order id's hex) and by run."""

    def __init__(self, orders: Iterable[PaymentOrdered]) -> None:
        self.by_end_to_end: dict[str, PaymentOrdered] = {}
        self.by_run: dict[str, list[PaymentOrdered]] = {}
        for order in orders:
            self.by_end_to_end[order.order_id.hex] = order
            self.by_run.setdefault(order.originator_id.hex, []).append(order)

    def targets(self, status: BankStatus) -> list[PaymentOrdered]:
        """The orders a status is about: one, or every paid-out order of a message; a
        RuleViolationError naming the element if an id is not ours."""
        if status.message_id is not None and status.message_id.lower() not in self.by_run:
            raise RuleViolationError(
                "known-message-id",
                f"{status.message_where or status.where}: message id "
                f"{status.message_id!r} is no "
                "payment run's pain.001 message; nothing was recorded",
            )
        if status.end_to_end_id is None:
            if status.message_id is None:
                raise RuleViolationError(
                    "known-message-id", f"{status.where}: names neither a message nor an order"
                )
            return [o for o in self.by_run[status.message_id.lower()] if o.paid_out]
        order = self.by_end_to_end.get(status.end_to_end_id.lower())
        if order is None:
            raise RuleViolationError(
                "known-end-to-end-id",
                f"{status.where}: end-to-end id "
                f"{status.end_to_end_id!r} is no payment order of ours; nothing was recorded",
            )
        if status.message_id is not None and order.originator_id.hex != status.message_id.lower():
            raise RuleViolationError(
                "known-end-to-end-id",
                f"{status.where}: order {status.end_to_end_id} belongs "
                f"to message {order.originator_id.hex}, not {status.message_id}",
            )
        if not order.paid_out:
            raise RuleViolationError(
                "known-end-to-end-id",
                f"{status.where}: order {status.end_to_end_id} is no "
                f"transfer ({order.kind}{', held' if order.held else ''})",
            )
        return [order]


def _check_reader(cmd: ReconcileBankFile) -> None:
    if not acts_canton_wide(cmd.actor):
        raise RuleViolationError(
            "reconciliation-by-administrator",
            f"actor.role: bank files are read by an administrator or the system, not a "
            f"{cmd.actor.role}",
        )


def _settled_amount(status: BankStatus, order: PaymentOrdered) -> Decimal:
    if status.amount is None:
        return order.amount
    if status.outcome == "executed" and status.amount != order.amount:
        raise RuleViolationError(
            "executed-as-ordered",
            f"{status.where}: Amt: CHF {status.amount} booked for "
            f"order {order.order_id.hex}, CHF {order.amount} was ordered",
        )
    if status.amount > order.amount:
        raise RuleViolationError(
            "settled-within-ordered",
            f"{status.where}: Amt: CHF {status.amount} {status.outcome} for "
            f"order {order.order_id.hex}, only CHF {order.amount} was ordered",
        )
    return status.amount


def _contradiction(status: BankStatus, order: PaymentOrdered, state: str | None) -> str:
    before = "still open" if state is None else f"{state} already"
    return (
        f"{status.where}: order {order.order_id.hex} (case {order.case_id}) is {before}; "
        f"{status.outcome} cannot follow (ordered → executed or rejected; executed → "
        "returned); nothing was recorded"
    )


def _count(month: MonthSettlement, amount: Decimal, state: tuple[str, Decimal] | None) -> None:
    month.add("ordered", amount)
    if state is None:
        month.add("open", amount)
    elif state[0] == "rejected":
        month.add("rejected", amount)
    else:
        month.add("executed", amount)
        if state[0] == "returned":
            month.add("returned", state[1])

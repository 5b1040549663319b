"""Payments beside entitlement, per month, for the audit report.

For each month the report covers: what the case was owed as known at the report's time (the
budget by month, `CaseService.budget_by_month`), what the payment runs had ordered for that
month up to the same time (`PaymentOrdered.for_month`: regular and back-payments count
positive, claim-backs negative, a held order counts for nothing until a later run orders it
again), what the bank did with them as known at the same time (pain.002 and camt.054, read
into settlement events: `domain.settlement`), and the difference. A payment the bank rejected
or returned counts for nothing (or, returned in part, for what stayed paid): the next run
orders it again, as `domain.application.payments` does. A month where owed and counted differ
is one the auditor follows up: a retroactive change not yet paid or claimed back, a held or
refused payment, a month not yet run.

`PaymentMonth` holds the figures; the report's columns (`nervenbahn.audit.report`,
`PAYMENT_COLUMNS`) read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from domain.payments import PaymentOrdered

__all__ = ["BankOutcome", "OrderedPayment", "PaymentMonth", "payments_beside_entitlement"]

ZERO = Decimal("0.00")


class BankOutcome(Protocol):
    """What a bank file recorded for one order (`domain.settlement`'s settlement events; a
    rejection or return also carries `reason_code`)."""

    @property
    def order_id(self) -> UUID: ...
    @property
    def outcome(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def timestamp(self) -> datetime: ...


@dataclass(frozen=True)
class OrderedPayment:
    """One order for a month, as the report shows it."""

    kind: str
    """regular, back_payment or claim_back (`domain.payments.OrderKind`)."""
    amount: Decimal
    """CHF, positive, as ordered."""
    held: bool
    """No usable payout account: nothing was paid, it counts for nothing."""
    recorded_at: datetime
    outcome: str | None = None
    """executed, rejected or returned: the bank's last answer as known then (None: none yet)."""
    refused: Decimal = ZERO
    """CHF the bank rejected or returned of it (returned: what came back, maybe a part)."""
    reason_code: str | None = None
    """The bank's ISO reason code of a rejection or return."""

    @property
    def counted(self) -> Decimal:
        """What it counts for: positive paid out less what the bank refused, negative claimed
        back, 0 when held."""
        if self.held:
            return ZERO
        return -self.amount if self.kind == "claim_back" else self.amount - self.refused

    @property
    def executed(self) -> Decimal:
        """CHF the bank booked and kept paid (executed, less what was returned)."""
        if self.outcome in ("executed", "returned"):
            return self.amount - self.refused
        return ZERO


@dataclass(frozen=True)
class PaymentMonth:
    """One month: owed as known then, ordered up to then, and the difference."""

    month: date
    entitlement: Decimal
    orders: tuple[OrderedPayment, ...]

    @property
    def ordered(self) -> Decimal:
        """The sum of the month's counted orders (claim-backs negative, held ones 0, less
        what the bank refused)."""
        return sum((order.counted for order in self.orders), ZERO)

    @property
    def executed(self) -> Decimal:
        """CHF the bank reported booked (and not returned) for the month's payments."""
        return sum((order.executed for order in self.orders), ZERO)

    @property
    def refused(self) -> Decimal:
        """CHF the bank rejected or returned of the month's payments."""
        return sum((order.refused for order in self.orders), ZERO)

    @property
    def difference(self) -> Decimal:
        """Owed minus ordered: positive still to pay, negative paid too much."""
        return self.entitlement - self.ordered

    @property
    def differs(self) -> bool:
        """True if what was ordered is not what was owed."""
        return self.difference != ZERO


def payments_beside_entitlement(
    entitlement: Mapping[date, Decimal],
    orders: Iterable[PaymentOrdered],
    as_of: datetime,
    settled: Iterable[BankOutcome] = (),
) -> list[PaymentMonth]:
    """Per month (those owed something and those with an order), the entitlement given and
    the orders recorded up to `as_of` with the bank's last answer recorded up to then,
    oldest month first."""
    answers: dict[UUID, BankOutcome] = {}
    for settled_answer in sorted(settled, key=lambda a: a.timestamp):
        if settled_answer.timestamp <= as_of:
            answers[settled_answer.order_id] = settled_answer
    by_month: dict[date, list[OrderedPayment]] = {}
    for order in orders:
        if order.timestamp <= as_of:
            answer = answers.get(order.order_id)
            outcome = None if answer is None else answer.outcome
            by_month.setdefault(order.for_month, []).append(
                OrderedPayment(
                    kind=order.kind,
                    amount=order.amount,
                    held=order.held,
                    recorded_at=order.timestamp,
                    outcome=outcome,
                    refused=ZERO if answer is None or outcome == "executed" else answer.amount,
                    reason_code=getattr(answer, "reason_code", None),
                )
            )
    months = sorted(set(entitlement) | set(by_month))
    return [
        PaymentMonth(month, entitlement.get(month, ZERO), tuple(by_month.get(month, ())))
        for month in months
    ]

"""Payments beside entitlement, per month, for the audit report.

For each month the report covers: what the case was owed as known at the report's time (the
budget by month, `CaseService.budget_by_month`), what the payment runs had ordered for that
month up to the same time (`PaymentOrdered.for_month`: regular and back-payments count
positive, claim-backs negative, a held order counts for nothing until a later run orders it
again), and the difference. A month where they differ is one the auditor follows up: a
retroactive change not yet paid or claimed back, a held payment, a month not yet run.

`PaymentMonth` holds the figures; the report's columns (`nervenbahn.audit.report`,
`PAYMENT_COLUMNS`) read them, so a further figure (what the bank executed, from pain.002 and
camt.054) is one more property here and one more column there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from domain.payments import PaymentOrdered

__all__ = ["OrderedPayment", "PaymentMonth", "payments_beside_entitlement"]

ZERO = Decimal("0.00")


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

    @property
    def counted(self) -> Decimal:
        """What it counts for: positive paid out, negative claimed back, 0 when held."""
        if self.held:
            return ZERO
        return -self.amount if self.kind == "claim_back" else self.amount


@dataclass(frozen=True)
class PaymentMonth:
    """One month: owed as known then, ordered up to then, and the difference."""

    month: date
    entitlement: Decimal
    orders: tuple[OrderedPayment, ...]

    @property
    def ordered(self) -> Decimal:
        """The sum of the month's counted orders (claim-backs negative, held ones 0)."""
        return sum((order.counted for order in self.orders), ZERO)

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
) -> list[PaymentMonth]:
    """Per month (those owed something and those with an order), the entitlement given and
    the orders recorded up to `as_of`, oldest month first."""
    by_month: dict[date, list[OrderedPayment]] = {}
    for order in orders:
        if order.timestamp <= as_of:
            by_month.setdefault(order.for_month, []).append(
                OrderedPayment(
                    kind=order.kind,
                    amount=order.amount,
                    held=order.held,
                    recorded_at=order.timestamp,
                )
            )
    months = sorted(set(entitlement) | set(by_month))
    return [
        PaymentMonth(month, entitlement.get(month, ZERO), tuple(by_month.get(month, ())))
        for month in months
    ]

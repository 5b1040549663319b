"""The reimbursement claim of an advance in view of EL, month by month.

While an EL application is pending, the social service pays social assistance in advance
(Bevorschussung, DOMAIN.md). When the fund grants EL retroactively, the back-payment is split
per month (the rules, in order):

1. **Only months of both periods**: a month is claimable if it lies in the advance's period
   (from its first month to the month it ended) *and* EL is owed for it (ELG Art. 12: from the
   month of the application); the social service claims nothing for a month it did not
   advance, nor for a month without EL (SKOS F.2, zeitliche Kongruenz).
2. **Premium reduction first** (ELV Art. 22 para. 5): a premium reduction (IPV) the canton paid
   for the same month is offset against that month's EL, at most up to the month's EL. The
   order is ours: the premium part of EL was already paid to the insurer by the canton, so it
   is taken out before anything else (to confirm with the fund; `ipv` empty: no offset).
3. **The claim** (ELV Art. 22 para. 4; SKOS F.2, zeitliche und sachliche Kongruenz): the
   smaller of what the social service actually paid the case for the month's living costs
   (its payment orders as known when computing: regular payments, back-payments and
   claim-backs netted, held orders not at all; never below zero) and the EL left after the
   offset.
4. **The surplus** is the person's: EL − offset − claim. So per month
   claim + offset + surplus = EL, and over the months, the EL back-payment.

A later computation (an amended decision, a late payment correction, a retroactive budget
change) claims only the **difference** to what was claimed before, month by month; it can be
negative (the social service returns part of a claim, the person gets more). The same facts
twice give no difference at all. A month claimed before and no longer owed (an amendment to
0.00) is corrected back to zero.

Rounding: none is needed. Every input is a CHF amount in centimes (`domain.money.chf`,
half-up, applied to each input once) and every figure is a minimum, sum or difference of
such amounts, so each is exact to the centime.

Pure functions: no store, no clock. `paid_by_month` and `owed_by_month` read the facts from
the domain objects the services hold (payment orders, a benefit application's state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from domain.entitlement import month_of, months_between
from domain.events import ClaimFigures
from domain.money import ZERO, chf

if TYPE_CHECKING:  # types only: the case records claims, and the benefits import the case
    from domain.benefits import BenefitApplication
    from domain.payments import PaymentOrdered
    from domain.settlement import Refusal

__all__ = [
    "AdvancePeriod",
    "MonthClaim",
    "Reimbursement",
    "claimed_so_far",
    "compute_reimbursement",
    "owed_by_month",
    "paid_by_month",
]


@dataclass(frozen=True)
class AdvancePeriod:
    """The months the social service advanced: from `first_month` to `last_month` (the month
    the advance ended, inclusive; None while it lasts)."""

    first_month: date
    last_month: date | None = None

    def __post_init__(self) -> None:
        if self.last_month is not None and month_of(self.last_month) < month_of(self.first_month):
            raise ValueError(
                f"last_month: {self.last_month:%Y-%m} lies before first_month "
                f"{self.first_month:%Y-%m}")

    def covers(self, month: date) -> bool:
        """Whether the social service advanced for `month` (any day of it)."""
        month = month_of(month)
        if month < month_of(self.first_month):
            return False
        return self.last_month is None or month <= month_of(self.last_month)


MonthClaim = ClaimFigures
"""The figures of one month, all CHF: what the social service paid, the EL owed, the premium
reduction offset, the claim and the person's surplus (claim + ipv_offset + surplus = el); as a
correction, each figure is the difference to before instead. The case records them as they
are (`domain.events.ClaimFigures`)."""


@dataclass(frozen=True)
class Reimbursement:
    """A computation: every month's figures as known now, and the corrections to what was
    claimed before (only the months where claim, offset or surplus changed)."""

    months: tuple[MonthClaim, ...]
    corrections: tuple[MonthClaim, ...]

    @property
    def claims_something(self) -> bool:
        """Whether this computation claims, offsets or pays anything new."""
        return bool(self.corrections)

    @property
    def claim_total(self) -> Decimal:
        """The new claim of this computation: the sum of the corrections' claims."""
        return sum((c.claim for c in self.corrections), ZERO)

    @property
    def surplus_total(self) -> Decimal:
        """What the person gets (or returns, if negative) with this computation."""
        return sum((c.surplus for c in self.corrections), ZERO)

    @property
    def ipv_offset_total(self) -> Decimal:
        """The premium-reduction offset of this computation."""
        return sum((c.ipv_offset for c in self.corrections), ZERO)


_NOTHING = (ZERO, ZERO, ZERO, ZERO, ZERO)


def compute_reimbursement(
    advance: AdvancePeriod,
    el: Mapping[date, Decimal],
    paid: Mapping[date, Decimal],
    *,
    ipv: Mapping[date, Decimal] | None = None,
    before: Mapping[date, MonthClaim] | None = None,
) -> Reimbursement:
    """Split the EL back-payment of each month into claim, premium offset and surplus.

    `el`: the EL owed per month as known now (the back-payment months, keys the first days of
    the months; see `owed_by_month`); `paid`: what the social service paid the case per month
    as known now (`paid_by_month`); `ipv`: premium reductions the canton paid per month;
    `before`: the figures claimed so far per month (`claimed_so_far`). ValueError naming the
    mapping if an amount is negative or a key is not the first day of a month.
    """
    el_now = _amounts(el, "el")
    paid_now = _amounts(paid, "paid", negative_ok=True)
    ipv_now = _amounts(ipv or {}, "ipv")
    earlier = dict(before or {})
    months = sorted(m for m, amount in el_now.items() if amount > ZERO)
    figures = tuple(
        _month(m, el_now[m], paid_now.get(m, ZERO), ipv_now.get(m, ZERO), advance.covers(m))
        for m in months)
    corrections = []
    for month in sorted({*months, *earlier}):
        now = next((f for f in figures if f.month == month), MonthClaim(month, *_NOTHING))
        change = now.minus(earlier.get(month, MonthClaim(month, *_NOTHING)))
        if not change.is_zero:
            corrections.append(change)
    return Reimbursement(figures, tuple(corrections))


def claimed_so_far(reimbursements: Iterable[Reimbursement]) -> dict[date, MonthClaim]:
    """The figures claimed so far per month: the sum of the corrections of `reimbursements`
    (all earlier computations of one advance, in any order)."""
    total: dict[date, MonthClaim] = {}
    for reimbursement in reimbursements:
        for c in reimbursement.corrections:
            prior = total.get(c.month, MonthClaim(c.month, *_NOTHING))
            total[c.month] = MonthClaim(c.month, prior.paid + c.paid, prior.el + c.el,
                                        prior.ipv_offset + c.ipv_offset,
                                        prior.claim + c.claim, prior.surplus + c.surplus)
    return total


def paid_by_month(
    orders: Iterable[PaymentOrdered],
    case_id: UUID,
    known_at: datetime,
    refusals: Iterable[Refusal] = (),
) -> dict[date, Decimal]:
    """What the social service paid case `case_id` per month as known at recorded time
    `known_at`: its orders recorded until then, netted (regular and back-payments count,
    claim-backs count negative, held orders not at all: `PaymentOrdered.signed_amount`), less
    what the bank rejected or returned of them by then (`refusals`: that money never reached
    the case, and the next run orders it again)."""
    if known_at.tzinfo is None:
        raise ValueError("known_at: needs a time zone offset")
    paid: dict[date, Decimal] = {}
    for order in orders:
        if order.case_id == case_id and order.timestamp <= known_at:
            paid[order.for_month] = paid.get(order.for_month, ZERO) + order.signed_amount
    for refusal in refusals:
        if refusal.case_id == case_id and refusal.timestamp <= known_at:
            paid[refusal.for_month] = paid.get(refusal.for_month, ZERO) - refusal.amount
    return paid


def owed_by_month(application: BenefitApplication, through: date) -> dict[date, Decimal]:
    """The EL owed per month by `application` (in the state given, e.g. as known at a time:
    `BenefitService.application_as_known`) from its first granted month to `through`'s month
    (the back-payment months: typically up to the month of the decision); {} if not granted."""
    if application.granted_from is None:
        return {}
    return {m: application.owed_for(m) for m in months_between(application.granted_from,
                                                                month_of(through))}


def _month(month: date, el: Decimal, paid: Decimal, ipv: Decimal, advanced: bool) -> MonthClaim:
    offset = min(ipv, el)
    claim = min(max(paid, ZERO), el - offset) if advanced else ZERO
    return MonthClaim(month, paid, el, offset, claim, el - offset - claim)


def _amounts(amounts: Mapping[date, Decimal], name: str, *,
             negative_ok: bool = False) -> dict[date, Decimal]:
    checked: dict[date, Decimal] = {}
    for month, amount in amounts.items():
        if month.day != 1:
            raise ValueError(f"{name}: {month} is not the first day of a month")
        value = chf(amount)
        if value < ZERO and not negative_ok:
            raise ValueError(f"{name}: {value} for {month:%Y-%m} is negative")
        checked[month] = value
    return checked

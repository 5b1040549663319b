"""Basic needs at the year's rate: the yearly adjustment, and the check auditors see.

Canton Solothurn sets the basic-needs amount (Grundbedarf) for a year by a Regierungsrat
decision (§ 93 Abs. 1ter SV; the amounts, their sources and the decision are in
`domain/reference/data/skos_basic_needs.json`). A budget line keeps the amount it was priced
at until a change of that line (budget lines have timelines of their own,
`domain.entitlement`), so a new year's amount reaches running budgets only by an explicit
change: the yearly adjustment, one `BudgetChanged` effective 1 January changing only the
basic-needs line (reason `yearly_adjustment`). A change of the household size re-prices the
line at the rate of its effective date; no other budget change touches it (issue 19: an
unrelated income change used to re-price it as a side effect).

The household size a line stands for is the one its basis states (`priced_household_size`):
the adjustment re-prices the same household at the new rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.budget import BudgetLine, basic_needs_line, priced_household_size
from domain.entitlement import Segment, budget_in_force
from domain.events import BudgetVersion, SupportPeriod
from domain.reference import SkosRate, SkosTable

__all__ = [
    "ADJUSTMENT_REASON",
    "BasicNeedsAdjustment",
    "RateCheck",
    "adjustment_for",
    "check_rate",
    "month_rate_checks",
    "rate_check_dict",
]

ADJUSTMENT_REASON = "yearly_adjustment"
"""The reason of the budget change the yearly adjustment records."""


@dataclass(frozen=True)
class RateCheck:
    """A basic-needs amount compared with the rate in force on a day, for its household."""

    day: date
    household_size: int
    amount: Decimal
    """The basic-needs amount in force on `day`."""
    expected: Decimal
    """The amount at the rate in force on `day` for `household_size`."""
    rate: SkosRate

    @property
    def outdated(self) -> bool:
        """The amount is not the one of the rate in force on the day."""
        return self.amount != self.expected

    @property
    def difference(self) -> Decimal:
        """Expected minus in force (positive: paid too little)."""
        return self.expected - self.amount


@dataclass(frozen=True)
class BasicNeedsAdjustment:
    """The basic-needs line a yearly adjustment records, and what it replaces."""

    effective_date: date
    household_size: int
    before: Decimal
    line: BudgetLine
    rate: SkosRate

    @property
    def after(self) -> Decimal:
        """The new amount."""
        return self.line.amount

    @property
    def difference(self) -> Decimal:
        """New minus old amount per month."""
        return self.after - self.before


def check_rate(
    budget: BudgetVersion | None, day: date, skos: SkosTable, household_size: int
) -> RateCheck | None:
    """The basic-needs line of `budget` (in force on `day`) against the rate in force on `day`
    for the household size it was priced for (`household_size` where its basis does not say);
    None without a budget or a basic-needs line."""
    line = _basic_needs(budget)
    if line is None:
        return None
    size = priced_household_size(line) or household_size
    return RateCheck(day, size, line.amount, skos.basic_needs(day, size), skos.rate_on(day))


def adjustment_for(
    budgets: Sequence[BudgetVersion],
    periods: Sequence[SupportPeriod],
    year: int,
    skos: SkosTable,
    household_size: int,
) -> BasicNeedsAdjustment | None:
    """The adjustment of a case's basic needs to `year`'s rate from 1 January, or None: no
    support running since 1 January (a later grant was priced at the year's rate), no budget
    in force then, or its basic needs at the year's rate already (so running it again records
    nothing)."""
    first = date(year, 1, 1)
    if not periods or periods[-1].until is not None or periods[-1].start > first:
        return None
    check = check_rate(budget_in_force(budgets, first), first, skos, household_size)
    if check is None or not check.outdated:
        return None
    line = basic_needs_line(skos, first, check.household_size)
    return BasicNeedsAdjustment(first, check.household_size, check.amount, line, check.rate)


def _basic_needs(budget: BudgetVersion | None) -> BudgetLine | None:
    if budget is None:
        return None
    return next((line for line in budget.lines if line.code == "basic_needs"), None)


def month_rate_checks(
    segments: Sequence[Segment], skos: SkosTable, household_size: int
) -> list[RateCheck]:
    """Each supported run of days of a month checked against the rate in force on its first
    day (a month is on an outdated rate where any check is `outdated`); for auditors."""
    checks = [check_rate(s.budget, s.first_day, skos, household_size) for s in segments]
    return [check for check in checks if check is not None]


def rate_check_dict(check: RateCheck) -> dict[str, Any]:
    """A check as plain JSON-compatible values."""
    return {
        "day": check.day.isoformat(),
        "household_size": check.household_size,
        "amount": str(check.amount),
        "expected": str(check.expected),
        "difference": str(check.difference),
        "outdated": check.outdated,
        "rate": {"valid_from": check.rate.valid_from.isoformat(), "source": check.rate.source,
                 "one_person": str(check.rate.one_person), "decision": check.rate.decision},
    }

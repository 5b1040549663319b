"""What a case is owed for a calendar month, from the budgets and support periods it holds.

The one definition used by auditors (budget by month *as known at* a time: pass the case's
state as of that time) and by payment runs (what is owed as known now):

- support is owed for the days of the month that lie in a support period (its first day up to
  and including its last day; the closing date is the last supported day);
- on each such day the budget in force is the version with the latest effective date on or
  before that day (of two versions with the same effective date, the one recorded later);
- a month is paid pro rata by calendar days: total × days / days in the month, for each run of
  days under one budget version; a budget whose total is negative (income above needs) owes
  nothing, it is not a claim;
- the month's amount is rounded half-up to centimes once, after the parts are added.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.events import BudgetVersion, SupportPeriod
from domain.money import ZERO, chf

__all__ = [
    "MonthlyEntitlement",
    "Segment",
    "budget_in_force",
    "month_entitlement",
    "month_of",
    "months_between",
]


@dataclass(frozen=True)
class Segment:
    """A run of supported days within one month under one budget version."""

    first_day: date
    last_day: date
    budget: BudgetVersion
    amount: Decimal
    """Exact pro-rata share (not yet rounded)."""

    @property
    def days(self) -> int:
        """Number of days in the segment."""
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class MonthlyEntitlement:
    """What is owed for one month, and how it comes about."""

    month: date
    """The first day of the month."""
    segments: tuple[Segment, ...]

    @property
    def amount(self) -> Decimal:
        """The month's amount in CHF (rounded once)."""
        return chf(sum((segment.amount for segment in self.segments), ZERO))

    @property
    def supported_days(self) -> int:
        """Days of the month with support."""
        return sum(segment.days for segment in self.segments)


def month_of(day: date) -> date:
    """The first day of `day`'s month."""
    return day.replace(day=1)


def months_between(first: date, last: date) -> list[date]:
    """The first days of every month from `first`'s month to `last`'s month, inclusive."""
    months: list[date] = []
    current = month_of(first)
    while current <= last:
        months.append(current)
        current = _next_month(current)
    return months


def month_entitlement(
    budgets: Sequence[BudgetVersion], periods: Sequence[SupportPeriod], month: date
) -> MonthlyEntitlement:
    """What `budgets` and `periods` (a case's, as known at some time) owe for `month`."""
    first = month_of(month)
    last = _next_month(first) - timedelta(days=1)
    length = calendar.monthrange(first.year, first.month)[1]
    segments: list[Segment] = []
    for period in periods:
        start = max(first, period.start)
        end = min(last, period.until) if period.until is not None else last
        day = start
        while day <= end:
            version = _in_force(budgets, day)
            if version is None:
                day += timedelta(days=1)
                continue
            run_end = min(end, _next_change(budgets, day) - timedelta(days=1))
            days = (run_end - day).days + 1
            per_month = max(version.total, ZERO)
            segments.append(Segment(day, run_end, version, per_month * days / length))
            day = run_end + timedelta(days=1)
    return MonthlyEntitlement(first, tuple(segments))


def budget_in_force(budgets: Sequence[BudgetVersion], day: date) -> BudgetVersion | None:
    """The budget version in force on `day` as the versions given know it (None before the
    first): the latest effective date not after `day`, a later recording winning ties."""
    return _in_force(budgets, day)


def _in_force(budgets: Sequence[BudgetVersion], day: date) -> BudgetVersion | None:
    """The version in force on `day`: latest effective date ≤ day, later recording wins ties."""
    chosen: BudgetVersion | None = None
    for version in budgets:  # in recording order
        if version.effective_date <= day and (
            chosen is None or version.effective_date >= chosen.effective_date
        ):
            chosen = version
    return chosen


def _next_change(budgets: Sequence[BudgetVersion], day: date) -> date:
    """The first effective date after `day` (or far in the future)."""
    later = [version.effective_date for version in budgets if version.effective_date > day]
    return min(later, default=date.max - timedelta(days=1))


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)

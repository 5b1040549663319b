"""What a case is owed for a calendar month, from the budgets and support periods it holds.

The one definition used by auditors (budget by month *as known at* a time: pass the case's
state as of that time) and by payment runs (what is owed as known now):

- support is owed for the days of the month that lie in a support period (its first day up to
  and including its last day; the closing date is the last supported day);
- each budget line has a timeline of its own: on each such day a line's amount is the one of
  the latest change *of that line* effective on or before that day (of two with the same
  effective date, the one recorded later). A budget version changes the lines it names
  (`BudgetVersion.changed`); a grant, and every change recorded before lines had timelines of
  their own, changes every line (a whole-budget version), so old records read as before;
- a month is paid pro rata by calendar days: total × days / days in the month, for each run of
  days under one budget (the lines in force); a budget whose total is negative (income above
  needs) owes nothing, it is not a claim;
- the month's amount is rounded half-up to centimes once, after the parts are added.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.budget import LINE_CODES, BudgetLine
from domain.events import BudgetVersion, SupportPeriod
from domain.money import ZERO, chf

__all__ = [
    "MonthlyEntitlement",
    "Segment",
    "budget_in_force",
    "line_changes",
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
    """The budget in force: a recorded version, or the lines in force composed from several."""
    amount: Decimal
    """Exact pro-rata share (not yet rounded)."""
    sources: tuple[BudgetVersion, ...] = ()
    """The recorded versions whose line changes make up `budget`, in recording order."""

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
            in_force = _in_force(budgets, day)
            if in_force is None:
                day += timedelta(days=1)
                continue
            version, sources = in_force
            run_end = min(end, _next_change(budgets, day) - timedelta(days=1))
            days = (run_end - day).days + 1
            per_month = max(version.total, ZERO)
            segments.append(Segment(day, run_end, version, per_month * days / length, sources))
            day = run_end + timedelta(days=1)
    return MonthlyEntitlement(first, tuple(segments))


def budget_in_force(budgets: Sequence[BudgetVersion], day: date) -> BudgetVersion | None:
    """The budget in force on `day` as the versions given know it (None before the first):
    each line from the latest change of that line effective on or before `day`, a later
    recording winning ties. Where every line comes from one version, that version itself."""
    in_force = _in_force(budgets, day)
    return None if in_force is None else in_force[0]


def line_changes(budgets: Sequence[BudgetVersion], code: str) -> list[BudgetVersion]:
    """The versions that change line `code`, in recording order."""
    return [v for v in budgets if _changes(v, code) and _line(v, code) is not None]


def _in_force(
    budgets: Sequence[BudgetVersion], day: date
) -> tuple[BudgetVersion, tuple[BudgetVersion, ...]] | None:
    """The budget in force on `day` and the versions its lines come from (recording order).
    Versions that state only a total (no lines: the statistics connector's, built from
    pseudonymised reporting facts) are whole budgets: the latest effective on or before `day`,
    a later recording winning ties."""
    if any(not version.lines for version in budgets):
        latest: BudgetVersion | None = None
        for version in budgets:
            if version.effective_date <= day and (
                latest is None or version.effective_date >= latest.effective_date
            ):
                latest = version
        return None if latest is None else (latest, (latest,))
    chosen: dict[str, tuple[int, BudgetVersion]] = {}
    for index, version in enumerate(budgets):  # in recording order: later wins ties
        if version.effective_date > day:
            continue
        for line in version.lines:
            if not _changes(version, line.code):
                continue
            held = chosen.get(line.code)
            if held is None or version.effective_date >= held[1].effective_date:
                chosen[line.code] = (index, version)
    if not chosen:
        return None
    sources = tuple(budgets[index] for index in sorted({index for index, _ in chosen.values()}))
    if len(sources) == 1:
        return sources[0], sources
    return _composed(chosen), sources


def _composed(chosen: dict[str, tuple[int, BudgetVersion]]) -> BudgetVersion:
    """One budget of the lines in force, each taken from the version that changed it last;
    dated and explained by the latest-effective of those versions."""
    order: dict[str, int] = {code: rank for rank, code in enumerate(LINE_CODES)}
    lines = [
        _line_of(version, code)
        for code, (_, version) in sorted(chosen.items(), key=lambda item: order.get(item[0], 99))
    ]
    _, latest = max(chosen.values(), key=lambda pair: (pair[1].effective_date, pair[0]))
    return BudgetVersion(
        effective_date=latest.effective_date,
        lines=lines,
        total=chf(sum((line.amount for line in lines), ZERO)),
        reason=latest.reason,
        recorded_at=latest.recorded_at,
        changed=None,
    )


def _changes(version: BudgetVersion, code: str) -> bool:
    return version.changed is None or code in version.changed


def _line(version: BudgetVersion, code: str) -> BudgetLine | None:
    return next((line for line in version.lines if line.code == code), None)


def _line_of(version: BudgetVersion, code: str) -> BudgetLine:
    line = _line(version, code)
    assert line is not None
    return line


def _next_change(budgets: Sequence[BudgetVersion], day: date) -> date:
    """The first effective date after `day` (or far in the future)."""
    later = [version.effective_date for version in budgets if version.effective_date > day]
    return min(later, default=date.max - timedelta(days=1))


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)

"""Answers to an auditor's two-times questions, as immutable values.

- What was a case owed for month M *as known at* recorded time T? (`MonthlyAnswer`: the
  entitlement of `domain.entitlement` applied to the case's state as of T, the budget versions
  it used and the events it rests on.)
- What changed about month M between what was known at T1 and at T2? (`BudgetDiff`: both
  answers, the difference in total and per budget line, and the events recorded in (T1, T2]
  that can have changed the month.)
- The state of a case as of T, without personal data (`StateAsOf`).

The service (`domain.application.cases.CaseService`) finds the case's state and events;
the functions
here only combine them. No personal data is part of any of these values.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.case import SWISS_TIME, Case
from domain.commands import Actor
from domain.entitlement import MonthlyEntitlement, Segment, month_entitlement, month_of
from domain.events import (
    BudgetChanged,
    BudgetVersion,
    CaseClosed,
    Goal,
    Handover,
    Measure,
    SupportGranted,
    SupportPeriod,
)
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from domain.money import ZERO, chf

__all__ = [
    "ENTITLEMENT_EVENTS",
    "BudgetBasis",
    "BudgetDiff",
    "EventRef",
    "LineDifference",
    "MonthlyAnswer",
    "StateAsOf",
    "answer_month",
    "diff_answers",
    "parse_month",
    "plain",
]

ENTITLEMENT_EVENTS: tuple[type[Any], ...] = (SupportGranted, BudgetChanged, CaseClosed)
"""The events that change what a case is owed: budget versions and support periods."""


def parse_month(text: str) -> date:
    """`YYYY-MM` as the first day of that month; ValueError saying the expected form."""
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(text)
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a month of the form YYYY-MM (e.g. 2026-03)") from None


@dataclass(frozen=True)
class EventRef:
    """A recorded event an answer rests on: when, from when, who, what (no personal data)."""

    version: int
    event: str
    recorded_at: datetime
    effective_date: date
    actor: Actor
    imported: bool
    recorded_by: EstablishedIdentity = UNKNOWN_IDENTITY
    """Who the recording edge established the issuer to be."""

    @classmethod
    def of(cls, event: Any) -> EventRef:
        """The reference to a decoded case event."""
        return cls(
            version=event.originator_version,
            event=type(event).__name__,
            recorded_at=event.timestamp,
            effective_date=event.effective_date,
            actor=event.actor,
            imported=event.imported,
            recorded_by=event.recorded_by,
        )


@dataclass(frozen=True)
class BudgetBasis:
    """A budget version in force during the month, and the event that recorded it."""

    budget: BudgetVersion
    event: EventRef


@dataclass(frozen=True)
class MonthlyAnswer:
    """What a case was owed for a month, as known at a recorded time, and why."""

    case_id: UUID
    month: date
    """The first day of the month."""
    known_at: datetime
    case_version: int
    """The case's last version recorded at or before `known_at` (0: not yet recorded)."""
    entitlement: MonthlyEntitlement
    budgets: tuple[BudgetBasis, ...]
    """The recorded budget versions whose lines are in force on the supported days (each line
    from the version that changed it last), in the order they apply."""
    periods: tuple[SupportPeriod, ...]
    """The support periods as known, those that touch the month."""
    rests_on: tuple[EventRef, ...]
    """The events the answer rests on (budget versions used, grants and closures), in order."""

    @property
    def amount(self) -> Decimal:
        """The month's amount in CHF (rounded once)."""
        return self.entitlement.amount

    @property
    def supported_days(self) -> int:
        """Days of the month with support."""
        return self.entitlement.supported_days

    @property
    def days_in_month(self) -> int:
        """Calendar days of the month."""
        return calendar.monthrange(self.month.year, self.month.month)[1]

    def line_amounts(self) -> dict[str, Decimal]:
        """Each budget line's exact pro-rata share of the month (they add up to the amount).

        A segment whose budget owes nothing (income above needs) contributes nothing to any
        line, as it contributes nothing to the amount.
        """
        shares: dict[str, Decimal] = {}
        for segment in self.entitlement.segments:
            total = segment.budget.total
            factor = segment.amount / total if total else ZERO
            for line in segment.budget.lines:
                shares[line.code] = shares.get(line.code, ZERO) + line.amount * factor
        return shares

    def as_dict(self) -> dict[str, Any]:
        """As plain JSON-compatible values (amounts as strings with two decimals)."""
        refs = {id(basis.budget): basis.event.version for basis in self.budgets}
        return {
            "case_id": str(self.case_id),
            "month": self.month.strftime("%Y-%m"),
            "known_at": self.known_at.isoformat(),
            "case_version": self.case_version,
            "amount": str(self.amount),
            "supported_days": self.supported_days,
            "days_in_month": self.days_in_month,
            "segments": [
                {
                    "first_day": s.first_day.isoformat(),
                    "last_day": s.last_day.isoformat(),
                    "days": s.days,
                    "monthly_total": str(s.budget.total),
                    "amount": str(chf(s.amount)),
                    "budget_event_version": refs.get(id(_latest_source(s))),
                    "budget_event_versions": [refs.get(id(v)) for v in s.sources],
                }
                for s in self.entitlement.segments
            ],
            "lines": [
                {"code": code, "amount": str(chf(amount))}
                for code, amount in self.line_amounts().items()
            ],
            "budgets": [
                {**plain(basis.budget), "event": plain(basis.event)} for basis in self.budgets
            ],
            "periods": [plain(period) for period in self.periods],
            "rests_on": [plain(ref) for ref in self.rests_on],
        }


@dataclass(frozen=True)
class LineDifference:
    """One budget line's share of the month before and after, rounded to centimes."""

    code: str
    before: Decimal
    after: Decimal

    @property
    def difference(self) -> Decimal:
        """After minus before."""
        return self.after - self.before


@dataclass(frozen=True)
class BudgetDiff:
    """What changed about a month between two knowledge times."""

    before: MonthlyAnswer
    after: MonthlyAnswer
    lines: tuple[LineDifference, ...]
    caused_by: tuple[EventRef, ...]
    """Events recorded in (before.known_at, after.known_at] that changed the month: those the
    later answer rests on (budget versions used, grants) and closures effective by its end."""

    @property
    def difference(self) -> Decimal:
        """After minus before, in CHF (a back-payment if positive, a claim-back if negative)."""
        return self.after.amount - self.before.amount

    def as_dict(self) -> dict[str, Any]:
        """As plain JSON-compatible values."""
        return {
            "case_id": str(self.after.case_id),
            "month": self.after.month.strftime("%Y-%m"),
            "known_at": self.before.known_at.isoformat(),
            "compared_to": self.after.known_at.isoformat(),
            "before": str(self.before.amount),
            "after": str(self.after.amount),
            "difference": str(self.difference),
            "lines": [
                {
                    "code": line.code,
                    "before": str(line.before),
                    "after": str(line.after),
                    "difference": str(line.difference),
                }
                for line in self.lines
            ],
            "caused_by": [plain(ref) for ref in self.caused_by],
            "answer_before": self.before.as_dict(),
            "answer_after": self.after.as_dict(),
        }


def answer_month(
    case_id: UUID,
    month: date,
    known_at: datetime,
    case: Case | None,
    entitlement_events: Sequence[Any],
) -> MonthlyAnswer:
    """The answer for `month` from the case as of `known_at` (None: not yet recorded) and
    its `ENTITLEMENT_EVENTS` up to that version, in order."""
    first = month_of(month)
    if case is None:
        empty = MonthlyEntitlement(first, ())
        return MonthlyAnswer(case_id, first, known_at, 0, empty, (), (), ())
    budget_events = [e for e in entitlement_events if isinstance(e, SupportGranted | BudgetChanged)]
    if len(budget_events) != len(case.budgets):
        raise AssertionError(
            f"case {case_id}: {len(case.budgets)} budget versions but {len(budget_events)} events"
        )
    entitlement = month_entitlement(case.budgets, case.support_periods, first)
    by_budget = {id(b): EventRef.of(e) for b, e in zip(case.budgets, budget_events, strict=True)}
    bases: dict[int, BudgetBasis] = {}
    for segment in entitlement.segments:  # each line in force comes from a recorded version
        for source in segment.sources:
            bases.setdefault(id(source), BudgetBasis(source, by_budget[id(source)]))
    last = _last_day(first)
    periods = [
        (index, p)
        for index, p in enumerate(case.support_periods)
        if p.start <= last and (p.until is None or p.until >= first)
    ]
    touching = {index for index, _ in periods}
    ended_before = [i for i, p in enumerate(case.support_periods) if p.until and p.until < first]
    # A month rests on the closures that end support within it; a month after support
    # ended, on the closure that ended it.
    closures = {i for i, p in periods if p.until is not None and p.until <= last}
    if not touching and ended_before:
        closures.add(ended_before[-1])
    period_refs = _period_events(entitlement_events, touching, closures)
    refs = {ref.version: ref for ref in [*(b.event for b in bases.values()), *period_refs]}
    return MonthlyAnswer(
        case_id=case_id,
        month=first,
        known_at=known_at,
        case_version=case.version,
        entitlement=entitlement,
        budgets=tuple(bases.values()),
        periods=tuple(p for _, p in periods),
        rests_on=tuple(refs[v] for v in sorted(refs)),
    )


def diff_answers(
    before: MonthlyAnswer, after: MonthlyAnswer, recorded_between: Sequence[Any]
) -> BudgetDiff:
    """Compare two answers for the same month; `recorded_between`: the case's events recorded
    after `before.known_at` up to `after.known_at`, in order."""
    if (before.case_id, before.month) != (after.case_id, after.month):
        raise ValueError("both answers must be about the same case and month")
    shares_before, shares_after = before.line_amounts(), after.line_amounts()
    codes = list(dict.fromkeys([*shares_before, *shares_after]))
    lines = tuple(
        LineDifference(code, chf(shares_before.get(code, ZERO)), chf(shares_after.get(code, ZERO)))
        for code in codes
    )
    used = {ref.version for ref in after.rests_on}
    last = _last_day(after.month)
    caused_by = tuple(
        EventRef.of(event)
        for event in recorded_between
        if event.originator_version in used
        or (isinstance(event, CaseClosed) and event.effective_date <= last)
    )
    return BudgetDiff(before, after, lines, caused_by)


@dataclass(frozen=True)
class StateAsOf:
    """The state of a case as of a recorded time, without personal data (for auditors)."""

    case_id: UUID
    as_of: datetime
    version: int
    last_recorded_at: datetime
    phase: str
    social_region: str
    municipality_bfs: int
    opened_on: date
    household_size: int
    persons: int
    assessment: dict[str, Any] | None
    decision: dict[str, Any] | None
    support_periods: tuple[SupportPeriod, ...]
    budget: BudgetVersion | None
    budget_versions: int
    goals: tuple[Goal, ...]
    measures: tuple[Measure, ...]
    last_review_on: date | None
    next_review_due: date | None
    handovers: tuple[Handover, ...]
    closure: dict[str, Any] | None
    reopenings: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, case: Case, as_of: datetime) -> StateAsOf:
        """The state of `case` (reconstructed as of `as_of`)."""
        return cls(
            case_id=case.id,
            as_of=as_of,
            version=case.version,
            last_recorded_at=case.modified_on,
            phase=case.phase,
            social_region=case.social_region,
            municipality_bfs=case.municipality_bfs,
            opened_on=case.opened_on,
            household_size=case.household_size,
            persons=1 + len(case.other_members),
            assessment=case.assessment,
            decision=case.decision,
            support_periods=tuple(case.support_periods),
            budget=_budget_in_force(case.budgets, as_of),
            budget_versions=len(case.budgets),
            goals=tuple(case.goals.values()),
            measures=tuple(case.measures.values()),
            last_review_on=case.last_review_on,
            next_review_due=case.next_review_due,
            handovers=tuple(case.handovers),
            closure=case.closure,
            reopenings=tuple(case.reopenings),
        )

    def as_dict(self) -> dict[str, Any]:
        """As plain JSON-compatible values."""
        result = plain(self)
        assert isinstance(result, dict)
        return result


def plain(value: Any) -> Any:
    """Domain values as JSON-compatible ones: amounts, ids, dates and established identities
    as strings."""
    if isinstance(value, EstablishedIdentity):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _budget_in_force(budgets: Sequence[BudgetVersion], as_of: datetime) -> BudgetVersion | None:
    """The version in force on `as_of`'s day by the entitlement's rule (else the latest)."""
    if not budgets:
        return None
    day = as_of.astimezone(SWISS_TIME).date()
    entitlement = month_entitlement(budgets, [SupportPeriod(date.min)], month_of(day))
    on_day = [s.budget for s in entitlement.segments if s.first_day <= day]
    return on_day[-1] if on_day else budgets[-1]


def _latest_source(segment: Segment) -> BudgetVersion:
    """The version a segment's budget is dated by: the latest effective of its sources (of two
    with the same date, the one recorded later)."""
    return max(enumerate(segment.sources), key=lambda pair: (pair[1].effective_date, pair[0]))[1]


def _period_events(events: Sequence[Any], grants: set[int], closures: set[int]) -> list[EventRef]:
    """The grants that started the periods `grants`, the closures that ended `closures`."""
    refs: list[EventRef] = []
    period, running = -1, False
    for event in events:
        if isinstance(event, SupportGranted):
            period, running = period + 1, True
            if period in grants:
                refs.append(EventRef.of(event))
        elif isinstance(event, CaseClosed) and running:
            running = False  # a closure ends the running period (and only that one)
            if period in closures:
                refs.append(EventRef.of(event))
    return refs


def _last_day(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


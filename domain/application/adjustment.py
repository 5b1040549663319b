"""The yearly adjustment of basic needs across all running cases (`budgets adjust-basic-needs`).

For every supported case whose basic-needs line on 1 January of the year is not at the year's
rate (`domain.basic_needs.adjustment_for`), one `AdjustBasicNeeds` command of the adjustment's
system actor, all under one correlation id for the run, records a `BudgetChanged` effective
1 January changing only that line. A preview computes the same list and records nothing.

Why a command that can run again, not a migration: the decision is the case's (its rules, its
retroactive limit, its version), and each case is one save. A run stopped anywhere is finished
by the next one, which records nothing for the cases done (their line is at the rate now); a
case changed meanwhile by someone else is counted `concurrent` and taken by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

import structlog

from domain.application.cases import CaseService
from domain.basic_needs import BasicNeedsAdjustment, adjustment_for
from domain.case import Case
from domain.commands import Actor, AdjustBasicNeeds
from domain.errors import ConcurrentChangeError, RuleViolationError
from domain.reference import SkosRate

__all__ = ["ADJUSTMENT_ACTOR", "AdjustmentRow", "AdjustmentRun", "BasicNeedsAdjustments"]

log = structlog.get_logger("nervenbahn.adjustment")

ADJUSTMENT_ACTOR = Actor(user_id="basic-needs-adjustment", role="system",
                         organisation="so-canton")
"""Who records the yearly adjustment: a system actor acting canton-wide (the operator who
starts the run is the established identity recorded beside it, and is logged)."""

OPERATOR_ROLE = "administrator"
"""Who may start a run (a preview too: it lists every running case)."""


@dataclass(frozen=True)
class AdjustmentRow:
    """One case the adjustment reaches: what it records (or would), and what happened."""

    case_id: UUID
    social_region: str
    adjustment: BasicNeedsAdjustment
    outcome: str
    """`preview` (nothing recorded), `recorded`, `concurrent` (the case moved on meanwhile:
    the next run takes it) or `refused` (a rule of the case, named in `refusal`)."""
    refusal: str | None = None

    @property
    def before(self) -> Decimal:
        """The basic-needs amount in force on 1 January."""
        return self.adjustment.before

    @property
    def after(self) -> Decimal:
        """The year's amount for the household size."""
        return self.adjustment.after


@dataclass(frozen=True)
class AdjustmentRun:
    """What one run (or preview) found and did."""

    year: int
    rate: SkosRate
    correlation_id: UUID | None
    """The run's correlation id (None: a preview)."""
    cases_looked_at: int
    rows: tuple[AdjustmentRow, ...]

    def count(self, outcome: str) -> int:
        """How many rows have `outcome`."""
        return sum(1 for row in self.rows if row.outcome == outcome)


class BasicNeedsAdjustments:
    """Adjusts the basic needs of every running case to a year's rate."""

    def __init__(self, cases: CaseService, *, actor: Actor = ADJUSTMENT_ACTOR) -> None:
        self._cases = cases
        self._actor = actor

    def preview(self, year: int, requested_by: Actor) -> AdjustmentRun:
        """What a run for `year` would record now; records nothing."""
        return self._run(year, requested_by, record=False)

    def run(self, year: int, requested_by: Actor) -> AdjustmentRun:
        """Record the adjustment for every running case that needs it (one correlation id)."""
        return self._run(year, requested_by, record=True)

    def _run(self, year: int, requested_by: Actor, *, record: bool) -> AdjustmentRun:
        _check_operator(requested_by)
        skos = self._cases.reference.skos
        rate = skos.rate_on(date(year, 1, 1))
        correlation_id = uuid4() if record else None
        looked_at, rows = 0, []
        for case_id, case in self._running_cases():
            looked_at += 1
            adjustment = adjustment_for(case.budgets, case.support_periods, year, skos,
                                        case.household_size)
            if adjustment is None:
                continue
            row = AdjustmentRow(case_id, case.social_region, adjustment, "preview")
            if correlation_id is not None:
                row = self._record(row, year, correlation_id)
            rows.append(row)
        result = AdjustmentRun(year, rate, correlation_id, looked_at, tuple(rows))
        log.info("basic needs adjustment", year=year, preview=not record,
                 requested_by=requested_by.user_id,
                 correlation_id=str(correlation_id) if correlation_id else None,
                 cases=looked_at, adjusted=len(rows), recorded=result.count("recorded"),
                 concurrent=result.count("concurrent"), refused=result.count("refused"))
        return result

    def _running_cases(self) -> Iterable[tuple[UUID, Case]]:
        for case_id in self._cases.case_ids():
            case = self._cases.get_case(case_id)
            if case.phase == "supported":
                yield case_id, case

    def _record(self, row: AdjustmentRow, year: int, correlation_id: UUID) -> AdjustmentRow:
        command = AdjustBasicNeeds(actor=self._actor, correlation_id=correlation_id,
                                   case_id=row.case_id, year=year)
        try:
            result = self._cases.execute(command)
        except ConcurrentChangeError:
            return _with(row, "concurrent")
        except RuleViolationError as exc:
            return _with(row, "refused", str(exc))
        return _with(row, "recorded" if result.events else "unchanged")


def _with(row: AdjustmentRow, outcome: str, refusal: str | None = None) -> AdjustmentRow:
    return AdjustmentRow(row.case_id, row.social_region, row.adjustment, outcome, refusal)


def _check_operator(actor: Actor) -> None:
    if actor.role != OPERATOR_ROLE:
        raise RuleViolationError(
            "adjustment-by-administrator",
            f"actor.role: {actor.role} may not run the yearly adjustment of basic needs; an "
            f"{OPERATOR_ROLE} does",
        )

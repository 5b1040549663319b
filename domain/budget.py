"""The monthly social-assistance budget, computed from the SKOS guidelines.

basic needs (by household size) + housing + health-insurance premium − income.
Every line is kept, with its basis, so that an auditor can redo the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from domain.money import ZERO, chf
from domain.reference import SkosTable

__all__ = ["LINE_CODES", "Budget", "BudgetLine", "LineCode", "compute_budget"]

LineCode = Literal["basic_needs", "housing", "health_insurance", "income"]
LINE_CODES: tuple[LineCode, ...] = ("basic_needs", "housing", "health_insurance", "income")
"""The lines of every budget, in the order they are shown."""


@dataclass(frozen=True)
class BudgetLine:
    """One line of a budget; income lines are negative."""

    code: LineCode
    amount: Decimal
    basis: str


@dataclass(frozen=True)
class Budget:
    """A monthly budget: its lines and their sum."""

    lines: tuple[BudgetLine, ...]

    @property
    def total(self) -> Decimal:
        """What is owed per month (the sum of the lines)."""
        return chf(sum((line.amount for line in self.lines), ZERO))


def compute_budget(
    skos: SkosTable,
    *,
    effective_date: date,
    household_size: int,
    housing: Decimal,
    health_insurance: Decimal,
    income: Decimal,
) -> Budget:
    """Compute the monthly budget in force from `effective_date`."""
    rate = skos.rate_on(effective_date)
    factor = skos.factor(household_size)
    basis = (
        f"{rate.source} from {rate.valid_from.isoformat()}: CHF {rate.one_person} x {factor} "
        f"({household_size} person{'s' if household_size > 1 else ''})"
    )
    return Budget(
        lines=(
            BudgetLine("basic_needs", skos.basic_needs(effective_date, household_size), basis),
            BudgetLine("housing", chf(housing), "rent incl. ancillary costs"),
            BudgetLine("health_insurance", chf(health_insurance), "mandatory premiums"),
            BudgetLine("income", -chf(income), "income and other benefits"),
        )
    )

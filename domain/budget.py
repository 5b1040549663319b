"""The monthly social-assistance budget, computed from the SKOS guidelines.

basic needs (by household size) + housing + health-insurance premium − income.
Every line is kept, with its basis, so that an auditor can redo the sum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from domain.money import ZERO, chf
from domain.reference import SkosTable

__all__ = [
    "LINE_CODES",
    "Budget",
    "BudgetLine",
    "LineCode",
    "basic_needs_line",
    "compute_budget",
    "priced_household_size",
]

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
    return Budget(
        lines=(
            basic_needs_line(skos, effective_date, household_size),
            BudgetLine("housing", chf(housing), "rent incl. ancillary costs"),
            BudgetLine("health_insurance", chf(health_insurance), "mandatory premiums"),
            BudgetLine("income", -chf(income), "income and other benefits"),
        )
    )


def basic_needs_line(skos: SkosTable, on: date, household_size: int) -> BudgetLine:
    """The basic-needs line at the rate in force on `on` for the household size; its basis
    names the rate (source, date, one-person amount, factor) and the household size."""
    rate = skos.rate_on(on)
    factor = skos.factor(household_size)
    basis = (
        f"{rate.source} from {rate.valid_from.isoformat()}: CHF {rate.one_person} x {factor} "
        f"({household_size} person{'s' if household_size > 1 else ''})"
    )
    return BudgetLine("basic_needs", skos.basic_needs(on, household_size), basis)


_PRICED_FOR = re.compile(r"\((\d+) persons?\)$")


def priced_household_size(line: BudgetLine) -> int | None:
    """The household size a basic-needs line was priced for, as its basis states it (every
    basic-needs line is written by `basic_needs_line`); None if the basis does not say."""
    found = _PRICED_FOR.search(line.basis)
    return int(found.group(1)) if found else None

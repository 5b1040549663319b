"""The monthly budget: SKOS basic needs + housing + premiums − income, in Decimal francs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.budget import Budget, BudgetLine, compute_budget
from domain.money import ZERO, chf
from domain.reference import ReferenceData, load_reference_data

from .case_desk import expected_basic_needs

SKOS = load_reference_data().skos

amounts = st.decimals(min_value=0, max_value=99_999, places=2, allow_nan=False,
                      allow_infinity=False)


def _two_places(amount: Decimal) -> bool:
    return isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


def test_budget_lists_each_line_and_sums_them(reference: ReferenceData) -> None:
    budget = compute_budget(
        reference.skos, effective_date=date(2025, 11, 1), household_size=2,
        housing=Decimal("1450.50"), health_insurance=Decimal("610.40"), income=Decimal("800"),
    )

    basic_needs = expected_basic_needs(date(2025, 11, 1), 2)
    assert [(line.code, line.amount) for line in budget.lines] == [
        ("basic_needs", basic_needs),
        ("housing", Decimal("1450.50")),
        ("health_insurance", Decimal("610.40")),
        ("income", Decimal("-800.00")),
    ]
    assert budget.total == basic_needs + Decimal("1450.50") + Decimal("610.40") - 800
    assert all(_two_places(line.amount) for line in budget.lines)
    assert _two_places(budget.total)


def test_basic_needs_line_names_its_basis_so_an_auditor_can_redo_it(
    reference: ReferenceData,
) -> None:
    on = date(2026, 2, 1)
    rate = reference.skos.rate_on(on)
    budget = compute_budget(reference.skos, effective_date=on, household_size=3,
                            housing=ZERO, health_insurance=ZERO, income=ZERO)

    basis = budget.lines[0].basis
    assert rate.source in basis
    assert rate.valid_from.isoformat() in basis
    assert f"CHF {rate.one_person} x {reference.skos.factor(3)}" in basis
    assert basis.endswith("(3 persons)")


def test_one_person_is_named_in_the_singular(reference: ReferenceData) -> None:
    budget = compute_budget(reference.skos, effective_date=date(2025, 1, 1), household_size=1,
                            housing=ZERO, health_insurance=ZERO, income=ZERO)
    assert budget.lines[0].basis.endswith("(1 person)")


def test_income_above_needs_gives_a_negative_total(reference: ReferenceData) -> None:
    budget = compute_budget(reference.skos, effective_date=date(2025, 1, 1), household_size=1,
                            housing=ZERO, health_insurance=ZERO, income=Decimal("5000"))
    assert budget.total == expected_basic_needs(date(2025, 1, 1), 1) - 5000


def test_empty_budget_totals_zero_with_two_decimals() -> None:
    total = Budget(lines=()).total
    assert total == 0
    assert _two_places(total)


def test_budget_values_are_immutable() -> None:
    line = BudgetLine("housing", Decimal("1.00"), "rent")
    with pytest.raises(AttributeError):
        line.amount = Decimal("2.00")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given_amount", "expected"),
    [
        ("1200", "1200.00"),
        (1200, "1200.00"),
        ("0.005", "0.01"),  # half up, not banker's rounding
        ("0.015", "0.02"),
        ("0.025", "0.03"),
        ("-0.005", "-0.01"),
        (Decimal("99.994"), "99.99"),
    ],
)
def test_chf_keeps_two_decimals_rounding_half_up(given_amount: object, expected: str) -> None:
    amount = chf(given_amount)  # type: ignore[arg-type]
    assert amount == Decimal(expected)
    assert _two_places(amount)


@pytest.mark.parametrize("bad", ["", "CHF 12", "1,50", "twelve"])
def test_chf_refuses_what_is_not_an_amount(bad: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        chf(bad)


@settings(max_examples=100, deadline=None)
@given(
    on=st.dates(min_value=date(2021, 1, 1), max_value=date(2030, 12, 31)),
    household_size=st.integers(min_value=1, max_value=20),
    housing=amounts, health_insurance=amounts, income=amounts,
)
def test_every_budget_is_exact_decimal_francs(
    on: date, household_size: int, housing: Decimal, health_insurance: Decimal, income: Decimal
) -> None:
    budget = compute_budget(SKOS, effective_date=on, household_size=household_size,
                            housing=housing, health_insurance=health_insurance, income=income)

    assert budget.lines[0].amount == expected_basic_needs(on, household_size)
    assert all(_two_places(line.amount) for line in budget.lines)
    assert _two_places(budget.total)
    assert budget.total == sum((line.amount for line in budget.lines), ZERO)
    assert budget.total == budget.lines[0].amount + housing + health_insurance - income
    assert not any(isinstance(value, float) for value in vars(budget.lines[0]).values())

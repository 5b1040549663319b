"""What a case is owed for a month (domain/entitlement.py), checked against amounts computed
by hand: pro rata by calendar days, the version in force per day, rounding once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from domain.budget import BudgetLine
from domain.entitlement import month_entitlement, month_of, months_between
from domain.events import BudgetVersion, SupportPeriod

JAN = date(2026, 1, 1)


def version(total: str, effective: date, recorded_day: int = 1) -> BudgetVersion:
    """A budget of one line of `total` CHF from `effective`, recorded on a day of 2026."""
    amount = Decimal(total)
    return BudgetVersion(
        effective_date=effective,
        lines=[BudgetLine("housing", amount, "test")],
        total=amount,
        reason="test",
        recorded_at=datetime(2026, 1, recorded_day, 9, tzinfo=UTC),
    )


def test_a_full_month_under_one_budget_is_the_monthly_total() -> None:
    owed = month_entitlement([version("2611.00", JAN)], [SupportPeriod(JAN)], JAN)
    assert (owed.amount, owed.supported_days) == (Decimal("2611.00"), 31)


def test_support_starting_mid_month_is_paid_pro_rata() -> None:
    start = date(2026, 1, 15)  # 15–31 January: 17 of 31 days
    owed = month_entitlement([version("3100.00", start)], [SupportPeriod(start)], JAN)
    assert owed.amount == Decimal("1700.00")  # 3100 × 17 / 31


def test_the_closing_date_is_the_last_supported_day() -> None:
    owed = month_entitlement(
        [version("3100.00", JAN)], [SupportPeriod(JAN, date(2026, 1, 10))], JAN
    )
    assert (owed.amount, owed.supported_days) == (Decimal("1000.00"), 10)  # 3100 × 10 / 31


def test_a_later_effective_date_takes_over_from_that_day() -> None:
    budgets = [version("100.00", JAN), version("200.00", date(2026, 1, 11))]
    owed = month_entitlement(budgets, [SupportPeriod(JAN)], JAN)
    # 100 × 10/31 + 200 × 21/31 = 5200/31 = 167.7419… → 167.74
    assert owed.amount == Decimal("167.74")
    assert [(s.first_day.day, s.last_day.day) for s in owed.segments] == [(1, 10), (11, 31)]


def test_a_retroactive_change_recorded_later_wins_only_from_its_own_effective_date() -> None:
    budgets = [
        version("2611.00", JAN, 1),
        version("2011.00", date(2026, 3, 11), 10),
        version("2411.00", date(2026, 2, 1), 20),  # recorded last, effective earliest
    ]
    march = month_entitlement(budgets, [SupportPeriod(JAN)], date(2026, 3, 1))
    # 2411 × 10/31 + 2011 × 21/31 = 66341/31 = 2140.032… → 2140.03
    assert march.amount == Decimal("2140.03")


def test_of_two_versions_with_the_same_effective_date_the_later_recorded_wins() -> None:
    budgets = [version("1000.00", JAN, 1), version("1500.00", JAN, 2)]
    assert month_entitlement(budgets, [SupportPeriod(JAN)], JAN).amount == Decimal("1500.00")


def test_a_negative_budget_owes_nothing_and_claims_nothing() -> None:
    budgets = [version("3100.00", JAN), version("-500.00", date(2026, 1, 21))]
    owed = month_entitlement(budgets, [SupportPeriod(JAN)], JAN)
    assert owed.amount == Decimal("2000.00")  # 3100 × 20/31, then 0 for 11 days


def test_days_before_the_first_budget_takes_effect_are_not_paid() -> None:
    owed = month_entitlement([version("3100.00", date(2026, 1, 5))], [SupportPeriod(JAN)], JAN)
    assert owed.supported_days == 27  # 5–31 January
    assert owed.amount == Decimal("2700.00")


def test_the_month_is_rounded_once_after_adding_the_parts() -> None:
    budgets = [version("1.00", JAN), version("1.00", date(2026, 1, 2)),
               version("1.00", date(2026, 1, 3))]
    owed = month_entitlement(budgets, [SupportPeriod(JAN, date(2026, 1, 3))], JAN)
    # three parts of 1/31 = 0.0322… each: 3/31 = 0.0967… → 0.10 (rounding each: 0.09)
    assert len(owed.segments) == 3
    assert owed.amount == Decimal("0.10")


def test_two_support_periods_in_one_month_add_up() -> None:
    periods = [SupportPeriod(JAN, date(2026, 1, 10)), SupportPeriod(date(2026, 1, 20))]
    owed = month_entitlement([version("3100.00", JAN)], periods, JAN)
    assert owed.supported_days == 22  # 1–10 and 20–31
    assert owed.amount == Decimal("2200.00")


def test_february_of_a_leap_year_has_29_days() -> None:
    feb = date(2028, 2, 1)
    owed = month_entitlement([version("2900.00", feb)], [SupportPeriod(date(2028, 2, 15))], feb)
    assert owed.amount == Decimal("1500.00")  # 2900 × 15/29


def test_a_month_outside_every_support_period_owes_nothing() -> None:
    owed = month_entitlement(
        [version("3100.00", JAN)], [SupportPeriod(JAN, date(2026, 1, 31))], date(2026, 2, 1)
    )
    assert (owed.amount, owed.segments) == (Decimal("0.00"), ())


def test_months_between_and_month_of() -> None:
    assert month_of(date(2026, 3, 17)) == date(2026, 3, 1)
    assert months_between(date(2025, 11, 20), date(2026, 2, 3)) == [
        date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
    ]

"""The casework of a supported case, on the in-memory case service.

Goals, measures, budget changes and reviews, and the refusals on the way. Every refusal is
checked with `desk.refused`, which also proves that nothing was recorded (no event, no key,
no pending event on the aggregate, version unchanged).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from domain.events import add_months

from .case_desk import TODAY, Desk, expected_basic_needs, person_input
from .case_desk import move_to as _move_to

# --- goals -----------------------------------------------------------------------------------


def test_goals_require_support(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.refused(desk.commands("agree_goal", case_id=case_id), rule="goals-require-support")


@pytest.mark.parametrize("outcome", ["achieved", "missed"])
def test_agreed_goal_stays_open_until_its_outcome(desk: Desk, outcome: str) -> None:
    case_id, goal_id = desk.supported(), UUID(int=31)
    desk.run("agree_goal", case_id=case_id, goal_id=goal_id, category="housing",
             title="Find a cheaper flat", due_date="2026-05-31")
    assert desk.case(case_id).goals[goal_id.hex].status == "open"

    desk.clock.advance(days=20)
    desk.run("record_goal_outcome", case_id=case_id, goal_id=goal_id, outcome=outcome)

    goal = desk.case(case_id).goals[goal_id.hex]
    assert (goal.status, goal.agreed_on, goal.resolved_on) == (
        outcome, TODAY, TODAY + timedelta(days=20)
    )
    assert goal.due_date == date(2026, 5, 31)


@pytest.mark.parametrize("second", ["achieved", "missed"])
def test_goal_outcome_is_recorded_once(desk: Desk, second: str) -> None:
    case_id, goal_id = desk.supported(), UUID(int=32)
    desk.run("agree_goal", case_id=case_id, goal_id=goal_id)
    desk.run("record_goal_outcome", case_id=case_id, goal_id=goal_id, outcome="achieved")

    command = desk.commands("record_goal_outcome", case_id=case_id, goal_id=goal_id,
                            outcome=second)
    desk.refused(command, rule="goal-resolved-once", mentions=("goal_id",))


def test_outcome_of_an_unknown_goal_is_refused(desk: Desk) -> None:
    case_id = desk.supported()
    command = desk.commands("record_goal_outcome", case_id=case_id, goal_id=UUID(int=99))
    desk.refused(command, rule="known-goal", mentions=("goal_id",))


def test_goal_id_cannot_be_agreed_twice(desk: Desk) -> None:
    case_id, goal_id = desk.supported(), UUID(int=33)
    desk.run("agree_goal", case_id=case_id, goal_id=goal_id)
    desk.refused(desk.commands("agree_goal", case_id=case_id, goal_id=goal_id),
                 rule="distinct-goals", mentions=("goal_id",))


@pytest.mark.parametrize("days_after_agreement", [0, -1])
def test_goal_must_fall_due_after_it_was_agreed(desk: Desk, days_after_agreement: int) -> None:
    case_id = desk.supported()
    command = desk.commands("agree_goal", case_id=case_id,
                            due_date=TODAY + timedelta(days=days_after_agreement))
    desk.refused(command, rule="goal-due-after-agreement", mentions=("due_date",))


def test_goal_outcome_cannot_precede_the_agreement(desk: Desk) -> None:
    case_id, goal_id = desk.supported(), UUID(int=34)
    desk.clock.advance(days=5)
    desk.run("agree_goal", case_id=case_id, goal_id=goal_id)
    command = desk.commands("record_goal_outcome", case_id=case_id, goal_id=goal_id,
                            outcome_date=TODAY + timedelta(days=4))
    desk.refused(command, rule="effective-date-order", mentions=("outcome_date",))


# --- measures --------------------------------------------------------------------------------


def test_measure_runs_until_it_is_completed(desk: Desk) -> None:
    case_id, measure_id = desk.supported(), UUID(int=41)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id, kind="rav_registration")
    assert desk.case(case_id).measures[measure_id.hex].status == "running"

    desk.clock.advance(days=60)
    desk.run("complete_measure", case_id=case_id, measure_id=measure_id)

    measure = desk.case(case_id).measures[measure_id.hex]
    assert (measure.kind, measure.status, measure.start_date, measure.end_date) == (
        "rav_registration", "completed", TODAY, TODAY + timedelta(days=60)
    )
    assert measure.break_off_reason is None


def test_measure_broken_off_keeps_its_reason(desk: Desk) -> None:
    case_id, measure_id = desk.supported(), UUID(int=42)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id)
    desk.run("break_off_measure", case_id=case_id, measure_id=measure_id,
             reason="found_employment")

    measure = desk.case(case_id).measures[measure_id.hex]
    assert (measure.status, measure.break_off_reason) == ("broken_off", "found_employment")


@pytest.mark.parametrize("first", ["complete_measure", "break_off_measure"])
@pytest.mark.parametrize("second", ["complete_measure", "break_off_measure"])
def test_ended_measure_cannot_end_again(desk: Desk, first: str, second: str) -> None:
    case_id, measure_id = desk.supported(), UUID(int=43)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id)
    desk.run(first, case_id=case_id, measure_id=measure_id)

    desk.refused(desk.commands(second, case_id=case_id, measure_id=measure_id),
                 rule="measure-ends-once", mentions=("measure_id",))


@pytest.mark.parametrize("name", ["complete_measure", "break_off_measure"])
def test_ending_an_unknown_measure_is_refused(desk: Desk, name: str) -> None:
    case_id = desk.supported()
    desk.refused(desk.commands(name, case_id=case_id, measure_id=UUID(int=98)),
                 rule="known-measure", mentions=("measure_id",))


def test_measure_id_cannot_be_started_twice(desk: Desk) -> None:
    case_id, measure_id = desk.supported(), UUID(int=44)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id)
    desk.refused(desk.commands("start_measure", case_id=case_id, measure_id=measure_id),
                 rule="distinct-measures", mentions=("measure_id",))


def test_measure_may_start_up_to_92_days_ahead(desk: Desk) -> None:
    case_id, measure_id = desk.supported(), UUID(int=45)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id,
             start_date=TODAY + timedelta(days=92))
    desk.refused(desk.commands("start_measure", case_id=case_id,
                               start_date=TODAY + timedelta(days=93)),
                 rule="effective-date-limit", mentions=("start_date",))


def test_measure_cannot_end_before_it_started(desk: Desk) -> None:
    case_id, measure_id = desk.supported(), UUID(int=46)
    desk.run("start_measure", case_id=case_id, measure_id=measure_id,
             start_date=TODAY + timedelta(days=10))
    desk.refused(desk.commands("complete_measure", case_id=case_id, measure_id=measure_id),
                 rule="effective-date-order", mentions=("end_date",))


def test_measures_require_support(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.refused(desk.commands("start_measure", case_id=case_id),
                 rule="measures-require-support")


# --- budget changes --------------------------------------------------------------------------


def test_budget_change_uses_the_amount_in_force_on_its_effective_date(desk: Desk) -> None:
    case_id = desk.supported()
    _move_to(desk, date(2026, 1, 15))
    result = desk.run("change_budget", case_id=case_id, effective_date="2026-01-01",
                      reason="household_change", household_size=2, housing="1600.00",
                      health_insurance="700.00", income="250.00")

    case = desk.case(case_id)
    budget = case.budgets[-1]
    assert result.events == ("BudgetChanged",)
    assert case.household_size == 2
    assert (budget.effective_date, budget.reason) == (date(2026, 1, 1), "household_change")
    assert budget.lines[0].amount == expected_basic_needs(date(2026, 1, 1), 2)
    assert budget.total == sum((line.amount for line in budget.lines), Decimal("0.00"))
    assert budget.recorded_at == desk.clock()
    assert len(case.budgets) == 2  # the initial decision stays in the history


def test_budget_change_365_days_back_is_recorded(desk: Desk) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    _move_to(desk, date(2026, 11, 1))
    desk.run("change_budget", case_id=case_id, effective_date="2025-11-01",
             reason="correction")

    assert desk.case(case_id).budgets[-1].effective_date == date(2025, 11, 1)


def test_budget_change_more_than_365_days_back_is_refused(desk: Desk) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    _move_to(desk, date(2026, 11, 2))
    command = desk.commands("change_budget", case_id=case_id, effective_date="2025-11-01",
                            reason="correction")
    desk.refused(command, rule="retroactive-limit", mentions=("effective_date", "365"))


def test_budget_change_before_support_started_is_refused(desk: Desk) -> None:
    case_id = desk.supported(support_from="2025-12-01")
    command = desk.commands("change_budget", case_id=case_id, effective_date="2025-11-30")
    desk.refused(command, rule="budget-within-support", mentions=("effective_date",))


def test_budget_change_more_than_92_days_ahead_is_refused(desk: Desk) -> None:
    case_id = desk.supported()
    command = desk.commands("change_budget", case_id=case_id,
                            effective_date=TODAY + timedelta(days=93))
    desk.refused(command, rule="effective-date-limit", mentions=("effective_date",))


def test_budget_change_to_fewer_persons_than_members_is_refused(desk: Desk) -> None:
    case_id = desk.assessed(household_size=3, other_members=[person_input(2)])
    desk.run("grant_support", case_id=case_id)
    command = desk.commands("change_budget", case_id=case_id, household_size=1)
    desk.refused(command, rule="household-fits-members", mentions=("household_size",))


def test_budget_change_requires_support(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.refused(desk.commands("change_budget", case_id=case_id),
                 rule="budget-requires-support")


def test_budget_change_total_is_the_sum_of_its_lines_when_income_exceeds_needs(
    desk: Desk,
) -> None:
    case_id = desk.supported()
    desk.run("change_budget", case_id=case_id, reason="income_change", income="9000.00")

    budget = desk.case(case_id).budgets[-1]
    assert budget.total == sum((line.amount for line in budget.lines), Decimal("0.00"))


# --- reviews ---------------------------------------------------------------------------------


def test_review_schedules_the_next_one_twelve_months_later(desk: Desk) -> None:
    case_id = desk.supported()
    _move_to(desk, date(2026, 2, 10))
    desk.run("complete_review", case_id=case_id, outcome="continue")

    case = desk.case(case_id)
    assert (case.last_review_on, case.next_review_due) == (date(2026, 2, 10), date(2027, 2, 10))


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 2, 10), 12, date(2027, 2, 10)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
    ],
)
def test_review_interval_counts_calendar_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_review_cannot_lie_before_the_last_review(desk: Desk) -> None:
    case_id = desk.supported()
    desk.clock.advance(days=30)
    desk.run("complete_review", case_id=case_id)
    command = desk.commands("complete_review", case_id=case_id,
                            review_date=TODAY + timedelta(days=29))
    desk.refused(command, rule="effective-date-order", mentions=("review_date",))


def test_review_cannot_be_dated_in_the_future(desk: Desk) -> None:
    case_id = desk.supported()
    command = desk.commands("complete_review", case_id=case_id,
                            review_date=TODAY + timedelta(days=1))
    desk.refused(command, rule="effective-date-limit", mentions=("review_date",))


def test_review_requires_support(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.refused(desk.commands("complete_review", case_id=case_id),
                 rule="review-requires-support")

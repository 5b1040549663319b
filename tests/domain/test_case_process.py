"""The harmonised case process, command by command, on the in-memory case service.

intake → assessment → decision → goals, measures, budget changes, reviews, handovers →
closure → reopening, and the refusals on the way. Every refusal is checked with
`desk.refused`, which also proves that nothing was recorded (no event, no key, no pending
event on the aggregate, version unchanged).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

import pytest

from domain import commands as c
from domain.case import SWISS_TIME, Recording
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    InvalidCommandError,
    ReferenceDataError,
)
from domain.events import add_months

from .case_desk import (
    BETTLACH,
    GRENCHEN,
    OLTEN,
    OMIT,
    SOLOTHURN,
    START,
    Desk,
    expected_basic_needs,
    person_input,
    replay,
)

OBERER_LEBERBERG = c.Actor("lea.roth", "caseworker", "so-oberer-leberberg")
OLTEN_CASEWORKER = c.Actor("marc.huber", "caseworker", "so-olten")
TODAY = START.date()


def _on(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=SWISS_TIME)


def _move_to(desk: Desk, day: date) -> None:
    desk.clock.advance(seconds=(_on(day) - desk.clock()).total_seconds())


def _two_places(amount: Any) -> bool:
    return isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


# --- the whole process -----------------------------------------------------------------------


def test_whole_process_records_each_step_with_its_actor_and_correlation_id(desk: Desk) -> None:
    supervisor = c.Actor("beat.meier", "supervisor", "so-solothurn")
    system = c.Actor("scheduler", "system", "nervenbahn")
    issued: list[tuple[c.Actor, UUID]] = []

    def run(name: str, actor: c.Actor = desk.commands.actor, **fields: Any) -> None:
        command = desk.commands(name, actor=actor, **fields)
        desk.service.execute(command)
        issued.append((command.actor, command.correlation_id))

    case_id = UUID(int=1000)
    run("open_case", case_id=case_id, household_size=2, other_members=[person_input(2)])
    run("complete_assessment", case_id=case_id, needs=["financial", "housing"],
        employability="partially_employable")
    run("grant_support", actor=supervisor, case_id=case_id, support_from="2025-11-01",
        housing="1450.00", health_insurance="610.40", income="800.00")
    goal_a, goal_b = UUID(int=11), UUID(int=12)
    run("agree_goal", case_id=case_id, goal_id=goal_a, due_date="2026-03-31")
    run("agree_goal", case_id=case_id, goal_id=goal_b, category="education",
        title="German B1", due_date="2026-06-30")
    measures = [UUID(int=21), UUID(int=22), UUID(int=23)]
    for measure_id, kind in zip(measures, ("job_coaching", "language_course", "qualification"),
                                strict=True):
        run("start_measure", case_id=case_id, measure_id=measure_id, kind=kind)
    desk.clock.advance(days=40)
    run("record_goal_outcome", case_id=case_id, goal_id=goal_a, outcome="achieved")
    run("record_goal_outcome", case_id=case_id, goal_id=goal_b, outcome="missed")
    run("complete_measure", case_id=case_id, measure_id=measures[0])
    run("break_off_measure", case_id=case_id, measure_id=measures[1], reason="health")
    _move_to(desk, date(2026, 1, 20))
    run("change_budget", case_id=case_id, effective_date="2026-01-01", reason="rent_change",
        housing="1500.00", health_insurance="640.00", income="800.00")
    run("change_budget", actor=system, case_id=case_id, effective_date="2025-12-01",
        reason="income_change", housing="1450.00", health_insurance="610.40", income="950.00")
    run("complete_review", case_id=case_id, outcome="adjust")
    run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN)
    desk.clock.advance(days=3)
    run("close_case", actor=OLTEN_CASEWORKER, case_id=case_id, reason="employment")
    desk.clock.advance(days=30)
    run("reopen_case", actor=OLTEN_CASEWORKER, case_id=case_id, reason="reapplication")

    events = desk.events(case_id)
    assert [(event.actor, event.correlation_id) for event in events] == issued
    assert [(e.actor, e.correlation_id) for e in desk.service.history(case_id)] == issued
    assert [type(event).__name__ for event in events] == [
        "CaseOpened", "AssessmentCompleted", "SupportGranted", "GoalAgreed", "GoalAgreed",
        "MeasureStarted", "MeasureStarted", "MeasureStarted", "GoalAchieved", "GoalMissed",
        "MeasureCompleted", "MeasureBrokenOff", "BudgetChanged", "BudgetChanged",
        "ReviewCompleted", "CaseHandedOver", "CaseClosed", "CaseReopened",
    ]
    case = desk.case(case_id)
    assert case.version == len(events)
    assert case.phase == "intake"
    assert (case.social_region, case.municipality_bfs) == ("so-olten", OLTEN)
    assert case.assessment is None and case.decision is None and case.closure is None
    assert case.reopenings == [{"on": date(2026, 2, 22), "reason": "reapplication"}]
    assert {g.status for g in case.goals.values()} == {"achieved", "missed"}
    assert [case.measures[m.hex].status for m in measures] == [
        "completed", "broken_off", "broken_off"
    ]
    assert case.measures[measures[2].hex].break_off_reason == "case_closed"
    assert case.support_periods[0].until == date(2026, 1, 23)
    assert [b.effective_date for b in case.budgets] == [
        date(2025, 11, 1), date(2026, 1, 1), date(2025, 12, 1)
    ]
    assert case.budgets[1].lines[0].amount == expected_basic_needs(date(2026, 1, 1), 2)
    assert case.budgets[2].lines[0].amount == expected_basic_needs(date(2025, 12, 1), 2)
    assert vars(replay(events)) == vars(case)


# --- intake ----------------------------------------------------------------------------------


def test_opening_records_the_case_in_the_region_of_its_municipality(desk: Desk) -> None:
    result = desk.run("open_case", actor=OBERER_LEBERBERG, municipality_bfs=GRENCHEN)

    case = desk.case(result.case_id)
    assert result.events == ("CaseOpened",)
    assert result.version == case.version == 1
    assert (case.municipality_bfs, case.social_region) == (GRENCHEN, "so-oberer-leberberg")
    assert case.phase == "intake"
    assert case.opened_on == TODAY


def test_default_dates_are_the_recording_day_in_swiss_time(desk: Desk) -> None:
    desk.clock.advance(hours=15, minutes=30)  # 2025-11-04 00:30 in Zurich, 23:30 UTC before
    assert desk.clock().astimezone(SWISS_TIME).date() == date(2025, 11, 4)

    case_id = desk.open()

    assert desk.case(case_id).opened_on == date(2025, 11, 4)


def test_recorded_time_is_the_clock_of_the_core(desk: Desk) -> None:
    case_id = desk.open()
    desk.clock.advance(days=2, hours=3)
    desk.run("complete_assessment", case_id=case_id)

    assert [event.timestamp for event in desk.events(case_id)] == [START, desk.clock()]


@pytest.mark.parametrize("name", ["open_case", "complete_assessment", "close_case"])
@pytest.mark.parametrize("field", ["recorded_at", "timestamp"])
def test_recorded_time_cannot_be_set_by_a_command(desk: Desk, name: str, field: str) -> None:
    payload = desk.commands.payload(name, **{field: "2020-01-01T00:00:00+00:00"})

    with pytest.raises(InvalidCommandError) as info:
        c.parse_command(name, payload)

    assert (field, "Extra inputs are not permitted") in info.value.problems
    assert field in str(info.value)


def test_application_date_in_the_future_is_refused(desk: Desk) -> None:
    command = desk.commands("open_case", application_date=TODAY + timedelta(days=1))
    desk.refused(command, rule="effective-date-limit", mentions=("application_date",))


def test_application_dated_more_than_365_days_back_is_refused(desk: Desk) -> None:
    command = desk.commands("open_case", application_date=TODAY - timedelta(days=366))
    desk.refused(command, rule="retroactive-limit", mentions=("application_date",))


def test_application_dated_365_days_back_is_recorded(desk: Desk) -> None:
    case_id = desk.open(application_date=TODAY - timedelta(days=365))
    assert desk.case(case_id).opened_on == TODAY - timedelta(days=365)


def test_opening_in_a_municipality_outside_the_canton_is_refused(desk: Desk) -> None:
    command = desk.commands("open_case", municipality_bfs=351)  # Bern
    desk.refused(command, ReferenceDataError, mentions=("municipality_bfs", "351"))


def test_the_same_person_twice_in_a_household_is_refused(desk: Desk) -> None:
    person_id = UUID(int=7)
    command = desk.commands(
        "open_case", household_size=2, applicant=person_input(1, person_id=str(person_id)),
        other_members=[person_input(2, person_id=str(person_id))],
    )
    desk.refused(command, rule="distinct-persons", mentions=("other_members",))


def test_the_same_ahvn13_twice_in_a_household_is_refused(desk: Desk) -> None:
    twice = person_input(1)
    command = desk.commands("open_case", household_size=2, applicant=twice,
                            other_members=[{**twice, "given_name": "Other"}])
    desk.refused(command, rule="distinct-persons", mentions=("other_members",))


def test_opening_an_existing_case_id_is_refused_and_stores_no_data_keys(desk: Desk) -> None:
    case_id = desk.open()
    command = desk.commands("open_case", case_id=case_id, applicant=person_input(2))

    error = desk.refused(command, InvalidCommandError, mentions=("case_id", str(case_id)))

    assert isinstance(error, InvalidCommandError)
    assert error.problems[0][0] == "case_id"


# --- assessment and decision -----------------------------------------------------------------


def test_assessment_moves_the_case_to_assessed(desk: Desk) -> None:
    case_id = desk.open()
    desk.run("complete_assessment", case_id=case_id, needs=["financial", "debt"],
             employability="not_employable")

    case = desk.case(case_id)
    assert case.phase == "assessed"
    assert case.assessment == {
        "needs": ["financial", "debt"], "employability": "not_employable", "completed_on": TODAY
    }


def test_second_assessment_is_refused(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.refused(desk.commands("complete_assessment", case_id=case_id),
                 rule="assessment-once-per-intake")


@pytest.mark.parametrize("decision", ["grant_support", "refuse_support"])
def test_decision_before_assessment_is_refused(desk: Desk, decision: str) -> None:
    case_id = desk.open()
    desk.refused(desk.commands(decision, case_id=case_id),
                 rule="decision-requires-assessment", mentions=(decision,))


@pytest.mark.parametrize("household_size", [1, 2, 3, 4, 5, 6, 7, 9])
def test_grant_computes_the_budget_from_the_skos_amount_in_force(
    desk: Desk, household_size: int
) -> None:
    case_id = desk.assessed(household_size=household_size)
    desk.run("grant_support", case_id=case_id, housing="1450.50", health_insurance="610.40",
             income="1000.05")

    budget = desk.case(case_id).budgets[-1]
    basic_needs = expected_basic_needs(date(2025, 11, 1), household_size)
    assert [(line.code, line.amount) for line in budget.lines] == [
        ("basic_needs", basic_needs),
        ("housing", Decimal("1450.50")),
        ("health_insurance", Decimal("610.40")),
        ("income", Decimal("-1000.05")),
    ]
    assert budget.total == basic_needs + Decimal("1450.50") + Decimal("610.40") - Decimal(
        "1000.05"
    )
    assert all(_two_places(line.amount) for line in budget.lines)
    assert _two_places(budget.total)
    assert budget.reason == "initial_decision"


def test_grant_uses_the_amount_in_force_on_support_from(desk: Desk) -> None:
    assert expected_basic_needs(date(2026, 1, 1), 1) != expected_basic_needs(date(2025, 12, 31), 1)
    case_id = desk.assessed()
    desk.run("grant_support", case_id=case_id, support_from="2026-01-01")

    basic_needs = desk.case(case_id).budgets[-1].lines[0].amount
    assert basic_needs == expected_basic_needs(date(2026, 1, 1), 1)


def test_grant_whole_franc_amounts_are_kept_with_two_decimals(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.run("grant_support", case_id=case_id, housing=1200, health_insurance="300",
             income="0")

    budget = desk.case(case_id).budgets[-1]
    assert budget.lines[1].amount == Decimal("1200.00")
    assert all(_two_places(line.amount) for line in budget.lines)


def test_grant_without_need_is_refused(desk: Desk) -> None:
    case_id = desk.assessed()
    command = desk.commands("grant_support", case_id=case_id, housing="500.00",
                            health_insurance="300.00", income="9000.00")
    desk.refused(command, rule="no-entitlement", mentions=("income",))


def test_support_may_start_with_the_month_of_application(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.run("grant_support", case_id=case_id, support_from="2025-11-01")

    case = desk.case(case_id)
    assert case.phase == "supported"
    assert case.support_periods[0].start == date(2025, 11, 1)
    assert case.decision == {"outcome": "granted", "decided_on": TODAY, "reasons": []}


def test_support_before_the_month_of_application_is_refused(desk: Desk) -> None:
    case_id = desk.assessed()
    command = desk.commands("grant_support", case_id=case_id, support_from="2025-10-31")
    desk.refused(command, rule="budget-within-support", mentions=("support_from",))


def test_support_from_more_than_92_days_ahead_is_refused(desk: Desk) -> None:
    case_id = desk.assessed()
    command = desk.commands("grant_support", case_id=case_id,
                            support_from=TODAY + timedelta(days=93))
    desk.refused(command, rule="effective-date-limit", mentions=("support_from",))


def test_grant_schedules_the_first_review_twelve_months_after_support_starts(desk: Desk) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    assert desk.case(case_id).next_review_due == date(2026, 11, 1)


def test_refusal_records_its_reasons_and_blocks_casework(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.run("refuse_support", case_id=case_id,
             reasons=["assets_above_limit", "documents_missing"])

    case = desk.case(case_id)
    assert case.phase == "refused"
    assert case.decision == {"outcome": "refused", "decided_on": TODAY,
                             "reasons": ["assets_above_limit", "documents_missing"]}
    refusals = {
        "agree_goal": "goals-require-support",
        "start_measure": "measures-require-support",
        "change_budget": "budget-requires-support",
        "complete_review": "review-requires-support",
        "grant_support": "decision-requires-assessment",
        "complete_assessment": "assessment-once-per-intake",
    }
    for name, rule in refusals.items():
        desk.refused(desk.commands(name, case_id=case_id), rule=rule, mentions=(name,))


def test_refused_case_can_be_closed_reopened_and_then_granted(desk: Desk) -> None:
    case_id = desk.assessed()
    desk.run("refuse_support", case_id=case_id)
    desk.run("close_case", case_id=case_id, reason="other")
    desk.run("reopen_case", case_id=case_id, reason="closed_in_error")
    desk.run("complete_assessment", case_id=case_id)
    desk.run("grant_support", case_id=case_id)

    assert desk.case(case_id).phase == "supported"


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


# --- handover --------------------------------------------------------------------------------


def test_handover_moves_the_case_with_its_history_to_the_new_region(desk: Desk) -> None:
    case_id = desk.supported()
    desk.run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN,
             effective_date=TODAY + timedelta(days=30))

    case = desk.case(case_id)
    assert (case.social_region, case.municipality_bfs) == ("so-olten", OLTEN)
    assert [(h.from_region, h.to_region, h.to_municipality_bfs, h.effective_date)
            for h in case.handovers] == [
        ("so-solothurn", "so-olten", OLTEN, TODAY + timedelta(days=30))
    ]
    assert case.version == 4
    assert case.phase == "supported"


def test_handover_within_the_same_region_is_refused(desk: Desk) -> None:
    case_id = desk.open(actor=OBERER_LEBERBERG, municipality_bfs=BETTLACH)
    command = desk.commands("hand_over_case", actor=OBERER_LEBERBERG, case_id=case_id,
                            to_municipality_bfs=GRENCHEN)
    desk.refused(command, rule="handover-to-other-region",
                 mentions=("to_municipality_bfs", str(GRENCHEN)))


def test_handover_to_the_own_municipality_is_refused(desk: Desk) -> None:
    case_id = desk.supported()
    command = desk.commands("hand_over_case", case_id=case_id, to_municipality_bfs=SOLOTHURN)
    desk.refused(command, rule="handover-to-other-region", mentions=("to_municipality_bfs",))


def test_handover_outside_the_canton_is_refused(desk: Desk) -> None:
    case_id = desk.supported()
    command = desk.commands("hand_over_case", case_id=case_id, to_municipality_bfs=351)
    desk.refused(command, ReferenceDataError, mentions=("municipality_bfs", "351"))


def test_after_handover_only_the_new_region_may_act(desk: Desk) -> None:
    case_id = desk.supported()
    desk.run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN)

    desk.refused(desk.commands("complete_review", case_id=case_id),
                 rule="actor-responsible", mentions=("actor.organisation", "so-olten"))
    desk.run("complete_review", actor=OLTEN_CASEWORKER, case_id=case_id)


# --- closure and reopening -------------------------------------------------------------------


@pytest.mark.parametrize("reason", get_args(c.ClosureReason))
def test_closure_records_its_reason_and_ends_support(desk: Desk, reason: str) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    desk.clock.advance(days=10)
    desk.run("close_case", case_id=case_id, reason=reason)

    case = desk.case(case_id)
    assert case.phase == "closed"
    assert case.closure == {"reason": reason, "closed_on": TODAY + timedelta(days=10)}
    assert case.support_periods[-1].until == TODAY + timedelta(days=10)


@pytest.mark.parametrize("name", sorted(set(c.COMMANDS) - {"open_case", "reopen_case"}))
def test_closed_case_accepts_only_reopening(desk: Desk, name: str) -> None:
    case_id = desk.supported()
    desk.run("close_case", case_id=case_id)

    desk.refused(desk.commands(name, case_id=case_id), rule="closed-case-only-reopens")


@pytest.mark.parametrize("reason", get_args(c.ReopenReason))
def test_reopening_starts_again_with_an_assessment(desk: Desk, reason: str) -> None:
    case_id = desk.supported()
    desk.run("close_case", case_id=case_id)
    desk.clock.advance(days=7)
    desk.run("reopen_case", case_id=case_id, reason=reason)

    case = desk.case(case_id)
    assert case.phase == "intake"
    assert (case.assessment, case.decision, case.closure) == (None, None, None)
    assert case.reopenings == [{"on": TODAY + timedelta(days=7), "reason": reason}]
    desk.refused(desk.commands("grant_support", case_id=case_id),
                 rule="decision-requires-assessment")
    desk.run("complete_assessment", case_id=case_id)
    desk.run("grant_support", case_id=case_id, support_from=TODAY + timedelta(days=7))
    assert len(desk.case(case_id).support_periods) == 2


def test_reopening_an_open_case_is_refused(desk: Desk) -> None:
    case_id = desk.supported()
    desk.refused(desk.commands("reopen_case", case_id=case_id), rule="reopen-requires-closed")


def test_reopening_cannot_precede_the_closure(desk: Desk) -> None:
    case_id = desk.supported()
    desk.clock.advance(days=5)
    desk.run("close_case", case_id=case_id)
    desk.clock.advance(days=5)
    command = desk.commands("reopen_case", case_id=case_id,
                            reopening_date=TODAY + timedelta(days=4))
    desk.refused(command, rule="effective-date-order", mentions=("reopening_date",))


def test_support_after_reopening_does_not_overlap_the_earlier_period(desk: Desk) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    desk.clock.advance(days=30)
    desk.run("close_case", case_id=case_id)
    desk.run("reopen_case", case_id=case_id)
    desk.run("complete_assessment", case_id=case_id)

    command = desk.commands("grant_support", case_id=case_id, support_from="2025-11-01")
    desk.refused(command, rule="budget-within-support", mentions=("support_from",))


# --- who may act -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["caseworker", "supervisor"])
@pytest.mark.parametrize(
    "name", ["complete_assessment", "grant_support", "close_case", "hand_over_case"]
)
def test_staff_of_another_region_are_refused(desk: Desk, role: c.Role, name: str) -> None:
    case_id = desk.open()
    stranger = c.Actor("max.frei", role, "so-olten")
    desk.refused(desk.commands(name, actor=stranger, case_id=case_id),
                 rule="actor-responsible", mentions=("actor.organisation", "so-olten"))


def test_caseworker_of_another_region_cannot_open_a_case_here(desk: Desk) -> None:
    command = desk.commands("open_case", actor=OLTEN_CASEWORKER, municipality_bfs=SOLOTHURN)
    desk.refused(command, rule="actor-responsible", mentions=("actor.organisation",))


@pytest.mark.parametrize("role", ["administrator", "system"])
def test_administrators_and_the_system_may_act_in_any_region(
    desk: Desk, role: c.Role
) -> None:
    anyone = c.Actor("ops", role, "canton")
    case_id = desk.open(actor=anyone)
    desk.run("complete_assessment", actor=anyone, case_id=case_id)

    assert [event.actor for event in desk.events(case_id)] == [anyone, anyone]


# --- the service around the case -------------------------------------------------------------


def test_command_on_an_unknown_case_is_refused(desk: Desk) -> None:
    command = desk.commands("complete_assessment", case_id=UUID(int=404))
    error = desk.refused(command, CaseNotFoundError)
    assert str(UUID(int=404)) in str(error)


def test_stale_expected_version_is_refused(desk: Desk) -> None:
    case_id = desk.assessed()
    command = desk.commands("grant_support", case_id=case_id, expected_version=1)
    desk.refused(command, ConcurrentChangeError, mentions=(str(case_id), "reload"))

    desk.run("grant_support", case_id=case_id, expected_version=2)
    assert desk.case(case_id).version == 3


def test_case_as_of_shows_what_was_known_at_a_recorded_time(desk: Desk) -> None:
    case_id = desk.assessed()
    known_then = desk.clock()
    desk.clock.advance(hours=1)
    desk.run("grant_support", case_id=case_id)

    assert desk.service.case_as_of(case_id, known_then).phase == "assessed"
    assert desk.service.case_as_of(case_id, desk.clock()).phase == "supported"
    with pytest.raises(CaseNotFoundError):
        desk.service.case_as_of(case_id, known_then - timedelta(seconds=1))


def test_history_has_every_event_but_no_personal_data(desk: Desk) -> None:
    case_id = desk.supported()
    history = desk.service.history(case_id)

    assert [(h.version, h.event) for h in history] == [
        (1, "CaseOpened"), (2, "AssessmentCompleted"), (3, "SupportGranted")
    ]
    assert history[0].details["persons"] == 1
    assert not {"applicant", "other_members"} & set(history[0].details)
    assert all(h.recorded_at == START and not h.imported for h in history)


def test_case_ids_lists_cases_in_opening_order(desk: Desk) -> None:
    opened = [desk.open(), desk.open(actor=OBERER_LEBERBERG, municipality_bfs=GRENCHEN)]
    assert list(desk.service.case_ids()) == opened


def test_state_from_a_snapshot_equals_state_from_the_events(desk: Desk) -> None:
    case_id = desk.supported()
    for _ in range(100):
        desk.run("complete_review", case_id=case_id, outcome="continue")

    assert desk.service.snapshots is not None
    assert [s.originator_version for s in desk.service.snapshots.get(case_id)] == [100]
    assert vars(desk.case(case_id)) == vars(replay(desk.events(case_id)))


def test_unknown_fields_stay_out_even_when_optional_ones_are_omitted(desk: Desk) -> None:
    payload = desk.commands.payload("complete_assessment", assessment_date=OMIT, note="x")
    with pytest.raises(InvalidCommandError) as info:
        c.parse_command("complete_assessment", payload)
    assert [field for field, _ in info.value.problems] == ["note"]


def test_recording_day_is_swiss_even_for_utc_timestamps() -> None:
    late_utc = datetime.fromisoformat("2026-06-30T22:30:00+00:00")
    assert Recording(late_utc).today == date(2026, 7, 1)

"""The harmonised case process from intake to the decision, on the in-memory case service.

The whole process in one run (intake → assessment → decision → casework → handover → closure
→ reopening), then intake, assessment and the decision on support, with their refusals.
The casework is in test_case_casework.py, handover, closure and reopening, who may act and the
service around the case in test_case_handover_closure.py. Every refusal is checked with
`desk.refused`, which also proves that nothing was recorded (no event, no key, no pending
event on the aggregate, version unchanged).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain import commands
from domain.case import SWISS_TIME
from domain.errors import InvalidCommandError, ReferenceDataError

from .case_desk import (
    GRENCHEN,
    OBERER_LEBERBERG,
    OLTEN,
    OLTEN_CASEWORKER,
    START,
    TODAY,
    Desk,
    expected_basic_needs,
    person_input,
    replay,
)
from .case_desk import move_to as _move_to


def _two_places(amount: Any) -> bool:
    return isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


# --- the whole process -----------------------------------------------------------------------


def test_whole_process_records_each_step_with_its_actor_and_correlation_id(desk: Desk) -> None:
    supervisor = commands.Actor("beat.meier", "supervisor", "so-solothurn")
    system = commands.Actor("scheduler", "system", "nervenbahn")
    issued: list[tuple[commands.Actor, UUID]] = []

    def run(name: str, actor: commands.Actor = desk.commands.actor, **fields: Any) -> None:
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
    # A rent change keeps basic needs at the amount in force (the yearly adjustment, not an
    # unrelated change, brings a new year's rate: issue 19).
    assert case.budgets[1].lines[0].amount == expected_basic_needs(date(2025, 11, 1), 2)
    assert "basic_needs" not in (case.budgets[1].changed or [])
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
        commands.parse_command(name, payload)

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

"""The yearly adjustment of basic needs (issue 19, item 2): every running budget once, a
preview that records nothing, idempotent, closed cases untouched; and no re-pricing of basic
needs as a side effect of an unrelated budget change."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from domain.application.adjustment import ADJUSTMENT_ACTOR, BasicNeedsAdjustments
from domain.basic_needs import check_rate, month_rate_checks
from domain.commands import Actor
from domain.entitlement import month_entitlement
from domain.errors import RuleViolationError
from domain.events import BudgetChanged

from .case_desk import Desk, expected_basic_needs, move_to

ADMIN = Actor("ops.admin", "administrator", "so-canton")
JANUARY = date(2026, 1, 1)
HOUSING, PREMIUM = Decimal("1200.00"), Decimal("350.00")  # the desk's default grant


def _population(desk: Desk) -> dict[str, UUID]:
    """Cases granted in November 2025 (at the 2025 rate) in every situation the run meets."""
    cases = {
        "one person": desk.supported(),
        "three persons": _supported_household(desk, 3),
        "rent change from January": desk.supported(),
        "two persons from February": desk.supported(),
        "closed": desk.supported(),
        "in intake": desk.assessed(),
    }
    move_to(desk, date(2025, 12, 10))
    desk.run("close_case", case_id=cases["closed"], reason="employment")
    # An unrelated change effective 1 January: basic needs are not re-priced by it.
    desk.run("change_budget", case_id=cases["rent change from January"],
             effective_date=JANUARY.isoformat(), reason="rent_change", housing="1300.00",
             health_insurance="350.00", income="0.00")
    move_to(desk, date(2026, 1, 20))
    desk.run("change_budget", case_id=cases["two persons from February"],
             effective_date="2026-02-01", reason="household_change", household_size=2,
             housing="1200.00", health_insurance="350.00", income="0.00")
    return cases


def _supported_household(desk: Desk, size: int) -> UUID:
    case_id = desk.assessed(household_size=size)
    desk.run("grant_support", case_id=case_id)
    return case_id


def _needs_adjustment(desk: Desk, case_id: UUID, size: int) -> bool:
    """Counted independently of the adjustment's code: supported, and January's entitlement
    is not basic needs at the 2026 rate plus the other lines in force."""
    case = desk.case(case_id)
    if case.phase != "supported":
        return False
    january = month_entitlement(case.budgets, case.support_periods, JANUARY)
    basic_needs = next(line.amount for line in january.segments[0].budget.lines
                       if line.code == "basic_needs")
    return basic_needs != expected_basic_needs(JANUARY, size)


def test_an_unrelated_change_keeps_basic_needs_at_the_amount_in_force(desk: Desk) -> None:
    case_id = desk.supported()
    move_to(desk, date(2026, 1, 5))

    desk.run("change_budget", case_id=case_id, effective_date="2026-01-01",
             reason="income_change", housing="1200.00", health_insurance="350.00",
             income="100.00")

    latest = desk.case(case_id).budgets[-1]
    assert latest.changed == ["income"]
    assert latest.lines[0].amount == expected_basic_needs(date(2025, 11, 1), 1)


def test_a_household_change_prices_basic_needs_at_the_rate_of_its_date(desk: Desk) -> None:
    case_id = desk.supported()
    move_to(desk, date(2026, 1, 5))

    desk.run("change_budget", case_id=case_id, effective_date="2026-01-01",
             reason="household_change", household_size=2, housing="1200.00",
             health_insurance="350.00", income="0.00")

    latest = desk.case(case_id).budgets[-1]
    assert latest.changed == ["basic_needs"]
    assert latest.lines[0].amount == expected_basic_needs(JANUARY, 2)


def test_preview_lists_every_running_budget_off_the_rate_and_records_nothing(
    desk: Desk,
) -> None:
    cases = _population(desk)
    sizes = {"three persons": 3}
    expected = {cid for name, cid in cases.items()
                if _needs_adjustment(desk, cid, sizes.get(name, 1))}
    before = desk.store_state(None)

    preview = BasicNeedsAdjustments(desk.service).preview(2026, ADMIN)

    assert desk.store_state(None) == before
    assert {row.case_id for row in preview.rows} == expected
    assert expected == {cases[name] for name in ("one person", "three persons",
                                                 "rent change from January",
                                                 "two persons from February")}
    assert {row.outcome for row in preview.rows} == {"preview"}
    assert preview.cases_looked_at == 4  # supported: all but the closed one and the intake
    three = next(row for row in preview.rows if row.case_id == cases["three persons"])
    assert (three.before, three.after) == (expected_basic_needs(date(2025, 1, 1), 3),
                                           expected_basic_needs(JANUARY, 3))


def test_the_run_reaches_every_running_budget_once_and_again_records_nothing(
    desk: Desk,
) -> None:
    cases = _population(desk)
    closed_events = len(desk.events(cases["closed"]))
    adjustments = BasicNeedsAdjustments(desk.service)

    first = adjustments.run(2026, ADMIN)
    second = adjustments.run(2026, ADMIN)

    assert first.count("recorded") == len(first.rows) == 4
    assert second.rows == () and second.cases_looked_at == 4
    recorded = [e for cid in cases.values() for e in desk.events(cid)
                if isinstance(e, BudgetChanged) and e.reason == "yearly_adjustment"]
    assert sorted(e.originator_id for e in recorded) == sorted(r.case_id for r in first.rows)
    assert {e.correlation_id for e in recorded} == {first.correlation_id}
    assert {(e.actor, e.effective_date) for e in recorded} == {(ADJUSTMENT_ACTOR, JANUARY)}
    assert all(e.changed == ["basic_needs"] for e in recorded)
    assert len(desk.events(cases["closed"])) == closed_events
    for name, size in (("one person", 1), ("three persons", 3),
                       ("rent change from January", 1), ("two persons from February", 1)):
        case = desk.case(cases[name])
        january = month_entitlement(case.budgets, case.support_periods, JANUARY)
        assert january.amount == expected_basic_needs(JANUARY, size) + PREMIUM + (
            Decimal("1300.00") if name == "rent change from January" else HOUSING)
    two = desk.case(cases["two persons from February"])
    february = month_entitlement(two.budgets, two.support_periods, date(2026, 2, 1))
    assert february.amount == expected_basic_needs(JANUARY, 2) + HOUSING + PREMIUM


def test_the_audit_check_flags_a_month_on_an_outdated_rate(desk: Desk) -> None:
    case_id = desk.supported()
    move_to(desk, date(2026, 1, 5))
    case = desk.case(case_id)
    skos = desk.reference.skos

    def january_checks() -> list[bool]:
        january = month_entitlement(case.budgets, case.support_periods, JANUARY)
        return [c.outdated for c in month_rate_checks(january.segments, skos, 1)]

    assert january_checks() == [True]
    december = check_rate(case.budgets[-1], date(2025, 12, 1), skos, 1)
    assert december is not None and not december.outdated
    BasicNeedsAdjustments(desk.service).run(2026, ADMIN)
    case = desk.case(case_id)
    assert january_checks() == [False]


def test_only_an_administrator_runs_the_adjustment_and_only_a_system_actor_records_it(
    desk: Desk, actor: Actor
) -> None:
    case_id = desk.supported()
    move_to(desk, date(2026, 1, 5))

    with pytest.raises(RuleViolationError, match="adjustment-by-administrator"):
        BasicNeedsAdjustments(desk.service).preview(2026, actor)
    desk.refused(desk.commands("adjust_basic_needs", case_id=case_id, year=2026),
                 rule="adjustment-by-system")

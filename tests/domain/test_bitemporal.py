"""Bitemporal queries on the in-memory store: the budget for a month as known at a time,
checked against a hand-computed table, the diff between two knowledge times, state as of."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.application.bitemporal import BudgetDiff, StateAsOf, parse_month
from domain.application.cases import CaseService
from domain.errors import CaseNotFoundError, InvalidCommandError
from domain.events import BudgetChanged, CaseClosed, SupportGranted
from tests.domain.bitemporal_case import (
    ACTOR,
    EXPECTED,
    KNOWN_AT,
    MONTHS,
    START,
    end_of,
    record_retroactive_case,
)
from tests.domain.case_desk import build_desk, expected_basic_needs


@pytest.fixture
def story() -> Iterator[tuple[CaseService, UUID]]:
    """The retroactive case of `bitemporal_case`, recorded in memory."""
    desk = build_desk(ACTOR, START)
    case_id = record_retroactive_case(desk.service, desk.clock)
    yield desk.service, case_id
    desk.service.close()


def test_basic_needs_used_in_the_hand_computed_table_come_from_the_data_file() -> None:
    assert expected_basic_needs(date(2026, 1, 1), 1) == Decimal(1061)


@pytest.mark.parametrize("known", list(KNOWN_AT))
def test_budget_as_known_at_matches_the_hand_computed_table(
    story: tuple[CaseService, UUID], known: str
) -> None:
    service, case_id = story
    amounts = [
        service.budget_as_known_at(case_id, month, KNOWN_AT[known]).amount for month in MONTHS
    ]
    assert amounts == EXPECTED[known]


def test_budget_by_month_gives_every_month_from_support_start_to_the_knowledge_time(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    answers = service.budget_by_month(case_id, KNOWN_AT["30 June"])
    assert [a.month for a in answers] == MONTHS
    assert [a.amount for a in answers] == EXPECTED["30 June"]


def test_answer_names_the_budget_versions_and_events_it_rests_on(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    march = service.budget_as_known_at(case_id, date(2026, 3, 1), KNOWN_AT["30 June"])
    segments = [
        (s.first_day.day, s.last_day.day, s.budget.total) for s in march.entitlement.segments
    ]
    # 1–10 March: basic needs, premium and income of the grant, rent of V3 (1061 + 1000 + 350
    # − 0 = 2411); from 11 March income 600 of V2 as well (1061 + 1000 + 350 − 600 = 1811).
    assert segments == [(1, 10, Decimal("2411.00")), (11, 31, Decimal("1811.00"))]
    assert [s["budget_event_versions"] for s in march.as_dict()["segments"]] == [[3, 5], [3, 4, 5]]
    assert [[v.effective_date for v in s.sources] for s in march.entitlement.segments] == [
        [date(2026, 1, 1), date(2026, 2, 1)],
        [date(2026, 1, 1), date(2026, 3, 11), date(2026, 2, 1)],
    ]
    assert [b.event.version for b in march.budgets] == [3, 5, 4]
    # The grant started the period and holds three lines; versions 4 (V2: income) and 5 (V3:
    # housing) hold the others; the closure (version 6) ends support in May, not in March.
    assert [(r.version, r.event) for r in march.rests_on] == [
        (3, "SupportGranted"), (4, "BudgetChanged"), (5, "BudgetChanged"),
    ]
    may = service.budget_as_known_at(case_id, date(2026, 5, 1), KNOWN_AT["30 June"])
    # The rent cut of V3 holds in May too: May rests on it as well.
    assert [(r.version, r.event) for r in may.rests_on] == [
        (3, "SupportGranted"), (4, "BudgetChanged"), (5, "BudgetChanged"), (6, "CaseClosed"),
    ]
    assert {r.actor for r in march.rests_on} == {ACTOR}
    # Line shares add up to the amount: rent 1000 all month (the cut holds after 11 March).
    lines = march.line_amounts()
    assert round(sum(lines.values()), 2) == march.amount == Decimal("2004.55")
    assert round(lines["housing"], 2) == Decimal("1000.00")
    assert round(lines["income"], 2) == Decimal("-406.45")  # −600 × 21/31 = −12600/31


def test_a_month_after_the_closure_rests_on_the_closure(story: tuple[CaseService, UUID]) -> None:
    service, case_id = story
    june = service.budget_as_known_at(case_id, date(2026, 6, 1), KNOWN_AT["30 June"])
    assert june.amount == Decimal("0.00")
    assert [r.event for r in june.rests_on] == ["CaseClosed"]


def test_diff_between_two_knowledge_times_shows_the_retroactive_rent_change(
    story: tuple[CaseService, UUID],
) -> None:
    diff = _march_diff(story, "31 May", "30 June")
    # 2004.55 − 2204.55 (see tests/domain/bitemporal_case.py)
    assert (diff.before.amount, diff.after.amount) == (Decimal("2204.55"), Decimal("2004.55"))
    assert diff.difference == Decimal("-200.00")
    by_line = {line.code: line for line in diff.lines}
    # rent: 1200 all month before; 1000 all month after (the cut holds after 11 March)
    assert (by_line["housing"].before, by_line["housing"].after) == (
        Decimal("1200.00"), Decimal("1000.00"),
    )
    assert by_line["housing"].difference == Decimal("-200.00")
    assert {code: line.difference for code, line in by_line.items() if code != "housing"} == {
        "basic_needs": Decimal("0.00"), "health_insurance": Decimal("0.00"),
        "income": Decimal("0.00"),
    }
    # The rent change caused it; the closure (effective 20 May) does not touch March.
    assert [(r.event, r.effective_date) for r in diff.caused_by] == [
        ("BudgetChanged", date(2026, 2, 1)),
    ]
    assert diff.caused_by[0].recorded_at.date() == date(2026, 6, 20)


def test_diff_for_may_is_caused_by_the_closure(story: tuple[CaseService, UUID]) -> None:
    service, case_id = story
    diff = service.diff_as_known(case_id, date(2026, 5, 1), KNOWN_AT["31 May"], KNOWN_AT["30 June"])
    # before: 2011 all May; after: 1811 × 20/31 = 1168.39 (the rent cut and the closure)
    assert diff.difference == Decimal("1168.39") - Decimal("2011.00")
    assert [(r.event, r.effective_date) for r in diff.caused_by] == [
        ("BudgetChanged", date(2026, 2, 1)), ("CaseClosed", date(2026, 5, 20)),
    ]


def test_diff_from_before_the_case_existed_counts_everything_as_new(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    diff = service.diff_as_known(
        case_id, date(2026, 1, 1), end_of(date(2025, 12, 31)), KNOWN_AT["30 April"]
    )
    assert (diff.before.amount, diff.after.amount) == (Decimal("0.00"), Decimal("2611.00"))
    assert diff.before.case_version == 0
    assert [r.event for r in diff.caused_by] == ["SupportGranted"]


def test_diff_refuses_a_comparison_time_before_the_knowledge_time(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    with pytest.raises(InvalidCommandError, match="compared_to"):
        service.diff_as_known(case_id, date(2026, 3, 1), KNOWN_AT["30 June"], KNOWN_AT["31 May"])


def test_times_without_time_zone_are_refused_naming_the_parameter(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    with pytest.raises(InvalidCommandError, match="as_of"):
        service.case_as_of(case_id, datetime(2026, 5, 1, 12, 0))


def test_unknown_case_and_before_the_first_event_are_not_found(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    with pytest.raises(CaseNotFoundError):
        service.budget_as_known_at(uuid4(), date(2026, 3, 1), KNOWN_AT["30 June"])
    with pytest.raises(CaseNotFoundError, match="as of"):
        service.case_as_of(case_id, START - timedelta(microseconds=1))
    assert service.version_as_of(case_id, START - timedelta(microseconds=1)) == 0
    assert service.version_as_of(case_id, START) == 2  # opened and assessed at 09:00


def test_state_as_of_has_no_personal_data_and_the_budget_in_force(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    state = StateAsOf.of(service.case_as_of(case_id, KNOWN_AT["31 May"]), KNOWN_AT["31 May"])
    assert (state.phase, state.version, state.budget_versions) == ("supported", 4, 2)
    assert state.budget is not None and state.budget.total == Decimal("2011.00")
    text = repr(state.as_dict())
    assert "Erika" not in text and "Muster" not in text and "756." not in text


def test_entitlement_events_are_the_ones_that_change_what_is_owed(
    story: tuple[CaseService, UUID],
) -> None:
    service, case_id = story
    kinds = [type(e) for e in service._entitlement_events(case_id, 6)]
    assert kinds == [SupportGranted, BudgetChanged, BudgetChanged, CaseClosed]


@pytest.mark.parametrize(
    ("text", "month"), [("2026-03", date(2026, 3, 1)), ("1999-12", date(1999, 12, 1))]
)
def test_parse_month_reads_year_and_month(text: str, month: date) -> None:
    assert parse_month(text) == month


@pytest.mark.parametrize("text", ["2026-3", "2026-13", "March", "2026-03-01", ""])
def test_parse_month_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_desk_clock_moves_forward_only(story: tuple[CaseService, UUID]) -> None:
    """Recorded times of the story never decrease (what the binary search relies on)."""
    service, case_id = story
    times = [getattr(event, "timestamp") for event in service.events.get(case_id)]  # noqa: B009
    assert times == sorted(times)


def _march_diff(story: tuple[CaseService, UUID], known: str, compared: str) -> BudgetDiff:
    service, case_id = story
    return service.diff_as_known(case_id, date(2026, 3, 1), KNOWN_AT[known], KNOWN_AT[compared])


def test_readme_diff_from_30_april_to_30_june_names_both_changes_per_line(
    story: tuple[CaseService, UUID],
) -> None:
    """The README's `audit diff` example: March as known on 30 April and on 30 June."""
    diff = _march_diff(story, "30 April", "30 June")
    # before: 1061 + 1200 + 350 − 0 = 2611 all March; after: 2004.55 (bitemporal_case.py)
    assert (diff.before.amount, diff.after.amount, diff.difference) == (
        Decimal("2611.00"), Decimal("2004.55"), Decimal("-606.45"),
    )
    # housing 1200 → 1000 all month; income 0 → −600 × 21/31 = −12600/31 = −406.45
    assert {line.code: line.difference for line in diff.lines} == {
        "basic_needs": Decimal("0.00"), "housing": Decimal("-200.00"),
        "health_insurance": Decimal("0.00"), "income": Decimal("-406.45"),
    }
    assert [(r.recorded_at.date(), r.effective_date) for r in diff.caused_by] == [
        (date(2026, 5, 10), date(2026, 3, 11)), (date(2026, 6, 20), date(2026, 2, 1)),
    ]

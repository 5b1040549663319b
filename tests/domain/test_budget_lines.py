"""Budget lines with timelines of their own (issue 19, part 1).

A budget change names the lines it changes; on each day a line's amount is that of the latest
change *of that line* effective on or before the day. The README's example (rent cut from
1 Feb recorded after an income change from 11 Mar) is the table of
`tests/domain/bitemporal_case.py`; here: which lines each change records, a later change of the
same line that stands, the collision with a whole-budget version of an old store (refused,
naming it), and that old whole-budget events replay exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application.cases import CaseService
from domain.budget import compute_budget
from domain.entitlement import month_entitlement
from domain.events import BudgetChanged
from domain.identity import UNKNOWN_IDENTITY
from tests.domain.bitemporal_case import ACTOR, EXPECTED, KNOWN_AT, MONTHS, START
from tests.domain.case_desk import Desk, build_desk, move_to


@pytest.fixture
def desk() -> Iterator[Desk]:
    """A desk in 2026 (the SKOS amount for one person is CHF 1061 all year)."""
    desk = build_desk(ACTOR, START)
    yield desk
    desk.service.close()


def _granted(desk: Desk) -> UUID:
    """One person in Solothurn, supported from 1 Jan 2026: 1061 + 1200 + 350 − 0 = 2611."""
    case_id = desk.assessed(municipality_bfs=2601)
    move_to(desk, date(2026, 1, 6))
    desk.run("grant_support", case_id=case_id, support_from="2026-01-01", housing="1200",
             health_insurance="350", income="0")
    return case_id


def _change(desk: Desk, case_id: UUID, effective: str, reason: str, **lines: str) -> None:
    amounts = {"housing": "1200", "health_insurance": "350", "income": "0", **lines}
    desk.run("change_budget", case_id=case_id, effective_date=effective, reason=reason, **amounts)


def _income_changed(desk: Desk, record: Callable[..., None]) -> UUID:
    """The case of `_granted` with income 600 from 11 Mar recorded (by `record`) on 10 May;
    the desk's clock at 20 June."""
    case_id = _granted(desk)
    move_to(desk, date(2026, 5, 10))
    record(desk, case_id, "2026-03-11", "income_change", income="600")
    move_to(desk, date(2026, 6, 20))
    return case_id


def _months(service: CaseService, case_id: UUID, known_at: datetime) -> list[Decimal]:
    return [service.budget_as_known_at(case_id, m, known_at).amount for m in MONTHS]


def test_a_change_records_only_the_lines_whose_amount_differs_from_those_in_force(
    desk: Desk,
) -> None:
    case_id = _income_changed(desk, _change)
    # The form states every line, as in force on 1 Feb (income 0 then): only housing changes.
    _change(desk, case_id, "2026-02-01", "rent_change", housing="1000")

    v2, v3 = [e for e in desk.events(case_id) if isinstance(e, BudgetChanged)]
    assert (v2.changed, v3.changed) == (["income"], ["housing"])
    # `lines` is the whole budget as in force from the effective date when recorded.
    assert [(line.code, line.amount) for line in v3.lines] == [
        ("basic_needs", Decimal("1061.00")), ("housing", Decimal("1000.00")),
        ("health_insurance", Decimal("350.00")), ("income", Decimal("-0.00")),
    ]
    assert v3.total == Decimal("2411.00")
    # The README example: the rent cut holds after 11 March (tests/domain/bitemporal_case.py).
    assert _months(desk.service, case_id, KNOWN_AT["30 June"])[:4] == EXPECTED["30 June"][:4]


def test_a_later_change_of_the_same_line_stands_after_a_retroactive_change(desk: Desk) -> None:
    case_id = _granted(desk)
    move_to(desk, date(2026, 5, 10))
    _change(desk, case_id, "2026-04-01", "rent_change", housing="1300")  # a new flat from April
    move_to(desk, date(2026, 6, 20))
    _change(desk, case_id, "2026-02-01", "rent_change", housing="1000")  # the old flat, corrected

    # January 1061 + 1200 + 350 = 2611; February and March 1061 + 1000 + 350 = 2411;
    # from April the new flat: 1061 + 1300 + 350 = 2711 (a genuine change of the rent stands).
    amounts = _months(desk.service, case_id, KNOWN_AT["30 June"])
    assert amounts == [Decimal(x) for x in ("2611.00", "2411.00", "2411.00", "2711.00",
                                            "2711.00", "2711.00")]


def test_a_change_stating_only_amounts_in_force_changes_no_line(desk: Desk) -> None:
    case_id = _granted(desk)
    move_to(desk, date(2026, 3, 2))
    _change(desk, case_id, "2026-03-01", "correction")

    (event,) = [e for e in desk.events(case_id) if isinstance(e, BudgetChanged)]
    assert event.changed == []
    assert _months(desk.service, case_id, KNOWN_AT["30 June"]) == [Decimal("2611.00")] * 6


# --- old stores: whole-budget versions (BudgetChanged version 1) ------------------------------


def _record_as_version_1(desk: Desk, case_id: UUID, effective: str, reason: str,
                         **lines: str) -> None:
    """Append a budget change as the release before budget lines had timelines wrote it: no
    class_version, no `changed`, the whole budget in `lines` (inserted into the store as it is,
    as the previous release's code would have)."""
    case = desk.case(case_id)
    amounts = {"housing": "1200", "health_insurance": "350", "income": "0", **lines}
    day = date.fromisoformat(effective)
    budget = compute_budget(desk.reference.skos, effective_date=day, household_size=1,
                            **{k: Decimal(v) for k, v in amounts.items()})
    case.trigger_event(
        BudgetChanged, timestamp=desk.clock(), actor=ACTOR, correlation_id=uuid4(),
        effective_date=day, imported=False, lines=list(budget.lines), total=budget.total,
        reason=reason, household_size=1, changed=None, recorded_by=UNKNOWN_IDENTITY,
        import_origin=None,
    )
    (event,) = case.collect_events()
    assert isinstance(event, BudgetChanged)
    stored = desk.service.mapper.to_stored_event(event)
    transcoder = desk.service.mapper.transcoder
    state = transcoder.decode(stored.state)
    # Version 1 stated the whole budget in `lines`, and had none of the fields below.
    for name in ("class_version", "changed", "recorded_by", "import_origin"):
        del state[name]
    desk.service.recorder.insert_events([StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, transcoder.encode(state),
    )])


def _old_story(desk: Desk) -> UUID:
    """The README story as the previous release recorded it: V2 (income 600 from 11 Mar,
    restating rent 1200) and V3 (rent 1000 from 1 Feb) as whole-budget versions."""
    case_id = _income_changed(desk, _record_as_version_1)
    _record_as_version_1(desk, case_id, "2026-02-01", "rent_change", housing="1000")
    return case_id


def test_old_whole_budget_versions_replay_exactly_as_before(desk: Desk) -> None:
    case_id = _old_story(desk)

    v2, v3 = [e for e in desk.events(case_id) if isinstance(e, BudgetChanged)]
    assert (v2.changed, v3.changed) == (None, None)  # upcast: every line changes
    # As the previous release answered (whole budgets, latest effective date wins): as known
    # on 30 June, March = 2411 × 10/31 + 2011 × 21/31 = 66341/31 = 2140.032… → 2140.03;
    # April 1061 + 1200 + 350 − 600 = 2011; May and June: support runs on (no closure here).
    assert _months(desk.service, case_id, KNOWN_AT["30 June"]) == [
        Decimal(x) for x in ("2611.00", "2411.00", "2140.03", "2011.00", "2011.00", "2011.00")
    ]
    assert _months(desk.service, case_id, KNOWN_AT["31 May"]) == [
        Decimal(x) for x in ("2611.00", "2611.00", "2204.55", "2011.00", "2011.00", "2011.00")
    ]


def test_a_change_a_later_whole_budget_version_would_undo_is_refused_naming_it(
    desk: Desk,
) -> None:
    case_id = _income_changed(desk, _record_as_version_1)

    command = desk.commands("change_budget", case_id=case_id, effective_date="2026-02-01",
                            reason="rent_change", housing="1000", health_insurance="350",
                            income="0")
    desk.refused(command, rule="budget-line-collision",
                 mentions=("housing", "effective 2026-03-11", "recorded 2026-05-10",
                           "CHF 1200.00", "from 2026-03-11 first"))

    # Carried forward as the refusal says: housing from 11 March first, then from 1 February.
    _change(desk, case_id, "2026-03-11", "rent_change", housing="1000", income="600")
    _change(desk, case_id, "2026-02-01", "rent_change", housing="1000")
    # Both changes of housing are recorded events; the cut holds from 1 Feb on:
    # March 2411 × 10/31 + 1811 × 21/31 = 62141/31 = 2004.548… → 2004.55; April on 1811.
    assert _months(desk.service, case_id, KNOWN_AT["30 June"]) == [
        Decimal(x) for x in ("2611.00", "2411.00", "2004.55", "1811.00", "1811.00", "1811.00")
    ]


def test_whole_budget_versions_compose_like_every_line_changing() -> None:
    """`month_entitlement` with version-1 style versions (changed None) is the old rule."""
    case_desk = build_desk(ACTOR, START)
    try:
        case_id = _old_story(case_desk)
        case = case_desk.case(case_id)
        march = month_entitlement(case.budgets, case.support_periods, date(2026, 3, 1))
        # Each segment rests on exactly one version, as before.
        assert [len(s.sources) for s in march.segments] == [1, 1]
        assert [s.budget is s.sources[0] for s in march.segments] == [True, True]
    finally:
        case_desk.service.close()

"""The end of the case process, on the in-memory case service.

Handover to another region, closure and reopening, who may act, and the service around the
case (unknown cases, stale versions, as-of views, history, snapshots). Every refusal is
checked with `desk.refused`, which also proves that nothing was recorded (no event, no key,
no pending event on the aggregate, version unchanged).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import get_args
from uuid import UUID

import pytest

from domain import commands
from domain.case import Recording
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    InvalidCommandError,
    ReferenceDataError,
)

from .case_desk import (
    BETTLACH,
    GRENCHEN,
    OBERER_LEBERBERG,
    OLTEN,
    OLTEN_CASEWORKER,
    OMIT,
    SOLOTHURN,
    START,
    TODAY,
    Desk,
    replay,
)

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

    desk.hidden(desk.commands("complete_review", case_id=case_id))
    desk.run("complete_review", actor=OLTEN_CASEWORKER, case_id=case_id)


# --- closure and reopening -------------------------------------------------------------------


@pytest.mark.parametrize("reason", get_args(commands.ClosureReason))
def test_closure_records_its_reason_and_ends_support(desk: Desk, reason: str) -> None:
    case_id = desk.supported(support_from="2025-11-01")
    desk.clock.advance(days=10)
    desk.run("close_case", case_id=case_id, reason=reason)

    case = desk.case(case_id)
    assert case.phase == "closed"
    assert case.closure == {"reason": reason, "closed_on": TODAY + timedelta(days=10)}
    assert case.support_periods[-1].until == TODAY + timedelta(days=10)


# A closed case still records the claim of an advance decided after it closed, and its
# payment (tests/domain/test_advance_claims.py, test_claim_paid.py).
@pytest.mark.parametrize("name", sorted(set(commands.COMMANDS) - {
    "open_case", "reopen_case", "record_reimbursement", "record_reimbursement_paid"}))
def test_closed_case_accepts_only_reopening(desk: Desk, name: str) -> None:
    case_id = desk.supported()
    desk.run("close_case", case_id=case_id)

    desk.refused(desk.commands(name, case_id=case_id), rule="closed-case-only-reopens")


@pytest.mark.parametrize("reason", get_args(commands.ReopenReason))
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
def test_staff_of_another_region_are_answered_as_if_the_case_did_not_exist(
    desk: Desk, role: commands.Role, name: str
) -> None:
    case_id = desk.open()
    stranger = commands.Actor("max.frei", role, "so-olten")
    desk.hidden(desk.commands(name, actor=stranger, case_id=case_id))


def test_caseworker_of_another_region_cannot_open_a_case_here(desk: Desk) -> None:
    command = desk.commands("open_case", actor=OLTEN_CASEWORKER, municipality_bfs=SOLOTHURN)
    desk.refused(command, rule="actor-responsible", mentions=("actor.organisation",))


@pytest.mark.parametrize("role", ["administrator", "system"])
def test_administrators_and_the_system_may_act_in_any_region(
    desk: Desk, role: commands.Role
) -> None:
    anyone = commands.Actor("ops", role, "canton")
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
        commands.parse_command("complete_assessment", payload)
    assert [field for field, _ in info.value.problems] == ["note"]


def test_recording_day_is_swiss_even_for_utc_timestamps() -> None:
    late_utc = datetime.fromisoformat("2026-06-30T22:30:00+00:00")
    assert Recording(late_utc).today == date(2026, 7, 1)

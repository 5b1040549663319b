"""Work-list proposals from a connected register: handover and closure proposals, dismissal.

A proposal is never a change to the case itself: the case stays in its region and phase until
a caseworker acts. The same external reference twice is refused with `already-received`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import commands
from domain.events import ClosureProposed, HandoverProposed, ProposalDismissed

from .case_desk import BETTLACH, GRENCHEN, OBERER_LEBERBERG, OLTEN, TODAY, Desk, replay

REGISTER = commands.Actor("population-register", "system", "so-canton")


def _propose_handover(desk: Desk, case_id: object, ref: str = "m-1/0", **fields: object) -> None:
    desk.run(
        "propose_handover",
        case_id=case_id,
        actor=REGISTER,
        external_reference=ref,
        **{"to_municipality_bfs": OLTEN, **fields},
    )


def test_handover_proposal_lands_on_the_case_without_moving_it(desk: Desk) -> None:
    case_id = desk.supported()
    moved_on = TODAY - timedelta(days=5)
    _propose_handover(desk, case_id, effective_date=moved_on.isoformat())

    case = desk.case(case_id)
    assert case.social_region == "so-solothurn"  # not handed over
    assert case.phase == "supported"
    proposal = case.proposals["m-1/0"]
    assert (proposal.kind, proposal.to_region, proposal.to_municipality_bfs) == (
        "handover",
        "so-olten",
        OLTEN,
    )
    assert proposal.proposed_on == moved_on and proposal.status == "open"
    event = desk.events(case_id)[-1]
    assert isinstance(event, HandoverProposed) and event.actor == REGISTER


def test_same_external_reference_twice_is_already_received(desk: Desk) -> None:
    case_id = desk.supported()
    _propose_handover(desk, case_id)
    again = desk.commands(
        "propose_closure", case_id=case_id, actor=REGISTER, external_reference="m-1/0"
    )
    desk.refused(again, rule="already-received", mentions=("m-1/0",))


def test_already_received_wins_over_a_closed_case(desk: Desk) -> None:
    case_id = desk.supported()
    desk.run("propose_closure", case_id=case_id, actor=REGISTER, external_reference="m-2/0")
    desk.run("close_case", case_id=case_id, reason="death")
    again = desk.commands(
        "propose_closure", case_id=case_id, actor=REGISTER, external_reference="m-2/0"
    )
    desk.refused(again, rule="already-received")


def test_move_within_the_region_proposes_nothing(desk: Desk) -> None:
    case_id = desk.open(municipality_bfs=BETTLACH, actor=OBERER_LEBERBERG)
    command = desk.commands(
        "propose_handover", case_id=case_id, actor=REGISTER, to_municipality_bfs=GRENCHEN
    )
    desk.refused(command, rule="handover-to-other-region", mentions=("so-oberer-leberberg",))


def test_only_a_connector_makes_proposals(desk: Desk) -> None:
    case_id = desk.supported()
    by_caseworker = desk.commands("propose_closure", case_id=case_id)
    desk.refused(by_caseworker, rule="proposal-from-connector", mentions=("caseworker",))


@pytest.mark.parametrize("reason", ["death", "moved_away"])
def test_closure_proposal_keeps_the_case_open(desk: Desk, reason: str) -> None:
    case_id = desk.supported()
    desk.run("propose_closure", case_id=case_id, actor=REGISTER, reason=reason)

    case = desk.case(case_id)
    assert case.phase == "supported" and case.closure is None
    (proposal,) = case.proposals.values()
    assert (proposal.kind, proposal.reason, proposal.status) == ("closure", reason, "open")


def test_dismissed_proposal_leaves_the_work_list(desk: Desk) -> None:
    case_id = desk.supported()
    _propose_handover(desk, case_id)
    desk.run("dismiss_proposal", case_id=case_id, external_reference="m-1/0")

    assert desk.case(case_id).proposals["m-1/0"].status == "dismissed"
    assert isinstance(desk.events(case_id)[-1], ProposalDismissed)
    twice = desk.commands("dismiss_proposal", case_id=case_id, external_reference="m-1/0")
    desk.refused(twice, rule="proposal-open", mentions=("dismissed",))
    unknown = desk.commands("dismiss_proposal", case_id=case_id, external_reference="nope")
    desk.refused(unknown, rule="known-proposal")


def test_handover_resolves_handover_proposals_and_closure_resolves_all(desk: Desk) -> None:
    admin = commands.Actor("admin", "administrator", "so-canton")
    case_id = desk.supported()
    _propose_handover(desk, case_id, ref="m-1/0")
    desk.run("propose_closure", case_id=case_id, actor=REGISTER, external_reference="m-1/1")
    desk.run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN)

    statuses = {ref: p.status for ref, p in desk.case(case_id).proposals.items()}
    assert statuses == {"m-1/0": "resolved", "m-1/1": "open"}
    desk.run("close_case", case_id=case_id, actor=admin, reason="death")
    assert {p.status for p in desk.case(case_id).proposals.values()} == {"resolved"}


def test_proposals_survive_replay_from_events(desk: Desk) -> None:
    case_id = desk.supported()
    _propose_handover(desk, case_id)
    desk.run("propose_closure", case_id=case_id, actor=REGISTER, external_reference="m-1/1")
    events = desk.events(case_id)
    assert isinstance(events[-1], ClosureProposed)
    assert replay(events).proposals == desk.case(case_id).proposals

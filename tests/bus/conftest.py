"""Fixtures of the bus tests, in marked sections (imports of every section stay at the top)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.registry_sqlite import SQLiteSchemaRegistry
from domain import commands
from domain.application.claims import CLAIMS_ACTOR
from domain.case import BenefitOnRecord
from domain.personal_data import PersonalDataVault
from tests.domain.case_desk import OLTEN, Desk, build_desk, person_input

# --- schemas/registry fixtures ---

RECORDING_ACTOR = commands.Actor(user_id="admin-so", role="administrator", organisation="so-canton")
"""An administrator: may act on a case before and after its handover to another region."""
REGISTER_ACTOR = commands.Actor(
    user_id="population-register", role="system", organisation="so-canton"
)
"""The population-register connector: the only kind of actor that makes proposals."""


@pytest.fixture(scope="session")
def recording_desk() -> Iterator[Desk]:
    """An in-memory case service (eventsourcing POPO, in-memory key store, fake clock)."""
    desk = build_desk(RECORDING_ACTOR)
    yield desk
    desk.service.close()


@pytest.fixture(scope="session")
def recorded_events(recording_desk: Desk) -> list[Any]:
    """Stored events of every domain event type, as the core's store gives them back.

    A household of three through the whole process (goals, measures, budget change, review,
    an advance in view of a member's EL application decided at once — its end, its claim, a
    budget proposal and the claim's payment —, handover, closure, reopening), a refused
    application, and an imported case.
    """
    desk = recording_desk
    step = desk.clock.advance
    case_id = desk.open(household_size=3, other_members=[person_input(2), person_input(3)])
    desk.run("complete_assessment", case_id=case_id, needs=["financial", "housing"])
    desk.run("grant_support", case_id=case_id, housing="1450.50", income="312.35")
    step(days=3, microseconds=123_457)
    achieved, missed = UUID(int=0xA1), UUID(int=0xA2)
    for goal_id in (achieved, missed):
        desk.run("agree_goal", case_id=case_id, goal_id=goal_id, title="Deutschkurs B1")
    desk.run("record_goal_outcome", case_id=case_id, goal_id=achieved, outcome="achieved")
    desk.run("record_goal_outcome", case_id=case_id, goal_id=missed, outcome="missed")
    completed, broken_off = UUID(int=0xB1), UUID(int=0xB2)
    for measure_id in (completed, broken_off):
        desk.run("start_measure", case_id=case_id, measure_id=measure_id, kind="language_course")
    desk.run("complete_measure", case_id=case_id, measure_id=completed)
    desk.run("break_off_measure", case_id=case_id, measure_id=broken_off, reason="health")
    step(days=45)
    desk.run("change_budget", case_id=case_id, reason="income_change", income="980.05",
             effective_date=(desk.today - timedelta(days=10)).isoformat())
    desk.run("complete_review", case_id=case_id, outcome="adjust")
    member = desk.case(case_id).other_members[0].person_id
    desk.benefits.add(BenefitOnRecord(UUID(int=0xE1), "el_iv", member, "forwarded"))
    desk.run("start_advance", case_id=case_id, application_id=UUID(int=0xE1),
             commitment_kind="payment_order", advance_from=desk.today.replace(day=1))
    month = desk.today.replace(day=1).isoformat()  # decided: claim, advance ended, proposal
    desk.run("record_reimbursement", case_id=case_id, actor=CLAIMS_ACTOR,
             application_id=UUID(int=0xE1), decided_on=desk.today, el={month: "310.40"},
             paid={month: "1200.00"}, monthly_el="310.40")
    claim = desk.case(case_id).claims[-1]
    desk.run("record_reimbursement_paid", case_id=case_id, actor=CLAIMS_ACTOR,
             application_id=UUID(int=0xE1), claim_version=claim.case_version,
             paid_on=desk.today, to_region=str(claim.claim_total),
             to_person=str(max(claim.surplus_total, 0)), message_id="fund-pay-0001")
    desk.run("propose_handover", case_id=case_id, actor=REGISTER_ACTOR, to_municipality_bfs=OLTEN,
             external_reference="msg-0001/0", source="population_register")
    desk.run("propose_closure", case_id=case_id, actor=REGISTER_ACTOR, reason="moved_away",
             external_reference="msg-0001/1", source="population_register")
    desk.run("dismiss_proposal", case_id=case_id, external_reference="msg-0001/1",
             reason="register_error")
    desk.run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN)
    step(days=1)
    desk.run("close_case", case_id=case_id, reason="other_insurance")
    desk.run("reopen_case", case_id=case_id, reason="closed_in_error")
    refused_id = desk.assessed()
    desk.run("refuse_support", case_id=refused_id, reasons=["income_sufficient", "other"])
    imported_id = _import_case(desk)
    return [event for cid in (case_id, refused_id, imported_id) for event in desk.events(cid)]


def _import_case(desk: Desk) -> UUID:
    case_id = UUID(int=0xC0FFEE)
    record = {
        "recorded_at": (desk.clock() - timedelta(days=30)).isoformat(),
        "command": "open_case",
        "data": desk.commands.payload("open_case", case_id=case_id,
                                      application_date=desk.today - timedelta(days=31)),
    }
    desk.service.import_records([json.dumps(record)])
    return case_id


@pytest.fixture(scope="session")
def events_vault(recording_desk: Desk) -> PersonalDataVault:
    """The vault that sealed the persons of `recorded_events` (the core's)."""
    return recording_desk.service.vault


@pytest.fixture
def schema_registry(tmp_path: Path) -> Iterator[SQLiteSchemaRegistry]:
    """An embedded schema registry in a SQLite file of the test's own."""
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    yield registry
    registry.close()

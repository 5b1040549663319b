"""The established identity on the benefits store's events (domain/benefits.py,
domain/application/benefits.py): every application and delegation event records who the edge
established beside the declared actor, and events stored before read as unknown (upcast, the
stored bytes not rewritten)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain import benefit_commands as bc
from domain.benefits import (
    ApplicationForwarded,
    ApplicationReceived,
    CompletenessChecked,
    DelegationGranted,
    DelegationRevoked,
)
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity

from .benefit_desk import ALL_DOCUMENTS, FUND, GRENCHEN_OFFICE, BenefitDesk, build_benefit_desk

CLERK = EstablishedIdentity("os", "clerk", "akso-host")
"""The process's operating-system user, as the composition root would give it."""
OFFICER = EstablishedIdentity("web", "max.akso")
"""A signed-in web account."""


@pytest.fixture
def desk() -> Iterator[BenefitDesk]:
    """An in-memory benefits service recording as `CLERK` unless a command brings its own."""
    built = build_benefit_desk()
    built.service.identity = CLERK
    yield built
    built.service.close()


def _execute(
    desk: BenefitDesk,
    name: str,
    actor: Any = FUND,
    recorded_by: EstablishedIdentity | None = None,
    **fields: Any,
) -> UUID:
    command = bc.BENEFIT_COMMANDS[name](actor=actor, correlation_id=uuid.uuid4(), **fields)
    result: UUID = desk.service.execute(command, recorded_by=recorded_by).id
    return result


def test_every_application_event_records_the_identity_of_its_edge(desk: BenefitDesk) -> None:
    application_id = desk.receive()  # the service's own identity
    _execute(
        desk,
        "check_completeness",
        GRENCHEN_OFFICE,
        application_id=application_id,
        documents_present=ALL_DOCUMENTS["el_ahv"],
    )
    _execute(desk, "forward_application", GRENCHEN_OFFICE, application_id=application_id)
    _execute(
        desk,
        "grant_benefit",
        recorded_by=OFFICER,
        application_id=application_id,
        from_month=desk.today.replace(day=1),
        amounts=[{"from_month": desk.today.replace(day=1), "monthly_chf": "812.40"}],
    )

    events = list(desk.service.events.get(application_id))

    assert [(type(e).__name__, str(e.recorded_by)) for e in events] == [
        ("ApplicationReceived", "os:clerk@akso-host"),
        ("CompletenessChecked", "os:clerk@akso-host"),
        ("ApplicationForwarded", "os:clerk@akso-host"),
        ("BenefitGranted", "web:max.akso"),
    ]
    assert [e.actor.user_id for e in events] == ["eva.frei"] * 3 + ["max.akso"]


def test_delegation_events_and_delegated_actions_record_it_too(desk: BenefitDesk) -> None:
    delegation_id = _execute(
        desk,
        "grant_delegation",
        recorded_by=OFFICER,
        branch_office="akso-grenchen",
        task="document_request",
        valid_from=desk.today,
        valid_until=desk.today + timedelta(days=30),
    )
    application_id = desk.forwarded(documents=ALL_DOCUMENTS["el_ahv"][:-1])
    _execute(
        desk,
        "request_documents",
        GRENCHEN_OFFICE,
        application_id=application_id,
        documents=["health_insurance_policy"],
        due_on=desk.today + timedelta(days=14),
        delegation_id=delegation_id,
    )
    _execute(desk, "revoke_delegation", delegation_id=delegation_id, reason="the fund asks")

    events = list(desk.service.events.get(delegation_id))
    (action,) = desk.service.delegated_actions(delegation_id)

    assert [(type(e).__name__, e.recorded_by) for e in events] == [
        ("DelegationGranted", OFFICER),
        ("DelegationRevoked", CLERK),
    ]
    assert (action.event, action.user_id, action.recorded_by) == (
        "DocumentsRequested",
        "eva.frei",
        "os:clerk@akso-host",
    )


def test_without_an_edge_the_service_records_unknown(desk: BenefitDesk) -> None:
    desk.service.identity = UNKNOWN_IDENTITY  # a library use, no composition root

    application_id = desk.receive()

    (received,) = desk.service.events.get(application_id)
    assert received.recorded_by == UNKNOWN_IDENTITY and str(received.recorded_by) == "unknown"


def test_benefit_events_stored_before_identities_read_as_unknown_without_rewriting(
    desk: BenefitDesk,
) -> None:
    delegation_id = _execute(
        desk,
        "grant_delegation",
        branch_office="akso-grenchen",
        task="completeness_check",
        valid_from=desk.today,
        valid_until=desk.today + timedelta(days=30),
    )
    _execute(desk, "revoke_delegation", delegation_id=delegation_id, reason="the fund asks")
    application_id = desk.forwarded()
    stored = [
        *desk.service.recorder.select_events(application_id),
        *desk.service.recorder.select_events(delegation_id),
    ]
    old = [_as_version_1(desk, event) for event in stored]

    events = [desk.service.mapper.to_domain_event(event) for event in old]

    assert [type(e) for e in events] == [
        ApplicationReceived,
        CompletenessChecked,
        ApplicationForwarded,
        DelegationGranted,
        DelegationRevoked,
    ]
    assert {e.recorded_by for e in events} == {UNKNOWN_IDENTITY}
    assert all(b"recorded_by" not in event.state for event in old)  # read, not rewritten
    assert [e.actor for e in events] == [GRENCHEN_OFFICE] * 3 + [FUND] * 2


def _as_version_1(desk: BenefitDesk, stored: StoredEvent) -> StoredEvent:
    """`stored` as the release before identities wrote it (class version 1: no
    `class_version` in the state, no `recorded_by`)."""
    transcoder = desk.service.mapper.transcoder
    state = transcoder.decode(stored.state)
    del state["recorded_by"], state["class_version"]
    return StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, transcoder.encode(state)
    )

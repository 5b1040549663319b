"""Benefit applications on the bus without a broker: every application event through its codec
and back, the fund's decisions into commands (a fake benefits service), and `schemas check`
refusing a benefits schema that no longer matches its class."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError

from bus.benefits_codec import (
    BenefitEventCodec,
    FundDecision,
    FundDecisionCodec,
    benefit_event_encoder,
)
from bus.consumer import Received, TransientError
from bus.envelope import event_id
from bus.errors import DecodeError
from bus.record_codec import current_schema
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.schema_check import check_schemas
from connectors.fund_decisions.recorder import DecisionRecorder, DecisionRefusedError
from domain.benefit_commands import (
    CheckCompleteness,
    ForwardApplication,
    GrantBenefit,
    ReceiveApplication,
)
from domain.benefits import (
    APPLICATION_EVENT_TYPES,
    DELEGATION_EVENT_TYPES,
    BenefitGranted,
    MonthlyAmount,
)
from domain.case import SWISS_TIME
from domain.commands import Command
from domain.errors import ApplicationNotFoundError, RuleViolationError
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from nervenbahn.container import Container
from nervenbahn.identity import process_identity
from schemas import SCHEMA_DIR
from tests.bus.pipeline import store_settings
from tests.domain.benefit_desk import ALL_DOCUMENTS, GRENCHEN_OFFICE, build_benefit_desk
from tests.domain.case_desk import person_input

APPLICATIONS = "t.benefits.applications.v1"
DECISIONS = "t.benefits.decisions.v1"


def _every_application_event() -> tuple[list[Any], Any]:
    """Stored events of every application event type (and delegation events), and the vault."""
    desk = build_benefit_desk()
    granted = desk.receive()
    desk.run("check_completeness", GRENCHEN_OFFICE, application_id=granted,
             documents_present=ALL_DOCUMENTS["el_ahv"][:2])
    desk.run("request_documents", GRENCHEN_OFFICE, application_id=granted,
             documents=["rent_contract"], due_on=desk.today + timedelta(days=20))
    desk.run("record_documents_received", GRENCHEN_OFFICE, application_id=granted,
             documents=["rent_contract"], received_on=desk.today)
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=granted,
             override_reason="documents follow")
    month = desk.today.replace(day=1)
    desk.run("grant_benefit", application_id=granted, from_month=month,
             amounts=[{"from_month": month, "monthly_chf": "1234.55"}])
    desk.run("amend_decision", application_id=granted, reason="new rent",
             amounts=[{"from_month": month, "monthly_chf": "1300.00"}])
    desk.run("end_benefit", application_id=granted, condition_ceased_on=desk.today,
             reason="moved_away")
    refused = desk.forwarded(serial=2)
    desk.run("refuse_benefit", application_id=refused, reason="income_sufficient")
    withdrawn = desk.receive(serial=3)
    desk.run("withdraw_application", GRENCHEN_OFFICE, application_id=withdrawn,
             reason="applicant_request")
    delegation = desk.delegate("document_request")
    events = [e for app in (granted, refused, withdrawn, delegation)
              for e in desk.service.events.get(app)]
    return events, desk.service.vault


def test_every_application_event_travels_and_comes_back_equal(tmp_path: Path) -> None:
    events, vault = _every_application_event()
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = BenefitEventCodec(registry, APPLICATIONS, vault=vault)
    encode = benefit_event_encoder(codec)
    published = [(event, encode(event)) for event in events]
    registry.close()

    application_events = [e for e, _ in published if isinstance(e, APPLICATION_EVENT_TYPES)]
    assert {type(e) for e in application_events} == set(APPLICATION_EVENT_TYPES)
    for event, messages in published:
        if isinstance(event, DELEGATION_EVENT_TYPES):
            assert messages == []  # delegations stay inside nervenbahn
            continue
        ((key, value, headers, *_),) = messages
        assert key == str(event.originator_id).encode()
        assert codec.decode(value) == event
        named = dict(headers)
        assert named["event_id"] == str(event_id(event.originator_id,
                                                 event.originator_version)).encode()
        assert named["correlation_id"] == str(event.correlation_id).encode()
        assert named["event_type"] == type(event).__name__.encode()
        assert "effective_date" in named


def test_a_granted_decision_travels_with_its_amounts_as_decimals(tmp_path: Path) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = FundDecisionCodec(registry, DECISIONS)
    decision = FundDecision(uuid.uuid4(), uuid.uuid4(), "granted", date(2026, 12, 3),
                            date(2026, 12, 1), [MonthlyAmount(date(2026, 12, 1),
                                                              Decimal("1234.55"))])
    value = codec.encode(decision).value
    back = codec.decode(value)
    with pytest.raises(DecodeError):
        codec.decode(b"\x00\x00\x00\x00\x27not avro")
    registry.close()
    assert back == decision and isinstance(back.amounts[0].monthly_chf, Decimal)
    assert codec.event_id(back) == decision.decision_id


def test_the_established_identity_stays_in_the_store(tmp_path: Path) -> None:
    """As the case events': the applications topic carries no `recorded_by` (its schemas did
    not change; the fund's application reads every message as before); nervenbahn's own
    codec decodes it as unknown."""
    desk = build_benefit_desk()
    desk.service.identity = EstablishedIdentity("os", "clerk-7", "akso-host")
    (received,) = desk.service.events.get(desk.receive())
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = BenefitEventCodec(registry, APPLICATIONS, vault=desk.service.vault)

    value = codec.encode(received).value
    decoded = codec.decode(value)
    registry.close()

    assert str(received.recorded_by) == "os:clerk-7@akso-host"
    assert b"clerk-7" not in value and b"akso-host" not in value
    assert decoded.recorded_by == UNKNOWN_IDENTITY
    assert (decoded.actor, decoded.received_on) == (received.actor, received.received_on)
    schema = current_schema("benefits", "ApplicationReceived", SCHEMA_DIR)
    assert "recorded_by" not in {field["name"] for field in schema["fields"]}


# --- the connector, with a fake benefits service ------------------------------------------------


class FakeBenefits:
    """Records commands; knows which (application, correlation id) pairs are recorded."""

    def __init__(self, known: set[UUID], refuse: Exception | None = None) -> None:
        self.known = known
        self.refuse = refuse
        self.executed: list[Command] = []

    def execute(self, command: Command) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.executed.append(command)

    def recorded_with(self, application_id: UUID, correlation_id: UUID) -> bool:
        if application_id not in self.known:
            raise ApplicationNotFoundError(application_id)
        return any(c.correlation_id == correlation_id for c in self.executed)


def _received(decision: FundDecision) -> Received:
    return Received(decision, decision.decision_id, "FundDecision", DECISIONS, 0, 0, {})


def _grant(application_id: UUID, decided_on: date = date(2026, 12, 3),
           **fields: Any) -> FundDecision:
    month = fields.pop("from_month", date(2026, 12, 1))
    data: dict[str, Any] = {"from_month": month,
                            "amounts": [MonthlyAmount(month, Decimal("900.05"))]}
    return FundDecision(uuid.uuid4(), application_id, "granted", decided_on,
                        **(data | fields))


def test_a_decision_becomes_the_fund_officers_command_once() -> None:
    application_id = uuid.uuid4()
    benefits = FakeBenefits({application_id})
    recorder = DecisionRecorder("fund-decisions", benefits)
    decision = _grant(application_id)

    recorder.handle(_received(decision), None)
    recorder.handle(_received(decision), None)  # the effect store lost: the event tells

    (command,) = benefits.executed
    assert isinstance(command, GrantBenefit)
    assert command.correlation_id == decision.decision_id
    assert command.amounts[0].monthly_chf == Decimal("900.05")
    assert (command.actor.user_id, command.actor.role) == ("fund-decisions", "fund_officer")


@pytest.mark.parametrize(("decision", "known", "refuse", "reason"), [
    (_grant(UUID(int=1)), set(), None, "application_id: .* no such application"),
    (_grant(UUID(int=1), from_month=None), {UUID(int=1)}, None, "from_month"),
    (FundDecision(uuid.uuid4(), UUID(int=1), "ended", date(2026, 12, 3)), {UUID(int=1)}, None,
     "condition_ceased_on"),
    (_grant(UUID(int=1)), {UUID(int=1)},
     RuleViolationError("decision-once", "application_id: granted already"),
     "rule decision-once"),
])
def test_a_decision_that_cannot_be_recorded_is_refused_naming_why(
    decision: FundDecision, known: set[UUID], refuse: RuleViolationError | None, reason: str
) -> None:
    benefits = FakeBenefits(known, refuse)
    with pytest.raises(DecisionRefusedError, match=reason):
        DecisionRecorder("fund-decisions", benefits).handle(_received(decision), None)
    assert benefits.executed == []


@pytest.mark.parametrize("failure", [
    RuleViolationError("one-change-at-a-time", "grant_benefit: changed meanwhile"),
    StoreOperationalError("database is locked"),
    StoreInterfaceError("connection closed"),
])
def test_a_decision_that_may_succeed_later_is_retried_never_dead_lettered(
    failure: Exception,
) -> None:
    application_id = uuid.uuid4()
    benefits = FakeBenefits({application_id}, failure)
    recorder = DecisionRecorder("fund-decisions", benefits)
    decision = _grant(application_id)

    with pytest.raises(TransientError):
        recorder.handle(_received(decision), None)
    benefits.refuse = None  # the conflict is over, the store is back
    recorder.handle(_received(decision), None)

    (command,) = benefits.executed
    assert command.correlation_id == decision.decision_id


def test_the_connector_records_a_decision_as_its_process_identity(
    tmp_path: Path, master_key: str
) -> None:
    """Wired as `serve` wires it (the container's benefits service): the fund's decision is
    recorded as the connector's fund officer, established as the process's OS user."""
    container = Container(store_settings(tmp_path, master_key))
    try:
        benefits = container.benefits
        application_id = _forwarded(benefits)
        recorder = DecisionRecorder("fund-decisions", benefits, container.service)
        today = datetime.now(SWISS_TIME).date()
        recorder.handle(_received(_grant(application_id, from_month=today.replace(day=1),
                                         decided_on=today)), None)
        events = list(benefits.events.get(application_id))
    finally:
        container.close()

    granted = events[-1]
    assert isinstance(granted, BenefitGranted)
    assert granted.actor.user_id == "fund-decisions"
    assert granted.recorded_by == process_identity()
    assert str(granted.recorded_by) == (
        f"os:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}")


def _forwarded(benefits: Any) -> UUID:
    """An application received, checked complete and forwarded by its office today."""
    today = datetime.now(SWISS_TIME).date()
    received = benefits.execute(ReceiveApplication(
        actor=GRENCHEN_OFFICE, correlation_id=uuid.uuid4(), kind="el_ahv",
        municipality_bfs=2546, applicant=person_input(5), received_on=today))
    for command in (
        CheckCompleteness(actor=GRENCHEN_OFFICE, correlation_id=uuid.uuid4(),
                          application_id=received.id,
                          documents_present=ALL_DOCUMENTS["el_ahv"]),
        ForwardApplication(actor=GRENCHEN_OFFICE, correlation_id=uuid.uuid4(),
                           application_id=received.id),
    ):
        benefits.execute(command)
    application_id: UUID = received.id
    return application_id


# --- schemas check --------------------------------------------------------------------------------


def test_schemas_check_refuses_a_benefits_schema_that_lost_a_field(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, schemas, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = schemas / "benefits" / "BenefitGranted.avsc"
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "decided_on"]
    path.write_text(json.dumps(schema))
    assert check_schemas(SCHEMA_DIR) == []

    problems = check_schemas(schemas)

    assert [(p.subject, p.field, p.kind) for p in problems
            if p.kind == "DOMAIN_MISMATCH"] == [
        ("ch.nervenbahn.benefits.BenefitGranted", "decided_on", "DOMAIN_MISMATCH")]

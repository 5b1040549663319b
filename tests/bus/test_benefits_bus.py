"""The benefits pathway over the real embedded broker, both ways, through `serve`.

Out: an application recorded at a branch office reaches the applications topic, where
confluent-kafka's `AvroDeserializer` decodes it through the served registry (applicant
sealed). In: the fund's application, played here by a plain confluent-kafka producer with
`AvroSerializer` (no auto-registration, latest version from the served registry), writes
decisions; the fund-decisions connector records them, once per decision id; a malformed
message, one for an unknown application and one a rule refuses are dead-lettered with the
reason, nothing recorded. And the benefits store and the connector's bookkeeping open on
PostgreSQL too.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, ensure_topics, installation_topics
from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from domain.benefits import BenefitGranted
from domain.commands import Actor
from nervenbahn.api.app import REGISTRY_PREFIX
from nervenbahn.config import load_settings
from nervenbahn.container import FUND_DECISIONS_CONNECTOR, Container
from tests.bus.fund_runs import dead_letters, read_topic
from tests.bus.pipeline import pipeline, topic_contents
from tests.bus.test_registry_served import decode_topic, serving_bus_readers
from tests.domain.case_desk import person_input

GRENCHEN = 2546
OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
SWISS = ZoneInfo("Europe/Zurich")
HEADERS = {"event_type", "event_id", "schema_id", "recorded_at", "effective_date",
           "correlation_id", "causation_id", "producer", "relay_epoch"}


def test_applications_go_out_and_the_funds_decisions_come_back_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        benefits = line.container.benefits
        forwarded = _forwarded_application(benefits, serial=1)
        waiting = _received_application(benefits, serial=2)  # not forwarded: no decision yet
        kafka = line.container.kafka
        ensure_topics(kafka, installation_topics(kafka))
        applications = line.container.topic("applications").name
        decisions = line.container.topic("decisions").name
        expected = {str(event_id(app, v)) for app, n in ((forwarded, 3), (waiting, 1))
                    for v in range(1, n + 1)}
        with serving_bus_readers(line, tmp_path) as (server, key):
            registry_url = f"{server.url}{REGISTRY_PREFIX}"
            # out: every application event, decodable by an outside reader
            decoded = decode_topic(",".join(kafka.bootstrap_servers), applications,
                                   registry_url, f"vendor-app:{key}", len(expected))
            ids, epochs = topic_contents(kafka, applications)
            headers = _headers_of(kafka, applications)
            # in: the fund's application writes its decisions
            granted = _decision(forwarded, "granted")
            fund = _FundProducer(kafka, decisions, registry_url, f"vendor-app:{key}")
            fund.send(forwarded, fund.avro(granted))
            fund.send(forwarded, fund.avro(granted))  # delivered twice: recorded once
            fund.send(forwarded, b"\x00\x00\x00\x00\x27not avro at all")  # after the twin
            fund.send(uuid.uuid4(), fund.avro(_decision(uuid.uuid4(), "granted")))
            fund.send(waiting, fund.avro(_decision(waiting, "refused", reason="other")))
            dead = dead_letters(kafka, dead_letter_topic(kafka, FUND_DECISIONS_CONNECTOR), 3)
        application = benefits.application(forwarded)
        grants = [e for e in benefits.events.get(forwarded) if isinstance(e, BenefitGranted)]
        waiting_stage = benefits.application(waiting).stage

    assert set(ids) == expected and all(count == 1 for count in ids.values())
    assert len(epochs) == 1
    assert {event_type for event_type, _, _ in decoded} == {
        "ApplicationReceived", "CompletenessChecked", "ApplicationForwarded"}
    assert all(name == f"ch.nervenbahn.benefits.{event_type}"
               for event_type, name, _ in decoded)
    received = next(record for event_type, _, record in decoded
                    if event_type == "ApplicationReceived" and str(record["application_id"])
                    == str(forwarded))
    assert set(received["applicant"]) == {"person_id", "sealed"}
    assert "Person1" not in received["applicant"]["sealed"]  # sealed, never in clear
    assert received["branch_office"] == "akso-grenchen" and received["kind"] == "el_ahv"
    assert all(set(found) == HEADERS for found in headers)

    assert application.stage == "granted"
    assert application.schedule[0].monthly_chf == Decimal("1234.55")
    assert isinstance(application.schedule[0].monthly_chf, Decimal)
    assert len(grants) == 1 and grants[0].correlation_id == granted["decision_id_uuid"]
    assert grants[0].actor == Actor(FUND_DECISIONS_CONNECTOR, "fund_officer", "akso")
    assert waiting_stage == "received"

    by_reason = sorted((h["dlq_reason"], h["dlq_error"]) for h in dead)
    assert [reason for reason, _ in by_reason] == ["rejected", "rejected", "undecodable"]
    errors = " | ".join(error for _, error in by_reason)
    assert "application_id" in errors and "no such application" in errors
    assert "rule decision-after-forwarding" in errors


# --- the fund's side: confluent-kafka only --------------------------------------------------------


class _FundProducer:
    """A plain confluent-kafka producer with Confluent's AvroSerializer against the served
    registry: the FundDecision schema fetched from it (latest version of the subject
    `<topic>-ch.nervenbahn.benefits.FundDecision`, TopicRecordNameStrategy), no
    auto-registration."""

    def __init__(self, kafka: KafkaSettings, topic: str, registry_url: str,
                 user_info: str) -> None:
        self.topic = topic
        registry = SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": user_info})
        latest = registry.get_latest_version(f"{topic}-ch.nervenbahn.benefits.FundDecision")
        self._serialize = AvroSerializer(registry, latest.schema.schema_str, conf={
            "auto.register.schemas": False, "use.latest.version": True,
            "subject.name.strategy": topic_record_subject_name_strategy,
        })
        self._producer = Producer({"bootstrap.servers": ",".join(kafka.bootstrap_servers)})

    def avro(self, decision: dict[str, Any]) -> bytes:
        record = {k: v for k, v in decision.items() if not k.endswith("_uuid")}
        value = self._serialize(record, SerializationContext(self.topic, MessageField.VALUE))
        assert isinstance(value, bytes)
        return value

    def send(self, application_id: UUID, value: bytes) -> None:
        self._producer.produce(self.topic, key=str(application_id).encode(), value=value)
        assert self._producer.flush(30) == 0


def _decision(application_id: UUID, kind: str, **fields: Any) -> dict[str, Any]:
    decision_id = uuid.uuid4()
    month = _today().replace(day=1)
    amounts = ([{"from_month": month, "monthly_chf": Decimal("1234.55")}]
               if kind == "granted" else [])
    return {
        "decision_id": str(decision_id), "decision_id_uuid": decision_id,
        "application_id": str(application_id), "kind": kind, "decided_on": _today(),
        "from_month": month if kind == "granted" else None, "amounts": amounts,
        "reason": None, "condition_ceased_on": None, **fields,
    }


# --- helpers -------------------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(SWISS).date()


def _run(benefits: BenefitService, name: str, **fields: Any) -> Any:
    command = bc.BENEFIT_COMMANDS[name](actor=OFFICE, correlation_id=uuid.uuid4(), **fields)
    return benefits.execute(command)


def _received_application(benefits: BenefitService, serial: int) -> UUID:
    result = _run(benefits, "receive_application", kind="el_ahv", municipality_bfs=GRENCHEN,
                  applicant=person_input(serial), received_on=_today())
    application_id: UUID = result.id
    return application_id


def _forwarded_application(benefits: BenefitService, serial: int) -> UUID:
    application_id = _received_application(benefits, serial)
    _run(benefits, "check_completeness", application_id=application_id,
         documents_present=["signed_application"])
    _run(benefits, "forward_application", application_id=application_id,
         override_reason="documents follow")
    return application_id


def _headers_of(kafka: KafkaSettings, topic: str) -> list[dict[str, str]]:
    """The header names and values of every message on `topic`."""
    found: list[dict[str, str]] = []
    read_topic(kafka, topic, lambda record: found.append(
        {k: v.decode() for k, v in record.headers or []}), until=None)
    return found


def test_the_benefits_store_and_the_connectors_bookkeeping_open_on_postgresql(
    postgres_dsn: str, master_key: str
) -> None:
    settings = load_settings({"NERVENBAHN_STORE": postgres_dsn,
                              "NERVENBAHN_MASTER_KEY": master_key})
    container = Container(settings)
    try:
        application_id = _forwarded_application(container.benefits, serial=3)
        store = container.connector_store(FUND_DECISIONS_CONNECTOR)
        store.close()
        stage = container.benefits.application(application_id).stage
        status = container.relay_status("applications")
    finally:
        container.close()
    assert stage == "forwarded"
    assert (status.position, status.head) == (0, 3)  # three events for the benefits relay

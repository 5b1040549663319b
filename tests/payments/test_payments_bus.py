"""Payment runs on the bus: the Avro codec round trip, the schema check covering the payment
schemas, and the payments relay on the real broker (a run's events in order under its key,
nothing published twice after a restart, the case-events relay untouched)."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from bus.errors import DecodeError, EncodeError
from bus.kafka_settings import KafkaSettings
from bus.payments_codec import PaymentEventCodec, payment_event_encoder
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.schema_check import check_schemas
from bus.topics import ensure_topics
from domain import commands
from domain.commands import swiss_today
from domain.payments import ApprovePaymentRun, PaymentOrdered, RecordPayoutAccount, RunPayments
from nervenbahn.container import build_payment_service
from schemas import SCHEMA_DIR
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until
from tests.domain.case_desk import POPO_ENV, build_desk

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
CONTROL = commands.Actor("pay.control", "administrator", "so-canton")
REGISTER = commands.Actor("population-register", "system", "so-canton")
IBAN = "CH9300762011623852957"


def _recorded_run_events() -> list[object]:
    """A run with a paid and a held order and a case held for a death proposal, approved by a
    second person after a large back-payment was acknowledged."""
    from domain.application.payments import PaymentService

    desk = build_desk(commands.Actor("anna.keller", "caseworker", "so-solothurn"))
    payments = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock,
                              approval_threshold=Decimal("100.00"))
    paid, _held = desk.supported(), desk.supported()
    dying = desk.assessed(application_date="2025-10-01")
    desk.run("grant_support", case_id=dying, support_from="2025-10-01")
    desk.run("propose_closure", case_id=dying, actor=REGISTER, external_reference="d-1/0",
             reason="death", effective_date="2025-11-02")
    for case_id in (paid, dying):
        payments.record_account(RecordPayoutAccount(
            actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id, iban=IBAN,
            holder="A. B"))
    summary = payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(),
                                       month="2025-11"))
    assert summary.run_id is not None
    payments.approve(ApprovePaymentRun(actor=CONTROL, correlation_id=uuid.uuid4(),
                                       run_id=summary.run_id, acknowledged=[dying]))
    return payments.run_events(summary.run_id)


def test_codec_round_trip_and_refusals(tmp_path: Path) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    codec = PaymentEventCodec(registry, "t.payments.payment-orders.v1")
    events = _recorded_run_events()
    assert [type(e).__name__ for e in events] == [
        "PaymentRunStarted", "PaymentOrdered", "PaymentOrdered", "PaymentOrdered",
        "PaymentOrdered", "PaymentHeld", "PaymentRunCompleted", "PaymentRunApproved"]
    assert events[-1].large_back_payments and events[-1].actor == CONTROL
    for event in events:
        encoded = codec.encode(event)
        assert encoded.value[0] == 0 and encoded.event_type == type(event).__name__
        assert codec.decode(encoded.value) == event
    held = [e for e in events if isinstance(e, PaymentOrdered) and e.held]
    assert len(held) == 1 and codec.decode(codec.encode(held[0]).value).creditor is None
    with pytest.raises(EncodeError, match="not a payment-run event"):
        codec.encode(object())
    with pytest.raises(DecodeError):
        codec.decode(codec.encode(events[0]).value[:-3])
    # Account and run-book events are not published; run events are, keyed by run id.
    encoder = payment_event_encoder(codec)
    assert [key for key, _, _ in encoder(events[1])] == [str(events[1].originator_id).encode()]
    registry.close()


def test_schema_check_reports_a_payment_schema_that_no_longer_matches(tmp_path: Path) -> None:
    assert check_schemas() == []
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    path = copy / "payments" / "PaymentOrdered.avsc"
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "held"]
    path.write_text(json.dumps(schema))
    problems = check_schemas(copy)
    assert [(p.field, p.kind) for p in problems] == [("held", "DOMAIN_MISMATCH")]


def test_the_payments_relay_publishes_each_run_in_order_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        payments = build_payment_service(line.settings, line.service)
        try:
            case_ids = [open_supported_case(line.service, n) for n in range(3)]
            for case_id in case_ids[:2]:
                payments.record_account(RecordPayoutAccount(
                    actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id, iban=IBAN,
                    holder="N. Beispiel"))
            month = swiss_today().replace(day=1)
            summary = payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(),
                                               month=month))
            ensure_topics(kafka_settings, [line.container.topic("payment-orders")])
            with line.container.relay("payment-orders") as relay:
                status = relay.run(threading.Event(), until_caught_up=True)
            with line.container.relay("payment-orders") as again:  # a restart publishes nothing new
                assert again.publish_next() == 0
            with line.container.relay("case-events") as case_relay:
                case_status = case_relay.status()
            received = _read(kafka_settings, line.container.topic("payment-orders").name, 5,
                             line.container.codec("payment-orders"))
        finally:
            payments.close()
    run_id = str(summary.run_id)
    assert (status.lag, status.published) == (0, 5)  # started, 3 orders, completed
    assert case_status.position == 0  # the case-events relay saw none of it
    assert [key for key, _ in received] == [run_id.encode()] * 5
    events = [event for _, event in received]
    assert [type(e).__name__ for e in events] == [
        "PaymentRunStarted", "PaymentOrdered", "PaymentOrdered", "PaymentOrdered",
        "PaymentRunCompleted"]
    assert [e.originator_version for e in events] == [1, 2, 3, 4, 5]
    assert sorted((e.case_id, e.held) for e in events[1:4]) == sorted(
        [(case_ids[0], False), (case_ids[1], False), (case_ids[2], True)])
    assert events[-1].control_sum == sum(e.amount for e in events[1:4] if not e.held)


def _read(
    kafka: KafkaSettings, topic: str, count: int, codec: PaymentEventCodec
) -> list[tuple[bytes, object]]:
    consumer = KafkaConsumer(topic, **kafka.consumer_kwargs(None, "payments-test"))
    found: list[tuple[bytes, object]] = []

    def poll() -> None:
        for records in consumer.poll(timeout_ms=300).values():
            found.extend((r.key, codec.decode(r.value)) for r in records)

    try:
        wait_until(lambda: len(found) >= count, step=poll, what=f"{count} payment messages")
    finally:
        consumer.close()
    return found

"""Every message of every topic of an installation, read by an outside application
(examples/read_every_topic.py: confluent-kafka only) through `serve`'s schema registry with a
bus_reader key, topics taken from `serve`'s AsyncAPI document (issue 13, Done-when point 1).

A small store fills every topic the installation uses with the relays and the checkpointer the
project runs: case events, reporting facts, a payment run, signed checkpoints, a benefit
application, the fund's decision on it (written as the fund's application would, recorded by
the fund-decisions connector before `serve` starts, so nothing moves while the reader reads),
and the reimbursement claim of the case that advanced in view of it.
Then every message decodes, its writer schema is the record its headers announce (the audit
topic and the fund's decisions have no headers: one of the channel's records), each topic holds
exactly what the installation published, and no synthetic name, AHV number or IBAN shows in
clear on any topic. A message whose `event_type` header names another record than its value is
counted, never decoded as that type. The kafka-python + fastavro decoder docs/bus.md prints for
integrators decodes every message too, and refuses that one; so does its confluent-kafka
consumer, built from the configuration the page prints and reading the case-events topic in a
group.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bus.benefits_codec import FundDecision
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.topics import ensure_topics, installation_topics
from domain.application.claims import AdvanceClaims
from domain.benefits import MonthlyAmount
from domain.commands import swiss_today
from domain.payments import RecordPayoutAccount, RunPayments
from nervenbahn.api.app import REGISTRY_PREFIX
from nervenbahn.audit.checkpoints import CheckpointStore, SigningKey, write_checkpoint
from nervenbahn.container import FUND_DECISIONS_CONNECTOR
from nervenbahn.datasets import (
    AUDIT_CHECKPOINTS,
    BENEFIT_APPLICATIONS,
    CASE_EVENTS,
    CASE_FACTS,
    FUND_DECISIONS,
    PAYMENT_ORDERS,
    REIMBURSEMENT_CLAIMS,
)
from tests.bus.advances import advance_on, advancing_pipeline
from tests.bus.pipeline import Pipeline, open_supported_case
from tests.bus.test_registry_served import serving_bus_readers
from tests.bus.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "read_every_topic.py"
FINANCE = {"user_id": "fin-so-01", "role": "administrator", "organisation": "so-finance"}
IBANS = ["CH5604835012345678009", "CH3608387000001080173"]
HOLDER = "Nora Beispiel"
RELAYED = (CASE_EVENTS, CASE_FACTS, PAYMENT_ORDERS, BENEFIT_APPLICATIONS, REIMBURSEMENT_CLAIMS)
CASE_STORE_RELAYED = (CASE_EVENTS, CASE_FACTS, REIMBURSEMENT_CLAIMS)


def test_an_outside_reader_decodes_every_message_of_every_topic_through_serve(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with advancing_pipeline(tmp_path, master_key, kafka_settings) as line:
        ensure_topics(kafka_settings, installation_topics(kafka_settings))
        cases, secrets = _fill_every_topic(line)
        published = _published(line)
        topics = {line.container.topic(name).name: name for name in published}
        line_topics = {name: topic for topic, name in topics.items()}
        raw = {topic: _raw_messages(kafka_settings, topic, published[name])
               for topic, name in topics.items()}
        case_topic = line.container.topic(CASE_EVENTS).name
        forged = _forge_event_type(kafka_settings, raw[case_topic][0], "SupportGranted")
        with serving_bus_readers(line, tmp_path) as (server, key):
            done = subprocess.run(
                [sys.executable, str(EXAMPLE), "--bootstrap",
                 ",".join(kafka_settings.bootstrap_servers),
                 "--asyncapi", f"{server.url}/asyncapi.json",
                 "--registry", f"{server.url}{REGISTRY_PREFIX}", "--user", "vendor-app",
                 f"--key={key}", "--group", "vendor-census", "--idle-seconds", "8",
                 "--session-timeout-ms", "6000"],
                capture_output=True, text=True, timeout=180)
            registry = f"{server.url}{REGISTRY_PREFIX}"
            decode = _docs_example("##### kafka-python", "consumer = KafkaConsumer", {
                "REGISTRY": registry, "AUTH": ("vendor-app", key)})["decode"]
            by_docs = {topic: [decode(m.value, _headers(m).get("event_type")) for m in messages]
                       for topic, messages in raw.items()}
            with pytest.raises(ValueError, match="is not the announced SupportGranted"):
                decode(forged, "SupportGranted")
            confluent = _docs_example("##### confluent-kafka", "consumer.subscribe", {
                "BOOTSTRAP": ",".join(kafka_settings.bootstrap_servers), "REGISTRY": registry,
                "USER_INFO": f"vendor-app:{key}", "GROUP": f"docs-{uuid.uuid4().hex[:8]}",
                "TOPIC": case_topic})
            by_confluent = _consume_as_documented(confluent, published[CASE_EVENTS] + 1)

    assert done.returncode == 0, done.stderr[-2000:]
    *lines, summary = [json.loads(text) for text in done.stdout.splitlines()]
    assert set(summary["topics"]) == set(topics)
    for topic, name in topics.items():
        mismatches = int(topic == case_topic)  # the forged message
        assert summary["topics"][topic] == {
            "messages": published[name] + mismatches, "decoded": published[name],
            "mismatches": mismatches, "errors": 0}, topic
    assert all(published.values()) and published[AUDIT_CHECKPOINTS] == 2
    for seen in lines:
        if seen["event_type"] == "SupportGranted" and seen["record"] == "CaseOpened":
            assert "value" not in seen  # the forged message: not decoded as what it is not
        elif seen["event_type"] is not None:  # the audit topic has no headers
            assert seen["record"] == seen["event_type"]
            assert seen["value"], seen
        else:
            assert seen["value"], seen
    records = Counter((topics[seen["topic"]], seen["record"]) for seen in lines)
    assert {(CASE_EVENTS, "CaseOpened"), (CASE_FACTS, "CaseFact"),
            (PAYMENT_ORDERS, "PaymentOrdered"), (AUDIT_CHECKPOINTS, "Checkpoint"),
            (REIMBURSEMENT_CLAIMS, "ReimbursementClaim")} <= set(records)
    # Sealed personal data: not in the bytes on any topic, nor in anything a reader decodes.
    assert {topic: len(records) for topic, records in by_docs.items()} == {
        topic: published[name] for topic, name in topics.items()}
    assert all(record for records in by_docs.values() for record in records)
    # event_id on the payments topic, as docs/bus.md says: always <run_id>/<version>, also
    # on a PaymentOrdered, which carries a case_id too.
    payments_topic = line_topics[PAYMENT_ORDERS]
    ordered = 0
    for message, value in zip(raw[payments_topic], by_docs[payments_topic], strict=True):
        assert _headers(message)["event_id"] == str(event_id(value["run_id"], value["version"]))
        if "case_id" in value:
            ordered += 1
            assert _headers(message)["event_id"] != str(event_id(value["case_id"],
                                                                 value["version"]))
    assert ordered
    # The confluent-kafka consumer: every case event decoded (as the fastavro decoder has it),
    # the forged one refused, not decoded as what it is not.
    assert by_confluent["refused"] == [
        "writer schema CaseOpened is not the announced SupportGranted"]
    assert sorted(by_confluent["decoded"], key=repr) == sorted(by_docs[case_topic], key=repr)
    everything = b"".join(_bytes_of(m) for messages in raw.values() for m in messages)
    decoded = done.stdout.encode("latin-1", errors="replace")
    assert [s for s in secrets if s.encode() in everything or s.encode() in decoded] == []
    # The scan reaches what is in clear: every case id (keys, payments) in the bytes and decoded.
    assert all(str(case).encode() in everything and str(case).encode() in decoded
               for case in cases)


def _fill_every_topic(line: Pipeline) -> tuple[list[uuid.UUID], list[str]]:
    """Four cases, a payment run for the first three (the third is held: no account), the
    first advanced in view of an EL application the fund grants and its claim recorded, every
    relay run to the store's head, and two signed checkpoints published; the case ids, and the
    personal data written."""
    cases = [open_supported_case(line.service, n) for n in range(3)]
    payments = line.container.payments
    for case_id, iban in zip(cases, IBANS, strict=False):
        account: dict[str, Any] = {"actor": FINANCE, "correlation_id": uuid.uuid4(),
                                   "case_id": case_id, "iban": iban, "holder": HOLDER}
        payments.record_account(RecordPayoutAccount(**account))
    month: dict[str, Any] = {"actor": FINANCE, "correlation_id": uuid.uuid4(),
                             "month": swiss_today().strftime("%Y-%m")}
    assert payments.run(RunPayments(**month)).recorded
    _decided_application(line, cases[0])
    for name in RELAYED:
        with line.container.relay(name) as relay:
            relay.run(threading.Event(), until_caught_up=True)
    key = SigningKey.from_seed(line.settings.signing_key.get_secret_value())
    db = line.container.audit_database()
    try:
        write_checkpoint(db, key)
        fourth = open_supported_case(line.service, 3)  # a chain moved: a second checkpoint
        write_checkpoint(db, key, only_if_moved=True)
        assert line.container.publish_checkpoints(db) == [1, 2]
    finally:
        db.close()
    for name in CASE_STORE_RELAYED:  # the fourth case too
        with line.container.relay(name) as relay:
            relay.run(threading.Event(), until_caught_up=True)
    return [*cases, fourth], [HOLDER, *IBANS, *(f"Beispiel{n}" for n in range(4)), "75610000000",
                              "Person7"]


def _decided_application(line: Pipeline, case_id: uuid.UUID) -> None:
    """An EL application of the case's applicant received and forwarded at Grenchen, the
    case's advance for it, the fund's grant written to the decisions topic and recorded by the
    fund-decisions connector, and the claim recorded by the claims process."""
    benefits, today = line.container.benefits, swiss_today()
    application_id = advance_on(line.container, case_id, serial=7)
    month = today.replace(day=1)
    decision = FundDecision(uuid.uuid4(), application_id, "granted", today, month,
                            [MonthlyAmount(month, Decimal("880.40"))])
    topic = line.container.topic(FUND_DECISIONS).name
    producer = KafkaProducer(**line.container.kafka.producer_kwargs("fund"))
    try:
        value = line.container.codec(FUND_DECISIONS).encode(decision).value  # type: ignore[attr-defined]
        producer.send(topic, key=str(application_id).encode(), value=value).get(timeout=30)
    finally:
        producer.close()
    store = line.container.connector_store(FUND_DECISIONS_CONNECTOR)
    try:
        with line.container.fund_decisions_consumer(store) as consumer:
            wait_until(lambda: benefits.application(application_id).stage == "granted",
                       step=lambda: consumer.poll_once(200), what="the grant recorded")
    finally:
        store.close()
    claims = AdvanceClaims(line.container.service, benefits, line.container.payments)
    assert [o.events[1] for o in claims.run()] == ["ReimbursementRecorded"]


def _published(line: Pipeline) -> dict[str, int]:
    """Messages per dataset, as the installation recorded them: each relay's published count
    (checked against the store's head), the checkpoints marked published."""
    counts: dict[str, int] = {}
    for name in RELAYED:
        status = line.container.relay_status(name)
        assert status.position == status.head, name
        counts[name] = status.published
    assert counts[CASE_EVENTS] == len(line.recorded())
    counts[FUND_DECISIONS] = 1  # written by the fund's application
    db = line.container.audit_database()
    try:
        counts[AUDIT_CHECKPOINTS] = sum(cp.published for cp in CheckpointStore(db).all())
    finally:
        db.close()
    return counts


def _raw_messages(kafka: KafkaSettings, topic: str, count: int) -> list[Any]:
    """The first `count` messages of `topic` as kafka-python gives them (our own reader,
    outside any group)."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "byte-scan"))
    found: list[Any] = []

    def read() -> None:
        for records in reader.poll(300).values():
            found.extend(records)

    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        wait_until(lambda: len(found) >= count, step=read, what=f"{count} messages on {topic}")
    finally:
        reader.close()
    return found


def _docs_example(heading: str, stop: str, values: dict[str, Any]) -> dict[str, Any]:
    """The Python block under `heading` in docs/bus.md, run as printed up to the line starting
    with `stop`, with its constants `values` (each a line `NAME = …` there) set to ours: the
    names it defines."""
    section = (ROOT / "docs" / "bus.md").read_text().split(heading, 1)[1]
    match = re.search(rf"```python\n(.*?)\n{re.escape(stop)}", section, re.S)
    assert match, f"docs/bus.md lost its example under {heading}"
    code = match.group(1)
    for name, value in values.items():
        code, found = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", code, flags=re.M)
        assert found == 1, f"{heading}: no line {name} = … to set"
    example: dict[str, Any] = {}
    exec(code, example)  # our own documentation's code
    return example


def _consume_as_documented(example: dict[str, Any], count: int) -> dict[str, list[Any]]:
    """Poll the documentation's confluent-kafka `consumer` (subscribed to its TOPIC) for
    `count` messages, each through its `decode` as its loop does: the values decoded and the
    refusals' messages."""
    consumer, decode = example["consumer"], example["decode"]
    seen: dict[str, list[Any]] = {"decoded": [], "refused": []}

    def poll() -> None:
        message = consumer.poll(1.0)
        if message is None:
            return
        assert not message.error(), message.error()
        headers = {name: value.decode() for name, value in message.headers() or []}
        try:
            seen["decoded"].append(
                decode(message.topic(), message.value(), headers.get("event_type")))
        except ValueError as refused:
            seen["refused"].append(str(refused))

    consumer.subscribe([example["TOPIC"]])
    try:
        wait_until(lambda: len(seen["decoded"]) + len(seen["refused"]) >= count, step=poll,
                   within=60, what=f"{count} messages through the documented consumer")
    finally:
        consumer.close()
    return seen


def _forge_event_type(kafka: KafkaSettings, message: Any, event_type: str) -> bytes:
    """Publish `message` again with another `event_type` header (key, value and the other
    headers unchanged): what a registry switched under published messages looks like to a
    reader. Its value."""
    headers = [(name, event_type.encode() if name == "event_type" else value)
               for name, value in message.headers]
    producer = KafkaProducer(**kafka.producer_kwargs("forger"))
    try:
        producer.send(message.topic, key=message.key, value=message.value,
                      headers=headers).get(timeout=30)
    finally:
        producer.close()
    return bytes(message.value)


def _headers(message: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in message.headers or []}


def _bytes_of(record: Any) -> bytes:
    headers = b"".join(name.encode() + value for name, value in record.headers or [])
    return (record.key or b"") + (record.value or b"") + headers

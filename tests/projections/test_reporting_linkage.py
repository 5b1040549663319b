"""Reporting pseudonyms cannot be undone without the reporting key (issue 10, defect 6).

On the real broker, one store's events go to the case-events topic, its facts to the
reporting topic and a payment run to the payments topic. An attacker without the key then
tries what undid the pseudonyms before: joining every id, header and timestamp of every fact
with every id, header and timestamp of every case event, and computing the public event id
`uuid5(namespace, "<case id>/<version>")` for every case id seen on the case-events and
payments topics. No fact links. The same linkage function does find every link on facts made
the old way (public event id, precise recorded time), and a key holder links every fact.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from domain.commands import swiss_today
from domain.payments import RecordPayoutAccount, RunPayments
from domain.reference import load_reference_data
from nervenbahn.container import build_payment_service
from nervenbahn.synthetic import synthetic_history
from projections.reporting_facts import NO_FACT_EVENTS, Pseudonymiser
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline
from tests.projections import reporting_fixture as fixture

FINANCE = {"user_id": "fin-so-01", "role": "administrator", "organisation": "so-finance"}
IBANS = ["CH5604835012345678009", "CH3608387000001080173", "CH9300762011623852957"]
CONTENT_HEADERS = frozenset({"event_type", "fact", "effective_date"})
"""Headers that say what happened and on which day (the fact must say it): content, not ids.
Every other header, and the key, the record timestamp and every id and time in the value,
is tried as a join key."""


@dataclasses.dataclass(frozen=True)
class Seen:
    """What an attacker reads of one message: the identifiers a join could use."""

    key: str
    identifiers: frozenset[str]
    case_id: UUID | None = None
    """The case the message names openly (case-events and payments topics only)."""


def normalised(value: Any) -> str | None:
    """A join key: UUIDs by their 128 bits, times by their instant in milliseconds (so that a
    header's ISO text meets a record timestamp or an Avro time), other text as it is."""
    if isinstance(value, UUID):
        return f"uuid:{value.hex}"
    if isinstance(value, datetime):
        return f"ms:{round(value.timestamp() * 1000)}"
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        return None
    try:
        return normalised(UUID(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"text:{value}"
    return normalised(moment) if moment.tzinfo is not None else f"text:{value}"


def seen(message: Any, decoded: Any, case_id: UUID | None = None) -> Seen:
    """Key, record timestamp, non-content headers and every UUID or time in the value."""
    values: list[Any] = [message.key]
    values += [value for name, value in message.headers if name not in CONTENT_HEADERS]
    values += [v for v in vars(decoded).values() if isinstance(v, UUID | datetime)]
    ids = {normalised(v) for v in values}
    ids.add(f"ms:{message.timestamp}")
    return Seen(message.key.decode(), frozenset(i for i in ids if i is not None), case_id)


def index(known: Iterable[Seen], case_ids: Iterable[UUID], versions: int) -> dict[str, set[UUID]]:
    """Every identifier of the known messages, and every public event id of every known case
    id up to `versions`, with the cases it belongs to."""
    found: defaultdict[str, set[UUID]] = defaultdict(set)
    for message in known:
        assert message.case_id is not None
        for identifier in message.identifiers:
            found[identifier].add(message.case_id)
    for case_id in case_ids:
        for version in range(1, versions + 1):
            found[f"uuid:{event_id(case_id, version).hex}"].add(case_id)
    return found


def links(facts: Iterable[Seen], known: dict[str, set[UUID]]) -> dict[str, set[UUID]]:
    """Pseudonym → the case ids it is linked to: a fact links when one of its identifiers
    belongs to exactly one known case (a value many cases share narrows nothing down)."""
    linked: defaultdict[str, set[UUID]] = defaultdict(set)
    for fact in facts:
        for identifier in fact.identifiers:
            cases = known.get(identifier, set())
            if len(cases) == 1:
                linked[fact.key] |= cases
    return dict(linked)


@dataclasses.dataclass
class Topics:
    """What the three topics hold, as an attacker reads them, and what the test knows."""

    facts: list[Seen]
    fact_ids: list[tuple[str, UUID, int]]
    """(pseudonym, fact id, sequence) of every fact."""
    case_events: list[Seen]
    case_event_objects: list[Any]
    payment_orders: list[Seen]
    live_cases: list[UUID]
    key: bytes

    @property
    def payment_case_ids(self) -> set[UUID]:
        """Every case id on the payments topic."""
        return {order.case_id for order in self.payment_orders if order.case_id is not None}


def relayed(line: Pipeline, kafka: KafkaSettings) -> Topics:
    """Seed the store, relay it to the three topics and read them back, outside any group."""
    case_ids = [open_supported_case(line.service, n) for n in range(len(IBANS) + 1)]
    line.service.import_records(fixture.lines())
    records = synthetic_history(load_reference_data(), 40, 7)
    line.service.import_records(json.dumps(r) for r in records)
    payments = build_payment_service(line.settings, line.service)
    for case_id, iban in zip(case_ids, IBANS, strict=False):  # the last case has none: held
        account: dict[str, Any] = {"actor": FINANCE, "correlation_id": uuid.uuid4(),
                                   "case_id": case_id, "iban": iban, "holder": "Nora Beispiel"}
        payments.record_account(RecordPayoutAccount(**account))
    month: dict[str, Any] = {"actor": FINANCE, "correlation_id": uuid.uuid4(),
                             "month": swiss_today().strftime("%Y-%m")}
    run = payments.run(RunPayments(**month))
    assert run.recorded
    relays = [line.container.relay("case-events"), line.container.relay("case-facts"),
              line.container.relay("payment-orders")]
    statuses = []
    for relay in relays:
        with relay:
            statuses.append(relay.run(threading.Event(), until_caught_up=True))
    case_count, fact_count, payment_count = (status.published for status in statuses)
    case_codec, fact_codec = line.container.codec("case-events"), line.container.codec("case-facts")
    cases = fixture.read_all(kafka, line.container.topic("case-events").name, case_count)
    facts = fixture.read_all(kafka, line.container.topic("case-facts").name, fact_count)
    paid = fixture.read_all(kafka, line.container.topic("payment-orders").name, payment_count)
    events = [case_codec.decode(m.value) for m in cases]
    decoded_facts = [fact_codec.decode(m.value) for m in facts]
    # The record timestamp is the fact's recorded day, not the moment the relay sent it.
    assert [m.timestamp for m in facts] == [
        round(f.recorded_at.timestamp() * 1000) for f in decoded_facts]
    payment_events = [line.container.codec("payment-orders").decode(m.value) for m in paid]
    assert line.settings.reporting_key is not None
    return Topics(
        facts=[seen(m, f) for m, f in zip(facts, decoded_facts, strict=True)],
        fact_ids=[(f.case_pseudonym, f.fact_id, f.sequence) for f in decoded_facts],
        case_events=[seen(m, e, e.originator_id) for m, e in zip(cases, events, strict=True)],
        case_event_objects=events,
        payment_orders=[seen(m, e, e.case_id) for m, e in zip(paid, payment_events, strict=True)
                        if hasattr(e, "case_id")],
        live_cases=case_ids,
        key=base64.b64decode(line.settings.reporting_key.get_secret_value()),
    )


def weak_facts(topics: Topics) -> Iterator[Seen]:
    """Facts made the old way: the source event's public id and its precise recorded time."""
    pseudonyms = Pseudonymiser(topics.key)
    for event in topics.case_event_objects:
        if type(event).__name__ in NO_FACT_EVENTS:
            continue
        public = event_id(event.originator_id, event.originator_version)
        identifiers = {normalised(public), normalised(event.timestamp)}
        yield Seen(pseudonyms.case(event.originator_id),
                   frozenset(i for i in identifiers if i is not None))


def test_without_the_key_no_fact_links_to_a_case_id(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        topics = relayed(line, kafka_settings)
    versions = max(sequence for _, _, sequence in topics.fact_ids)
    case_ids = {event.case_id for event in topics.case_events if event.case_id is not None}
    by_case_topic = index(topics.case_events, case_ids, versions)
    by_payments_topic = index(topics.payment_orders, topics.payment_case_ids, versions)

    assert len(topics.facts) == len(topics.case_events) - sum(
        type(e).__name__ in NO_FACT_EVENTS for e in topics.case_event_objects)
    assert set(topics.live_cases) <= topics.payment_case_ids  # paid or held, all on the topic
    assert links(topics.facts, by_case_topic) == {}
    assert links(topics.facts, by_payments_topic) == {}
    # The same search finds the links in facts made the old way: every case, each to itself
    # (a precise time may also meet another case's budget time on the payments topic: the
    # synthetic history records to the minute).
    weak = list(weak_facts(topics))
    pseudonyms = Pseudonymiser(topics.key)
    for known, cases in ((by_case_topic, case_ids), (by_payments_topic, topics.payment_case_ids)):
        found = links(weak, known)
        assert set(found) >= {pseudonyms.case(case_id) for case_id in cases}
        assert all(case_id in found[pseudonyms.case(case_id)] for case_id in cases)
    # A key holder links every fact, by pseudonym and by fact id.
    by_pseudonym = {pseudonyms.case(case_id): case_id for case_id in case_ids}
    assert {pseudonym for pseudonym, _, _ in topics.fact_ids} <= set(by_pseudonym)
    assert all(pseudonyms.fact_id(by_pseudonym[pseudonym], sequence) == fact_id
               for pseudonym, fact_id, sequence in topics.fact_ids)

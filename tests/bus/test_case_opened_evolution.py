"""CaseOpened v1 → v2 on the bus: outside consumers keep working across the change.

A consumer still built on the v1 reader schema decodes v2 messages (the new field is skipped),
and a v2 reader decodes v1 messages (household_structure null, from the schema's default):
with fastavro, with Apache `avro` (the reference implementation) and with confluent-kafka's
`AvroDeserializer` given a reader schema, as integrators write them. And the core's own codec
reads a v1 message already on the topic as a v2 event. The released schemas
(`schemas/versions/CaseOpened/v1.avsc`, `v2.avsc`) are what those consumers hold.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.codec import EventCodec
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.wire import HEADER, write_record
from domain.events import CaseOpened
from schemas import version_path
from tests.domain.case_desk import Desk, person_input

TOPIC = "casework.events"
V1 = json.loads(version_path("CaseOpened", 1).read_text())
V2 = json.loads(version_path("CaseOpened", 2).read_text())
Decode = Callable[[dict[str, Any], dict[str, Any], bytes], dict[str, Any]]
"""(writer schema, reader schema, Avro body) → the record as the reader sees it."""


@pytest.fixture
def opened(recording_desk: Desk) -> CaseOpened:
    """A v2 opening as the core stores it: a single parent with one child."""
    case_id = recording_desk.open(household_size=2, other_members=[person_input(2)],
                                  household_structure="single_parent")
    event = recording_desk.events(case_id)[0]
    assert isinstance(event, CaseOpened)
    return event


def fastavro_decode(writer: dict[str, Any], reader: dict[str, Any], body: bytes) -> dict[str, Any]:
    """fastavro with an explicit reader schema (schema resolution)."""
    record: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
        io.BytesIO(body), fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    return record


def apache_decode(writer: dict[str, Any], reader: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Apache avro's DatumReader with writer and reader schema, as a Java consumer resolves."""
    datum = avro.io.DatumReader(avro.schema.parse(json.dumps(writer)),
                                avro.schema.parse(json.dumps(reader)))
    record = datum.read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert isinstance(record, dict)
    return record


def confluent_decode(writer: dict[str, Any], reader: dict[str, Any], body: bytes) -> dict[str, Any]:
    """confluent-kafka's AvroDeserializer with `reader` as its reader schema; the writer
    schema comes from a (mock) registry by the id in the message, as from a served one."""
    registry = MockSchemaRegistryClient({"url": "mock://evolution"})
    schema_id = registry.register_schema(f"{TOPIC}-ch.nervenbahn.casework.CaseOpened",
                                         Schema(json.dumps(writer), "AVRO"))
    deserializer = AvroDeserializer(registry, json.dumps(reader))
    message = HEADER.pack(0, schema_id) + body
    record: dict[str, Any] = deserializer(message, SerializationContext(TOPIC, MessageField.VALUE))
    return record


DECODERS = pytest.mark.parametrize(
    "decode", [fastavro_decode, apache_decode, confluent_decode],
    ids=["fastavro", "apache-avro", "confluent-AvroDeserializer"])


def v2_message(codec: EventCodec, event: CaseOpened) -> bytes:
    """The Avro body (after the 5-byte header) of the event as the relay publishes it."""
    return codec.encode(event).value[HEADER.size:]


def v1_body(v2_record: dict[str, Any]) -> bytes:
    """The same opening as the previous release wrote it: the v1 schema, no structure."""
    record = {k: v for k, v in v2_record.items() if k != "household_structure"}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(V1), record)
    return buffer.getvalue()


def test_the_released_v2_adds_only_the_nullable_household_structure() -> None:
    added = [f for f in V2["fields"] if f["name"] not in {g["name"] for g in V1["fields"]}]

    assert [(f["name"], f["type"][0], f["default"]) for f in added] == [
        ("household_structure", "null", None)]
    assert [f["name"] for f in V2["fields"][:-1]] == [f["name"] for f in V1["fields"]]


@DECODERS
def test_a_v1_consumer_decodes_v2_messages(
    decode: Decode, schema_registry: SQLiteSchemaRegistry, opened: CaseOpened
) -> None:
    body = v2_message(EventCodec(schema_registry, TOPIC), opened)

    as_v1 = decode(V2, V1, body)

    assert "household_structure" not in as_v1
    assert set(as_v1) == {f["name"] for f in V1["fields"]}
    assert str(as_v1["case_id"]) == str(opened.originator_id)
    assert as_v1["household_size"] == 2
    assert len(as_v1["other_members"]) == 1
    assert decode(V2, V2, body)["household_structure"] == "single_parent"


@DECODERS
def test_a_v2_consumer_decodes_v1_messages_as_not_recorded(
    decode: Decode, schema_registry: SQLiteSchemaRegistry, opened: CaseOpened
) -> None:
    body = v2_message(EventCodec(schema_registry, TOPIC), opened)
    old = v1_body(fastavro_decode(V2, V2, body))

    as_v2 = decode(V1, V2, old)

    assert as_v2["household_structure"] is None
    assert str(as_v2["case_id"]) == str(opened.originator_id)
    assert as_v2["household_size"] == 2


def test_the_core_codec_reads_a_v1_message_on_the_topic_as_a_v2_event(
    schema_registry: SQLiteSchemaRegistry, opened: CaseOpened
) -> None:
    codec = EventCodec(schema_registry, TOPIC)
    v1_id = schema_registry.register(codec.subject("CaseOpened"), V1)
    old = v1_body(fastavro_decode(V2, V2, v2_message(codec, opened)))
    message = write_record(v1_id, fastavro.parse_schema(V1),
                           fastavro_decode(V1, V1, old), "CaseOpened v1")

    event = EventCodec(schema_registry, TOPIC).decode(message)

    assert isinstance(event, CaseOpened)
    assert event.household_structure is None
    assert (event.originator_id, event.household_size) == (opened.originator_id, 2)
    assert v1_id != codec.register_schemas()["CaseOpened"]

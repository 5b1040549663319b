"""An outside application decodes the case events with confluent-kafka's own registry client.

Store → `serve` (its relay, the embedded broker, the registry under /registry; or the registry
app alone under uvicorn) and a librdkafka consumer with Confluent's `AvroDeserializer`,
authenticated as a `bus_reader`. The decoding part (`decode_topic`) imports nothing of ours:
it is what a vendor's application does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import create_app
from nervenbahn.api.app import REGISTRY_PREFIX
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.registry import create_registry_app
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.serve import Server
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` under uvicorn on a free port of localhost, until the block ends; its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the registry to serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def decode_topic(
    bootstrap: str, topic: str, registry_url: str, user_info: str, expected: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message of `topic` as an outside application sees it: (event_type header,
    writer schema's full name, decoded value), with confluent-kafka only."""
    registry = SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": user_info})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "outside-reader",
        "enable.auto.commit": False,
    })
    decoded: list[tuple[str, str, dict[str, Any]]] = []

    def read() -> None:
        message = consumer.poll(0.2)
        if message is None or message.error():
            return
        value = message.value()
        writer = registry.get_schema(int.from_bytes(value[1:5], "big"))
        name = _full_name(writer.schema_str)
        headers = dict(message.headers() or [])
        record = deserialize(value, SerializationContext(topic, MessageField.VALUE))
        decoded.append((headers["event_type"].decode(), name, record))

    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        wait_until(lambda: len(decoded) >= expected, step=read, what=f"{expected} messages")
    finally:
        consumer.close()
    return decoded


def _full_name(schema_text: str) -> str:
    schema = json.loads(schema_text)
    namespace = schema.get("namespace")
    return f"{namespace}.{schema['name']}" if namespace else str(schema["name"])


@contextmanager
def serving_bus_readers(line: Pipeline, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """`serve` on the pipeline's store and broker (every topic made first), and the key of a
    `bus_reader` named vendor-app; stopped when the block ends."""
    ensure_topics(line.container.kafka, catalogue(line.container.kafka, reporting=True))
    api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
    key = ApiKeyRegistry(api.api_keys).add("vendor-app", Scope("bus_reader"),
                                           now=datetime.now(UTC))
    context = line.container.api_context(api)
    server = Server(line.container, create_app(context), port=free_port())
    try:
        server.start()  # its relay publishes the store's events
        assert server.wait_until_serving()
        yield server, key
    finally:
        server.stop()
        context.close()


def test_confluent_avro_deserializer_decodes_every_case_event_through_serve(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        for n in range(2):
            open_supported_case(line.service, n)
        topic, expected = line.container.topic("case-events").name, len(line.recorded())
        with serving_bus_readers(line, tmp_path) as (server, key):
            decoded = decode_topic(
                ",".join(kafka_settings.bootstrap_servers), topic,
                f"{server.url}{REGISTRY_PREFIX}", f"vendor-app:{key}", expected,
            )
    assert len(decoded) == expected == 6
    for event_type, writer_name, record in decoded:
        assert writer_name.rsplit(".", 1)[-1] == event_type
        assert isinstance(record, dict) and record
    assert {event_type for event_type, _, _ in decoded} >= {"CaseOpened"}


def test_the_registry_client_is_refused_without_a_bus_reader_key(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service)
        _relay_all(line)
        keys = ApiKeyRegistry(tmp_path / "api-keys.json")
        with served(create_registry_app(line.container.registry, keys)) as url:
            client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "vendor-app:guess"})
            with pytest.raises(SchemaRegistryError) as refused:
                client.get_subjects()
    assert (refused.value.http_status_code, refused.value.error_code) == (401, 40101)


def _relay_all(line: Pipeline) -> None:
    with line.container.relay("case-events", batch_size=50) as relay:
        relay.run(threading.Event(), until_caught_up=True)

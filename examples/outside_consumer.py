"""An outside application reading nervenbahn's case events: no nervenbahn code, only
confluent-kafka (librdkafka >= 2.2) and the schema registry that `serve` serves.

It subscribes in a consumer group of its own, decodes every message with Confluent's
AvroDeserializer (the writer schema fetched from the registry by the id in the message), checks
that the writer schema is the type the `event_type` header names, and deduplicates by the
`event_id` header: the bus delivers at least once (a relay that crashed re-sends the same
event with the same id), so an application keeps the ids it has handled. It prints one JSON
line per new event and a summary line at the end:

    python examples/outside_consumer.py --bootstrap 127.0.0.1:9092 \\
        --topic nervenbahn.casework.case-events.v1 \\
        --registry http://127.0.0.1:8000/registry --user vendor-app --key="$BUS_READER_KEY" \\
        --group vendor-app --idle-seconds 10

The key is a `bus_reader` API key (`nervenbahn apikeys add --consumer vendor-app --scope
bus_reader`). `--session-timeout-ms 6000` suits the embedded broker, which answers a group join
after about half the session timeout (librdkafka's default 45 s would take ~23 s); use the
default on a production cluster. The embedded broker also needs the classic group protocol
(librdkafka's default; KIP-848 `group.protocol=consumer` never gets partitions there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--registry", required=True, help="the registry's URL")
    parser.add_argument("--user", required=True, help="the API key's consumer name")
    parser.add_argument("--key", required=True, help="a bus_reader API key")
    parser.add_argument("--group", required=True, help="this application's consumer group")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="stop after this long without a new message")
    parser.add_argument("--session-timeout-ms", type=int, default=45000)
    args = parser.parse_args(argv)

    registry = SchemaRegistryClient({"url": args.registry,
                                     "basic.auth.user.info": f"{args.user}:{args.key}"})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": max(args.session_timeout_ms // 3, 100),
    })
    seen: set[str] = set()
    duplicates = mismatches = 0
    consumer.subscribe([args.topic])
    last_new = time.monotonic()
    try:
        while time.monotonic() - last_new < args.idle_seconds:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise SystemExit(f"error: {message.error()}")
            headers = {name: value.decode() for name, value in message.headers() or []}
            event_id, event_type = headers["event_id"], headers["event_type"]
            if event_id in seen:
                duplicates += 1
                continue
            value = message.value()
            writer = registry.get_schema(int.from_bytes(value[1:5], "big"))
            if _name(writer.schema_str) != event_type:
                mismatches += 1  # never act on a value of another type than announced
                continue
            record: dict[str, Any] = deserialize(
                value, SerializationContext(args.topic, MessageField.VALUE))
            seen.add(event_id)
            last_new = time.monotonic()
            print(json.dumps({"event_id": event_id, "event_type": event_type,
                              "case_id": str(record["case_id"]),
                              "version": record.get("version")}), flush=True)
    finally:
        consumer.close()
    print(json.dumps({"events": len(seen), "duplicates": duplicates,
                      "type_mismatches": mismatches}), flush=True)
    return 0


def _name(schema_text: str) -> str:
    """The record's simple name (`event_type` names the type without its namespace)."""
    return str(json.loads(schema_text)["name"]).rsplit(".", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())

"""An outside application reading every topic of a nervenbahn installation: no nervenbahn
code, only confluent-kafka (librdkafka >= 2.2), the AsyncAPI document and the schema registry
that `serve` serves.

It takes the topics from the AsyncAPI document (`GET /asyncapi.json`: every channel with a
fixed address; the dead-letter channel, whose address has a `{group}` parameter, is left out),
subscribes to all of them in a consumer group of its own, and decodes every message with
Confluent's AvroDeserializer (the writer schema fetched from the registry by the id in the
message). Each channel's messages say which headers they carry: where they carry `event_type`,
the writer schema must be the record it names; where they carry none (the audit checkpoints),
the writer schema must be one of the channel's messages. A message that fails either check is
counted, never decoded as what it is not. It prints one JSON line per message (the decoded
record with bytes as Latin-1 text, so that anything sealed stays unreadable and anything in
clear would show) and a summary line per topic at the end:

    python examples/read_every_topic.py --bootstrap 127.0.0.1:9092 \\
        --asyncapi http://127.0.0.1:8000/asyncapi.json \\
        --registry http://127.0.0.1:8000/registry --user vendor-app --key="$BUS_READER_KEY" \\
        --group vendor-census --idle-seconds 10

The key is a `bus_reader` API key (`nervenbahn apikeys add --consumer vendor-app --scope
bus_reader`). `--session-timeout-ms 6000` suits the embedded broker (see
examples/outside_consumer.py); use the default on a production cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

REQUIRED = {
    "--bootstrap": "host:port[,host:port] of the brokers",
    "--asyncapi": "URL of the AsyncAPI document (serve: /asyncapi.json)",
    "--registry": "the schema registry's URL (serve: /registry)",
    "--user": "the API key's consumer name",
    "--key": "a bus_reader API key",
    "--group": "this application's consumer group",
}
"""The options without a default, with their meaning."""


@dataclass
class Channel:
    """One topic as the AsyncAPI document describes it."""

    topic: str
    records: set[str]
    """The record names its messages may have."""
    announces_type: bool
    """Its messages carry an `event_type` header naming their record."""
    counts: dict[str, int] = field(
        default_factory=lambda: {"messages": 0, "decoded": 0, "mismatches": 0, "errors": 0})


def main(argv: list[str] | None = None) -> int:
    """Read every topic to its end (no new message for `--idle-seconds`), print what was read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option, meaning in REQUIRED.items():
        parser.add_argument(option, required=True, help=meaning)
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="stop after this long without a new message")
    parser.add_argument("--session-timeout-ms", type=int, default=45000)
    args = parser.parse_args(argv)

    if not args.asyncapi.startswith(("http://", "https://")):
        parser.error("--asyncapi: give an http:// or https:// URL")
    with urllib.request.urlopen(args.asyncapi, timeout=30) as response:  # noqa: S310 (checked)
        channels = _channels(json.load(response))
    registry = SchemaRegistryClient({"url": args.registry,
                                     "basic.auth.user.info": f"{args.user}:{args.key}"})
    reader = _Reader(registry, channels)
    timeout = args.session_timeout_ms
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "session.timeout.ms": timeout,
                         "heartbeat.interval.ms": max(timeout // 3, 100)})
    consumer.subscribe(sorted(channels))
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < args.idle_seconds:
            batch = consumer.consume(100, timeout=0.5)
            for message in batch:
                if message.error() is not None:
                    raise SystemExit(f"error: {message.error()}")
                print(json.dumps(reader.read(message), default=_plain), flush=True)
            idle_since = time.monotonic() if batch else idle_since
    finally:
        consumer.close()
    print(json.dumps({"topics": {name: c.counts for name, c in sorted(channels.items())}}),
          flush=True)
    return 0


class _Reader:
    """Checks and decodes one message against its channel."""

    def __init__(self, registry: SchemaRegistryClient, channels: dict[str, Channel]) -> None:
        self.registry = registry
        self.deserialize = AvroDeserializer(registry)
        self.channels = channels

    def read(self, message: Message) -> dict[str, Any]:
        topic = str(message.topic())
        channel = self.channels[topic]
        channel.counts["messages"] += 1
        headers = _headers(message)
        seen: dict[str, Any] = {"topic": topic, "partition": message.partition(),
                                "offset": message.offset(), "event_type": headers.get("event_type"),
                                "event_id": headers.get("event_id")}
        value = message.value() or b""
        try:
            writer = self.registry.get_schema(int.from_bytes(value[1:5], "big"))
            seen["record"] = _name(writer.schema_str or "{}")
            expected = {headers.get("event_type")} if channel.announces_type else channel.records
            if seen["record"] not in expected:
                channel.counts["mismatches"] += 1  # never act on a value of another type
                return seen
            seen["value"] = self.deserialize(value, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # an outside reader counts, goes on
            channel.counts["errors"] += 1
            return seen | {"error": f"{type(exc).__name__}: {exc}"}
        channel.counts["decoded"] += 1
        return seen


def _channels(document: dict[str, Any]) -> dict[str, Channel]:
    """Every channel with a fixed address, by topic."""
    messages = document["components"]["messages"]
    found: dict[str, Channel] = {}
    for channel in document["channels"].values():
        if "{" in channel["address"]:
            continue  # a pattern (dead-letter topics), not one topic
        names = [ref["$ref"].rsplit("/", 1)[-1] for ref in channel["messages"].values()]
        announces = all("event_type" in messages[name].get("headers", {}).get("properties", {})
                        for name in names)
        found[channel["address"]] = Channel(channel["address"], set(names), announces)
    return found


def _headers(message: Message) -> dict[str, str]:
    """The message's headers as text (the bus writes every value as UTF-8)."""
    found: dict[str, str] = {}
    for header in message.headers() or []:
        value = header[1]
        found[str(header[0])] = value.decode() if isinstance(value, bytes) else str(value or "")
    return found


def _name(schema_text: str) -> str:
    """The record's simple name (`event_type` names the type without its namespace)."""
    return str(json.loads(schema_text)["name"]).rsplit(".", 1)[-1]


def _plain(value: object) -> str:
    """JSON for what Avro decodes to: bytes as Latin-1 text, anything else as text."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


if __name__ == "__main__":
    sys.exit(main())

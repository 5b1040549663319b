"""The generic record codec: one small record type → Confluent-framed Avro → the same value.

Exact bytes are pinned for a hand-built record; every malformed input must raise the one
DecodeError; a writer schema is asked of the registry and parsed once per schema id, never per
message (for the audit checkpoints too, whose codec used to parse it per message).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import fastavro
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.envelope import message_headers
from bus.errors import DecodeError, EncodeError, SchemaError, SchemaNotFoundError
from bus.record_codec import RecordCodec, RecordType
from nervenbahn.audit.checkpoints import Checkpoint, CheckpointCodec, SigningKey, sign_checkpoint
from nervenbahn.audit.hashing import ChainHead
from schemas import released_versions
from tests.bus.test_codec import CountingRegistry

TOPIC = "t.pings.v1"


@dataclass(frozen=True)
class Ping:
    """A tiny value type travelling as the record `ch.nervenbahn.test.Ping`."""

    count: int
    note: str


PING_V1 = {
    "type": "record", "name": "Ping", "namespace": "ch.nervenbahn.test",
    "fields": [{"name": "count", "type": "int"}],
}
PING = {
    "type": "record", "name": "Ping", "namespace": "ch.nervenbahn.test",
    "fields": [{"name": "count", "type": "int"},
               {"name": "note", "type": "string", "default": "(none)"}],
}


def ping_type(schema: dict[str, Any] = PING) -> RecordType:
    """The mapping of Ping: its fields as they are."""
    return RecordType(
        Ping, schema,
        to_record=lambda ping: {"count": ping.count, "note": ping.note},
        from_record=lambda record: Ping(record["count"], record["note"]),
        describe=lambda record: f"ping {record.get('count')}",
    )


def ping_codec(registry: CountingRegistry) -> RecordCodec:
    """A codec of pings on TOPIC."""
    return RecordCodec(registry, TOPIC, [ping_type()], kind="a ping")


# --- exact bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ping", "first_id", "expected"),
    [
        pytest.param(Ping(1, "hi"), 1,
                     b"\x00" + b"\x00\x00\x00\x01"  # magic byte, schema id 1 (big-endian)
                     + b"\x02"  # count: 1 (zig-zag varint)
                     + b"\x04hi",  # note: length 2, text
                     id="small"),
        pytest.param(Ping(-1, ""), 0x01020304,
                     b"\x00" + b"\x01\x02\x03\x04" + b"\x01" + b"\x00", id="negative-empty"),
        pytest.param(Ping(64, "ü"), 7,
                     b"\x00\x00\x00\x00\x07" + b"\x80\x01" + b"\x04\xc3\xbc",
                     id="two-byte-varint-utf-8"),
    ],
)
def test_encodes_exact_confluent_framed_bytes(ping: Ping, first_id: int, expected: bytes) -> None:
    codec = ping_codec(CountingRegistry(first_id))
    encoded = codec.encode(ping)
    assert (encoded.value, encoded.schema_id, encoded.event_type) == (expected, first_id, "Ping")
    assert codec.decode(expected) == ping


def test_registers_under_the_topic_record_name_subject_once() -> None:
    registry = CountingRegistry()
    codec = ping_codec(registry)
    for count in range(3):
        codec.decode(codec.encode(Ping(count, "x")).value)
    assert registry.registered == [f"{TOPIC}-ch.nervenbahn.test.Ping"]
    assert codec.subject("Ping") == f"{TOPIC}-ch.nervenbahn.test.Ping"
    assert registry.looked_up == []  # its own ids are known without asking


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(object(), "object is not a ping", id="another-type"),
        pytest.param(Ping(2**31, "x"), "ping 2147483648 does not fit its schema",
                     id="int-overflow"),
        pytest.param(Ping(1, b"bytes"), "ping 1 does not fit its schema", id="bytes-not-text"),  # type: ignore[arg-type]
    ],
)
def test_values_that_do_not_fit_raise_encode_error(value: Any, match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        ping_codec(CountingRegistry()).encode(value)


def test_a_schema_that_is_not_avro_is_refused_when_the_codec_is_built() -> None:
    broken = {**PING, "fields": [{"name": "count", "type": "integer"}]}
    with pytest.raises(SchemaError, match="Ping: not a valid Avro schema"):
        RecordCodec(CountingRegistry(), TOPIC, [ping_type(broken)], kind="a ping")


# --- what must not decode: one error for all ------------------------------------------------

GOOD = b"\x00\x00\x00\x00\x01" + b"\x02" + b"\x04hi"


@pytest.mark.parametrize(
    ("value", "match", "cause"),
    [
        pytest.param(b"\x01" + GOOD[1:], "magic byte 1, expected 0", None, id="wrong-magic-byte"),
        pytest.param(b"", "0 bytes are too short", None, id="empty"),
        pytest.param(GOOD[:4], "4 bytes are too short", None, id="short-frame"),
        pytest.param(b"\x00\x00\x00\x03\xe7" + GOOD[5:], "unknown schema id 999",
                     SchemaNotFoundError, id="unknown-schema-id"),
        pytest.param(b"\x00\x00\x00\x00\x02" + GOOD[5:], "is ch.nervenbahn.test.Other, not a ping",
                     None, id="schema-id-of-another-record"),
        pytest.param(GOOD[:-1], "truncated or corrupt", EOFError, id="truncated-body"),
        pytest.param(GOOD[:5], "truncated or corrupt", EOFError, id="header-only"),
        pytest.param(GOOD + b"\x00", "1 bytes follow it", None, id="trailing-byte"),
        pytest.param(GOOD[:6] + b"\x04\xff\xfe", "truncated or corrupt", UnicodeDecodeError,
                     id="invalid-utf-8"),
        pytest.param("text", "bytes, not str", None, id="not-bytes"),
    ],
)
def test_malformed_messages_raise_decode_error(
    value: Any, match: str, cause: type[BaseException] | None
) -> None:
    registry = CountingRegistry()
    codec = ping_codec(registry)
    assert codec.encode(Ping(1, "hi")).value == GOOD
    registry.register("other", {"type": "record", "name": "Other",
                                "namespace": "ch.nervenbahn.test", "fields": []})
    with pytest.raises(DecodeError, match=match) as refused:
        codec.decode(value)
    if cause is not None:
        assert isinstance(refused.value.__cause__, cause)


def test_a_record_that_does_not_make_the_value_raises_decode_error() -> None:
    def refuse(record: dict[str, Any]) -> Ping:
        raise ValueError("count must be positive")

    kind = RecordType(Ping, PING, ping_type().to_record, refuse)
    codec = RecordCodec(CountingRegistry(), TOPIC, [kind], kind="a ping")
    with pytest.raises(DecodeError, match="does not make a Ping: count must be positive"):
        codec.decode(codec.encode(Ping(-1, "x")).value)


# --- writer schemas: asked and parsed once per id -------------------------------------------


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every schema `fastavro.parse_schema` is asked to parse from now on."""
    calls: list[dict[str, Any]] = []
    parse = fastavro.parse_schema

    def counting(schema: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(schema)
        return parse(schema, *args, **kwargs)

    monkeypatch.setattr(fastavro, "parse_schema", counting)
    return calls


def test_an_older_writer_schema_is_parsed_once_and_read_into_the_current_one(
    parse_calls: list[dict[str, Any]],
) -> None:
    registry = CountingRegistry()
    v1_id = registry.register(f"{TOPIC}-ch.nervenbahn.test.Ping", PING_V1)
    codec = ping_codec(registry)
    parse_calls.clear()  # building the codec parses the current schema, once
    messages = []
    for count in range(3):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, PING_V1, {"count": count})
        messages.append(b"\x00" + struct.pack(">I", v1_id) + body.getvalue())

    decoded = [codec.decode(message) for message in messages]

    assert decoded == [Ping(0, "(none)"), Ping(1, "(none)"), Ping(2, "(none)")]
    assert registry.looked_up == [v1_id]
    assert [call.get("fields") for call in parse_calls if call.get("name") == "Ping"] == [
        PING_V1["fields"]
    ]


# --- the audit checkpoints: the same codec, no parse per message ----------------------------


def checkpoint(sequence: int) -> Checkpoint:
    """A checkpoint signed with a fixed test key."""
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    heads = {"events": ChainHead(sequence * 3, bytes([sequence]) * 32)}
    return sign_checkpoint(key, sequence, datetime(2026, 12, 6, 8, sequence, tzinfo=UTC), heads)


def test_the_checkpoint_codec_does_not_parse_the_writer_schema_per_message(
    parse_calls: list[dict[str, Any]],
) -> None:
    registry = CountingRegistry()
    writer = CheckpointCodec(registry, "t.audit.checkpoints.v1")
    values = [writer.encode(checkpoint(sequence)) for sequence in (1, 2, 3, 4, 5)]
    reader = CheckpointCodec(registry, "t.audit.checkpoints.v1")  # a fresh cache
    parse_calls.clear()

    assert [reader.decode(value) for value in values] == [checkpoint(s) for s in (1, 2, 3, 4, 5)]
    assert registry.looked_up == [1]  # asked once for the writer schema
    assert parse_calls == []  # it is the current schema: read with the one parsed at start


def test_checkpoints_written_with_a_released_version_parse_that_version_once(
    parse_calls: list[dict[str, Any]],
) -> None:
    registry = CountingRegistry()
    version, released = released_versions("Checkpoint")[0]
    old_id = registry.register("t.audit.checkpoints.v1-ch.nervenbahn.audit.Checkpoint", released)
    reader = CheckpointCodec(registry, "t.audit.checkpoints.v1")
    parse_calls.clear()
    values = []
    for sequence in (1, 2, 3):
        cp = checkpoint(sequence)
        record = {"sequence": cp.sequence, "created_at": cp.created_at, "key_id": cp.key_id,
                  "chains": [{"chain": "events", "position": cp.chains["events"].position,
                              "hash": cp.chains["events"].hash.hex(), "log_id": None}],
                  "access_log": None, "payload": cp.payload.decode(), "signature": cp.signature}
        body = io.BytesIO()
        fastavro.schemaless_writer(body, fastavro.parse_schema(released), record)
        values.append(b"\x00" + struct.pack(">I", old_id) + body.getvalue())
    parse_calls.clear()

    assert [reader.decode(value) for value in values] == [checkpoint(s) for s in (1, 2, 3)]
    assert version == 1
    assert registry.looked_up == [old_id]
    assert len(parse_calls) == 1


# --- the one header builder -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "names"),
    [
        pytest.param({}, ["event_type", "event_id", "schema_id", "recorded_at", "producer"],
                     id="payment-run-event"),
        pytest.param({"effective_date": date(2026, 1, 5), "correlation_id": UUID(int=3)},
                     ["event_type", "event_id", "schema_id", "recorded_at", "effective_date",
                      "correlation_id", "causation_id", "producer"], id="case-event"),
        pytest.param({"kind": "opened", "effective_date": date(2026, 1, 5)},
                     ["event_type", "fact", "event_id", "schema_id", "recorded_at",
                      "effective_date", "producer"], id="reporting-fact"),
    ],
)
def test_message_headers_name_the_same_things_in_the_same_order(
    options: dict[str, Any], names: list[str]
) -> None:
    headers = message_headers("Ping", 7, event_id=UUID(int=1),
                              recorded_at=datetime(2026, 1, 5, 8, 30, tzinfo=UTC), **options)
    assert [name for name, _ in headers] == names
    values = dict(headers)
    assert values["event_type"] == b"Ping"
    assert values["event_id"] == b"00000000-0000-0000-0000-000000000001"
    assert values["schema_id"] == b"7"
    assert values["recorded_at"] == b"2026-01-05T08:30:00+00:00"
    assert values["producer"] == b"nervenbahn-relay"
    if "correlation_id" in values:
        assert values["correlation_id"] == values["causation_id"] == (
            b"00000000-0000-0000-0000-000000000003")


def test_recorded_at_is_in_utc_whatever_zone_the_event_was_recorded_in() -> None:
    swiss = datetime(2026, 1, 5, 9, 30, tzinfo=ZoneInfo("Europe/Zurich"))  # imported history

    headers = dict(message_headers("Ping", 7, event_id=UUID(int=1), recorded_at=swiss))

    assert headers["recorded_at"] == b"2026-01-05T08:30:00+00:00"

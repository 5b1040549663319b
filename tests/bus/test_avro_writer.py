"""The compiled Avro writer writes what fastavro writes, and refuses what fastavro refuses.

Every current schema of every group is compared on real records (every case event type, as
the case service recorded it); a table of values compares the checks one type at a time.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import fastavro
import fastavro.validation
import pytest

from bus.avro_writer import compile_writer
from bus.codec import EventCodec
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.wire import HEADER, WRITE_ERRORS
from domain.events import EVENT_TYPES
from domain.personal_data import PersonalDataVault
from schemas import SCHEMA_GROUPS, load_schema, schema_names

TOPIC = "casework.events"


def by_fastavro(parsed: Any, record: Any) -> bytes | None:
    """What fastavro writes (validated, strict), or None if it refuses the record."""
    buffer = io.BytesIO()
    try:
        fastavro.validation.validate(record, parsed, raise_errors=True)
        fastavro.schemaless_writer(buffer, parsed, record, strict=True)
    except WRITE_ERRORS:
        return None
    return buffer.getvalue()


def by_compiled(parsed: Any, record: Any) -> bytes | None:
    """What the compiled writer writes, or None if it refuses the record."""
    writer = compile_writer(parsed)
    assert writer is not None
    out = bytearray()
    try:
        writer(record, out)
    except WRITE_ERRORS:
        return None
    return bytes(out)


@pytest.mark.parametrize("name", schema_names("case"))
def test_every_case_schema_is_compiled(name: str) -> None:
    assert compile_writer(fastavro.parse_schema(load_schema("case", name))) is not None


@pytest.mark.parametrize(
    ("group", "name"),
    [(group, name) for group in SCHEMA_GROUPS for name in schema_names(group)],
)
def test_a_schema_is_compiled_or_left_to_fastavro(group: str, name: str) -> None:
    parsed = fastavro.parse_schema(load_schema(group, name))
    writer = compile_writer(parsed)
    assert writer is None or callable(writer)


@pytest.fixture
def case_codec(
    schema_registry: SQLiteSchemaRegistry, events_vault: PersonalDataVault
) -> EventCodec:
    """The case events' codec, as the relay has it."""
    return EventCodec(schema_registry, TOPIC, vault=events_vault)


@pytest.mark.parametrize("name", [cls.__name__ for cls in EVENT_TYPES])
def test_every_case_event_is_written_as_fastavro_writes_it(
    name: str, recorded_events: list[Any], case_codec: EventCodec
) -> None:
    parsed = fastavro.parse_schema(load_schema("case", name))
    events = [event for event in recorded_events if type(event).__name__ == name]
    assert events
    for event in events:
        value = case_codec.encode(event).value
        record = fastavro.schemaless_reader(io.BytesIO(value[HEADER.size:]), parsed, None)
        assert by_fastavro(parsed, record) == value[HEADER.size:]
        assert by_compiled(parsed, record) == value[HEADER.size:]


SCHEMA = {
    "type": "record", "name": "Everything", "namespace": "ch.nervenbahn.test",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "text", "type": "string"},
        {"name": "raw", "type": "bytes"},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 6, "scale": 2}},
        {"name": "colour", "type": {"type": "enum", "name": "Colour",
                                    "symbols": ["RED", "GREEN"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "maybe", "type": ["null", {"type": "record", "name": "Inner",
                                            "fields": [{"name": "n", "type": "int"}]}]},
        {"name": "again", "type": ["null", "Inner"]},
    ],
}

GOOD = {
    "flag": True, "small": -3, "big": 2**40, "text": "Grüezi", "raw": b"\x00\xff",
    "id": UUID("9b7f1c4e-1f4e-4b8e-9a53-1c2d3e4f5a6b"), "day": date(2026, 12, 7),
    "at": datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC), "amount": Decimal("-1234.5"),
    "colour": "GREEN", "tags": ["a", "b"], "maybe": {"n": 7}, "again": None,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(field, value, id=f"{field}={value!r}")
        for field, values in {
            "flag": [False, 1, 0, "yes", None],
            "small": [0, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, True, 1.0, "1", None],
            "big": [2**63 - 1, -(2**63), 2**63, False, 2.5],
            "text": ["", "x" * 200, b"bytes", 3, None],
            "raw": [b"", bytearray(b"ab"), "text", None],
            "id": [UUID(int=0), "not-a-uuid-but-a-string", 5],
            "day": [date(1970, 1, 1), date(1900, 3, 1), 19_000, "2026-12-07", "x", None],
            "at": [datetime(1969, 12, 31, 23, 59, tzinfo=UTC), 0, "now", None],
            "amount": [Decimal("0"), Decimal("9999.99"), Decimal("10000.00"),
                       Decimal("1.005"), Decimal("-0.01"), b"\x01", 1.5],
            "colour": ["RED", "BLUE", None, ["RED"]],
            "tags": [[], ("a",), "ab", ["a", 1], None],
            "maybe": [None, {"n": 1}, {"n": "1"}, {}, {"n": 1, "m": 2}, [1]],
            "again": [{"n": -1}, {"n": 2**31}],
        }.items()
        for value in values
    ],
)
def test_checks_and_bytes_are_fastavros(field: str, value: Any) -> None:
    parsed = fastavro.parse_schema(SCHEMA)
    record = {**GOOD, field: value}
    assert by_compiled(parsed, record) == by_fastavro(parsed, record)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({k: v for k, v in GOOD.items() if k != "text"}, id="a-field-missing"),
        pytest.param({**GOOD, "extra": 1}, id="a-field-too-many"),
        pytest.param(list(GOOD.values()), id="not-a-dict"),
    ],
)
def test_a_record_has_exactly_its_fields(record: Any) -> None:
    parsed = fastavro.parse_schema(SCHEMA)
    assert by_fastavro(parsed, record) is None
    assert by_compiled(parsed, record) is None


@pytest.mark.parametrize(
    "node",
    [
        pytest.param("double", id="double"),
        pytest.param({"type": "map", "values": "int"}, id="map"),
        pytest.param({"type": "fixed", "name": "F", "size": 2}, id="fixed"),
        pytest.param(["int", "string"], id="union-of-two"),
    ],
)
def test_a_schema_with_types_not_compiled_is_left_to_fastavro(node: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": node}]}
    assert compile_writer(fastavro.parse_schema(schema)) is None

"""Attacks on the relay's compiled Avro writer (issue 17, `bus.avro_writer`): an outside reader,
Apache's `avro` package (no code of ours), decodes the message of each case event type to the
values fastavro reads, consuming every byte; and values fastavro refuses in ways the table of
tests/bus/test_avro_writer.py does not try are refused alike (a record with one field swapped
for another, decimals that are not numbers, a string that is not encodable, ...)."""

from __future__ import annotations

import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import avro.io
import avro.schema
import fastavro
import pytest

from bus.codec import EventCodec
from bus.wire import HEADER
from domain.events import EVENT_TYPES
from schemas import load_schema
from tests.bus.test_avro_writer import GOOD, SCHEMA, by_compiled, by_fastavro, case_codec

__all__ = ["case_codec"]  # the fixture


def plain(value: Any) -> Any:
    """A decoded value with UUIDs as their text (fastavro reads UUID objects, avro strings)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return str(value) if isinstance(value, UUID) else value


@pytest.mark.parametrize("name", [cls.__name__ for cls in EVENT_TYPES])
def test_an_outside_reader_decodes_every_case_event_type(
    name: str, recorded_events: list[Any], case_codec: EventCodec
) -> None:
    schema = load_schema("case", name)
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(schema)))
    parsed = fastavro.parse_schema(schema)
    event = next(event for event in recorded_events if type(event).__name__ == name)
    body = case_codec.encode(event).value[HEADER.size :]

    stream = io.BytesIO(body)
    outside = reader.read(avro.io.BinaryDecoder(stream))

    assert stream.tell() == len(body)
    assert plain(outside) == plain(fastavro.schemaless_reader(io.BytesIO(body), parsed, None))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"text": None, "extra": "x"}, id="a-field-swapped-for-another"),
        pytest.param({"amount": Decimal("NaN")}, id="decimal-nan"),
        pytest.param({"amount": Decimal("Infinity")}, id="decimal-infinity"),
        pytest.param({"amount": Decimal("99999.99")}, id="decimal-too-many-digits"),
        pytest.param({"text": "\ud800"}, id="string-not-encodable"),
        pytest.param({"id": b"x" * 16}, id="uuid-as-bytes"),
        pytest.param({"maybe": False}, id="bool-for-a-record"),
        pytest.param({"raw": memoryview(b"ab")}, id="memoryview-for-bytes"),
        pytest.param({"tags": {}}, id="dict-for-an-array"),
    ],
)
def test_what_fastavro_refuses_beyond_the_table_is_refused(changes: dict[str, Any]) -> None:
    parsed = fastavro.parse_schema(SCHEMA)
    record = {**GOOD, **changes}
    if changes.get("text", "") is None:
        del record["text"]

    assert by_fastavro(parsed, record) is None
    assert by_compiled(parsed, record) is None


@pytest.mark.parametrize("amount", ["1E+4", "1E+10"])
def test_a_decimal_beyond_its_precision_in_exponent_form_passes_as_fastavro_lets_it(
    amount: str,
) -> None:
    # Found: fastavro's decimal writer (which the compiled writer calls) checks the precision
    # only of a decimal with a negative exponent: 1E+4 is written for a decimal(6, 2) although
    # 10000.00 is refused. The compiled writer does what fastavro does; a value of ours never
    # reaches it so (domain/money.py quantizes amounts to cents), but neither would refuse it.
    parsed = fastavro.parse_schema(SCHEMA)
    record = {**GOOD, "amount": Decimal(amount)}
    assert by_fastavro(parsed, {**GOOD, "amount": Decimal("10000.00")}) is None

    written = by_compiled(parsed, record)

    assert written is not None and written == by_fastavro(parsed, record)
    read = fastavro.schemaless_reader(io.BytesIO(written), parsed, None)
    assert isinstance(read, dict)
    read = read["amount"]
    assert read == Decimal(amount) > Decimal("9999.99")  # beyond decimal(6, 2)


def test_a_naive_timestamp_is_written_as_fastavro_writes_it() -> None:
    parsed = fastavro.parse_schema(SCHEMA)
    record = {**GOOD, "at": datetime(2026, 1, 1)}
    assert by_compiled(parsed, record) == by_fastavro(parsed, record) is not None

"""The Confluent wire format: magic byte 0, 4-byte big-endian schema id, then Avro binary.

The one framing writer and reader of the bus (`bus.record_codec.RecordCodec` uses them for every
record type), with the tables of what fastavro raises on bad input and bad schemas.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

import fastavro
import fastavro.read
import fastavro.schema
import fastavro.validation

from bus.avro_writer import RecordWriter
from bus.errors import DecodeError, EncodeError

__all__ = [
    "HEADER",
    "MAGIC_BYTE",
    "PARSE_ERRORS",
    "READ_ERRORS",
    "WRITE_ERRORS",
    "header",
    "read_record",
    "schema_id_of",
    "write_record",
]

MAGIC_BYTE = 0
HEADER = struct.Struct(">BI")

PARSE_ERRORS: tuple[type[BaseException], ...] = (
    fastavro.schema.SchemaParseException,
    fastavro.schema.UnknownType,
    ValueError,
    TypeError,
    KeyError,
)
"""What `fastavro.parse_schema` raises for a malformed schema (SchemaError for a current schema,
DecodeError for a writer schema from the registry)."""

READ_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    IndexError,
    KeyError,
    ValueError,
    TypeError,
    OverflowError,
    struct.error,
    fastavro.read.SchemaResolutionError,
)
"""What fastavro raises on truncated, corrupt or unresolvable input (all become DecodeError)."""

WRITE_ERRORS: tuple[type[BaseException], ...] = (
    fastavro.validation.ValidationError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    struct.error,
)
"""What fastavro raises when a value does not fit its schema (all become EncodeError)."""


def header(schema_id: int) -> bytes:
    """The five bytes that precede the Avro body of a message."""
    return HEADER.pack(MAGIC_BYTE, schema_id)


def schema_id_of(value: bytes) -> int:
    """The schema id of a message value; DecodeError if it is not in the wire format."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise DecodeError(f"a message value is bytes, not {type(value).__name__}")
    if len(value) < HEADER.size:
        raise DecodeError(
            f"{len(value)} bytes are too short for the Confluent wire format "
            f"(magic byte and 4-byte schema id)"
        )
    magic, schema_id = HEADER.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise DecodeError(f"not in the Confluent wire format: magic byte {magic}, expected 0")
    return int(schema_id)


def write_record(
    schema_id: int,
    parsed: Any,
    record: dict[str, Any],
    what: str | Callable[[], str],
    writer: RecordWriter | None = None,
) -> bytes:
    """The header and one Avro record, validated against `parsed` first.

    `writer` is `parsed` compiled (`bus.avro_writer.compile_writer`): it checks and writes in
    one pass, the same bytes; without it fastavro validates, then writes. EncodeError names
    `what` (or what it returns, asked only then) if the record does not fit the schema.
    """
    try:
        if writer is not None:
            out = bytearray(header(schema_id))
            writer(record, out)
            return bytes(out)
        buffer = BytesIO()
        buffer.write(header(schema_id))
        fastavro.validation.validate(record, parsed, raise_errors=True)
        fastavro.schemaless_writer(buffer, parsed, record, strict=True)
    except WRITE_ERRORS as exc:
        name = what if isinstance(what, str) else what()
        raise EncodeError(f"{name} does not fit its schema: {exc}") from exc
    return buffer.getvalue()


def read_record(value: bytes, writer: Any, reader: Any, what: str) -> dict[str, Any]:
    """The one Avro record after the header, written with `writer`, read as `reader`.

    DecodeError names `what` if the body is truncated, corrupt, followed by more bytes, or not
    a record.
    """
    body = BytesIO(value[HEADER.size :])
    try:
        record = fastavro.schemaless_reader(body, writer, None if writer is reader else reader)
    except READ_ERRORS as exc:
        raise DecodeError(f"{what} is truncated or corrupt: {type(exc).__name__}: {exc}") from exc
    trailing = len(value) - HEADER.size - body.tell()
    if trailing:
        raise DecodeError(f"{what} is not one whole record: {trailing} bytes follow it")
    if not isinstance(record, dict):
        raise DecodeError(f"{what} is not one whole record")
    return record

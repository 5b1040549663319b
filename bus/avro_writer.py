"""A record schema compiled once into one Python function that checks and writes a record.

fastavro checks a record (`validation.validate`) and then writes it (`schemaless_writer`):
two generic walks of the schema per record, each looking up every node's type and logical
type again. For the relay that was the largest part of its own work: 90 of 166 µs per case
event on an idle machine (benchmarks/bus_throughput.py), for ~260 bytes of Avro. `compile_writer`
walks the schema once and returns a closure per node, so that writing a record is one pass that
checks each value as fastavro's validation does and writes the bytes fastavro writes:

- `null` is None; `boolean` a bool; `int`/`long` an int that is not a bool, within 32/64 bits;
  `string` a str; `bytes` bytes or bytearray; `enum` one of its symbols; `array` a sequence
  that is not a str (written as one block, as fastavro does); a record a dict with exactly the
  schema's fields (fastavro's `strict=True`); a union of null and one other type.
- Logical types are converted by fastavro's own `LOGICAL_WRITERS` (uuid, date,
  timestamp-micros, decimal: the same functions, so the same values and the same refusals).

Schemas with anything else (float, double, fixed, map, unions of two non-null types) are not
compiled (`compile_writer` gives None) and are written by fastavro as before. tests/bus/
test_avro_writer.py holds both to the same bytes for every case event type and to the same
refusals, value by value.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastavro.logical_writers import LOGICAL_WRITERS

from bus.errors import BusError

__all__ = ["RecordWriter", "compile_writer"]

RecordWriter = Callable[[Any, bytearray], None]
"""Appends one value's Avro binary to the buffer; TypeError or ValueError if it does not fit."""

_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)
_SMALL = [bytes([n]) for n in range(0x80)]


class _Unsupported(BusError):
    """A schema node this module does not compile (fastavro writes it)."""


def compile_writer(parsed: Any) -> RecordWriter | None:
    """The writer of a schema parsed by `fastavro.parse_schema`; None if it holds a type this
    module does not compile."""
    named = dict(parsed.get("__named_schemas", {}))
    compiled: dict[str, RecordWriter] = {}
    try:
        return _node(parsed, named, compiled, "")
    except _Unsupported:
        return None


def _varint(number: int) -> bytes:
    """Avro's zig-zag varint of a long."""
    number = (number << 1) ^ (number >> 63)
    if number < 0x80:
        return _SMALL[number]
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _node(
    node: Any, named: dict[str, Any], compiled: dict[str, RecordWriter], path: str
) -> RecordWriter:
    if isinstance(node, str):
        if node in named:
            return _named(node, named, compiled, path)
        return _primitive(node, path)
    if isinstance(node, list):
        return _union(node, named, compiled, path)
    kind = node.get("type")
    if isinstance(kind, dict | list):
        return _node(kind, named, compiled, path)
    logical = node.get("logicalType")
    prepare = LOGICAL_WRITERS.get(f"{kind}-{logical}") if logical else None
    if kind == "record":
        return _named(str(node["name"]), named, compiled, path)
    if kind == "enum":
        return _enum(node, path)
    if kind == "array":
        return _array(_node(node["items"], named, compiled, f"{path}[]"), path)
    write = _primitive(str(kind), path)
    if prepare is None:
        return write

    def write_logical(value: Any, out: bytearray) -> None:
        write(prepare(value, node), out)

    return write_logical


def _named(
    name: str, named: dict[str, Any], compiled: dict[str, RecordWriter], path: str
) -> RecordWriter:
    """A named record (compiled once; a record may hold itself, hence the indirection)."""
    if name not in compiled:
        schema = named[name]
        if schema.get("type") != "record":
            return _node(schema, named, compiled, path)
        fields: list[tuple[str, RecordWriter]] = []
        compiled[name] = _record(name, fields)
        fields += [
            (field["name"], _node(field["type"], named, compiled, field["name"]))
            for field in schema["fields"]
        ]
    return compiled[name]


def _record(name: str, fields: list[tuple[str, RecordWriter]]) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"{name}: a record is a dict, not {type(value).__name__}")
        if len(value) != len(fields):
            expected = [field for field, _ in fields]
            raise ValueError(f"{name}: fields {sorted(value)} are not {expected}")
        for field, write_field in fields:
            write_field(value[field], out)

    return write


def _primitive(kind: str, path: str) -> RecordWriter:
    if kind == "null":
        return _null(path)
    if kind == "boolean":
        return _boolean(path)
    if kind in ("int", "long"):
        return _integer(kind, *(_INT if kind == "int" else _LONG), path)
    if kind == "string":
        return _string(path)
    if kind == "bytes":
        return _bytes(path)
    raise _Unsupported(kind)


def _null(path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if value is not None:
            raise TypeError(f"{path}: {value!r} is not null")

    return write


def _boolean(path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if value is True:
            out += b"\x01"
        elif value is False:
            out += b"\x00"
        else:
            raise TypeError(f"{path}: {value!r} is not a boolean")

    return write


def _integer(kind: str, low: int, high: int, path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{path}: {value!r} does not fit an Avro {kind}")
        out += _varint(value)

    return write


def _string(path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{path}: {type(value).__name__} is not a string")
        data = value.encode()
        out += _varint(len(data))
        out += data

    return write


def _bytes(path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"{path}: {type(value).__name__} is not bytes")
        out += _varint(len(value))
        out += value

    return write


def _enum(node: Mapping[str, Any], path: str) -> RecordWriter:
    index = {symbol: _varint(number) for number, symbol in enumerate(node["symbols"])}

    def write(value: Any, out: bytearray) -> None:
        try:
            out += index[value]
        except (KeyError, TypeError):
            raise ValueError(f"{path}: {value!r} is not one of {list(index)}") from None

    return write


def _array(item: RecordWriter, path: str) -> RecordWriter:
    def write(value: Any, out: bytearray) -> None:
        if not isinstance(value, Sequence | array.array) or isinstance(value, str):
            raise TypeError(f"{path}: {type(value).__name__} is not an array")
        if value:
            out += _varint(len(value))
            for element in value:
                item(element, out)
        out += b"\x00"

    return write


def _union(
    branches: list[Any], named: dict[str, Any], compiled: dict[str, RecordWriter], path: str
) -> RecordWriter:
    """[null, T] or [T, null]: None is the null branch, anything else must fit T."""
    if len(branches) != 2 or "null" not in branches:
        raise _Unsupported("union")
    null_index = branches.index("null")
    other = _node(branches[1 - null_index], named, compiled, path)
    null_tag, other_tag = _varint(null_index), _varint(1 - null_index)

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            out += null_tag
        else:
            out += other_tag
            other(value, out)

    return write

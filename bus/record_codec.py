"""Records as Avro in the Confluent wire format, and back: the one codec machinery of the bus.

A message value is: magic byte 0, the writer schema's registry id (4 bytes, big-endian), one
record as Avro binary (`bus.wire`). A `RecordCodec` is built once per topic from a few
`RecordType`s, each saying how one Python type becomes one Avro record and back. The codec
parses every current schema once, registers a schema under `<topic>-<namespace>.<Record>`
(TopicRecordNameStrategy) the first time it writes that type, and reads a message with the
writer schema its id names — looked up and parsed once, then cached by id — into the current
schema (Avro schema resolution). A writer schema equal to the current one is read with the
current one directly (no resolution), which is what a consumer of an up-to-date producer sees.

The per-type mappings live beside what they know: case events (`bus.codec.EventCodec`),
payment-run events (`bus.payments_codec`), reporting facts (`projections.reporting_codec`) and
audit checkpoints (`nervenbahn.audit.checkpoints`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from bus.avro_writer import RecordWriter, compile_writer
from bus.envelope import EncodedEvent
from bus.errors import DecodeError, EncodeError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry
from bus.wire import PARSE_ERRORS, read_record, schema_id_of, write_record
from schemas import SCHEMA_DIR, SchemaFileError, load_schema

__all__ = [
    "RecordCodec",
    "RecordType",
    "current_schema",
    "field_mismatches",
    "full_record_name",
    "refuse_mismatches",
]

DECODE_ERRORS: tuple[type[BaseException], ...] = (KeyError, TypeError, ValueError)
"""What a `from_record` raises for a record that does not make its value (a DecodeError)."""


@dataclass(frozen=True)
class RecordType:
    """How one Python type travels as one Avro record: its current (reader) schema, and the two
    conversions. `to_record` raises EncodeError for a value that cannot be written;
    `from_record` may raise DecodeError, KeyError, TypeError or ValueError (all DecodeError)."""

    value_type: type[Any]
    schema: dict[str, Any]
    to_record: Callable[[Any], dict[str, Any]]
    from_record: Callable[[dict[str, Any]], Any]
    describe: Callable[[dict[str, Any]], str] | None = None
    """Names one record in an EncodeError, e.g. `CaseOpened of case … version 3` (default:
    the record name)."""

    @property
    def name(self) -> str:
        """The record's name without namespace (the `event_type` header)."""
        return full_record_name(self.schema).rpartition(".")[2]

    @property
    def fullname(self) -> str:
        """The record's full name, e.g. `ch.nervenbahn.casework.CaseOpened`."""
        return full_record_name(self.schema)


@dataclass(frozen=True)
class _Known:
    """A record type of the codec with its parsed current schema."""

    kind: RecordType
    name: str
    fullname: str
    parsed: Any
    writer: RecordWriter | None
    """The current schema compiled (None: fastavro validates and writes it)."""


class RecordCodec:
    """Encodes values of a few record types for one topic and decodes them (Confluent wire
    format). `kind` names what the codec reads in errors, e.g. "a case event type"."""

    def __init__(
        self,
        registry: SchemaRegistry,
        topic: str,
        types: Sequence[RecordType],
        *,
        kind: str,
    ) -> None:
        self._registry = registry
        self._topic = topic
        self._kind = kind
        known = [_known(record_type) for record_type in types]
        self._by_name = {entry.name: entry for entry in known}
        self._by_class = {entry.kind.value_type: entry for entry in known}
        self._by_fullname = {entry.fullname: entry for entry in known}
        self._schema_ids: dict[str, int] = {}
        self._writers: dict[int, tuple[_Known, Any]] = {}

    @property
    def topic(self) -> str:
        """The topic whose subjects this codec registers its schemas under."""
        return self._topic

    def subject(self, name: str) -> str:
        """The registry subject of record `name` on this codec's topic."""
        entry = self._by_name.get(name)
        if entry is None:
            raise KeyError(f"{name} is not {self._kind} of this codec")
        return f"{self._topic}-{entry.fullname}"

    def register_schemas(self) -> dict[str, int]:
        """Register every record type's schema now (e.g. at start-up); their ids by name."""
        return {name: self._schema_id(entry) for name, entry in self._by_name.items()}

    def encode(self, value: Any) -> EncodedEvent:
        """The value as a message value; EncodeError if it does not fit its schema."""
        entry = self._by_class.get(type(value))
        if entry is None:
            raise EncodeError(f"{type(value).__name__} is not {self._kind}")
        record = entry.kind.to_record(value)
        schema_id = self._schema_id(entry)
        describe = entry.kind.describe
        what = entry.name if describe is None else lambda: describe(record)
        return EncodedEvent(write_record(schema_id, entry.parsed, record, what, entry.writer),
                            schema_id, entry.name)

    def decode(self, value: bytes) -> Any:
        """The value in a message value; DecodeError if it is not one this codec reads.

        An unreachable registry raises RegistryError instead: the message may be fine, retry.
        """
        schema_id = schema_id_of(value)
        entry, writer = self._writer(schema_id)
        what = f"{entry.name} (schema id {schema_id})"
        record = read_record(value, writer, entry.parsed, what)
        try:
            return entry.kind.from_record(record)
        except DECODE_ERRORS as exc:
            raise DecodeError(
                f"{what}: the record does not make a {entry.kind.value_type.__name__}: {exc}"
            ) from exc

    def _schema_id(self, entry: _Known) -> int:
        schema_id = self._schema_ids.get(entry.name)
        if schema_id is None:
            schema_id = self._registry.register(self.subject(entry.name), entry.kind.schema)
            self._schema_ids[entry.name] = schema_id
            self._writers.setdefault(schema_id, (entry, entry.parsed))
        return schema_id

    def _writer(self, schema_id: int) -> tuple[_Known, Any]:
        """The record type and parsed writer schema of `schema_id`, asked of the registry once."""
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._registry.schema_by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise DecodeError(f"unknown schema id {schema_id}: {exc}") from exc
        fullname = full_record_name(schema)
        entry = self._by_fullname.get(fullname)
        if entry is None:
            raise DecodeError(f"schema id {schema_id} is {fullname}, not {self._kind}")
        if schema == entry.kind.schema:
            parsed = entry.parsed  # the current schema wrote it: read without resolution
        else:
            try:
                parsed = fastavro.parse_schema(schema)
            except PARSE_ERRORS as exc:
                raise DecodeError(
                    f"schema id {schema_id} is not a valid Avro schema: {exc}"
                ) from exc
        self._writers[schema_id] = (entry, parsed)
        return entry, parsed


def full_record_name(schema: dict[str, Any]) -> str:
    """A record schema's full name: `namespace.name`, or the name if it has a dot or no
    namespace."""
    name = str(schema.get("name", ""))
    if "." in name or not schema.get("namespace"):
        return name
    return f"{schema['namespace']}.{name}"


def _known(kind: RecordType) -> _Known:
    """The record type with its current schema parsed; SchemaError if it is not Avro."""
    name = kind.name
    try:
        parsed = fastavro.parse_schema(kind.schema)
    except PARSE_ERRORS as exc:
        raise SchemaError(f"{name}: not a valid Avro schema: {exc}") from exc
    return _Known(kind, name, kind.fullname, parsed, compile_writer(parsed))


def current_schema(group: str, name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of record `name` in schema group `group` (`schemas.load_schema`);
    SchemaError naming the record if its file is missing or broken."""
    try:
        return load_schema(group, name, schema_dir)
    except SchemaFileError as exc:
        raise SchemaError(f"{name}: {exc}") from exc


def field_mismatches(
    value_class: type[Any],
    schema: dict[str, Any],
    renamed: Mapping[str, str],
    constants: Collection[str] = (),
) -> list[tuple[str, str]]:
    """(field, problem) for each field that a dataclass (e.g. a domain event) and its schema do
    not share: its attributes, named on the bus as `renamed` says, less the `constants` (not
    sent)."""
    domain = {
        renamed.get(field.name, field.name)
        for field in dataclasses.fields(value_class)
        if field.name not in constants
    }
    fields = [str(field.get("name")) for field in schema.get("fields", [])]
    name = value_class.__name__
    problems = [
        (field, f"the domain event {name} has it, the schema does not")
        for field in sorted(domain - set(fields))
    ]
    problems += [
        (field, f"the schema has it, the domain event {name} does not")
        for field in fields
        if field not in domain
    ]
    return problems


def refuse_mismatches(name: str, mismatches: Sequence[tuple[str, str]]) -> None:
    """SchemaError naming the first (field, problem) of `mismatches`, if any."""
    if mismatches:
        field, problem = mismatches[0]
        raise SchemaError(f"{name}: {field}: {problem}")

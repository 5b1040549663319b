"""Case facts on the reporting topic: Avro `ch.nervenbahn.reporting.CaseFact` in the Confluent
wire format (magic byte 0, 4-byte schema id, Avro binary), and the reporting relay's encoder.

`CaseFactCodec` is built once per topic from `schemas/reporting/CaseFact.avsc`; it registers
the schema under `<topic>-ch.nervenbahn.reporting.CaseFact` the first time it writes, and reads
a message with the writer schema its id names into the current one, so that
`codec.decode(codec.encode(fact).value) == fact`.
"""

from __future__ import annotations

import dataclasses
from io import BytesIO
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
import fastavro.validation

from bus.envelope import EncodedEvent
from bus.errors import DecodeError, EncodeError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry
from bus.relay import PRODUCER_NAME, Encoder, OutgoingMessage
from bus.wire import WRITE_ERRORS, header, read_record, schema_id_of
from projections.reporting_facts import NO_FACT_EVENTS, CaseFact, CaseFacts
from schemas import (
    REPORTING_NAMESPACE,
    SCHEMA_DIR,
    SchemaFileError,
    record_name,
    reporting_schema,
    subject_for,
)

__all__ = ["FACT_RECORD", "CaseFactCodec", "fact_encoder", "fact_headers"]

FACT_RECORD = "CaseFact"
_FULLNAME = record_name(FACT_RECORD, REPORTING_NAMESPACE)
_FIELDS = tuple(field.name for field in dataclasses.fields(CaseFact))

_PARSE_ERRORS = (
    fastavro.schema.SchemaParseException,
    fastavro.schema.UnknownType,
    ValueError,
    TypeError,
    KeyError,
)


class CaseFactCodec:
    """Encodes case facts for one topic and decodes them, in the Confluent wire format."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        try:
            self._schema = reporting_schema(FACT_RECORD, schema_dir)
            self._parsed = fastavro.parse_schema(self._schema)
        except SchemaFileError as exc:
            raise SchemaError(f"{FACT_RECORD}: {exc}") from exc
        except _PARSE_ERRORS as exc:
            raise SchemaError(f"{FACT_RECORD}: not a valid Avro schema: {exc}") from exc
        names = tuple(str(field["name"]) for field in self._schema["fields"])
        if set(names) != set(_FIELDS):
            raise SchemaError(
                f"{FACT_RECORD}: schema fields {sorted(set(names) ^ set(_FIELDS))} do not match "
                "projections.reporting_facts.CaseFact"
            )
        self._registry = registry
        self._topic = topic
        self._schema_id: int | None = None
        self._writers: dict[int, Any] = {}

    @property
    def subject(self) -> str:
        """The registry subject of case facts on this codec's topic."""
        return subject_for(self._topic, FACT_RECORD, REPORTING_NAMESPACE)

    def register_schema(self) -> int:
        """Register the CaseFact schema now (e.g. at start-up); its id."""
        if self._schema_id is None:
            self._schema_id = self._registry.register(self.subject, self._schema)
            self._writers.setdefault(self._schema_id, self._parsed)
        return self._schema_id

    def encode(self, fact: CaseFact) -> EncodedEvent:
        """The fact as a message value; EncodeError if it does not fit the schema."""
        if not isinstance(fact, CaseFact):
            raise EncodeError(f"{type(fact).__name__} is not a CaseFact")
        record = {name: getattr(fact, name) for name in _FIELDS}
        record["refusal_reasons"] = list(fact.refusal_reasons)
        if not isinstance(fact.fact_id, UUID):
            raise EncodeError(f"fact_id {fact.fact_id!r} is not a UUID")
        schema_id = self.register_schema()
        buffer = BytesIO()
        buffer.write(header(schema_id))
        try:
            fastavro.validation.validate(record, self._parsed, raise_errors=True)
            fastavro.schemaless_writer(buffer, self._parsed, record, strict=True)
        except WRITE_ERRORS as exc:
            raise EncodeError(f"fact {fact.fact_id} does not fit its schema: {exc}") from exc
        return EncodedEvent(buffer.getvalue(), schema_id, FACT_RECORD)

    def decode(self, value: bytes) -> CaseFact:
        """The fact in a message value; DecodeError if it is not a case fact."""
        schema_id = schema_id_of(value)
        writer = self._writer(schema_id)
        record = read_record(value, writer, self._parsed, f"{FACT_RECORD} (schema id {schema_id})")
        record["refusal_reasons"] = tuple(record["refusal_reasons"])
        return CaseFact(**{name: record[name] for name in _FIELDS})

    def _writer(self, schema_id: int) -> Any:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._registry.schema_by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise DecodeError(f"unknown schema id {schema_id}: {exc}") from exc
        fullname = f"{schema.get('namespace', '')}.{schema.get('name', '')}"
        if fullname != _FULLNAME:
            raise DecodeError(f"schema id {schema_id} is {fullname}, not {_FULLNAME}")
        try:
            parsed = fastavro.parse_schema(schema)
        except _PARSE_ERRORS as exc:
            raise DecodeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        self._writers[schema_id] = parsed
        return parsed


def fact_headers(fact: CaseFact, schema_id: int) -> list[tuple[str, bytes]]:
    """Kafka headers of a fact: what a reader needs before (or without) decoding it.

    Nothing here pairs a fact with its case event: `event_id` is the keyed fact id, the
    recorded time only its Swiss day, and there is no correlation or causation id (the
    relay adds `relay_epoch`, random per reporting relay epoch)."""
    return [
        ("event_type", FACT_RECORD.encode()),
        ("fact", fact.fact.encode()),
        ("event_id", str(fact.fact_id).encode()),
        ("schema_id", str(schema_id).encode()),
        ("recorded_at", fact.recorded_at.isoformat().encode()),
        ("effective_date", fact.effective_date.isoformat().encode()),
        ("producer", PRODUCER_NAME.encode()),
    ]


def fact_encoder(codec: CaseFactCodec, facts: CaseFacts) -> Encoder:
    """The reporting relay's encoder: one fact per event, key = case pseudonym, record
    timestamp = the fact's recorded day (not the moment of publishing, which the case-events
    relay's messages share)."""

    def encode(event: Any) -> list[OutgoingMessage]:
        if type(event).__name__ in NO_FACT_EVENTS:
            return []
        fact = facts(event)
        encoded = codec.encode(fact)
        headers = fact_headers(fact, encoded.schema_id)
        stamp = int(fact.recorded_at.timestamp() * 1000)
        return [(fact.case_pseudonym.encode(), encoded.value, headers, stamp)]

    return encode

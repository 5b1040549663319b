"""Case facts on the reporting topic: Avro `ch.nervenbahn.reporting.CaseFact` in the Confluent
wire format (magic byte 0, 4-byte schema id, Avro binary), and the reporting relay's encoder.

`CaseFactCodec` is the bus's generic `bus.record_codec.RecordCodec` with one record type, the
fact, built from `schemas/reporting/CaseFact.avsc`: it registers the schema under
`<topic>-ch.nervenbahn.reporting.CaseFact` the first time it writes, and reads a message with
the writer schema its id names into the current one, so that
`codec.decode(codec.encode(fact).value) == fact`. Only the mapping of a fact to its record lives
here (it knows the facts); framing, registration and the writer cache are the bus's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.envelope import EncodedEvent, message_headers
from bus.errors import EncodeError, SchemaError
from bus.record_codec import RecordCodec, RecordType, current_schema
from bus.registry import SchemaRegistry
from bus.relay import Encoder, OutgoingMessage
from projections.reporting_facts import NO_FACT_EVENTS, CaseFact, CaseFacts
from schemas import REPORTING_NAMESPACE, SCHEMA_DIR, record_name

__all__ = ["FACT_RECORD", "CaseFactCodec", "fact_encoder", "fact_headers"]

FACT_RECORD = "CaseFact"
_FULLNAME = record_name(FACT_RECORD, REPORTING_NAMESPACE)
_FIELDS = tuple(field.name for field in dataclasses.fields(CaseFact))


class CaseFactCodec:
    """Encodes case facts for one topic and decodes them, in the Confluent wire format."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        self._codec = RecordCodec(registry, topic, [_fact_type(schema_dir)], kind=_FULLNAME)

    @property
    def subject(self) -> str:
        """The registry subject of case facts on this codec's topic."""
        return self._codec.subject(FACT_RECORD)

    def register_schema(self) -> int:
        """Register the CaseFact schema now (e.g. at start-up); its id."""
        return self._codec.register_schemas()[FACT_RECORD]

    def encode(self, fact: CaseFact) -> EncodedEvent:
        """The fact as a message value; EncodeError if it does not fit the schema."""
        return self._codec.encode(fact)

    def decode(self, value: bytes) -> CaseFact:
        """The fact in a message value; DecodeError if it is not a case fact."""
        fact: CaseFact = self._codec.decode(value)
        return fact

    def event_id(self, fact: CaseFact) -> UUID:
        """The id a consumer deduplicates the fact by: its keyed fact id, what the reporting
        relay puts in the `event_id` header (`bus.consumer.Decoder`)."""
        return fact.fact_id


def _fact_type(schema_dir: Path) -> RecordType:
    """The record mapping of a case fact; SchemaError if the schema's fields are not the
    fact's."""
    schema = current_schema("reporting", FACT_RECORD, schema_dir)
    names = {str(field["name"]) for field in schema.get("fields", [])}
    if names != set(_FIELDS):
        raise SchemaError(
            f"{FACT_RECORD}: schema fields {sorted(names ^ set(_FIELDS))} do not match "
            "projections.reporting_facts.CaseFact"
        )
    return RecordType(CaseFact, schema, _fact_record, _fact_from_record,
                      describe=lambda record: f"fact {record.get('fact_id')}")


def _fact_record(fact: CaseFact) -> dict[str, Any]:
    if not isinstance(fact.fact_id, UUID):
        raise EncodeError(f"fact_id {fact.fact_id!r} is not a UUID")
    record = {name: getattr(fact, name) for name in _FIELDS}
    record["refusal_reasons"] = list(fact.refusal_reasons)
    return record


def _fact_from_record(record: dict[str, Any]) -> CaseFact:
    values = {name: record[name] for name in _FIELDS}
    values["refusal_reasons"] = tuple(values["refusal_reasons"])
    return CaseFact(**values)


def fact_headers(fact: CaseFact, schema_id: int) -> list[tuple[str, bytes]]:
    """Kafka headers of a fact: what a reader needs before (or without) decoding it.

    Nothing here pairs a fact with its case event: `event_id` is the keyed fact id, the
    recorded time only its Swiss day, and there is no correlation or causation id (the
    relay adds `relay_epoch`, random per reporting relay epoch)."""
    return message_headers(FACT_RECORD, schema_id, event_id=fact.fact_id,
                           recorded_at=fact.recorded_at, kind=fact.fact,
                           effective_date=fact.effective_date)


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

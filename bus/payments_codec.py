"""Payment-run events on the payments topic: Avro (namespace `ch.nervenbahn.payments`) in the
Confluent wire format, and the payments relay's encoder.

`PaymentEventCodec` is the generic `bus.record_codec.RecordCodec` with one `RecordType` per
payment-run event type, built from `schemas/payments/*.avsc`; it registers each event type's
schema under `<topic>-ch.nervenbahn.payments.<EventType>` the first time it writes one, and
reads a message with the writer schema its id names into the current one, rebuilding the domain
event, so that `codec.decode(codec.encode(event).value) == event`. Payout accounts travel sealed
as they are stored (`SealedPayoutAccount`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from bus.envelope import event_id, message_headers
from bus.record_codec import (
    RecordCodec,
    RecordType,
    current_schema,
    field_mismatches,
    refuse_mismatches,
)
from bus.registry import SchemaRegistry
from bus.relay import Encoder, OutgoingMessage
from domain.commands import Actor
from domain.payments import RUN_EVENT_TYPES, PaymentRun, SealedPayoutAccount
from schemas import PAYMENTS_NAMESPACE, SCHEMA_DIR, payment_record_names, payment_schema

__all__ = [
    "PAYMENTS_NAMESPACE",
    "PaymentEventCodec",
    "payment_event_encoder",
    "payment_record_names",
    "payment_schema",
    "payment_schema_mismatches",
]

RENAMED = {"originator_id": "run_id", "originator_version": "version", "timestamp": "recorded_at"}
"""Domain event attributes that carry another name on the bus."""
_CONSTANT = {"originator_topic": get_topic(PaymentRun)}


def payment_schema_mismatches(
    event_class: type[Any], schema: dict[str, Any]
) -> list[tuple[str, str]]:
    """(field, problem) for each difference between a payment event class and its schema."""
    problems = field_mismatches(event_class, schema, RENAMED, _CONSTANT)
    name = event_class.__name__
    if (schema.get("name"), schema.get("namespace")) != (name, PAYMENTS_NAMESPACE):
        problems.append(("(schema)", f"record must be {PAYMENTS_NAMESPACE}.{name}"))
    return problems


class PaymentEventCodec(RecordCodec):
    """Encodes payment-run events for one topic and decodes them (Confluent wire format)."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        types = [_payment_type(cls, schema_dir) for cls in RUN_EVENT_TYPES]
        super().__init__(registry, topic, types, kind="a payment-run event type")


def _payment_type(cls: type[Any], schema_dir: Path) -> RecordType:
    """The record mapping of one payment-run event type; SchemaError if its schema does not
    match the class."""
    name = cls.__name__
    schema = current_schema("payments", name, schema_dir)
    refuse_mismatches(name, payment_schema_mismatches(cls, schema))
    attributes = {RENAMED.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
    fields = tuple((str(f["name"]), attributes[str(f["name"])]) for f in schema["fields"])

    def to_record(event: Any) -> dict[str, Any]:
        return {avro: _to_avro(getattr(event, attr)) for avro, attr in fields}

    def from_record(record: dict[str, Any]) -> Any:
        state = {attr: _from_avro(attr, record[avro]) for avro, attr in fields}
        state.update(_CONSTANT)
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    return RecordType(
        cls, schema, to_record, from_record,
        describe=lambda record: (
            f"{name} of run {record.get('run_id')} version {record.get('version')}"
        ),
    )


def _to_avro(value: Any) -> Any:
    if isinstance(value, Actor | SealedPayoutAccount):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return value


def _from_avro(attribute: str, value: Any) -> Any:
    if attribute == "actor":
        return Actor(**value)
    if attribute == "creditor" and value is not None:
        return SealedPayoutAccount(UUID(str(value["person_id"])), value["sealed"])
    return value


def payment_event_encoder(codec: PaymentEventCodec) -> Encoder:
    """The payments relay's encoder: each payment-run event, key = run id (a run's messages
    stay in order on one partition); payout-account and run-book events are not published."""

    def encode(event: Any) -> list[OutgoingMessage]:
        if not isinstance(event, RUN_EVENT_TYPES):
            return []
        encoded = codec.encode(event)
        headers = message_headers(
            encoded.event_type, encoded.schema_id,
            event_id=event_id(event.originator_id, event.originator_version),
            recorded_at=event.timestamp,
        )
        return [(str(event.originator_id).encode(), encoded.value, headers)]

    return encode

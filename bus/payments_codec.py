"""Payment-run events on the payments topic: Avro (namespace `ch.nervenbahn.payments`) in the
Confluent wire format, and the payments relay's encoder.

`PaymentEventCodec` is built once per topic from `schemas/payments/*.avsc`; it registers each
event type's schema under `<topic>-ch.nervenbahn.payments.<EventType>` the first time it
writes one, and reads a message with the writer schema its id names into the current one,
rebuilding the domain event, so that `codec.decode(codec.encode(event).value) == event`.
Payout accounts travel sealed as they are stored (`SealedPayoutAccount`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
import fastavro.validation
from eventsourcing.utils import get_topic

from bus.envelope import EncodedEvent, event_id
from bus.errors import DecodeError, EncodeError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry
from bus.relay import PRODUCER_NAME, Encoder, OutgoingMessage
from bus.wire import read_record, schema_id_of, write_record
from domain.commands import Actor
from domain.payments import RUN_EVENT_TYPES, PaymentRun, SealedPayoutAccount
from schemas import SCHEMA_DIR, SchemaFileError, record_name, subject_for

__all__ = [
    "PAYMENTS_NAMESPACE",
    "PaymentEventCodec",
    "payment_event_encoder",
    "payment_record_names",
    "payment_schema",
    "payment_schema_mismatches",
]

PAYMENTS_NAMESPACE = "ch.nervenbahn.payments"
RENAMED = {"originator_id": "run_id", "originator_version": "version", "timestamp": "recorded_at"}
"""Domain event attributes that carry another name on the bus."""
_CONSTANT = {"originator_topic": get_topic(PaymentRun)}
_PARSE_ERRORS = (
    fastavro.schema.SchemaParseException,
    fastavro.schema.UnknownType,
    ValueError,
    TypeError,
    KeyError,
)


def payment_record_names(schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The payment event types that have a current schema file, sorted."""
    return sorted(path.stem for path in (schema_dir / "payments").glob("*.avsc"))


def payment_schema(name: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The current schema of payment event type `name` (self-contained)."""
    path = schema_dir / "payments" / f"{name}.avsc"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaFileError(f"{path}: no such schema file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaFileError(f"{path}: not a readable JSON schema ({exc})") from exc
    if not isinstance(schema, dict):
        raise SchemaFileError(f"{path}: the schema must be a JSON object (a record)")
    return schema


def payment_schema_mismatches(
    event_class: type[Any], schema: dict[str, Any]
) -> list[tuple[str, str]]:
    """(field, problem) for each difference between a payment event class and its schema."""
    domain = {
        RENAMED.get(f.name, f.name)
        for f in dataclasses.fields(event_class)
        if f.name not in _CONSTANT
    }
    fields = [str(f.get("name")) for f in schema.get("fields", [])]
    name = event_class.__name__
    problems = [(f, f"the domain event {name} has it, the schema does not")
                for f in sorted(domain - set(fields))]
    problems += [(f, f"the schema has it, the domain event {name} does not")
                 for f in fields if f not in domain]
    if (schema.get("name"), schema.get("namespace")) != (name, PAYMENTS_NAMESPACE):
        problems.append(("(schema)", f"record must be {PAYMENTS_NAMESPACE}.{name}"))
    return problems


@dataclasses.dataclass(frozen=True)
class _Type:
    event_class: type[Any]
    schema: dict[str, Any]
    parsed: Any
    fields: tuple[tuple[str, str], ...]
    """(Avro name, attribute) of every field."""


class PaymentEventCodec:
    """Encodes payment-run events for one topic and decodes them (Confluent wire format)."""

    def __init__(
        self, registry: SchemaRegistry, topic: str, *, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        self._registry = registry
        self._topic = topic
        self._types = {cls.__name__: self._build(cls, schema_dir) for cls in RUN_EVENT_TYPES}
        self._by_fullname = {
            record_name(name, PAYMENTS_NAMESPACE): name for name in self._types
        }
        self._schema_ids: dict[str, int] = {}
        self._writers: dict[int, tuple[str, Any]] = {}

    @property
    def topic(self) -> str:
        """The topic whose subjects this codec registers its schemas under."""
        return self._topic

    def subject(self, event_type: str) -> str:
        """The registry subject of `event_type` on this codec's topic."""
        return subject_for(self._topic, event_type, PAYMENTS_NAMESPACE)

    def register_schemas(self) -> dict[str, int]:
        """Register every payment event schema now; their ids by type."""
        return {name: self._schema_id(name) for name in self._types}

    def encode(self, event: Any) -> EncodedEvent:
        """The event as a message value; EncodeError if it does not fit its schema."""
        name = type(event).__name__
        kind = self._types.get(name)
        if kind is None or type(event) is not kind.event_class:
            raise EncodeError(f"{name} is not a payment-run event type")
        record = {avro: _to_avro(getattr(event, attr)) for avro, attr in kind.fields}
        schema_id = self._schema_id(name)
        what = f"{name} of run {record.get('run_id')} version {record.get('version')}"
        return EncodedEvent(write_record(schema_id, kind.parsed, record, what), schema_id, name)

    def decode(self, value: bytes) -> Any:
        """The domain event in a message value; DecodeError if it is not a payment event."""
        schema_id = schema_id_of(value)
        name, writer = self._writer(schema_id)
        kind = self._types[name]
        record = read_record(value, writer, kind.parsed, f"{name} (schema id {schema_id})")
        try:
            state = {attr: _from_avro(attr, record[avro]) for avro, attr in kind.fields}
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"{name}: the record does not make a domain event: {exc}") from exc
        state.update(_CONSTANT)
        event = object.__new__(kind.event_class)
        object.__setattr__(event, "__dict__", state)
        return event

    def _build(self, cls: type[Any], schema_dir: Path) -> _Type:
        name = cls.__name__
        try:
            schema = payment_schema(name, schema_dir)
            parsed = fastavro.parse_schema(schema)
        except SchemaFileError as exc:
            raise SchemaError(f"{name}: {exc}") from exc
        except _PARSE_ERRORS as exc:
            raise SchemaError(f"{name}: not a valid Avro schema: {exc}") from exc
        mismatches = payment_schema_mismatches(cls, schema)
        if mismatches:
            raise SchemaError(f"{name}: {mismatches[0][0]}: {mismatches[0][1]}")
        attributes = {RENAMED.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
        fields = tuple((str(f["name"]), attributes[str(f["name"])]) for f in schema["fields"])
        return _Type(cls, schema, parsed, fields)

    def _schema_id(self, name: str) -> int:
        schema_id = self._schema_ids.get(name)
        if schema_id is None:
            kind = self._types[name]
            schema_id = self._registry.register(self.subject(name), kind.schema)
            self._schema_ids[name] = schema_id
            self._writers.setdefault(schema_id, (name, kind.parsed))
        return schema_id

    def _writer(self, schema_id: int) -> tuple[str, Any]:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._registry.schema_by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise DecodeError(f"unknown schema id {schema_id}: {exc}") from exc
        fullname = f"{schema.get('namespace', '')}.{schema.get('name', '')}"
        name = self._by_fullname.get(fullname)
        if name is None:
            raise DecodeError(f"schema id {schema_id} is {fullname}, not a payment event type")
        try:
            parsed = fastavro.parse_schema(schema)
        except _PARSE_ERRORS as exc:
            raise DecodeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        self._writers[schema_id] = (name, parsed)
        return name, parsed


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
        headers = [
            ("event_type", encoded.event_type.encode()),
            ("event_id", str(event_id(event.originator_id, event.originator_version)).encode()),
            ("schema_id", str(encoded.schema_id).encode()),
            ("recorded_at", event.timestamp.isoformat().encode()),
            ("producer", PRODUCER_NAME.encode()),
        ]
        return [(str(event.originator_id).encode(), encoded.value, headers)]

    return encode

"""Case events as Avro in the Confluent wire format, and back: the case events' record mapping.

`EventCodec` is the generic `bus.record_codec.RecordCodec` (schema parsed once, registered on
first write, writer schemas cached by id, one framing reader and writer) with one `RecordType`
per domain event type, built from `schemas/case/*.avsc`: it rebuilds the domain event as
eventsourcing's `Mapper` does, so that `codec.decode(codec.encode(event).value) == event`.

Personal data never leaves the core in clear: persons are written sealed (as stored, or sealed
with the `seal` the core passes, i.e. `vault.encrypt`). Decoding gives `SealedPersonalData`
when the codec has the core's vault, and `SealedPerson` (id and sealed text) otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from bus.envelope import EncodedEvent, SealedPerson, event_id
from bus.errors import EncodeError, SchemaError
from bus.record_codec import (
    RecordCodec,
    RecordType,
    current_schema,
    field_mismatches,
    refuse_mismatches,
)
from bus.registry import SchemaRegistry
from domain.budget import BudgetLine
from domain.case import Case
from domain.commands import Actor
from domain.events import EVENT_TYPES, ClaimFigures
from domain.identity import UNKNOWN_IDENTITY
from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)
from schemas import SCHEMA_DIR, record_name

__all__ = [
    "CASE_EVENTS",
    "EncodedEvent",
    "EventCodec",
    "EventFamily",
    "Seal",
    "SealedPerson",
    "event_id",
    "schema_mismatches",
]

Seal = Callable[[PersonalData], Mapping[str, str]]
"""Seals one person's data for the bus: the core passes `PersonalDataVault.encrypt`."""


@dataclasses.dataclass(frozen=True)
class EventFamily:
    """The events of one kind of aggregate as they travel on the bus: their schema group, the
    name their aggregate's id carries, and the domain value types their records hold (case
    events; benefit-application events, `bus.benefits_codec`)."""

    group: str
    """The schema folder of their current schemas (`schemas.SCHEMA_GROUPS`)."""
    aggregate: type[Any]
    """The aggregate class (its topic is the same for every event: not sent, restored)."""
    id_field: str
    """The name of `originator_id` on the bus, e.g. `case_id`."""
    value_records: Mapping[str, type[Any]]
    """Full Avro record name → the domain value type it holds (besides sealed persons)."""
    event_types: tuple[type[Any], ...]
    """Every event type of the family (the codec's default)."""
    kind: str
    """What the codec reads, in errors, e.g. "a case event type of this codec"."""
    store_only: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Attributes the store keeps and the bus does not carry, with what a consumer reads
    instead (the case events' established identity and import origin: audit metadata)."""

    @property
    def renamed(self) -> dict[str, str]:
        """Domain event attributes that carry another name on the bus."""
        return {"originator_id": self.id_field, "originator_version": "version",
                "timestamp": "recorded_at"}

    @property
    def constants(self) -> dict[str, Any]:
        """Domain event attributes that are the same for every event (not sent; restored on
        decode)."""
        return {"originator_topic": get_topic(self.aggregate), **self.store_only}


CASE_EVENTS = EventFamily(
    group="case",
    aggregate=Case,
    id_field="case_id",
    value_records={record_name("Actor"): Actor, record_name("BudgetLine"): BudgetLine,
                   record_name("ClaimFigures"): ClaimFigures},
    event_types=tuple(EVENT_TYPES),
    kind="a case event type of this codec",
    store_only={"recorded_by": UNKNOWN_IDENTITY, "import_origin": None},
)
"""The case events (`schemas/case/`, namespace ch.nervenbahn.casework)."""

RENAMED = CASE_EVENTS.renamed
"""Case event attributes that carry another name on the bus."""

_PERSON_RECORD = record_name("SealedPersonalData")

Convert = Callable[[Any], Any]


def schema_mismatches(
    event_class: type[Any], schema: dict[str, Any], family: EventFamily = CASE_EVENTS
) -> list[tuple[str, str]]:
    """(field, problem) for each difference between a domain event class and its schema."""
    problems = field_mismatches(event_class, schema, family.renamed, family.constants)
    if schema.get("name") != event_class.__name__:
        problems.append(("(schema)", f"record name {schema.get('name')!r} is not the class name"))
    return problems


@dataclasses.dataclass(frozen=True)
class _Field:
    avro_name: str
    attribute: str
    to_avro: Convert | None
    from_avro: Convert | None


class EventCodec(RecordCodec):
    """Encodes the events of one family (by default the case events) for one topic and decodes
    them, in the Confluent wire format."""

    def __init__(
        self,
        registry: SchemaRegistry,
        topic: str,
        *,
        seal: Seal | None = None,
        vault: PersonalDataVault | None = None,
        event_types: Sequence[type[Any]] | None = None,
        schema_dir: Path = SCHEMA_DIR,
        family: EventFamily = CASE_EVENTS,
    ) -> None:
        self._vault = vault
        self._seal: Seal | None = seal or (vault.encrypt if vault is not None else None)
        self._family = family
        chosen = family.event_types if event_types is None else event_types
        types = [self._event_type(cls, schema_dir) for cls in chosen]
        super().__init__(registry, topic, types, kind=family.kind)

    # --- the mapping of one event type ------------------------------------------------------

    def _event_type(self, cls: type[Any], schema_dir: Path) -> RecordType:
        name, family = cls.__name__, self._family
        schema = current_schema(family.group, name, schema_dir)
        refuse_mismatches(name, schema_mismatches(cls, schema, family))
        attributes = {family.renamed.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
        named: dict[str, dict[str, Any]] = {}
        fields = tuple(
            _Field(field["name"], attributes[field["name"]],
                   *self._converters(field["type"], named, name))
            for field in schema["fields"]
        )
        constants = {
            attribute: value
            for attribute, value in family.constants.items()
            if attribute in {f.name for f in dataclasses.fields(cls)}
        }
        return RecordType(
            cls, schema,
            to_record=lambda event: _record(name, fields, event),
            from_record=lambda record: _event(cls, fields, constants, record),
            describe=lambda record: (
                f"{name} of {family.id_field.removesuffix('_id')} {record.get(family.id_field)}"
                f" version {record.get('version')}"
            ),
        )

    def _converters(
        self, node: Any, named: dict[str, dict[str, Any]], event_type: str
    ) -> tuple[Convert | None, Convert | None]:
        """(to Avro, from Avro) for one schema node; None where the value passes as it is."""
        if isinstance(node, str):
            node = named.get(node, node)
        if isinstance(node, list):
            return self._optional(node, named, event_type)
        if not isinstance(node, dict):
            return None, None
        kind = node.get("type")
        if kind == "record":
            return self._record_converters(node, named, event_type)
        if kind == "array":
            to_item, from_item = self._converters(node["items"], named, event_type)
            return _each(to_item), _each(from_item)
        if kind == "string" and node.get("logicalType") == "uuid":
            return _uuid_check, None
        if kind == "bytes" and node.get("logicalType") == "decimal":
            return _decimal_check(int(node["precision"]), int(node.get("scale", 0))), None
        if isinstance(kind, dict | list):
            return self._converters(kind, named, event_type)
        return None, None

    def _record_converters(
        self, node: dict[str, Any], named: dict[str, dict[str, Any]], event_type: str
    ) -> tuple[Convert | None, Convert | None]:
        name = str(node["name"])
        fullname = name if "." in name else f"{node.get('namespace', '')}.{name}"
        named.setdefault(fullname, node)
        if fullname == _PERSON_RECORD:
            return self._person_to_avro, self._person_from_avro
        value_class = self._family.value_records.get(fullname)
        if value_class is None:
            raise SchemaError(f"{event_type}: no domain value type for record {fullname}")
        inner = [
            (field["name"], *self._converters(field["type"], named, event_type))
            for field in node["fields"]
        ]

        def to_avro(value: Any) -> dict[str, Any]:
            return {key: _apply(to, getattr(value, key)) for key, to, _ in inner}

        def from_avro(data: dict[str, Any]) -> Any:
            return value_class(**{key: _apply(back, data[key]) for key, _, back in inner})

        return to_avro, from_avro

    def _optional(
        self, branches: list[Any], named: dict[str, dict[str, Any]], event_type: str
    ) -> tuple[Convert | None, Convert | None]:
        others = [branch for branch in branches if branch != "null"]
        if len(others) != 1:
            converters = [self._converters(branch, named, event_type) for branch in others]
            if any(pair != (None, None) for pair in converters):
                raise SchemaError(f"{event_type}: only [null, T] unions may hold records")
            return None, None
        to, back = self._converters(others[0], named, event_type)
        return _unless_none(to), _unless_none(back)

    def _person_to_avro(self, person: Any) -> dict[str, Any]:
        if isinstance(person, SealedPersonalData):
            return _sealed_record(person.sealed)
        if isinstance(person, SealedPerson):
            return {"person_id": person.person_id, "sealed": person.sealed}
        if isinstance(person, PersonalData):
            if self._seal is None:
                raise EncodeError(
                    f"person {person.person_id} is in clear and this codec cannot seal it; "
                    "build the codec with seal=vault.encrypt (or relay stored events)"
                )
            return _sealed_record(self._seal(person))
        if isinstance(person, ErasedPersonalData):
            raise EncodeError(
                f"person {person.person_id} was erased; events carry persons sealed as stored"
            )
        raise EncodeError(f"not a person: {type(person).__name__}")

    def _person_from_avro(self, data: dict[str, Any]) -> SealedPersonalData | SealedPerson:
        person_id: UUID = data["person_id"]
        if self._vault is None:
            return SealedPerson(person_id, data["sealed"])
        sealed = {"person_id": person_id.hex, "sealed": data["sealed"]}
        return SealedPersonalData(sealed, self._vault)


def _record(name: str, fields: tuple[_Field, ...], event: Any) -> dict[str, Any]:
    """The Avro record of one case event."""
    record: dict[str, Any] = {}
    for field in fields:
        try:
            value = getattr(event, field.attribute)
        except AttributeError:
            raise EncodeError(f"{name} has no {field.attribute}") from None
        record[field.avro_name] = _apply(field.to_avro, value)
    return record


def _event(
    cls: type[Any], fields: tuple[_Field, ...], constants: dict[str, Any], record: dict[str, Any]
) -> Aggregate.Event:
    """The domain event of one record, built as eventsourcing's `Mapper` builds it."""
    state = {f.attribute: _apply(f.from_avro, record[f.avro_name]) for f in fields}
    state.update(constants)
    event: Aggregate.Event = object.__new__(cls)
    object.__setattr__(event, "__dict__", state)
    return event


def _sealed_record(sealed: Mapping[str, str]) -> dict[str, Any]:
    try:
        return {"person_id": UUID(sealed["person_id"]), "sealed": sealed["sealed"]}
    except (KeyError, ValueError, TypeError) as exc:
        raise EncodeError(f"sealed personal data is malformed: {exc}") from exc


def _apply(convert: Convert | None, value: Any) -> Any:
    return value if convert is None else convert(value)


def _each(convert: Convert | None) -> Convert | None:
    if convert is None:
        return None
    return lambda values: [convert(value) for value in values]


def _unless_none(convert: Convert | None) -> Convert | None:
    if convert is None:
        return None
    return lambda value: None if value is None else convert(value)


def _uuid_check(value: Any) -> UUID:
    """Refuse ids that are not UUIDs (fastavro would write any string)."""
    if not isinstance(value, UUID):
        raise EncodeError(f"{value!r} does not fit a uuid: it is a {type(value).__name__}")
    return value


def _decimal_check(precision: int, scale: int) -> Convert:
    """Refuse amounts the schema's decimal cannot hold (fastavro checks the scale only)."""

    def check(amount: Any) -> Any:
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise EncodeError(f"amount {amount!r} is not a finite Decimal")
        exponent = amount.as_tuple().exponent
        digits = len(amount.scaleb(scale).to_integral_value().as_tuple().digits)
        if (isinstance(exponent, int) and -exponent > scale) or digits > precision:
            raise EncodeError(
                f"amount {amount} does not fit decimal({precision},{scale})"
            )
        return amount

    return check

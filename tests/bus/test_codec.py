"""The event codec: domain event → Confluent-framed Avro → the same domain event.

Round trips use real events, recorded by the case service (see conftest). Exact bytes are
pinned for hand-built events; malformed input must raise DecodeError, whatever fastavro made
of it underneath.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import shutil
import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import fastavro
import pytest

from bus.codec import EncodedEvent, EventCodec, SealedPerson, event_id
from bus.compatibility import SchemaProblem, canonical_text
from bus.envelope import event_id_text
from bus.errors import (
    DecodeError,
    EncodeError,
    RegistryError,
    SchemaError,
    SchemaNotFoundError,
)
from bus.registry import SchemaRegistry, SchemaVersion
from bus.registry_sqlite import SQLiteSchemaRegistry
from domain.budget import BudgetLine
from domain.case import Case, Recording
from domain.commands import Actor
from domain.events import (
    EVENT_TYPES,
    BudgetChanged,
    CaseClosed,
    CaseEvent,
    CaseOpened,
    GoalAchieved,
)
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity, ImportOrigin
from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)
from domain.reference import load_reference_data
from schemas import SCHEMA_DIR, event_schema
from tests.domain.case_desk import Desk
from tests.domain.fakes import InMemoryKeyStore

TOPIC = "casework.events"


class CountingRegistry(SchemaRegistry):
    """A fake registry handing out ids from `first_id` on, counting what it is asked."""

    def __init__(self, first_id: int = 1) -> None:
        self._ids = itertools.count(first_id)
        self.by_id: dict[int, dict[str, Any]] = {}
        self._by_text: dict[str, int] = {}
        self.registered: list[str] = []
        self.looked_up: list[int] = []

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        self.registered.append(subject)
        text = canonical_text(schema)
        if text not in self._by_text:
            self._by_text[text] = next(self._ids)
            self.by_id[self._by_text[text]] = schema
        return self._by_text[text]

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        self.looked_up.append(schema_id)
        if schema_id not in self.by_id:
            raise SchemaNotFoundError(f"no schema with id {schema_id}")
        return self.by_id[schema_id]

    def versions(self, subject: str) -> list[SchemaVersion]:
        return []

    def subjects(self) -> list[str]:
        return sorted(set(self.registered))

    def check_compatibility(self, subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
        return []


class UnreachableRegistry(CountingRegistry):
    """A registry whose server is down."""

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        raise RegistryError("schema registry unreachable", url="http://registry:8081")


# --- round trips of recorded events ---------------------------------------------------------


def events_of(recorded: list[Any], name: str) -> list[Any]:
    """The recorded events of one type (there is at least one of every type)."""
    found = [event for event in recorded if type(event).__name__ == name]
    assert found, f"the recorded scenario has no {name}"
    return found


@pytest.mark.parametrize("name", [cls.__name__ for cls in EVENT_TYPES])
def test_every_event_type_round_trips_unchanged(
    name: str, recorded_events: list[Any], events_vault: PersonalDataVault,
    schema_registry: SQLiteSchemaRegistry,
) -> None:
    writer = EventCodec(schema_registry, TOPIC, vault=events_vault)
    reader = EventCodec(schema_registry, TOPIC, vault=events_vault)  # a fresh cache
    for event in events_of(recorded_events, name):
        encoded = writer.encode(event)
        decoded = reader.decode(encoded.value)
        assert type(decoded) is type(event)
        assert decoded == event
        assert vars(decoded).keys() == vars(event).keys()
        assert encoded.event_type == name
        assert encoded.value[:5] == b"\x00" + struct.pack(">I", encoded.schema_id)


def test_consumers_outside_the_core_get_persons_sealed(
    recorded_events: list[Any], schema_registry: SQLiteSchemaRegistry,
    events_vault: PersonalDataVault,
) -> None:
    core = EventCodec(schema_registry, TOPIC, vault=events_vault)
    consumer = EventCodec(schema_registry, TOPIC)
    opened = [e for e in recorded_events if isinstance(e, CaseOpened) and e.other_members]
    for event in opened:
        decoded = consumer.decode(core.encode(event).value)
        persons = [decoded.applicant, *decoded.other_members]
        stored = [event.applicant, *event.other_members]
        assert len(persons) == 3
        assert all(isinstance(person, SealedPerson) for person in persons)
        assert [(p.person_id.hex, p.sealed) for p in persons] == [
            (s.sealed["person_id"], s.sealed["sealed"]) for s in stored
        ]


def test_events_without_persons_decode_equal_without_the_vault(
    recorded_events: list[Any], schema_registry: SQLiteSchemaRegistry,
) -> None:
    codec = EventCodec(schema_registry, TOPIC)
    for event in recorded_events:
        if not isinstance(event, CaseOpened):
            assert codec.decode(codec.encode(event).value) == event


def test_stored_persons_are_relayed_exactly_as_sealed_in_the_store(
    recorded_events: list[Any], events_vault: PersonalDataVault,
) -> None:
    codec = EventCodec(CountingRegistry(), TOPIC, vault=events_vault)
    event = next(e for e in recorded_events if isinstance(e, CaseOpened))
    decoded = codec.decode(codec.encode(event).value)
    assert isinstance(decoded.applicant, SealedPersonalData)
    assert decoded.applicant.sealed == event.applicant.sealed  # not sealed anew
    assert decoded.applicant.open() == event.applicant.open()


# --- persons in clear must be sealed --------------------------------------------------------


@pytest.fixture
def fresh_vault() -> PersonalDataVault:
    """A core vault over an in-memory key store."""
    return PersonalDataVault(InMemoryKeyStore(), bytes(range(32)))


def pending_opening(desk: Desk) -> CaseOpened:
    """A CaseOpened as the aggregate makes it: persons still in clear (PersonalData)."""
    command = desk.commands("open_case")
    case = Case.open(command, Recording(desk.clock()), load_reference_data())  # type: ignore[arg-type]
    event = case.pending_events[0]
    assert isinstance(event, CaseOpened)
    assert isinstance(event.applicant, PersonalData)
    return event


def test_persons_in_clear_are_sealed_before_they_leave(
    recording_desk: Desk, fresh_vault: PersonalDataVault,
) -> None:
    event = pending_opening(recording_desk)
    codec = EventCodec(CountingRegistry(), TOPIC, seal=fresh_vault.encrypt, vault=fresh_vault)
    value = codec.encode(event).value
    assert event.applicant.given_name.encode() not in value
    assert event.applicant.ahvn13.encode() not in value
    assert codec.decode(value) == event


def test_persons_in_clear_are_refused_without_a_seal(recording_desk: Desk) -> None:
    codec = EventCodec(CountingRegistry(), TOPIC)
    with pytest.raises(EncodeError, match="in clear"):
        codec.encode(pending_opening(recording_desk))


def test_an_erased_person_is_refused(recording_desk: Desk, fresh_vault: PersonalDataVault) -> None:
    event = pending_opening(recording_desk)
    erased = dict(vars(event), applicant=ErasedPersonalData(event.applicant.person_id))
    object.__setattr__(event, "__dict__", erased)
    codec = EventCodec(CountingRegistry(), TOPIC, seal=fresh_vault.encrypt)
    with pytest.raises(EncodeError, match="erased"):
        codec.encode(event)


# --- exact bytes ----------------------------------------------------------------------------

ACTOR = Actor(user_id="u1", role="system", organisation="so-canton")
RECORDED = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def goal_achieved() -> GoalAchieved:
    """A hand-built event with every envelope field."""
    return GoalAchieved(
        originator_id=UUID(int=1), originator_version=2, timestamp=RECORDED, actor=ACTOR,
        correlation_id=UUID(int=3), effective_date=date(2026, 1, 5), imported=False,
        recorded_by=UNKNOWN_IDENTITY, import_origin=None, goal_id=UUID(int=4),
    )


def budget_changed() -> BudgetChanged:
    """A hand-built event with an array of records and CHF amounts (one negative)."""
    return BudgetChanged(
        originator_id=UUID(int=1), originator_version=2, timestamp=RECORDED, actor=ACTOR,
        correlation_id=UUID(int=3), effective_date=date(2026, 1, 5), imported=True,
        recorded_by=UNKNOWN_IDENTITY, import_origin=None,
        lines=[BudgetLine("housing", Decimal("1450.50"), "rent")], total=Decimal("-0.05"),
        reason="correction", household_size=2, changed=["housing"],
    )


ENVELOPE = (
    b"\x48" + b"00000000-0000-0000-0000-000000000001"  # case_id: length 36, text
    + b"\x04"  # version: 2 (zig-zag varint)
    + bytes.fromhex("80c8a5d6fbe7a306")  # recorded_at: 1767601800000000 µs
    + bytes.fromhex("d4bf02")  # effective_date: 20458 days since 1970-01-01
    + b"\x04u1" + b"\x0csystem" + b"\x12so-canton"  # actor: user_id, role, organisation
    + b"\x48" + b"00000000-0000-0000-0000-000000000003"  # correlation_id
)


@pytest.mark.parametrize(
    ("event", "first_id", "expected"),
    [
        pytest.param(
            goal_achieved(), 1,
            b"\x00" + b"\x00\x00\x00\x01"  # magic byte, schema id 1 (big-endian)
            + ENVELOPE + b"\x00"  # imported: false
            + b"\x48" + b"00000000-0000-0000-0000-000000000004",  # goal_id
            id="schema-id-1",
        ),
        pytest.param(
            goal_achieved(), 0x01020304,
            b"\x00" + b"\x01\x02\x03\x04"
            + ENVELOPE + b"\x00" + b"\x48" + b"00000000-0000-0000-0000-000000000004",
            id="schema-id-big-endian",
        ),
        pytest.param(
            budget_changed(), 7,
            b"\x00" + b"\x00\x00\x00\x07"
            + ENVELOPE + b"\x01"  # imported: true
            + b"\x02"  # lines: a block of 1 item
            + b"\x0ehousing" + b"\x06" + bytes.fromhex("02369a") + b"\x08rent"  # 145050 cents
            + b"\x00"  # end of the array
            + b"\x02\xfb"  # total: -5 cents, one byte, two's complement
            + b"\x14correction"
            + b"\x04"  # household_size: 2
            + b"\x02" + b"\x02" + b"\x0ehousing" + b"\x00",  # changed: branch 1 (array), 1 item
            id="amounts-and-lines",
        ),
    ],
)
def test_encodes_exact_confluent_framed_bytes(event: Any, first_id: int, expected: bytes) -> None:
    codec = EventCodec(CountingRegistry(first_id), TOPIC)
    encoded = codec.encode(event)
    assert encoded == EncodedEvent(expected, first_id, type(event).__name__)
    assert codec.decode(expected) == event


def test_the_established_identity_and_import_origin_stay_in_the_store() -> None:
    """Audit metadata is not carried on the bus: a consumer reads it as unknown / None."""
    origin = ImportOrigin(ACTOR, RECORDED, "legacy.jsonl", "ab" * 32)
    event = budget_changed()
    object.__setattr__(event, "__dict__", {
        **vars(event), "recorded_by": EstablishedIdentity("os", "alice", "host-1"),
        "import_origin": origin})
    codec = EventCodec(CountingRegistry(), TOPIC)

    value = codec.encode(event).value
    decoded = codec.decode(value)

    assert b"alice" not in value and b"legacy.jsonl" not in value
    assert (decoded.recorded_by, decoded.import_origin) == (UNKNOWN_IDENTITY, None)
    assert (decoded.lines, decoded.total) == (event.lines, event.total)


def test_registers_each_schema_once_and_decodes_its_own_ids_without_lookup() -> None:
    registry = CountingRegistry()
    codec = EventCodec(registry, TOPIC)
    for _ in range(3):
        codec.decode(codec.encode(goal_achieved()).value)
    assert registry.registered == [f"{TOPIC}-ch.nervenbahn.casework.GoalAchieved"]
    assert registry.looked_up == []


def test_register_schemas_registers_every_event_type_up_front() -> None:
    registry = CountingRegistry()
    ids = EventCodec(registry, TOPIC).register_schemas()
    assert sorted(ids) == sorted(cls.__name__ for cls in EVENT_TYPES)
    assert len(set(ids.values())) == len(EVENT_TYPES)


@pytest.mark.parametrize(
    ("case_id", "version", "expected"),
    [
        (UUID(int=1), 1, UUID("b37b4805-d4e7-51a6-9ace-ee8d32205118")),
        (UUID(int=1), 2, UUID("b172319f-0f93-5b9d-bb80-e6d3eb7b0296")),
        (UUID("f7999c92-385a-42f5-b155-c6d247a70451"), 17,
         UUID("1d0f8eb2-bf2e-5514-bb8a-134ddad16e12")),
    ],
)
def test_event_id_is_deterministic(case_id: UUID, version: int, expected: UUID) -> None:
    # Any producer or consumer, in any language, computes the same id: UUID v5 of
    # "<case id>/<version>" in the namespace uuid5(NAMESPACE_URL, "urn:nervenbahn:casework:event").
    namespace = uuid5(NAMESPACE_URL, "urn:nervenbahn:casework:event")
    assert event_id(case_id, version) == expected == uuid5(namespace, f"{case_id}/{version}")


def test_event_id_text_is_the_event_ids_text() -> None:
    rng = random.Random(17)
    for _ in range(2000):
        case_id, version = UUID(int=rng.getrandbits(128)), rng.randrange(1, 100_000)
        assert event_id_text(case_id, version) == str(event_id(case_id, version))
        assert event_id_text(str(case_id), version) == str(event_id(case_id, version))


# --- what must not encode -------------------------------------------------------------------


def with_state(event: Any, **changes: Any) -> Any:
    """A copy of `event` with some attributes changed (bypassing the frozen dataclass)."""
    copy = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", {**vars(event), **changes})
    return copy


@pytest.mark.parametrize(
    ("event", "match"),
    [
        pytest.param(object(), "not a case event", id="not-an-event"),
        pytest.param(with_state(budget_changed(), total=Decimal("1.005")), "decimal",
                     id="three-decimals"),
        pytest.param(with_state(budget_changed(), total=Decimal("12345678901.00")), "decimal",
                     id="thirteen-digits"),
        pytest.param(with_state(budget_changed(), total=Decimal("NaN")), "finite",
                     id="not-a-number"),
        pytest.param(with_state(budget_changed(), household_size=2**40), "does not fit",
                     id="int-overflow"),
        pytest.param(with_state(goal_achieved(), goal_id="not-a-uuid-at-all"), "does not fit",
                     id="not-a-uuid"),
        pytest.param(with_state(goal_achieved(), imported="yes"), "does not fit",
                     id="not-a-boolean"),
    ],
)
def test_values_that_do_not_fit_are_refused(event: Any, match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        EventCodec(CountingRegistry(), TOPIC).encode(event)


# --- what must not decode -------------------------------------------------------------------


@pytest.fixture
def codec_and_value() -> tuple[EventCodec, bytes, CountingRegistry]:
    """A codec, a valid message of it, and its registry (which also knows a foreign schema)."""
    registry = CountingRegistry()
    codec = EventCodec(registry, TOPIC)
    value = codec.encode(goal_achieved()).value
    registry.register("other", {"type": "record", "name": "Invoice", "fields": []})
    return codec, value, registry


HEADER = b"\x00\x00\x00\x00\x01"


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        pytest.param(lambda v: b"", None, id="empty"),
        pytest.param(lambda v: b"\x00\x00\x00", None, id="shorter-than-the-header"),
        pytest.param(lambda v: b"\x01" + v[1:], None, id="wrong-magic-byte"),
        pytest.param(lambda v: b"{\"case_id\": 1}", None, id="json-not-avro"),
        pytest.param(lambda v: "text", None, id="not-bytes"),
        pytest.param(lambda v: b"\x00\x00\x00\x03\xe7" + v[5:], SchemaNotFoundError,
                     id="unknown-schema-id"),
        pytest.param(lambda v: b"\x00\x00\x00\x00\x02" + v[5:], None,
                     id="schema-id-of-another-record"),
        pytest.param(lambda v: v[:-3], EOFError, id="truncated"),
        pytest.param(lambda v: v[:5], EOFError, id="header-only"),
        pytest.param(lambda v: v + b"\x00", None, id="trailing-byte"),
        pytest.param(lambda v: HEADER + b"\x03" + v[6:], EOFError, id="negative-length"),
        pytest.param(lambda v: HEADER + b"\x48" + b"\xff" * 36 + v[42:], UnicodeDecodeError,
                     id="invalid-utf-8"),
        pytest.param(lambda v: HEADER + b"\x48" + b"x" * 36 + v[42:], ValueError,
                     id="not-a-uuid"),
        pytest.param(lambda v: HEADER + b"\xff" * 12, None, id="garbage"),
    ],
)
def test_malformed_messages_raise_decode_error(
    codec_and_value: tuple[EventCodec, bytes, CountingRegistry],
    make: Any,
    cause: type[BaseException] | None,
) -> None:
    codec, value, _ = codec_and_value
    with pytest.raises(DecodeError) as refused:
        codec.decode(make(value))
    if cause is not None:
        assert isinstance(refused.value.__cause__, cause)


def test_unreachable_registry_is_not_a_decode_error() -> None:
    value = EventCodec(CountingRegistry(), TOPIC).encode(goal_achieved()).value
    with pytest.raises(RegistryError) as failed:
        EventCodec(UnreachableRegistry(), TOPIC).decode(value)
    assert not isinstance(failed.value, DecodeError)


# --- schema evolution -----------------------------------------------------------------------


class NoteAdded(CaseEvent):
    """A test-only event type whose schema gained a field (with a default) in version 2."""

    note: str


def note_schema(*, with_note: bool) -> dict[str, Any]:
    """NoteAdded's schema: v1 is the bare envelope, v2 adds `note` with a default."""
    schema = event_schema("CaseClosed")
    schema["name"] = "NoteAdded"
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "reason"]
    if with_note:
        schema["fields"].append({"name": "note", "type": "string", "default": "(none)",
                                 "doc": "Added in version 2."})
    return schema


def test_old_messages_are_read_with_the_current_schema(tmp_path: Path) -> None:
    (tmp_path / "case").mkdir()
    shutil.copy(SCHEMA_DIR / "case" / "_types.avsc", tmp_path / "case")
    current = note_schema(with_note=True)
    (tmp_path / "case" / "NoteAdded.avsc").write_text(json.dumps(current))
    registry = CountingRegistry()
    subject = f"{TOPIC}-ch.nervenbahn.casework.NoteAdded"
    v1_id = registry.register(subject, note_schema(with_note=False))
    old = goal_achieved()
    record = {"case_id": old.originator_id, "version": 2, "recorded_at": RECORDED,
              "effective_date": date(2026, 1, 5), "actor": vars(ACTOR),
              "correlation_id": UUID(int=3), "imported": False}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(note_schema(with_note=False)), record)
    codec = EventCodec(registry, TOPIC, event_types=[NoteAdded], schema_dir=tmp_path)

    decoded = codec.decode(b"\x00" + struct.pack(">I", v1_id) + body.getvalue())

    assert isinstance(decoded, NoteAdded)
    assert decoded.note == "(none)"
    assert decoded.originator_id == old.originator_id
    assert decoded.actor == ACTOR
    assert registry.looked_up == [v1_id]


# --- the codec refuses schemas that do not match the domain ---------------------------------


@pytest.mark.parametrize(
    ("breakage", "match"),
    [
        pytest.param(lambda case: (case / "CaseClosed.avsc").unlink(), "no such schema file",
                     id="missing-file"),
        pytest.param(lambda case: (case / "CaseClosed.avsc").write_text("{not json"),
                     "not a readable JSON schema", id="not-json"),
        pytest.param(lambda case: (case / "CaseClosed.avsc").write_text(json.dumps(
            {**event_schema("CaseClosed"), "fields": event_schema("CaseClosed")["fields"][:-1]})),
            "reason", id="field-missing"),
        pytest.param(lambda case: (case / "_types.avsc").write_text("[]"),
                     "not defined", id="named-type-missing"),
    ],
)
def test_codec_refuses_schemas_that_do_not_match_the_domain(
    tmp_path: Path, breakage: Any, match: str
) -> None:
    shutil.copytree(SCHEMA_DIR / "case", tmp_path / "case")
    breakage(tmp_path / "case")
    with pytest.raises(SchemaError, match=match):
        EventCodec(CountingRegistry(), TOPIC, event_types=[CaseClosed], schema_dir=tmp_path)

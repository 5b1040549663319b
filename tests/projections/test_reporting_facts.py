"""Case events become pseudonymised facts: one per event, codes only, never personal data;
the facts codec (Avro, Confluent framing) and the CaseFact schema in `schemas check`."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import fastavro
import pytest
from typer.testing import CliRunner

from bus.codec import EventCodec
from bus.envelope import event_id
from bus.errors import DecodeError, EncodeError
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.schema_check import check_schemas, pending_releases, release_schemas
from domain import commands
from nervenbahn.cli.schemas import app as schemas_app
from projections.reporting_codec import CaseFactCodec
from projections.reporting_facts import (
    FACT_CODES,
    CaseFact,
    CaseFacts,
    Pseudonymiser,
    case_fact,
    recorded_day,
    region_in_store,
)
from schemas import SCHEMA_DIR, released_versions, reporting_schema
from tests.domain.case_desk import OLTEN, Desk, build_desk, person_input

ADMIN = commands.Actor("admin-so", "administrator", "so-canton")
KEY = bytes(range(32))
TOPIC = "t.reporting.case-facts.v1"
GOAL_TITLE = "Deutschkurs B1 bestehen"
ZURICH = ZoneInfo("Europe/Zurich")
DETAILS = tuple(f.name for f in dataclasses.fields(CaseFact))[8:]
"""The detail fields: set for one kind of fact each."""


@dataclasses.dataclass
class History:
    desk: Desk
    case_id: UUID
    refused_id: UUID
    events: list[Any]
    """Every event type: the case's 16 events, then the refused case's 3."""
    handover: int
    """The handover's index in `events`."""

    @property
    def case_events(self) -> list[Any]:
        """The events of the case handed over (not the refused one)."""
        return self.events[:16]


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    """A household through the whole process (handed over to Olten, closed, reopened), and a
    refused application: every case event type."""
    desk = build_desk(ADMIN)
    case_id = desk.open(applicant=person_input(7, given_name="Zora", family_name="Quellmatt"))
    desk.run("complete_assessment", case_id=case_id, employability="partially_employable")
    desk.run("grant_support", case_id=case_id)
    desk.clock.advance(days=2)
    achieved, missed = UUID(int=0xA1), UUID(int=0xA2)
    for goal_id in (achieved, missed):
        desk.run("agree_goal", case_id=case_id, goal_id=goal_id, title=GOAL_TITLE,
                 category="education")
    desk.run("record_goal_outcome", case_id=case_id, goal_id=achieved, outcome="achieved")
    desk.run("record_goal_outcome", case_id=case_id, goal_id=missed, outcome="missed")
    completed, broken_off = UUID(int=0xB1), UUID(int=0xB2)
    for measure_id in (completed, broken_off):
        desk.run("start_measure", case_id=case_id, measure_id=measure_id, kind="language_course")
    desk.run("complete_measure", case_id=case_id, measure_id=completed)
    desk.run("break_off_measure", case_id=case_id, measure_id=broken_off, reason="health")
    desk.clock.advance(days=20)
    desk.run("change_budget", case_id=case_id, reason="income_change", income="400.00",
             effective_date=(desk.today - timedelta(days=10)).isoformat())
    desk.run("complete_review", case_id=case_id, outcome="adjust")
    desk.run("hand_over_case", case_id=case_id, to_municipality_bfs=OLTEN)
    desk.run("close_case", case_id=case_id, reason="other_insurance")
    desk.run("reopen_case", case_id=case_id, reason="closed_in_error")
    refused_id = desk.assessed()
    desk.run("refuse_support", case_id=refused_id, reasons=["income_sufficient", "other"])
    events = desk.events(case_id) + desk.events(refused_id)
    handover = next(i for i, e in enumerate(events) if type(e).__name__ == "CaseHandedOver")
    yield History(desk, case_id, refused_id, events, handover)
    desk.service.close()


@pytest.fixture
def codec(tmp_path: Path) -> Iterator[CaseFactCodec]:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    yield CaseFactCodec(registry, TOPIC)
    registry.close()


def _all_facts(history: History) -> list[CaseFact]:
    facts = CaseFacts(Pseudonymiser(KEY))
    return [facts(event) for event in history.events]


def details(fact: CaseFact) -> dict[str, Any]:
    """The detail fields that are set."""
    return {name: getattr(fact, name) for name in DETAILS if getattr(fact, name) not in (None, ())}


# event type: (fact code, social region, details)
EXPECTED: list[tuple[str, str, str, dict[str, Any]]] = [
    ("CaseOpened", "opened", "so-solothurn",
     {"municipality_bfs": "event.municipality_bfs", "household_size": "event.household_size"}),
    ("AssessmentCompleted", "assessed", "so-solothurn", {"employability": "partially_employable"}),
    ("SupportGranted", "granted", "so-solothurn",
     {"support_from": "event.effective_date", "budget_total": "event.total"}),
    ("GoalAgreed", "goal_agreed", "so-solothurn",
     {"goal_category": "education", "item_ref": UUID(int=0xA1)}),
    ("GoalAchieved", "goal_achieved", "so-solothurn", {"item_ref": UUID(int=0xA1)}),
    ("GoalMissed", "goal_missed", "so-solothurn", {"item_ref": UUID(int=0xA2)}),
    ("MeasureStarted", "measure_started", "so-solothurn",
     {"measure_kind": "language_course", "item_ref": UUID(int=0xB1)}),
    ("MeasureCompleted", "measure_completed", "so-solothurn", {"item_ref": UUID(int=0xB1)}),
    ("MeasureBrokenOff", "measure_broken_off", "so-solothurn",
     {"item_ref": UUID(int=0xB2), "break_off_reason": "health"}),
    ("BudgetChanged", "budget_changed", "so-solothurn",
     {"budget_reason": "income_change", "budget_total": "event.total",
      "household_size": "event.household_size"}),
    ("ReviewCompleted", "reviewed", "so-solothurn", {"review_outcome": "adjust"}),
    ("CaseHandedOver", "handed_over", "so-solothurn",
     {"to_region": "so-olten", "municipality_bfs": OLTEN}),
    ("CaseClosed", "closed", "so-olten", {"closure_reason": "other_insurance"}),
    ("CaseReopened", "reopened", "so-olten", {"reopening_reason": "closed_in_error"}),
    ("SupportRefused", "refused", "so-solothurn",
     {"refusal_reasons": ("income_sufficient", "other")}),
]


def test_every_event_type_has_a_fact_code() -> None:
    assert sorted(FACT_CODES) == sorted(event_type for event_type, *_ in EXPECTED)
    assert len(set(FACT_CODES.values())) == 15


@pytest.mark.parametrize(("event_type", "code", "region", "expected"), EXPECTED,
                         ids=[row[0] for row in EXPECTED])
def test_an_event_becomes_one_fact_with_its_code_region_and_details(
    history: History, event_type: str, code: str, region: str, expected: dict[str, Any]
) -> None:
    facts = _all_facts(history)
    index = next(i for i, e in enumerate(history.events) if type(e).__name__ == event_type)
    event, fact = history.events[index], facts[index]
    pseudonyms = Pseudonymiser(KEY)
    wanted = {
        name: pseudonyms.item(value) if name == "item_ref" else value
        for name, value in expected.items()
    }
    for name, value in wanted.items():  # "event.x": the event's own x (e.g. its budget total)
        if isinstance(value, str) and value.startswith("event."):
            wanted[name] = getattr(event, value.removeprefix("event."))

    assert (fact.fact, fact.social_region) == (code, region)
    assert details(fact) == wanted
    assert fact.fact_id == _keyed_fact_id(event) != _event_id(event)
    assert fact.case_pseudonym == pseudonyms.case(event.originator_id)
    assert fact.sequence == event.originator_version
    swiss_day = event.timestamp.astimezone(ZURICH).date()
    assert fact.recorded_at == datetime.combine(swiss_day, time(), ZURICH)
    assert fact.recorded_at.utcoffset() == timedelta(0)
    assert fact.effective_date == (
        event.decision_date if event_type == "SupportGranted" else event.effective_date
    )


def test_after_a_handover_facts_belong_to_the_new_region(history: History) -> None:
    facts = _all_facts(history)[history.handover - 1 : 16]

    regions = [(f.fact, f.social_region, f.region_after) for f in facts]

    assert regions == [
        ("reviewed", "so-solothurn", "so-solothurn"),
        ("handed_over", "so-solothurn", "so-olten"),
        ("closed", "so-olten", "so-olten"),
        ("reopened", "so-olten", "so-olten"),
    ]


def test_a_case_met_half_way_gets_its_region_from_the_store(history: History) -> None:
    whole = _all_facts(history)[:16]
    late = CaseFacts(Pseudonymiser(KEY), region_in_store(history.desk.service))

    for start in (history.handover + 1, 5):  # after the handover, then before it
        assert [late(event) for event in history.events[start:16]] == whole[start:]


def test_a_batch_seen_again_gives_the_same_facts(history: History) -> None:
    facts = CaseFacts(Pseudonymiser(KEY), region_in_store(history.desk.service))
    first = [facts(event) for event in history.case_events]

    again = [facts(event) for event in history.case_events[8:]]  # publishing failed: once more

    assert again == first[8:]


def test_a_case_met_half_way_without_a_lookup_is_refused(history: History) -> None:
    with pytest.raises(LookupError, match="region before version 13"):
        CaseFacts(Pseudonymiser(KEY))(history.events[12])  # version 13
    with pytest.raises(ValueError, match="region must be given"):
        case_fact(history.events[1], region=None, pseudonyms=Pseudonymiser(KEY))


def test_pseudonyms_are_keyed_stable_and_separate_cases_from_items() -> None:
    case_id = UUID(int=42)
    one, other = Pseudonymiser(KEY), Pseudonymiser(bytes(32))

    assert one.case(case_id) == Pseudonymiser(KEY).case(case_id)
    assert one.case(case_id) != other.case(case_id)
    assert one.case(case_id) != one.item(case_id)
    assert len(one.case(case_id)) == 64 and int(one.case(case_id), 16) >= 0
    assert "0001" not in repr(one) and KEY.hex() not in repr(one)
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymiser(b"short")


def test_no_fact_carries_personal_data_the_case_id_or_free_text(
    history: History, codec: CaseFactCodec
) -> None:
    applicant = history.desk.case(history.case_id).applicant
    forbidden_text = [
        "Zora", "Quellmatt", applicant.ahvn13, applicant.ahvn13.replace(".", ""),
        applicant.street, applicant.birth_date.isoformat(), GOAL_TITLE, "admin-so",
        *(str(cid) for cid in (history.case_id, history.refused_id)),
        *(cid.hex for cid in (history.case_id, history.refused_id)),
        str(applicant.person_id), applicant.person_id.hex,
    ]  # the municipality's BFS number is on the topic for the BFS statistics (docs/reporting.md)
    forbidden = [text.encode() for text in forbidden_text] + [
        history.case_id.bytes, history.refused_id.bytes, applicant.person_id.bytes,
    ]

    for fact in _all_facts(history):
        value = codec.encode(fact).value
        shown = repr(fact).encode()
        leaked = [needle for needle in forbidden if needle in value or needle in shown]
        assert leaked == [], f"{fact.fact} carries {leaked}"


def test_the_schema_has_no_field_for_persons_or_free_text_and_only_the_bfs_details() -> None:
    names = {field["name"] for field in reporting_schema("CaseFact")["fields"]}

    assert names == {f.name for f in dataclasses.fields(CaseFact)}
    assert names & {"case_id", "applicant", "other_members", "to_municipality_bfs", "title",
                    "actor", "correlation_id", "lines", "total"} == set()
    # what the BFS social-assistance statistics receive by law (docs/reporting.md)
    assert {"municipality_bfs", "household_size", "budget_total"} <= names


def test_facts_travel_in_the_confluent_wire_format_and_come_back_equal(
    history: History, codec: CaseFactCodec
) -> None:
    for fact in _all_facts(history):
        encoded = codec.encode(fact)

        assert encoded.value[0] == 0
        assert int.from_bytes(encoded.value[1:5], "big") == encoded.schema_id
        assert encoded.event_type == "CaseFact"
        assert codec.decode(encoded.value) == fact
    assert codec.subject == f"{TOPIC}-ch.nervenbahn.reporting.CaseFact"


def test_a_fact_written_with_the_released_v1_is_read(tmp_path: Path, history: History) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    version, released = released_versions("CaseFact")[0]
    released_id = registry.register(f"{TOPIC}-ch.nervenbahn.reporting.CaseFact", released)
    fact = dataclasses.replace(_all_facts(history)[0], municipality_bfs=None, household_size=None)
    body = _written_with(released, fact)

    decoded = CaseFactCodec(registry, TOPIC).decode(
        bytes([0]) + released_id.to_bytes(4, "big") + body
    )

    assert (version, decoded) == (1, fact)  # the fields added in v2 read as their defaults
    registry.close()


def _written_with(schema: dict[str, Any], fact: CaseFact) -> bytes:
    """The fact's Avro body as a writer holding `schema` (an older version) writes it."""
    record = {f["name"]: getattr(fact, f["name"]) for f in schema["fields"]}
    record["refusal_reasons"] = list(fact.refusal_reasons)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        pytest.param(lambda good: b"", "too short", id="empty"),
        pytest.param(lambda good: b"\x01" + good[1:], "magic byte 1", id="not-confluent"),
        pytest.param(lambda good: b"\x00\x00\x00\x03\xe7" + good[5:], "unknown schema id 999",
                     id="unknown-id"),
        pytest.param(lambda good: good[:-9], "truncated or corrupt", id="truncated"),
        pytest.param(lambda good: good + b"more", "not one whole record", id="trailing-bytes"),
    ],
)
def test_what_is_not_a_case_fact_cannot_be_decoded(
    history: History, codec: CaseFactCodec, damage: Callable[[bytes], bytes], match: str
) -> None:
    good = codec.encode(_all_facts(history)[0]).value

    with pytest.raises(DecodeError, match=match):
        codec.decode(damage(good))


def test_a_case_event_on_the_reporting_topic_is_not_a_fact(
    tmp_path: Path, history: History
) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "registry.db")
    event_message = EventCodec(registry, TOPIC, vault=history.desk.service.vault).encode(
        history.events[history.handover + 1]
    ).value

    with pytest.raises(DecodeError, match=r"CaseClosed, not ch\.nervenbahn\.reporting\.CaseFact"):
        CaseFactCodec(registry, TOPIC).decode(event_message)
    registry.close()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param({"fact_id": "not-a-uuid"}, "is not a UUID", id="fact-id"),
        pytest.param({"social_region": None}, "does not fit its schema", id="region-missing"),
        pytest.param({"fact": "paid"}, "does not fit its schema", id="unknown-code"),
        pytest.param({"sequence": 2**40}, "does not fit its schema", id="sequence-too-big"),
    ],
)
def test_a_fact_that_does_not_fit_the_schema_is_refused(
    history: History, codec: CaseFactCodec, change: dict[str, Any], match: str
) -> None:
    fact = dataclasses.replace(_all_facts(history)[0], **change)

    with pytest.raises(EncodeError, match=match):
        codec.encode(fact)


# --- schemas check ---------------------------------------------------------------------------


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    for folder in (p for p in SCHEMA_DIR.iterdir() if p.is_dir() and p.name != "__pycache__"):
        shutil.copytree(folder, target / folder.name)
    shutil.copy(SCHEMA_DIR / "catalogue.json", target / "catalogue.json")
    return target


def test_the_case_fact_schema_is_checked_and_released() -> None:
    assert check_schemas() == []
    assert "CaseFact" not in pending_releases()
    assert released_versions("CaseFact")[-1][1] == reporting_schema("CaseFact")


def test_a_breaking_change_to_the_case_fact_schema_is_reported(schema_copy: Path) -> None:
    path = schema_copy / "reporting" / "CaseFact.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "age_band", "type": "string", "doc": "New."})
    path.write_text(json.dumps(schema))

    problems = check_schemas(schema_copy)
    result = CliRunner().invoke(schemas_app, ["check", "--schema-dir", str(schema_copy)])

    assert {(p.subject, p.field, p.kind) for p in problems} == {
        ("ch.nervenbahn.reporting.CaseFact", "age_band", "READER_FIELD_MISSING_DEFAULT_VALUE")
    }  # once per released version it could not read
    assert result.exit_code == 1
    assert result.stdout.startswith("ch.nervenbahn.reporting.CaseFact: age_band: ")


def test_a_new_case_fact_field_with_a_default_is_released_as_the_next_version(
    schema_copy: Path,
) -> None:
    latest = released_versions("CaseFact", schema_copy)[-1][0]
    path = schema_copy / "reporting" / "CaseFact.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(
        {"name": "age_band", "type": ["null", "string"], "default": None, "doc": "New."}
    )
    path.write_text(json.dumps(schema))

    assert pending_releases(schema_copy) == ["CaseFact"]
    released, problems = release_schemas(schema_copy)

    assert problems == []
    assert [(r.event_type, r.version) for r in released] == [("CaseFact", latest + 1)]
    assert released_versions("CaseFact", schema_copy)[-1][1] == schema


def _event_id(event: Any) -> UUID:
    return event_id(event.originator_id, event.originator_version)


def _keyed_fact_id(event: Any) -> UUID:
    """HMAC-SHA256 of `fact/<case id>/<version>` under KEY, 128 bits, version 8, RFC variant."""
    message = f"fact/{event.originator_id}/{event.originator_version}".encode()
    raw = bytearray(hmac.new(KEY, message, hashlib.sha256).digest()[:16])
    raw[6] = 0x80 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return UUID(bytes=bytes(raw))


@pytest.mark.parametrize(
    ("recorded", "day_start"),
    [  # winter (UTC+1): 23:30 UTC is already the next Swiss day, which began at 23:00 UTC
        ("2026-01-15T23:30:00+00:00", "2026-01-15T23:00:00+00:00"),
        ("2026-01-15T22:59:59.999999+00:00", "2026-01-14T23:00:00+00:00"),
        # summer (UTC+2): the Swiss day of 1 July began at 22:00 UTC on 30 June
        ("2026-07-01T10:00:00.123456+00:00", "2026-06-30T22:00:00+00:00"),
    ],
)
def test_a_facts_recorded_time_is_only_its_swiss_day(recorded: str, day_start: str) -> None:
    assert recorded_day(datetime.fromisoformat(recorded)) == datetime.fromisoformat(day_start)


def test_fact_ids_are_keyed_deterministic_and_separated_from_pseudonyms() -> None:
    case_id = UUID("00000000-0000-4000-8000-0000ca5e0001")
    first, other = Pseudonymiser(KEY), Pseudonymiser(bytes(32))

    fact_id = first.fact_id(case_id, 1)

    assert fact_id == Pseudonymiser(KEY).fact_id(case_id, 1)  # a redelivery deduplicates
    assert (fact_id.version, fact_id.variant) == (8, "specified in RFC 4122")
    assert fact_id not in {first.fact_id(case_id, 2), other.fact_id(case_id, 1),
                           event_id(case_id, 1)}
    assert fact_id.hex[:12] not in first.case(case_id) + first.item(case_id)

"""The schema files: one per domain event type, self-contained, documented, persons sealed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest

from bus.codec import schema_mismatches
from domain.events import EVENT_TYPES
from schemas import (
    NAMESPACE,
    SCHEMA_DIR,
    SchemaFileError,
    event_schema,
    event_type_names,
    released_versions,
    subject_for,
)

EVENT_NAMES = [cls.__name__ for cls in EVENT_TYPES]
UUID_TYPE = {"type": "string", "logicalType": "uuid"}
CHF_TYPE = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
DATE_TYPE = {"type": "int", "logicalType": "date"}

ENVELOPE = [
    ("case_id", UUID_TYPE),
    ("version", "int"),
    ("recorded_at", {"type": "long", "logicalType": "timestamp-micros"}),
    ("effective_date", DATE_TYPE),
    ("actor", "ch.nervenbahn.casework.Actor"),
    ("correlation_id", UUID_TYPE),
    ("imported", "boolean"),
]
PERSONAL_FIELDS = {"given_name", "family_name", "ahvn13", "birth_date", "street",
                   "postal_code", "town"}


def walk_fields(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of a schema, nested records included, with its dotted path."""
    if isinstance(node, list):
        for branch in node:
            yield from walk_fields(branch, path)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            for field in node["fields"]:
                field_path = f"{path}.{field['name']}" if path else field["name"]
                yield field_path, field
                yield from walk_fields(field["type"], field_path)
        elif node.get("type") == "array":
            yield from walk_fields(node["items"], f"{path}[]")


def type_name(avro_type: Any) -> Any:
    """A field's type, with a named record shown by its full name."""
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return f"{avro_type['namespace']}.{avro_type['name']}"
    return avro_type


def test_every_domain_event_type_has_a_schema() -> None:
    assert event_type_names() == sorted(EVENT_NAMES)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_is_a_record_named_after_its_event(name: str) -> None:
    schema = event_schema(name)
    assert (schema["type"], schema["namespace"], schema["name"]) == ("record", NAMESPACE, name)
    assert schema["doc"]


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_starts_with_the_envelope(name: str) -> None:
    fields = event_schema(name)["fields"]
    assert [(f["name"], type_name(f["type"])) for f in fields[: len(ENVELOPE)]] == ENVELOPE


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_fields_match_the_domain_event(name: str) -> None:
    event_class = next(cls for cls in EVENT_TYPES if cls.__name__ == name)
    assert schema_mismatches(event_class, event_schema(name)) == []


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_is_self_contained(name: str) -> None:
    schema = event_schema(name)
    fastavro.parse_schema(schema)
    avro.schema.parse(json.dumps(schema))
    definitions = [
        type_name(field["type"]) for _, field in walk_fields(schema)
        if isinstance(field["type"], dict) and field["type"].get("type") == "record"
    ]
    assert len(definitions) == len(set(definitions)), "a named type is defined twice"


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_field_is_documented(name: str) -> None:
    undocumented = [path for path, field in walk_fields(event_schema(name)) if not field.get("doc")]
    assert undocumented == []


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        ("SupportGranted", "total", CHF_TYPE),
        ("SupportGranted", "lines[].amount", CHF_TYPE),
        ("SupportGranted", "decision_date", DATE_TYPE),
        ("BudgetChanged", "total", CHF_TYPE),
        ("BudgetChanged", "lines[].amount", CHF_TYPE),
        ("GoalAgreed", "goal_id", UUID_TYPE),
        ("GoalAgreed", "due_date", DATE_TYPE),
        ("MeasureStarted", "measure_id", UUID_TYPE),
        ("ReviewCompleted", "next_review_due", DATE_TYPE),
        ("AssessmentCompleted", "needs", {"type": "array", "items": "string"}),
        ("CaseOpened", "applicant.person_id", UUID_TYPE),
        ("CaseOpened", "applicant.sealed", "string"),
        ("CaseOpened", "other_members",
         {"type": "array", "items": "ch.nervenbahn.casework.SealedPersonalData"}),
    ],
)
def test_values_have_their_logical_types(name: str, field: str, expected: Any) -> None:
    fields = dict(walk_fields(event_schema(name)))
    assert fields[field]["type"] == expected


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_no_schema_carries_personal_data_in_clear(name: str) -> None:
    names = {path.rpartition(".")[2] for path, _ in walk_fields(event_schema(name))}
    assert names & PERSONAL_FIELDS == set()


def test_persons_travel_as_sealed_records_only() -> None:
    fields = dict(walk_fields(event_schema("CaseOpened")))
    assert type_name(fields["applicant"]["type"]) == "ch.nervenbahn.casework.SealedPersonalData"
    assert [f["name"] for f in fields["applicant"]["type"]["fields"]] == ["person_id", "sealed"]


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_event_type_has_a_released_version(name: str) -> None:
    released = released_versions(name)
    assert [version for version, _ in released][:1] == [1]


@pytest.mark.parametrize(
    ("topic", "event_type", "subject"),
    [
        ("casework.events", "CaseOpened", "casework.events-ch.nervenbahn.casework.CaseOpened"),
        ("reporting.v1", "BudgetChanged", "reporting.v1-ch.nervenbahn.casework.BudgetChanged"),
    ],
)
def test_subjects_follow_the_topic_record_name_strategy(
    topic: str, event_type: str, subject: str
) -> None:
    assert subject_for(topic, event_type) == subject


@pytest.mark.parametrize(
    ("files", "event_type", "match"),
    [
        pytest.param({}, "CaseClosed", "no such schema file", id="missing"),
        pytest.param({"CaseClosed.avsc": "{"}, "CaseClosed", "not a readable JSON", id="not-json"),
        pytest.param({"CaseClosed.avsc": json.dumps(
            {"type": "record", "name": "CaseClosed", "fields": [{"name": "a", "type": "Nope"}]})},
            "CaseClosed", "'Nope' is not defined", id="undefined-type"),
        pytest.param({"CaseClosed.avsc": "[]"}, "CaseClosed", "must be a JSON object",
                     id="not-a-record"),
        pytest.param({"_types.avsc": '{"type": "record"}', "CaseClosed.avsc": "{}"},
                     "CaseClosed", "JSON array", id="types-not-a-list"),
    ],
)
def test_broken_schema_files_raise_schema_file_error(
    tmp_path: Path, files: dict[str, str], event_type: str, match: str
) -> None:
    (tmp_path / "case").mkdir()
    for file_name, text in files.items():
        (tmp_path / "case" / file_name).write_text(text)
    with pytest.raises(SchemaFileError, match=match):
        event_schema(event_type, tmp_path)


def test_schema_dir_is_the_package_directory() -> None:
    assert (SCHEMA_DIR / "case" / "_types.avsc").is_file()

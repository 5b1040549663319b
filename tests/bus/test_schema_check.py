"""`nervenbahn schemas check|release`: the repository's schemas against all released versions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bus.registry_http import ConfluentRegistryClient
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.schema_check import check_schemas, pending_releases, release_schemas
from domain.events import EVENT_TYPES
from nervenbahn.cli.schemas import app
from schemas import SCHEMA_DIR, event_schema, subject_for
from schemas.catalogue import load_catalogue

from .fake_confluent import running_fake_registry

BUDGET = "ch.nervenbahn.casework.BudgetChanged"
CLOSED = "ch.nervenbahn.casework.CaseClosed"
GRANTED = "ch.nervenbahn.casework.SupportGranted"

runner = CliRunner()


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    """A copy of the repository's schema files, to break."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR / "case", target / "case")
    shutil.copytree(SCHEMA_DIR / "versions", target / "versions")
    shutil.copy(SCHEMA_DIR / "catalogue.json", target / "catalogue.json")
    return target


def edit(root: Path, file_name: str, change: Callable[[Any], None]) -> None:
    """Change one schema file (JSON) in place."""
    path = root / "case" / file_name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def edit_catalogue(root: Path, change: Callable[[list[dict[str, Any]]], object]) -> None:
    """Change the entries of the copy's catalogue.json in place."""
    path = root / "catalogue.json"
    data = json.loads(path.read_text())
    change(data["entries"])
    path.write_text(json.dumps(data))


def field(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The field `name` of a record schema."""
    return next(f for f in data["fields"] if f["name"] == name)


def test_repository_schemas_pass_the_check() -> None:
    assert check_schemas() == []


def test_cli_check_passes_on_the_repository() -> None:
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert f"schemas compatible: {len(EVENT_TYPES)} subjects" in result.output


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        pytest.param(
            lambda root: edit(root, "BudgetChanged.avsc",
                              lambda s: field(s, "household_size").update(type="string")),
            # against each released version (v1, v2)
            [(BUDGET, "household_size", "TYPE_MISMATCH")] * 2, id="type-change"),
        pytest.param(
            lambda root: edit(root, "CaseClosed.avsc", lambda s: s["fields"].append(
                {"name": "note", "type": "string", "doc": "New."})),
            [(CLOSED, "note", "DOMAIN_MISMATCH"),
             (CLOSED, "note", "READER_FIELD_MISSING_DEFAULT_VALUE")], id="new-field-no-default"),
        pytest.param(
            lambda root: edit(root, "CaseClosed.avsc",
                              lambda s: field(s, "reason").update(name="cause")),
            [(CLOSED, "reason", "DOMAIN_MISMATCH"), (CLOSED, "cause", "DOMAIN_MISMATCH"),
             (CLOSED, "cause", "READER_FIELD_MISSING_DEFAULT_VALUE")], id="renamed-field"),
        pytest.param(
            lambda root: edit(root, "_types.avsc",
                              lambda s: s[1]["fields"][1]["type"].update(scale=3)),
            [(BUDGET, "lines[].amount", "LOGICAL_TYPE_MISMATCH"),
             (BUDGET, "lines[].amount", "LOGICAL_TYPE_MISMATCH"),
             (GRANTED, "lines[].amount", "LOGICAL_TYPE_MISMATCH")], id="amount-scale-change"),
        pytest.param(
            lambda root: edit(root, "CaseClosed.avsc",
                              lambda s: field(s, "reason").update(default=7)),
            [(CLOSED, "reason", "INVALID_DEFAULT")], id="default-does-not-fit"),
        pytest.param(
            lambda root: (root / "case" / "GoalMissed.avsc").unlink(),
            [("ch.nervenbahn.casework.GoalMissed", "(schema)", "MISSING")], id="missing-schema"),
        pytest.param(
            lambda root: (root / "case" / "CaseClosed.avsc").write_text("{"),
            [(CLOSED, "(schema)", "SCHEMA_FILE")], id="not-json"),
        pytest.param(
            lambda root: (root / "versions" / "CaseClosed" / "v1.avsc").rename(
                root / "versions" / "CaseClosed" / "v2.avsc"),
            [(CLOSED, "(schema)", "VERSION_FILES"), (CLOSED, "(schema)", "UNCATALOGUED")],
            id="version-gap"),
        pytest.param(
            lambda root: edit_catalogue(root, lambda entries: entries.pop(2)),
            [(CLOSED, "(schema)", "UNCATALOGUED")], id="catalogue-entry-missing"),
        pytest.param(
            lambda root: edit_catalogue(root, lambda entries: entries[2].update(
                fingerprint="0" * 64)),
            [(CLOSED, "(schema)", "CATALOGUE")], id="catalogue-fingerprint-differs"),
        pytest.param(
            lambda root: edit_catalogue(root, lambda entries: entries[2].update(id=1)),
            [("catalogue.json", "(schema)", "CATALOGUE")], id="catalogue-id-repeated"),
    ],
)
def test_broken_schemas_are_reported_naming_subject_and_field(
    schema_copy: Path, breakage: Callable[[Path], None], expected: list[tuple[str, str, str]]
) -> None:
    breakage(schema_copy)
    problems = check_schemas(schema_copy)
    assert sorted((p.subject, p.field, p.kind) for p in problems) == sorted(expected)

    result = runner.invoke(app, ["check", "--schema-dir", str(schema_copy)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for subject, field_name, _ in expected:
        assert any(line.startswith(f"{subject}: {field_name}: ") for line in lines)


def test_release_refuses_while_the_check_fails(schema_copy: Path) -> None:
    edit(schema_copy, "BudgetChanged.avsc",
         lambda s: field(s, "household_size").update(type="string"))
    result = runner.invoke(app, ["release", "--schema-dir", str(schema_copy)])
    assert result.exit_code == 1
    assert f"{BUDGET}: household_size:" in result.stdout
    assert not (schema_copy / "versions" / "BudgetChanged" / "v3.avsc").exists()


def test_compatible_change_is_released_as_the_next_version(schema_copy: Path) -> None:
    edit(schema_copy, "CaseClosed.avsc", lambda s: field(s, "reason").update(doc="Why."))
    assert pending_releases(schema_copy) == ["CaseClosed"]

    result = runner.invoke(app, ["release", "--schema-dir", str(schema_copy)])

    assert result.exit_code == 0, result.output
    assert "released CaseClosed v2" in result.stdout
    released = json.loads((schema_copy / "versions" / "CaseClosed" / "v2.avsc").read_text())
    assert released == event_schema("CaseClosed", schema_copy)
    assert pending_releases(schema_copy) == []
    assert check_schemas(schema_copy) == []
    before, after = load_catalogue(), load_catalogue(schema_copy)
    added = after.entries[len(before.entries):]
    assert after.entries[: len(before.entries)] == before.entries
    assert [(e.schema_id, e.record, e.version) for e in added] == [
        (max(e.schema_id for e in before.entries) + 1, CLOSED, 2)
    ]
    again = runner.invoke(app, ["release", "--schema-dir", str(schema_copy)])
    assert "nothing to release" in again.stdout


def test_new_event_type_is_released_as_v1(schema_copy: Path) -> None:
    shutil.rmtree(schema_copy / "versions" / "CaseReopened")
    assert check_schemas(schema_copy) == []
    releases, problems = release_schemas(schema_copy)
    assert problems == []
    assert [(r.event_type, r.version) for r in releases] == [("CaseReopened", 1)]
    # Its catalogue entry is still there with the same fingerprint: the id is kept.
    assert load_catalogue(schema_copy) == load_catalogue()


def test_release_gives_a_released_version_without_an_entry_the_next_id(
    schema_copy: Path,
) -> None:
    # As after merging a branch that released a version before the catalogue knew it.
    edit_catalogue(schema_copy, lambda entries: entries.pop(2))
    assert [p.kind for p in check_schemas(schema_copy)] == ["UNCATALOGUED"]

    releases, problems = release_schemas(schema_copy)

    assert (releases, problems) == ([], [])
    assert check_schemas(schema_copy) == []
    before = load_catalogue()
    entry = load_catalogue(schema_copy).entry(CLOSED, 1)
    assert entry is not None
    assert entry.schema_id == max(e.schema_id for e in before.entries) + 1


def test_release_keeps_a_catalogue_whose_fingerprint_differs_refused(schema_copy: Path) -> None:
    edit_catalogue(schema_copy, lambda entries: entries[2].update(fingerprint="0" * 64))
    releases, problems = release_schemas(schema_copy)
    assert releases == []
    assert [(p.subject, p.kind, p.version) for p in problems] == [(CLOSED, "CATALOGUE", 1)]


def test_check_asks_a_live_registry_too(schema_copy: Path, tmp_path: Path) -> None:
    # The registry already holds a version whose `reason` is an int: ours cannot read it.
    old = event_schema("CaseClosed")
    field(old, "reason").update(type="int")
    with SQLiteSchemaRegistry(tmp_path / "store.db") as registry:
        registry.register(subject_for("casework.events", "CaseClosed"), old)
        problems = check_schemas(schema_copy, registry=registry, topic="casework.events")
    assert [(p.subject, p.field, p.kind) for p in problems] == [
        ("casework.events-ch.nervenbahn.casework.CaseClosed", "reason", "TYPE_MISMATCH")
    ]


def test_cli_check_asks_a_confluent_registry(schema_copy: Path) -> None:
    old = event_schema("CaseClosed")
    field(old, "reason").update(type="int")
    with running_fake_registry() as (url, _):
        client_args = ["check", "--schema-dir", str(schema_copy), "--registry-url", url,
                       "--topic", "casework.events"]
        assert runner.invoke(app, client_args).exit_code == 0
        ConfluentRegistryClient(url).register(
            subject_for("casework.events", "CaseClosed"), old
        )
        result = runner.invoke(app, client_args)
    assert result.exit_code == 1
    assert result.stdout.startswith("casework.events-ch.nervenbahn.casework.CaseClosed: reason: ")


def test_cli_check_reports_an_unreachable_registry() -> None:
    with running_fake_registry() as (url, _):
        pass
    result = runner.invoke(app, ["check", "--registry-url", url, "--topic", "t"])
    assert result.exit_code == 3
    assert url in result.stderr


def test_cli_registry_needs_a_topic() -> None:
    result = runner.invoke(app, ["check", "--registry-url", "http://127.0.0.1:1"])
    assert result.exit_code == 2

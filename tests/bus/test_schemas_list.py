"""`nervenbahn schemas list | export DIR` and `bus.asyncapi.published_schemas`: every released
schema of every topic by registry subject, with its id where the registry has exactly it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.asyncapi import published_schemas
from bus.kafka_settings import KafkaSettings
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.topics import installation_topics
from nervenbahn.cli import main
from schemas import released_versions
from schemas.catalogue import load_catalogue

FACTS = "zh.reporting.case-facts.v1-ch.nervenbahn.reporting.CaseFact"


def test_every_released_version_of_every_topic_is_listed() -> None:
    settings = KafkaSettings(topic_prefix="zh")
    found = published_schemas(settings)
    topics = {spec.name for spec in installation_topics(settings)}
    assert {p.subject.partition("-ch.")[0] for p in found} == topics
    facts = [p for p in found if p.subject == FACTS]
    assert [(p.version, p.schema) for p in facts] == released_versions("CaseFact")
    assert all(p.schema_id is None for p in found)
    catalogue = load_catalogue()
    assert all(p.catalogue_id == catalogue.entry(p.record, p.version).schema_id for p in found)
    assert len({p.catalogue_id for p in found if p.subject == FACTS}) == 3


def test_registered_schemas_carry_the_registry_id_matched_by_content(
    schema_registry: SQLiteSchemaRegistry,
) -> None:
    (_, first), *_, (_, latest) = released_versions("CaseFact")
    first_id = schema_registry.register(FACTS, first)
    latest_id = schema_registry.register(FACTS, latest)

    found = published_schemas(KafkaSettings(topic_prefix="zh"), schema_registry)

    ids = {p.version: p.schema_id for p in found if p.subject == FACTS}
    assert ids == {1: first_id, 2: None, 3: latest_id}
    assert all(p.schema_id is None for p in found if p.subject != FACTS)


def test_cli_lists_as_json_and_exports_one_file_per_subject_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", "zh")
    assert main(["--json", "schemas", "list"]) == 0
    listed = json.loads(capfd.readouterr().out)
    assert {"subject": FACTS, "record": "ch.nervenbahn.reporting.CaseFact", "version": 3,
            "catalogue_id": load_catalogue().entry("ch.nervenbahn.reporting.CaseFact", 3).schema_id,
            "schema_id": None} in listed

    assert main(["schemas", "export", str(tmp_path / "out")]) == 0
    index = json.loads((tmp_path / "out" / "index.json").read_text(encoding="utf-8"))
    assert [{k: v for k, v in row.items() if k != "file"} for row in index] == listed
    for row in index:
        written = json.loads((tmp_path / "out" / row["file"]).read_text(encoding="utf-8"))
        assert (row["version"], written) in released_versions(row["record"].rpartition(".")[2])


def test_cli_registered_asks_the_stores_own_registry(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "store.db"
    (_, first), *_ = released_versions("CaseFact")
    with SQLiteSchemaRegistry(store) as registry:
        first_id = registry.register(FACTS, first)
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", "zh")
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{store}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)

    assert main(["--json", "schemas", "list", "--registered"]) == 0

    listed = json.loads(capfd.readouterr().out)
    assert {(row["version"], row["schema_id"]) for row in listed if row["subject"] == FACTS} == {
        (1, first_id), (2, None), (3, None)}

"""The AsyncAPI document (`bus.asyncapi`): valid against the official AsyncAPI 3.0.0 JSON Schema
(npm `@asyncapi/specs`, installed by `make node_modules/.installed`), and true to the code: every
topic of the catalogue, every schema with its subject, the headers the relays really write."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from bus.asyncapi import AVRO_SCHEMA_FORMAT, HEADERS, asyncapi_document
from bus.envelope import message_headers
from bus.kafka_settings import KafkaSettings
from bus.registry_sqlite import SQLiteSchemaRegistry
from bus.topics import catalogue
from domain.commands import swiss_today
from nervenbahn.cli import main
from schemas import load_schema, released_versions
from schemas.catalogue import load_catalogue

SPEC = Path(__file__).resolve().parents[2] / "node_modules/@asyncapi/specs/schemas/3.0.0.json"


@pytest.fixture(scope="module")
def asyncapi_validator() -> Draft7Validator:
    """A validator of the official AsyncAPI 3.0.0 schema; skips without node_modules (fails
    when CI=true, like the PostgreSQL tests)."""
    if not SPEC.exists():
        reason = f"{SPEC} is missing: run `make node_modules/.installed` (npm ci)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}. CI=true requires it", pytrace=False)
        pytest.skip(reason)
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    # The bundle is draft-07 with every definition under its own $id: crawl them all so that
    # each $ref resolves inside the file, never over the network.
    resource = Resource.from_contents(spec, default_specification=DRAFT7)
    registry: Registry[Any] = (resource @ Registry()).crawl()
    return Draft7Validator(spec, registry=registry)


@pytest.fixture
def settings() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=("localhost:9092",), topic_prefix=f"t{uuid4().hex[:8]}",
                         partitions=6)


def test_document_is_valid_asyncapi_3(asyncapi_validator: Draft7Validator,
                                      settings: KafkaSettings) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in asyncapi_validator.iter_errors(asyncapi_document(settings))]
    assert errors == []


def test_validator_finds_errors_deep_in_the_document(asyncapi_validator: Draft7Validator,
                                             settings: KafkaSettings) -> None:
    """The bundle's $refs really resolve: errors deep in bindings and Avro payloads count."""
    document = asyncapi_document(settings)
    opened = document["components"]["messages"]["CaseOpened"]
    opened["bindings"]["kafka"]["schemaIdLocation"] = "nowhere"
    document["components"]["messages"]["CaseFact"]["payload"]["schema"]["type"] = "nonsense"
    del document["info"]["title"]
    paths = {tuple(e.absolute_path) for e in asyncapi_validator.iter_errors(document)}
    assert paths == {("info",), ("components", "messages", "CaseOpened"),
                     ("components", "messages", "CaseFact")}


def test_every_topic_of_the_installation_is_a_channel(settings: KafkaSettings) -> None:
    document = asyncapi_document(settings)
    addresses = {c["address"]: c for c in document["channels"].values()}
    for spec in catalogue(settings, reporting=True, payments=True, audit=True):
        kafka = addresses[spec.name]["bindings"]["kafka"]
        assert kafka["topic"] == spec.name
        assert kafka["partitions"] == spec.partitions
    assert f"{settings.topic_prefix}.dlq.{{group}}.v1" in addresses


def test_every_message_carries_its_avro_schema_and_subject(settings: KafkaSettings) -> None:
    document = asyncapi_document(settings, {
        f"{settings.topic_prefix}.casework.case-events.v1-ch.nervenbahn.casework.CaseOpened": 7})
    messages = document["components"]["messages"]
    opened = messages["CaseOpened"]
    assert opened["payload"] == {"schemaFormat": AVRO_SCHEMA_FORMAT,
                                 "schema": load_schema("case", "CaseOpened")}
    assert opened["x-subject"] == (
        f"{settings.topic_prefix}.casework.case-events.v1-ch.nervenbahn.casework.CaseOpened")
    assert opened["x-schema-id"] == 7
    assert messages["CaseFact"]["x-subject"].startswith(f"{settings.topic_prefix}.reporting.")
    assert messages["Checkpoint"]["payload"]["schema"] == load_schema("audit", "Checkpoint")
    for channel in document["channels"].values():
        for ref in channel["messages"].values():
            assert ref["$ref"].removeprefix("#/components/messages/") in messages


def test_headers_documented_are_the_headers_written(settings: KafkaSettings) -> None:
    written = message_headers("CaseOpened", 1, event_id=uuid4(), recorded_at=datetime.now(UTC),
                              kind="opened", effective_date=swiss_today(), correlation_id=uuid4())
    assert {name for name, _ in written} | {"relay_epoch"} <= set(HEADERS)
    case_headers = asyncapi_document(settings)["components"]["messages"]["CaseOpened"]["headers"]
    assert set(case_headers["properties"]) == {n for n, _ in written} - {"fact"} | {"relay_epoch"}
    assert all(HEADERS[name]["description"] for name in HEADERS)


def test_cli_writes_the_document_for_the_configured_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", "canton-zh")
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "--out", str(out)]) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["channels"]["casework.case-events.v1"]["address"] == (
        "canton-zh.casework.case-events.v1")


REGISTRY_URLS = {  # (--registry-url, NERVENBAHN_SCHEMA_REGISTRY) -> schemaRegistryUrl
    "option": ("https://bus.example/registry/", None, "https://bus.example/registry"),
    "external-registry": (None, "http://registry.example:8081", "http://registry.example:8081"),
    "option-over-variable": ("https://bus.example/registry", "http://10.0.0.5:8081",
                             "https://bus.example/registry"),
    "no-password-in-the-document": (None, "https://vendor:s3cret@registry.example/",
                                    "https://registry.example"),
    "embedded-registry": (None, None, None),
}


@pytest.mark.parametrize("variant", sorted(REGISTRY_URLS))
def test_cli_names_the_schema_registry_as_the_server_bindings_url(
    asyncapi_validator: Draft7Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    variant: str
) -> None:
    option, variable, expected = REGISTRY_URLS[variant]
    if variable is not None:
        monkeypatch.setenv("NERVENBAHN_SCHEMA_REGISTRY", variable)
    else:
        monkeypatch.delenv("NERVENBAHN_SCHEMA_REGISTRY", raising=False)
    out = tmp_path / "asyncapi.json"

    assert main(["asyncapi", "--out", str(out),
                 *(["--registry-url", option] if option else [])]) == 0

    document = json.loads(out.read_text(encoding="utf-8"))
    binding = document["servers"]["installation"]["bindings"]["kafka"]
    assert binding.get("schemaRegistryUrl") == expected
    assert binding["schemaRegistryVendor"] == "confluent"
    assert "s3cret" not in out.read_text(encoding="utf-8")
    assert list(asyncapi_validator.iter_errors(document)) == []


def test_cli_refuses_a_registry_url_that_is_not_http(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["asyncapi", "--registry-url", "registry.example:8081"]) == 2
    err = capfd.readouterr().err
    assert "--registry-url" in err and "is not an http(s) URL" in err


def test_cli_refuses_malformed_kafka_settings_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NERVENBAHN_KAFKA_PARTITIONS", "many")
    assert main(["asyncapi"]) == 3
    assert "NERVENBAHN_KAFKA_PARTITIONS" in capfd.readouterr().err


def test_cli_registered_gives_the_id_of_each_messages_schema(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.db"
    facts = "zh.reporting.case-facts.v1-ch.nervenbahn.reporting.CaseFact"
    with SQLiteSchemaRegistry(store) as registry:
        registry.register(facts, released_versions("CaseFact")[0][1])
        latest_id = registry.register(facts, load_schema("reporting", "CaseFact"))
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", "zh")
    monkeypatch.setenv("NERVENBAHN_STORE", f"sqlite:///{store}")
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    out = tmp_path / "asyncapi.json"

    assert main(["asyncapi", "--registered", "--out", str(out)]) == 0

    messages = json.loads(out.read_text(encoding="utf-8"))["components"]["messages"]
    assert messages["CaseFact"]["x-schema-id"] == latest_id
    assert messages["CaseOpened"]["x-schema-id"] == load_catalogue().entry(
        "ch.nervenbahn.casework.CaseOpened", messages["CaseOpened"]["x-schema-version"]).schema_id


def test_every_message_names_the_catalogue_ids_of_its_released_versions(
    settings: KafkaSettings,
) -> None:
    catalogue = load_catalogue()
    messages = asyncapi_document(settings)["components"]["messages"]
    for name, message in messages.items():
        if name == "DeadLetter":
            continue
        released = [version for version, _ in released_versions(name)]
        assert [v["version"] for v in message["x-schema-versions"]] == released
        for listed in message["x-schema-versions"]:
            assert listed["id"] == catalogue.entry(message["title"], listed["version"]).schema_id
        assert message["x-schema-id"] == message["x-schema-versions"][-1]["id"]
    assert messages["CaseFact"]["x-schema-id"] != messages["CaseOpened"]["x-schema-id"]


SECURITY_VARIANTS = {
    "plaintext": ({}, "kafka", None),
    "tls": ({"security_protocol": "SSL", "ssl_cafile": "ca.pem"}, "kafka-secure", None),
    "mutual-tls": ({"security_protocol": "SSL", "ssl_cafile": "ca.pem",
                    "ssl_certfile": "client.pem", "ssl_keyfile": "client.key",
                    "ssl_password": "key-secret-1"}, "kafka-secure", "X509"),
    "sasl-plain-no-tls": ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
                          "kafka", "plain"),
    "sasl-plain": ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
                   "kafka-secure", "plain"),
    "scram-256": ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"},
                  "kafka-secure", "scramSha256"),
    "scram-512": ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                   "ssl_cafile": "ca.pem"}, "kafka-secure", "scramSha512"),
}


@pytest.mark.parametrize("variant", sorted(SECURITY_VARIANTS))
def test_servers_describe_the_installations_kafka_security_without_secrets(
    asyncapi_validator: Draft7Validator, tmp_path: Path, variant: str
) -> None:
    fields, protocol, kafka_scheme = SECURITY_VARIANTS[variant]
    values: dict[str, Any] = {name: tmp_path / value if name.endswith("file") else value
                              for name, value in fields.items()}
    for name, path in values.items():
        if name.endswith("file"):
            path.write_text("-----BEGIN NOTHING-----\n")
    if "sasl_mechanism" in values:
        values |= {"sasl_username": "vendor-user-7", "sasl_password": "sasl-secret-9"}
    settings = KafkaSettings(bootstrap_servers=("kafka-1.example:9093",), topic_prefix="zh",
                             **values)

    document = asyncapi_document(settings)

    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in asyncapi_validator.iter_errors(document)]
    assert errors == []
    server = document["servers"]["installation"]
    assert (server["host"], server["protocol"]) == ("kafka-1.example:9093", protocol)
    schemes = document["components"]["securitySchemes"]
    used = [schemes[ref["$ref"].rsplit("/", 1)[-1]]["type"] for ref in server.get("security", [])]
    assert used == ([kafka_scheme] if kafka_scheme else [])
    assert schemes["schemaRegistryBasic"] | {"description": ""} == {
        "type": "http", "scheme": "basic", "description": ""}
    text = json.dumps(document)
    assert [s for s in ("secret", "vendor-user-7", str(tmp_path)) if s in text] == []

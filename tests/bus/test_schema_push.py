"""`nervenbahn schemas push`: every released schema goes into an external Confluent registry
(the fake, with IMPORT mode as Confluent has it) under its catalogue id and released version;
a repeated push changes nothing; a target that assigned something differently is refused
before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.asyncapi import published_schemas
from bus.errors import RegistryError
from bus.kafka_settings import KafkaSettings
from bus.registry_http import ConfluentRegistryClient
from bus.registry_push import SchemaConflictError, catalogued, push_schemas
from nervenbahn.cli import main
from schemas import released_versions
from schemas.catalogue import load_catalogue

from .fake_confluent import running_fake_registry

PREFIX = "zh"
FACTS = f"{PREFIX}.reporting.case-facts.v1-ch.nervenbahn.reporting.CaseFact"
USER, PASSWORD = "operator", "s3cret"


def released() -> list[tuple[str, int, dict[str, Any]]]:
    """(subject, version, schema) of every released schema of the installation."""
    settings = KafkaSettings(topic_prefix=PREFIX)
    return [(p.subject, p.version, p.schema) for p in published_schemas(settings)]


@pytest.fixture
def secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The push's password file; the installation's topic prefix set."""
    monkeypatch.setenv("NERVENBAHN_TOPIC_PREFIX", PREFIX)
    path = tmp_path / "registry-secret"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    return path


def push(url: str, secret: Path) -> int:
    """`nervenbahn schemas push` against `url` with the test's credentials."""
    return main(["schemas", "push", "--registry", url, "--user", USER,
                 "--password-file", str(secret)])


def test_push_imports_every_released_schema_under_its_catalogue_id_and_version(
    secret: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    schemas = catalogued(released(), load_catalogue())
    with running_fake_registry(credentials=(USER, PASSWORD)) as (url, fake):
        assert push(url, secret) == 0
        client = ConfluentRegistryClient(url, auth=(USER, PASSWORD))
        for schema in schemas:
            held = {v.version: v for v in client.versions(schema.subject)}
            assert held[schema.version].schema_id == schema.schema_id
            assert held[schema.version].schema == schema.schema
            assert client.schema_by_id(schema.schema_id) == schema.schema
        assert [v.version for v in client.versions(FACTS)] == [1, 2, 3]
        assert fake.modes == {}  # no subject left with a mode of its own: the global one
    assert f"pushed {len(schemas)} schemas" in capfd.readouterr().out


def test_repeated_push_changes_nothing(secret: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with running_fake_registry(credentials=(USER, PASSWORD)) as (url, fake):
        assert push(url, secret) == 0
        before = (dict(fake.schemas), {s: list(v) for s, v in fake.subjects.items()})
        fake.requests.clear()
        assert push(url, secret) == 0
        assert (fake.schemas, fake.subjects) == before
        assert not [r for r in fake.requests if not r.startswith("GET ")]  # reads only
    assert "pushed 0 schemas" in capfd.readouterr().out


def test_push_adds_a_new_release_to_a_subject_that_holds_the_earlier_ones() -> None:
    schemas = [s for s in catalogued(released(), load_catalogue()) if s.subject == FACTS]
    with running_fake_registry() as (url, _):
        client = ConfluentRegistryClient(url)
        push_schemas(client, schemas[:2])
        pushed = push_schemas(client, schemas)
        assert [(p.imported, p.present) for p in pushed] == [((3,), (1, 2))]
        assert [(v.version, v.schema_id) for v in client.versions(FACTS)] == [
            (s.version, s.schema_id) for s in schemas
        ]


def test_push_gives_each_subject_back_the_mode_it_had() -> None:
    schemas = [s for s in catalogued(released(), load_catalogue()) if s.subject == FACTS]
    with running_fake_registry() as (url, fake):
        client = ConfluentRegistryClient(url)
        push_schemas(client, schemas[:1])
        fake.modes[FACTS] = "READONLY"  # the operator froze the subject
        fake.global_mode = "READONLY"

        push_schemas(client, schemas)

        assert fake.modes == {FACTS: "READONLY"}
        assert [v.version for v in client.versions(FACTS)] == [1, 2, 3]


class RefusingImports(ConfluentRegistryClient):
    """A client whose imports the target refuses (as a registry out of space would)."""

    def import_version(self, subject: str, schema: dict[str, Any], *, schema_id: int,
                       version: int) -> int:
        raise RegistryError("import refused by the target", url=self.url, status=500)


def test_a_failing_import_is_reported_and_the_mode_restored() -> None:
    schemas = [s for s in catalogued(released(), load_catalogue()) if s.subject == FACTS]
    with running_fake_registry() as (url, fake):
        client = RefusingImports(url)

        with pytest.raises(RegistryError, match="import refused"):
            push_schemas(client, schemas)

        assert fake.modes == {}  # not left in IMPORT mode


def test_target_that_assigned_a_subject_differently_is_refused_naming_it(
    secret: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (_, first), *_ = released_versions("CaseFact")
    with running_fake_registry(credentials=(USER, PASSWORD)) as (url, fake):
        # The target's own registration gave CaseFact v1 the id 1 (the catalogue's is not 1).
        ConfluentRegistryClient(url, auth=(USER, PASSWORD)).register(FACTS, first)
        before = (dict(fake.schemas), {s: list(v) for s, v in fake.subjects.items()})
        assert push(url, secret) == 1
        assert (fake.schemas, fake.subjects) == before  # nothing half-pushed
        assert not fake.modes
    error = capfd.readouterr().err
    assert f"{FACTS} version 1 is id 1 there" in error
    assert "nothing pushed" in error


def test_id_bound_to_another_schema_in_the_target_is_refused() -> None:
    schemas = [s for s in catalogued(released(), load_catalogue()) if s.subject == FACTS]
    other = {"type": "record", "name": "Other", "fields": [{"name": "a", "type": "string"}]}
    with running_fake_registry() as (url, fake):
        client = ConfluentRegistryClient(url)
        client.set_mode("elsewhere", "IMPORT")
        client.import_version("elsewhere", other, schema_id=schemas[0].schema_id, version=1)
        with pytest.raises(SchemaConflictError, match=f"id {schemas[0].schema_id} is another"):
            push_schemas(client, schemas)
        assert FACTS not in fake.subjects


def test_push_without_the_password_is_refused_by_the_target(
    secret: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with running_fake_registry(credentials=(USER, "other")) as (url, _):
        assert push(url, secret) == 3
    assert "status 401" in capfd.readouterr().err


def test_fake_refuses_what_confluent_refuses_in_import_mode() -> None:
    schema = {"type": "record", "name": "A", "fields": [{"name": "a", "type": "string"}]}
    changed = {**schema, "doc": "changed"}
    with running_fake_registry() as (_, fake):
        answer = fake.handle("POST", "/subjects/s/versions",
                             {"schema": json.dumps(schema), "id": 7, "version": 1})
        assert answer[0] == 422 and answer[1]["error_code"] == 42205  # not in IMPORT mode
        assert fake.handle("PUT", "/mode/s", {"mode": "IMPORT"})[0] == 200
        assert fake.handle("POST", "/subjects/s/versions", {"schema": json.dumps(schema)})[0] == 422
        ok = {"schema": json.dumps(schema), "id": 7, "version": 1}
        assert fake.handle("POST", "/subjects/s/versions", ok) == (200, {"id": 7})
        assert fake.handle("POST", "/subjects/s/versions", ok) == (200, {"id": 7})  # again
        fake.handle("PUT", "/mode/t", {"mode": "IMPORT"})
        status, body = fake.handle("POST", "/subjects/t/versions",
                                   {"schema": json.dumps(changed), "id": 7, "version": 1})
        assert (status, body["error_code"]) == (422, 42205)
        assert "Overwrite new schema with id 7" in body["message"]
        fake.handle("PUT", "/mode/s", {"mode": "READWRITE"})
        refused = fake.handle("PUT", "/mode/s", {"mode": "IMPORT"})
        assert refused[0] == 422 and refused[1]["error_code"] == 42205  # holds versions
        assert fake.handle("PUT", "/mode/s?force=true", {"mode": "IMPORT"})[0] == 200

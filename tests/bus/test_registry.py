"""The schema registry contract, on SQLite, on PostgreSQL and over HTTP (a fake Confluent).

`RegistryContract` states what every adapter of `SchemaRegistry` promises; each backend is a
tiny subclass providing `registry` and `reopen`. The error-translation tables of each adapter
follow the contract.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
import urllib.error
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from bus.compatibility import canonical_text, fingerprint
from bus.errors import (
    BusError,
    IncompatibleSchemaError,
    RegistryError,
    SchemaError,
    SchemaNotFoundError,
)
from bus.registry import SchemaRegistry
from bus.registry_http import ConfluentRegistryClient, parse_incompatibilities
from bus.registry_postgres import PostgresSchemaRegistry
from bus.registry_sql import SCHEMA_REGISTRY, TABLE
from bus.registry_sqlite import SQLiteSchemaRegistry
from schemas import SCHEMA_GROUPS, released_versions, schema_names
from schemas.catalogue import LOCAL_ID_BASE, CatalogueEntry, load_catalogue
from schemas.postgres import DatabaseUnavailableError
from schemas.sql import Component, migrate_postgres, migrate_sqlite

from .fake_confluent import FakeConfluentRegistry, running_fake_registry

SUBJECT = "casework.events-ch.nervenbahn.casework.ProbeClosed"
OTHER_SUBJECT = "casework.reporting-ch.nervenbahn.casework.ProbeClosed"


def closed_v1() -> dict[str, Any]:
    """A small event schema of the tests' own (no released version: not in the catalogue)."""
    return {
        "type": "record",
        "name": "ProbeClosed",
        "namespace": "ch.nervenbahn.casework",
        "fields": [
            {"name": "case_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "version", "type": "int"},
            {"name": "reason", "type": "string"},
        ],
    }


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    """`schema` with one more field at the end."""
    changed = copy.deepcopy(schema)
    changed["fields"].append(field)
    return changed


def with_type(schema: dict[str, Any], name: str, avro_type: Any) -> dict[str, Any]:
    """`schema` with field `name` of another type."""
    changed = copy.deepcopy(schema)
    for field in changed["fields"]:
        if field["name"] == name:
            field["type"] = avro_type
    return changed


def without_field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """`schema` without field `name`."""
    changed = copy.deepcopy(schema)
    changed["fields"] = [field for field in changed["fields"] if field["name"] != name]
    return changed


class RegistryContract(ABC):
    """What every schema registry adapter promises."""

    @pytest.fixture
    @abstractmethod
    def registry(self) -> Iterator[SchemaRegistry]:
        """A new, empty registry of this backend."""

    @abstractmethod
    def reopen(self) -> SchemaRegistry:
        """Another client of the same registry (a second producer, or after a restart)."""

    def test_same_schema_registered_twice_keeps_its_id(self, registry: SchemaRegistry) -> None:
        first = registry.register(SUBJECT, closed_v1())
        assert registry.register(SUBJECT, closed_v1()) == first
        assert [v.version for v in registry.versions(SUBJECT)] == [1]

    def test_compatible_change_becomes_the_next_version(self, registry: SchemaRegistry) -> None:
        v1 = registry.register(SUBJECT, closed_v1())
        v2_schema = with_field(closed_v1(), {"name": "note", "type": "string", "default": ""})
        v2 = registry.register(SUBJECT, v2_schema)
        assert v2 != v1
        assert registry.versions(SUBJECT) == [(1, v1, closed_v1()), (2, v2, v2_schema)]

    @pytest.mark.parametrize(
        ("change", "field", "kind"),
        [
            pytest.param(lambda s: with_field(s, {"name": "note", "type": "string"}),
                         "note", "READER_FIELD_MISSING_DEFAULT_VALUE", id="new-field-no-default"),
            pytest.param(lambda s: with_type(s, "version", "string"),
                         "version", "TYPE_MISMATCH", id="type-change"),
            pytest.param(lambda s: with_type(s, "reason", "int"),
                         "reason", "TYPE_MISMATCH", id="string-to-int"),
        ],
    )
    def test_incompatible_change_is_refused_naming_subject_and_field(
        self,
        registry: SchemaRegistry,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        field: str,
        kind: str,
    ) -> None:
        registry.register(SUBJECT, closed_v1())
        with pytest.raises(IncompatibleSchemaError) as refused:
            registry.register(SUBJECT, change(closed_v1()))
        assert refused.value.subject == SUBJECT
        assert refused.value.field == field
        assert str(refused.value).startswith(f"{SUBJECT}: {field}: ")
        assert [problem.kind for problem in refused.value.problems] == [kind]
        assert [v.version for v in registry.versions(SUBJECT)] == [1]

    def test_new_version_must_read_every_earlier_version(self, registry: SchemaRegistry) -> None:
        # v2 drops `reason` (fine); v3 brings it back as an int with a default: it could read
        # v2 data, but not v1 data, where `reason` is a string.
        registry.register(SUBJECT, closed_v1())
        registry.register(SUBJECT, without_field(closed_v1(), "reason"))
        v3 = with_field(without_field(closed_v1(), "reason"),
                        {"name": "reason", "type": "int", "default": 0})
        with pytest.raises(IncompatibleSchemaError) as refused:
            registry.register(SUBJECT, v3)
        assert refused.value.field == "reason"
        assert "version 1" in str(refused.value)
        assert [v.version for v in registry.versions(SUBJECT)] == [1, 2]

    def test_check_reports_problems_without_registering(self, registry: SchemaRegistry) -> None:
        registry.register(SUBJECT, closed_v1())
        changed = with_type(closed_v1(), "version", "string")
        problems = registry.check_compatibility(SUBJECT, changed)
        assert [(p.subject, p.field, p.kind) for p in problems] == [
            (SUBJECT, "version", "TYPE_MISMATCH")
        ]
        compatible = with_field(closed_v1(), {"name": "note", "type": "string", "default": ""})
        assert registry.check_compatibility(SUBJECT, compatible) == []
        assert registry.check_compatibility(OTHER_SUBJECT, closed_v1()) == []
        assert [v.version for v in registry.versions(SUBJECT)] == [1]

    def test_same_schema_under_two_subjects_shares_its_id(self, registry: SchemaRegistry) -> None:
        schema_id = registry.register(SUBJECT, closed_v1())
        assert registry.register(OTHER_SUBJECT, closed_v1()) == schema_id
        assert registry.subjects() == sorted([SUBJECT, OTHER_SUBJECT])

    def test_schema_is_found_by_its_id(self, registry: SchemaRegistry) -> None:
        schema_id = registry.register(SUBJECT, closed_v1())
        assert registry.schema_by_id(schema_id) == closed_v1()

    def test_unknown_id_is_not_found(self, registry: SchemaRegistry) -> None:
        registry.register(SUBJECT, closed_v1())
        with pytest.raises(SchemaNotFoundError):
            registry.schema_by_id(999)

    def test_unknown_subject_has_no_versions(self, registry: SchemaRegistry) -> None:
        assert registry.versions("nobody-ch.nervenbahn.casework.Nothing") == []
        assert registry.subjects() == []

    def test_malformed_schema_is_refused(self, registry: SchemaRegistry) -> None:
        with pytest.raises(SchemaError):
            registry.register(SUBJECT, with_type(closed_v1(), "reason", "no-such-type"))
        assert registry.subjects() == []

    def test_registrations_outlive_the_client(self, registry: SchemaRegistry) -> None:
        schema_id = registry.register(SUBJECT, closed_v1())
        with self.reopen() as again:
            assert again.schema_by_id(schema_id) == closed_v1()
            assert again.register(SUBJECT, closed_v1()) == schema_id

    def test_concurrent_producers_agree_on_ids(self, registry: SchemaRegistry) -> None:
        schemas = [
            with_field(closed_v1(), {"name": f"n{i}", "type": "string", "default": ""})
            for i in range(3)
        ]
        clients = [self.reopen() for _ in range(4)]
        start = threading.Barrier(len(clients))
        ids: list[list[int]] = [[] for _ in clients]
        failures: list[BaseException] = []

        def produce(index: int) -> None:
            try:
                start.wait()
                ids[index] = [clients[index].register(f"t{n}-x", s) for n, s in enumerate(schemas)]
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(len(clients))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            client.close()
        assert failures == []
        assert all(each == ids[0] for each in ids)
        assert len(set(ids[0])) == len(schemas)
        assert all(len(registry.versions(f"t{n}-x")) == 1 for n in range(len(schemas)))


LEGACY_REGISTRY = Component(SCHEMA_REGISTRY.name, SCHEMA_REGISTRY.migrations[:1], [TABLE])
"""The registry's table as releases before the catalogue made it (migration 1 only)."""


def released() -> list[tuple[str, dict[str, Any], CatalogueEntry]]:
    """Every released schema of the repository: (subject, schema, its catalogue entry)."""
    catalogue = load_catalogue()
    found = []
    for group, kind in SCHEMA_GROUPS.items():
        for name in schema_names(group):
            record = f"{kind.namespace}.{name}"
            for version, schema in released_versions(name):
                entry = catalogue.entry(record, version)
                assert entry is not None, f"{record} v{version} is not in the catalogue"
                found.append((f"nervenbahn.test.{group}-{record}", schema, entry))
    return found


def legacy_rows() -> list[tuple[str, int, int, dict[str, Any]]]:
    """(subject, version, id, schema) as a store before the catalogue held them: ids in order
    of first publication, registry versions counted from the first one published."""
    fact = "nervenbahn.test.reporting-ch.nervenbahn.reporting.CaseFact"
    opened = "nervenbahn.test.case-ch.nervenbahn.casework.CaseOpened"
    return [
        (fact, 1, 1, released_versions("CaseFact")[1][1]),
        (opened, 1, 2, released_versions("CaseOpened")[0][1]),
        (fact, 2, 3, released_versions("CaseFact")[2][1]),
        (SUBJECT, 1, 4, closed_v1()),
    ]


class EmbeddedRegistryContract(RegistryContract):
    """What the embedded registry promises beyond the port: catalogue ids and versions."""

    @abstractmethod
    def another_store(self) -> SchemaRegistry:
        """A registry in a second, separate, empty store (another installation)."""

    @abstractmethod
    def legacy_store(self, rows: list[tuple[str, int, int, dict[str, Any]]]) -> SchemaRegistry:
        """A registry opened on a store whose table (migration 1 only) holds `rows`."""

    def test_two_installations_give_released_schemas_the_catalogue_ids(
        self, registry: SchemaRegistry
    ) -> None:
        schemas = released()
        with self.another_store() as other:
            first = [registry.register(s, schema) for s, schema, _ in schemas]
            second = [other.register(s, schema) for s, schema, _ in reversed(schemas)]
            assert first == [entry.schema_id for _, _, entry in schemas]
            assert second[::-1] == first
            for store in (registry, other):
                for subject, schema, entry in schemas:
                    held = {v.version: v for v in store.versions(subject)}
                    assert held[entry.version].schema_id == entry.schema_id
                    assert held[entry.version].schema == schema

    def test_released_version_is_the_registry_version(self, registry: SchemaRegistry) -> None:
        (fact_v2, fact_v3) = released_versions("CaseFact")[1:]
        subject = "t-ch.nervenbahn.reporting.CaseFact"
        registry.register(subject, fact_v3[1])
        assert registry.check_compatibility(subject, fact_v2[1]) == []  # reads only older ones
        registry.register(subject, fact_v2[1])
        assert [v.version for v in registry.versions(subject)] == [2, 3]

    def test_unreleased_schema_gets_a_local_id_after_the_released_versions(
        self, registry: SchemaRegistry
    ) -> None:
        released_v1 = released_versions("CaseClosed")[0][1]
        draft = with_field(released_v1, {"name": "note", "type": ["null", "string"],
                                         "default": None})
        subject = "t-ch.nervenbahn.casework.CaseClosed"
        draft_id = registry.register(subject, draft)
        probe_id = registry.register(SUBJECT, closed_v1())
        assert draft_id >= LOCAL_ID_BASE
        assert probe_id == draft_id + 1
        assert [v.version for v in registry.versions(subject)] == [2]
        assert registry.register(subject, released_v1) == load_catalogue().entry(
            "ch.nervenbahn.casework.CaseClosed", 1
        ).schema_id  # type: ignore[union-attr]
        assert [v.version for v in registry.versions(subject)] == [1, 2]

    def test_store_from_before_the_catalogue_is_renumbered(
        self, registry: SchemaRegistry
    ) -> None:
        catalogue = load_catalogue()
        with self.legacy_store(legacy_rows()) as registry:
            for subject, version, old_id, schema in legacy_rows():
                entry = catalogue.by_fingerprint(fingerprint(schema))
                held = [v for v in registry.versions(subject) if v.schema == schema]
                if entry is None:
                    assert [(v.version, v.schema_id) for v in held] == [
                        (version, old_id + LOCAL_ID_BASE)
                    ]
                else:
                    assert [(v.version, v.schema_id) for v in held] == [
                        (entry.version, entry.schema_id)
                    ]
                    assert registry.schema_by_id(entry.schema_id) == schema


class TestSQLiteRegistry(EmbeddedRegistryContract):
    """The embedded registry in a SQLite file."""

    @pytest.fixture
    def registry(self, tmp_path: Path) -> Iterator[SchemaRegistry]:
        self.path = tmp_path / "store.db"
        with SQLiteSchemaRegistry(self.path) as registry:
            yield registry

    def reopen(self) -> SchemaRegistry:
        return SQLiteSchemaRegistry(self.path)

    def another_store(self) -> SchemaRegistry:
        return SQLiteSchemaRegistry(self.path.with_name("other.db"))

    def legacy_store(self, rows: list[tuple[str, int, int, dict[str, Any]]]) -> SchemaRegistry:
        path = self.path.with_name("legacy.db")
        db = sqlite3.connect(path, isolation_level=None)
        migrate_sqlite(db, LEGACY_REGISTRY)
        db.executemany(
            "INSERT INTO schema_registry (subject, version, schema_id, fingerprint, schema_text) "
            "VALUES (?, ?, ?, ?, ?)",
            [(s, v, i, fingerprint(schema), canonical_text(schema)) for s, v, i, schema in rows],
        )
        db.close()
        return SQLiteSchemaRegistry(path)


@pytest.mark.postgres
class TestPostgresRegistry(EmbeddedRegistryContract):
    """The embedded registry in a PostgreSQL schema of the test's own."""

    @pytest.fixture
    def registry(self, postgres_server_url: str) -> Iterator[SchemaRegistry]:
        self.url = postgres_server_url
        self.schema = f"t_{uuid4().hex[:12]}"
        self.scratch: list[str] = []
        with PostgresSchemaRegistry(self.url, schema=self.schema) as registry:
            yield registry
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in [self.schema, *self.scratch]:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )

    def reopen(self) -> SchemaRegistry:
        return PostgresSchemaRegistry(self.url, schema=self.schema)

    def another_store(self) -> SchemaRegistry:
        return PostgresSchemaRegistry(self.url, schema=self._scratch())

    def legacy_store(self, rows: list[tuple[str, int, int, dict[str, Any]]]) -> SchemaRegistry:
        schema = self._scratch()
        with psycopg.connect(self.url, autocommit=True) as conn:
            migrate_postgres(conn, schema, LEGACY_REGISTRY)
            table = sql.Identifier(schema, "schema_registry")
            for subject, version, schema_id, avro in rows:
                conn.execute(
                    sql.SQL("INSERT INTO {} (subject, version, schema_id, fingerprint, "
                            "schema_text) VALUES (%s, %s, %s, %s, %s)").format(table),
                    (subject, version, schema_id, fingerprint(avro), canonical_text(avro)),
                )
        return PostgresSchemaRegistry(self.url, schema=schema)

    def _scratch(self) -> str:
        """A second schema of the test's own, dropped after the test."""
        name = f"{self.schema}_{len(self.scratch)}"
        self.scratch.append(name)
        return name


class TestConfluentRegistryClient(RegistryContract):
    """The HTTP client against a fake Confluent registry on 127.0.0.1 (see fake_confluent)."""

    @pytest.fixture
    def registry(self) -> Iterator[SchemaRegistry]:
        with running_fake_registry() as (url, _):
            self.url = url
            yield ConfluentRegistryClient(url)

    def reopen(self) -> SchemaRegistry:
        return ConfluentRegistryClient(self.url)


del RegistryContract, EmbeddedRegistryContract


# --- error translation tables ---------------------------------------------------------------


def test_sqlite_registry_connects_on_first_use(tmp_path: Path) -> None:
    registry = SQLiteSchemaRegistry(tmp_path / "missing" / "dir" / "store.db")
    with pytest.raises(RegistryError) as failed:
        registry.subjects()
    assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
    assert "store.db" in str(failed.value)


def test_sqlite_registry_translates_a_file_that_is_no_database(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a SQLite database, just some text" * 100)
    with SQLiteSchemaRegistry(path) as registry, pytest.raises(RegistryError) as failed:
        registry.register(SUBJECT, closed_v1())
    assert isinstance(failed.value.__cause__, sqlite3.DatabaseError)


def test_postgres_registry_translates_an_unreachable_server() -> None:
    registry = PostgresSchemaRegistry(
        "postgresql://postgres@127.0.0.1:1/test", schema="nowhere", connect_timeout=2
    )
    with pytest.raises(RegistryError) as failed:
        registry.versions(SUBJECT)
    assert isinstance(failed.value.__cause__, DatabaseUnavailableError)  # schemas.postgres
    assert isinstance(failed.value.__cause__.__cause__, psycopg.OperationalError)
    assert "PostgreSQL 127.0.0.1:1/test schema nowhere" in str(failed.value)
    registry.close()


@pytest.fixture
def fake_registry() -> Iterator[tuple[ConfluentRegistryClient, FakeConfluentRegistry]]:
    """A client and the fake registry it talks to."""
    with running_fake_registry() as (url, fake):
        yield ConfluentRegistryClient(url), fake


@pytest.mark.parametrize(
    ("status", "body", "call", "error", "cause"),
    [
        pytest.param(500, b'{"error_code": 50001, "message": "Error in the backend data store"}',
                     lambda r: r.subjects(), RegistryError, urllib.error.HTTPError,
                     id="server-error"),
        pytest.param(503, b"<html>Service Unavailable</html>",
                     lambda r: r.schema_by_id(1), RegistryError, urllib.error.HTTPError,
                     id="error-without-json"),
        pytest.param(200, b"not json", lambda r: r.subjects(), RegistryError, ValueError,
                     id="answer-without-json"),
        pytest.param(404, b'{"error_code": 40403, "message": "Schema not found"}',
                     lambda r: r.schema_by_id(7), SchemaNotFoundError, urllib.error.HTTPError,
                     id="unknown-schema-id"),
        pytest.param(422, b'{"error_code": 42201, "message": "Invalid schema"}',
                     lambda r: r.register(SUBJECT, closed_v1()), SchemaError,
                     urllib.error.HTTPError, id="invalid-schema"),
        pytest.param(409, b'{"error_code": 409, "message": "incompatible"}',
                     lambda r: r.register(SUBJECT, closed_v1()), IncompatibleSchemaError,
                     urllib.error.HTTPError, id="incompatible"),
    ],
)
def test_http_errors_are_translated(
    fake_registry: tuple[ConfluentRegistryClient, FakeConfluentRegistry],
    status: int,
    body: bytes,
    call: Callable[[ConfluentRegistryClient], object],
    error: type[BusError],
    cause: type[BaseException],
) -> None:
    client, fake = fake_registry
    fake.fail_next(status, body)
    with pytest.raises(error) as failed:
        call(client)
    assert isinstance(failed.value.__cause__, cause)
    if isinstance(failed.value, RegistryError):
        assert failed.value.url is not None
        assert failed.value.url.startswith(client.url)
        assert failed.value.status == status
        assert client.url in str(failed.value)
        assert str(status) in str(failed.value)


def test_unreachable_registry_names_its_url() -> None:
    with running_fake_registry() as (url, _):
        pass  # stopped: nothing listens on its port any more
    client = ConfluentRegistryClient(url, timeout=2)
    with pytest.raises(RegistryError) as failed:
        client.subjects()
    assert failed.value.url == f"{url}/subjects"
    assert failed.value.status is None
    assert isinstance(failed.value.__cause__, urllib.error.URLError | OSError)


def test_client_sends_nothing_until_used() -> None:
    ConfluentRegistryClient("http://registry.invalid:8081")


def test_client_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(RegistryError):
        ConfluentRegistryClient("file:///etc/passwd")


def test_client_uses_the_confluent_endpoints(
    fake_registry: tuple[ConfluentRegistryClient, FakeConfluentRegistry],
) -> None:
    client, fake = fake_registry
    client.register(SUBJECT, closed_v1())
    client.check_compatibility(SUBJECT, closed_v1())
    client.versions(SUBJECT)
    client.schema_by_id(1)
    client.subjects()
    assert fake.requests == [
        f"POST /subjects/{SUBJECT}/versions",
        f"POST /compatibility/subjects/{SUBJECT}/versions/latest?verbose=true",
        f"GET /subjects/{SUBJECT}/versions",
        f"GET /subjects/{SUBJECT}/versions/1",
        "GET /schemas/ids/1",
        "GET /subjects",
    ]


def test_confluent_messages_name_the_field() -> None:
    # Worded as a Confluent Schema Registry 7.x words them (verbose=true).
    new = with_field(closed_v1(), {"name": "note", "type": "string"})
    new = with_type(new, "version", "string")
    messages = [
        "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'note' at path "
        "'/fields/3' in the new schema has no default value and is missing in the old schema', "
        "additionalInfo:'note'}",
        "{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/1/type') of a field in "
        "the new schema does not match with the old schema', additionalInfo:'reader type: "
        "STRING not compatible with writer type: INT'}",
        "{oldSchemaVersion: 2}",
        "{oldSchema: '{\"type\":\"record\"}'}",
        "{validateFields: 'false', compatibility: 'BACKWARD_TRANSITIVE'}",
    ]
    problems = parse_incompatibilities(SUBJECT, new, messages)
    assert [(p.field, p.kind, p.version) for p in problems] == [
        ("note", "READER_FIELD_MISSING_DEFAULT_VALUE", 2),
        ("version", "TYPE_MISMATCH", 2),
    ]
    assert "reader type: STRING not compatible with writer type: INT" in problems[1].message

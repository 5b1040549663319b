"""Embedded schema registry, kept in the event store's own database (SQLite or PostgreSQL).

No registry server to run: the table `schema_registry` sits beside the events. Ids are
global, as in a Confluent registry: the same schema gets the same id under every subject,
a new schema the next free id. Registration takes a write lock (SQLite `BEGIN IMMEDIATE`,
PostgreSQL `LOCK TABLE ... SHARE ROW EXCLUSIVE`), so that concurrent producers never hand out
one id twice or skip a compatibility check. Connections are opened on first use.

This module is the registry algorithm shared by both databases (`EmbeddedRegistry`) and its
table (`SCHEMA_REGISTRY`); each database is a module of its own, with its statements:
`bus.registry_sqlite.SQLiteSchemaRegistry`, `bus.registry_postgres.PostgresSchemaRegistry`.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from bus.compatibility import (
    SchemaProblem,
    canonical_text,
    compatibility_problems,
    ensure_compatible,
    fingerprint,
    validate_schema,
)
from bus.errors import SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry, SchemaVersion
from schemas.sql import Component, Migration

__all__ = ["SCHEMA_REGISTRY", "TABLE", "EmbeddedRegistry", "RegistryRows", "RegistryStatements"]

TABLE = "schema_registry"


@dataclass(frozen=True)
class RegistryStatements:
    """The registry's statements, written by each backend in its own SQL dialect."""

    by_subject: str
    id_of_subject_schema: str
    id_of_schema: str
    next_id: str
    insert: str
    schema_by_id: str
    subjects: str


SCHEMA_REGISTRY = Component(
    "schema_registry",
    [
        Migration(
            1,
            "the embedded schema registry",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS schema_registry ("
                "subject TEXT NOT NULL, version INTEGER NOT NULL, "
                "schema_id INTEGER NOT NULL, fingerprint TEXT NOT NULL, "
                "schema_text TEXT NOT NULL, "
                "registered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), "
                "PRIMARY KEY (subject, version), UNIQUE (subject, fingerprint))",
                "CREATE INDEX IF NOT EXISTS schema_registry_schema_id "
                "ON schema_registry (schema_id)",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.schema_registry ("
                "subject text NOT NULL, version integer NOT NULL, "
                "schema_id integer NOT NULL, fingerprint text NOT NULL, "
                "schema_text text NOT NULL, "
                "registered_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (subject, version), UNIQUE (subject, fingerprint))",
                "CREATE INDEX IF NOT EXISTS schema_registry_schema_id "
                "ON {schema}.schema_registry (schema_id)",
            ],
        )
    ],
    tables=[TABLE],
)
"""The registry's table, beside the events."""


class RegistryRows(Protocol):
    """What the shared algorithm needs of a database: run a statement, get its rows."""

    def __call__(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class EmbeddedRegistry(SchemaRegistry):
    """The registry algorithm on a SQL table; a subclass supplies the database and its SQL."""

    _sql: RegistryStatements

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[RegistryRows]:
        """A transaction on the registry table, locked against other writers if `write`;
        database errors leave it as RegistryError."""

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        problems = validate_schema(subject, schema)
        if problems:
            raise SchemaError(str(problems[0]))
        key = fingerprint(schema)
        with self._transaction(write=False) as rows:
            known = rows(self._sql.id_of_subject_schema, (subject, key))
        if known:
            return int(known[0][0])
        with self._transaction(write=True) as rows:
            versions = rows(self._sql.by_subject, (subject,))
            for _, schema_id, stored_key, _ in versions:
                if stored_key == key:  # registered meanwhile by another producer
                    return int(schema_id)
            earlier = [(int(version), json.loads(text)) for version, _, _, text in versions]
            ensure_compatible(subject, schema, earlier)
            same = rows(self._sql.id_of_schema, (key,))
            schema_id = int(same[0][0] if same else rows(self._sql.next_id)[0][0])
            version = int(versions[-1][0]) + 1 if versions else 1
            rows(self._sql.insert, (subject, version, schema_id, key, canonical_text(schema)))
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        with self._transaction(write=False) as rows:
            found = rows(self._sql.schema_by_id, (schema_id,))
        if not found:
            raise SchemaNotFoundError(f"no schema with id {schema_id} in {self.describe()}")
        schema: dict[str, Any] = json.loads(found[0][0])
        return schema

    def versions(self, subject: str) -> list[SchemaVersion]:
        with self._transaction(write=False) as rows:
            found = rows(self._sql.by_subject, (subject,))
        return [
            SchemaVersion(int(version), int(schema_id), json.loads(text))
            for version, schema_id, _, text in found
        ]

    def subjects(self) -> list[str]:
        with self._transaction(write=False) as rows:
            return [str(subject) for (subject,) in rows(self._sql.subjects)]

    def check_compatibility(self, subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
        problems = validate_schema(subject, schema)
        if problems:
            return problems
        key = fingerprint(schema)
        versions = self.versions(subject)
        if any(fingerprint(version.schema) == key for version in versions):
            return []
        return compatibility_problems(
            subject, schema, [(version.version, version.schema) for version in versions]
        )

    @abstractmethod
    def describe(self) -> str:
        """Where the registry is kept, for messages (no secrets)."""

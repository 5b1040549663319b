"""Embedded schema registry, kept in the event store's own database (SQLite or PostgreSQL).

No registry server to run: the table `schema_registry` sits beside the events. Ids are
global, as in a Confluent registry: the same schema gets the same id under every subject.
A released schema (one in `schemas/catalogue.json`) gets its catalogue id and, as registry
version, its released version, whatever the order of publication: every installation agrees.
A schema not in the catalogue (unreleased: during development, a test's own schema) gets a
local id from `LOCAL_ID_BASE` (100000) up, which can never name a released schema, and the
version after both the subject's newest and the record's newest released one. Registration
takes a write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE ... SHARE ROW
EXCLUSIVE`), so that concurrent producers never hand out one id twice or skip a
compatibility check. Connections are opened on first use.

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
from schemas.catalogue import LOCAL_ID_BASE, SchemaCatalogue, load_catalogue
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
    """The next local id (`LOCAL_ID_BASE` up) for a schema that is not in the catalogue."""
    insert: str
    schema_by_id: str
    subjects: str


def _catalogue_rows(catalogue: SchemaCatalogue) -> str:
    """The catalogue as a constant `VALUES` list (ids and versions are integers, fingerprints
    64 hex digits, all checked by the loader: nothing here can carry SQL)."""
    return ", ".join(
        f"('{entry.fingerprint}', {int(entry.schema_id)}, {int(entry.version)})"
        for entry in catalogue.entries
    )


def _renumbering(catalogue: SchemaCatalogue, table: str) -> list[str]:
    """Statements that give rows of released schemas their catalogue id and version, and
    move every other row's id into the local range and its version after the subject's
    released ones (keeping their order). Versions are first set negative to free the slots."""
    local = f"schema_id + {LOCAL_ID_BASE}"
    statements = [f"UPDATE {table} SET version = -version"]  # noqa: S608 - constant
    if catalogue.entries:
        statements.append(
            f"WITH c(fingerprint, schema_id, version) AS (VALUES {_catalogue_rows(catalogue)}) "  # noqa: S608
            f"UPDATE {table} SET "
            f"schema_id = (SELECT c.schema_id FROM c WHERE c.fingerprint = {table}.fingerprint), "
            f"version = (SELECT c.version FROM c WHERE c.fingerprint = {table}.fingerprint) "
            "WHERE fingerprint IN (SELECT fingerprint FROM c)"
        )
    statements += [
        f"UPDATE {table} SET schema_id = {local} "  # noqa: S608
        f"WHERE version < 0 AND schema_id < {LOCAL_ID_BASE}",
        f"UPDATE {table} SET version = -version + (SELECT COALESCE(MAX(o.version), 0) "  # noqa: S608
        f"FROM {table} o WHERE o.subject = {table}.subject AND o.schema_id < {LOCAL_ID_BASE}) "
        "WHERE version < 0",
    ]
    return statements


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
        ),
        Migration(
            2,
            "schema ids and versions from the catalogue (schemas/catalogue.json)",
            sqlite=_renumbering(load_catalogue(), TABLE),
            postgres=_renumbering(load_catalogue(), "{schema}." + TABLE),
        ),
    ],
    tables=[TABLE],
)
"""The registry's table, beside the events. Migration 2 renumbers a store written before the
catalogue (ids in order of first publication): messages already on a topic with the old ids
then name other schemas; consumers dead-letter them as mismatched (see docs/bus.md)."""


class RegistryRows(Protocol):
    """What the shared algorithm needs of a database: run a statement, get its rows."""

    def __call__(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class EmbeddedRegistry(SchemaRegistry):
    """The registry algorithm on a SQL table; a subclass supplies the database and its SQL."""

    _sql: RegistryStatements
    _catalogue: SchemaCatalogue | None = None

    @property
    def catalogue(self) -> SchemaCatalogue:
        """The id catalogue this registry follows (`schemas/catalogue.json` unless given)."""
        if self._catalogue is None:
            self._catalogue = load_catalogue()
        return self._catalogue

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
            schema_id, version = self._id_and_version(rows, subject, schema, key, earlier)
            ensure_compatible(subject, schema, self._to_read(key, earlier))
            rows(self._sql.insert, (subject, version, schema_id, key, canonical_text(schema)))
        return schema_id

    def _id_and_version(
        self,
        rows: RegistryRows,
        subject: str,
        schema: dict[str, Any],
        key: str,
        earlier: list[tuple[int, dict[str, Any]]],
    ) -> tuple[int, int]:
        """The catalogue's id and released version of a released schema; else a local id and
        the version after the subject's and the record's newest released one."""
        entry = self.catalogue.by_fingerprint(key)
        if entry is not None:
            held = next((old for v, old in earlier if v == entry.version), None)
            if held is not None:
                raise SchemaError(
                    f"{subject}: version {entry.version} is held by a schema that is not "
                    f"released v{entry.version} of {entry.record} (registered before its "
                    "release?); it cannot take its catalogue version"
                )
            return entry.schema_id, entry.version
        same = rows(self._sql.id_of_schema, (key,))
        if not same:
            same = rows(self._sql.next_id, (LOCAL_ID_BASE - 1, LOCAL_ID_BASE))
        schema_id = int(same[0][0])
        newest = max((v for v, _ in earlier), default=0)
        return schema_id, max(newest, self.catalogue.latest_version(_fullname(schema))) + 1

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
            subject, schema, self._to_read(key, [(v.version, v.schema) for v in versions])
        )

    def _to_read(
        self, key: str, versions: list[tuple[int, dict[str, Any]]]
    ) -> list[tuple[int, dict[str, Any]]]:
        """The versions a schema with fingerprint `key` must be able to read: all of them,
        except, for a released schema, the released versions after it (registered first by
        an installation publishing out of order; `schemas check` has already shown that
        they read it)."""
        entry = self.catalogue.by_fingerprint(key)
        if entry is None:
            return versions
        return [
            (version, old) for version, old in versions
            if version < entry.version or self.catalogue.by_fingerprint(fingerprint(old)) is None
        ]

    @abstractmethod
    def describe(self) -> str:
        """Where the registry is kept, for messages (no secrets)."""


def _fullname(schema: dict[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"

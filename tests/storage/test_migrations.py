"""The migration runner (`schemas.sql`): one contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.utils import resolve_topic
from psycopg import sql

from nervenbahn import config
from nervenbahn.audit.recorders import ChainedSQLiteApplicationRecorder
from nervenbahn.audit.recorders_postgres import ChainedPostgresApplicationRecorder
from schemas.sql import (
    Component,
    Migration,
    SchemaVersionError,
    migrate_postgres,
    migrate_sqlite,
    recorded_versions_postgres,
    recorded_versions_sqlite,
)

POSTGRES = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"

# No IF NOT EXISTS on purpose: running a step twice fails, so "applied once" is observable.
FIRST = Migration(
    1, "notes",
    sqlite=["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"],
    postgres=["CREATE TABLE {schema}.notes (id integer PRIMARY KEY, body text NOT NULL)"],
)
SECOND = Migration(
    2, "notes get an author",
    sqlite=["ALTER TABLE notes ADD COLUMN author TEXT"],
    postgres=["ALTER TABLE {schema}.notes ADD COLUMN author text"],
)
NOTES = Component("notes", [FIRST], tables=["notes"])
NOTES_V2 = Component("notes", [FIRST, SECOND], tables=["notes"])


class MigrationContract(ABC):
    """What every backend's runner does."""

    @abstractmethod
    def migrate(self, component: Component) -> int:
        """Run the runner on a connection of its own."""

    @abstractmethod
    def versions(self) -> dict[str, int]:
        """The recorded versions."""

    @abstractmethod
    def run(self, statement: str) -> list[tuple[Any, ...]]:
        """Run SQL written for this backend (`{schema}` is the test schema)."""

    def test_a_new_store_gets_every_migration_and_its_version(self) -> None:
        assert self.migrate(NOTES_V2) == 2
        assert self.versions() == {"notes": 2}
        self.run("INSERT INTO {schema}.notes (id, body, author) VALUES (1, 'x', 'a')")

    def test_opening_again_changes_nothing(self) -> None:
        self.migrate(NOTES_V2)
        before = self.run("SELECT component, version, applied_at FROM {schema}.schema_versions")
        assert self.migrate(NOTES_V2) == 2
        assert self.run("SELECT component, version, applied_at FROM {schema}.schema_versions") \
            == before

    def test_a_later_release_applies_only_the_new_migration(self) -> None:
        self.migrate(NOTES)
        self.run("INSERT INTO {schema}.notes (id, body) VALUES (1, 'kept')")
        assert self.migrate(NOTES_V2) == 2
        assert self.run("SELECT body, author FROM {schema}.notes") == [("kept", None)]

    def test_a_store_from_before_the_runner_is_taken_as_version_one(self) -> None:
        self.run("CREATE TABLE {schema}.notes (id integer PRIMARY KEY, body text NOT NULL)")
        self.run("INSERT INTO {schema}.notes (id, body) VALUES (1, 'old')")
        baseline = Component("notes", [Migration(
            1, "notes",
            sqlite=["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)"],
            postgres=["CREATE TABLE IF NOT EXISTS {schema}.notes (id integer PRIMARY KEY)"],
        ), SECOND], tables=["notes"])
        first = Component("notes", baseline.migrations[:1], tables=["notes"])
        assert self.migrate(first) == 1
        assert self.run("SELECT note FROM {schema}.schema_versions") == [("baseline: notes",)]
        assert self.migrate(baseline) == 2
        assert self.versions() == {"notes": 2}
        assert self.run("SELECT note FROM {schema}.schema_versions") == [
            ("notes get an author",)]
        assert self.run("SELECT body, author FROM {schema}.notes") == [("old", None)]

    def test_a_new_store_is_no_baseline(self) -> None:
        self.migrate(NOTES)
        assert self.run("SELECT note FROM {schema}.schema_versions") == [("notes",)]

    def test_a_store_of_a_newer_release_is_refused(self) -> None:
        self.migrate(NOTES_V2)
        with pytest.raises(SchemaVersionError, match=r"notes: .* version 2, .* up to 1") as err:
            self.migrate(NOTES)
        assert (err.value.component, err.value.recorded, err.value.known) == ("notes", 2, 1)

    def test_components_keep_versions_of_their_own(self) -> None:
        self.migrate(NOTES)
        other = Component("other", [Migration(
            1, "other", sqlite=["CREATE TABLE other (id INTEGER)"],
            postgres=["CREATE TABLE {schema}.other (id integer)"])])
        self.migrate(other)
        assert self.versions() == {"notes": 1, "other": 1}

    def test_two_processes_opening_at_once_apply_each_step_once(self) -> None:
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def open_store() -> None:
            start.wait(timeout=10)
            try:
                self.migrate(NOTES_V2)
            except BaseException as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert self.versions() == {"notes": 2}

    def test_a_failing_step_leaves_the_previous_version(self) -> None:
        self.migrate(NOTES)
        broken = Component("notes", [FIRST, Migration(
            2, "broken", sqlite=["ALTER TABLE notes ADD COLUMN author TEXT", "SELECT * FROM nil"],
            postgres=["ALTER TABLE {schema}.notes ADD COLUMN author text", "SELECT * FROM nil"])])
        with pytest.raises((sqlite3.Error, psycopg.Error)):
            self.migrate(broken)
        assert self.versions() == {"notes": 1}
        assert self.migrate(NOTES_V2) == 2  # the half step was rolled back: it applies cleanly


class TestSQLiteMigrations(MigrationContract):
    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None, timeout=30)

    def migrate(self, component: Component) -> int:
        db = self._connect()
        try:
            return migrate_sqlite(db, component)
        finally:
            db.close()

    def versions(self) -> dict[str, int]:
        db = self._connect()
        try:
            return recorded_versions_sqlite(db)
        finally:
            db.close()

    def run(self, statement: str) -> list[tuple[Any, ...]]:
        db = self._connect()
        try:
            return db.execute(statement.replace("{schema}.", "")).fetchall()
        finally:
            db.close()

    def test_inside_the_callers_transaction_the_steps_are_part_of_it(self) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        migrate_sqlite(db, NOTES_V2)
        db.execute("ROLLBACK")
        db.close()
        assert self.versions() == {}

    def test_a_connection_with_implicit_transactions_is_refused(self) -> None:
        with pytest.raises(ValueError, match="isolation_level=None"):
            migrate_sqlite(sqlite3.connect(self.path), NOTES)


class TestPostgresMigrations(MigrationContract):
    @pytest.fixture(autouse=True)
    def _schema(self) -> Iterator[None]:
        self.schema = f"migr_{uuid.uuid4().hex[:12]}"
        try:
            admin = psycopg.connect(POSTGRES, autocommit=True)
        except psycopg.OperationalError as exc:
            pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
        try:
            yield
        finally:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.schema)))
            admin.close()

    def migrate(self, component: Component) -> int:
        with psycopg.connect(POSTGRES, autocommit=True) as db:
            return migrate_postgres(db, self.schema, component)

    def versions(self) -> dict[str, int]:
        with psycopg.connect(POSTGRES, autocommit=True) as db:
            return recorded_versions_postgres(db, self.schema)

    def run(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(POSTGRES, autocommit=True) as db:
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.schema)))
            cursor = db.execute(sql.SQL(statement).format(schema=sql.Identifier(self.schema)))
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


del MigrationContract


@pytest.mark.parametrize(("topic", "recorder"), [
    (config._CHAINED_SQLITE, ChainedSQLiteApplicationRecorder),
    (config._CHAINED_POSTGRES, ChainedPostgresApplicationRecorder),
])
def test_the_configured_recorder_topic_names_the_chained_recorder(
    topic: str, recorder: type
) -> None:
    assert resolve_topic(topic) is recorder


@pytest.mark.parametrize("numbers", [[], [2], [1, 3], [1, 1]])
def test_migrations_must_be_numbered_one_to_n(numbers: list[int]) -> None:
    with pytest.raises(ValueError, match=r"numbered 1\.\.n"):
        Component("gaps", [Migration(n, "x", sqlite=[], postgres=[]) for n in numbers])

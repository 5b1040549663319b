"""The effect-store port's contract, on every backend: a transaction commits the effect, the
processed event and the offset together or not at all; a savepoint undoes one message alone;
dedup and offsets are per consumer group."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from bus.effects import CONSUMER_BOOKKEEPING, EffectStore, PartitionMark
from bus.effects_postgres import PostgresEffectStore
from bus.effects_sqlite import SQLiteEffectStore
from nervenbahn.config import StoreConfig
from schemas.sql import Component, migrate_postgres, migrate_sqlite


class _Boom(Exception):
    """A handler failing mid-transaction."""


class EffectStoreContract(ABC):
    """What every `EffectStore` does; a subclass per backend opens one and writes an effect."""

    @abstractmethod
    def open(self) -> EffectStore:
        """A store on this test's own database (the same one each time it is called)."""

    @abstractmethod
    def write_effect(self, tx: Any, value: str) -> None:
        """The application's own write inside the consumer transaction."""

    @abstractmethod
    def effects(self, store: EffectStore) -> list[str]:
        """Every effect written and committed, in order."""

    @pytest.fixture
    def effects_store(self) -> Iterator[EffectStore]:
        store = self.open()
        yield store
        store.close()

    def test_effect_event_and_offset_commit_together(self, effects_store: EffectStore) -> None:
        event = uuid4()
        with effects_store.transaction() as tx:
            self.write_effect(tx, "paid")
            effects_store.mark(tx, "payments", event)
            effects_store.advance(tx, "payments", "t", 0, PartitionMark(1, "e1"))

        reopened = self.open()
        try:
            with reopened.transaction() as tx:
                assert reopened.seen(tx, "payments", event)
            assert reopened.offsets("payments") == {("t", 0): PartitionMark(1, "e1")}
            assert self.effects(reopened) == ["paid"]
        finally:
            reopened.close()

    def test_a_failure_in_the_transaction_leaves_nothing(self, effects_store: EffectStore) -> None:
        event = uuid4()

        def handle_then_fail() -> None:
            with effects_store.transaction() as tx:
                self.write_effect(tx, "paid")
                effects_store.mark(tx, "payments", event)
                effects_store.advance(tx, "payments", "t", 0, PartitionMark(1))
                raise _Boom

        with pytest.raises(_Boom):
            handle_then_fail()
        with effects_store.transaction() as tx:
            assert not effects_store.seen(tx, "payments", event)
        assert effects_store.offsets("payments") == {}
        assert self.effects(effects_store) == []

    def test_a_savepoint_undoes_one_message_alone(self, effects_store: EffectStore) -> None:
        def poison(tx: Any) -> None:
            with effects_store.savepoint(tx):
                self.write_effect(tx, "poison")
                raise _Boom

        with effects_store.transaction() as tx:
            self.write_effect(tx, "first")
            with pytest.raises(_Boom):
                poison(tx)
            self.write_effect(tx, "third")
        assert self.effects(effects_store) == ["first", "third"]

    def test_dedup_and_offsets_are_per_group(self, effects_store: EffectStore) -> None:
        event = uuid4()
        with effects_store.transaction() as tx:
            effects_store.mark(tx, "payments", event)
            effects_store.advance(tx, "payments", "t", 2, PartitionMark(7, "e1"))
            effects_store.advance(tx, "payments", "t", 2, PartitionMark(9, "e2"))  # moves on
        with effects_store.transaction() as tx:
            assert effects_store.seen(tx, "payments", event)
            assert not effects_store.seen(tx, "statistics", event)
        assert effects_store.offsets("payments") == {("t", 2): PartitionMark(9, "e2")}
        assert effects_store.offsets("statistics") == {}


    def test_the_epochs_met_in_a_partition_are_remembered_per_group(
        self, effects_store: EffectStore
    ) -> None:
        with effects_store.transaction() as tx:
            effects_store.remember_epoch(tx, "payments", "t", 0, "e1", 0)
            effects_store.remember_epoch(tx, "payments", "t", 0, "e2", 5)
            effects_store.remember_epoch(tx, "payments", "t", 0, "e1", 9)  # known: kept as is
            effects_store.advance(tx, "payments", "t", 0, PartitionMark(7, "e2"))
        reopened = self.open()
        try:
            mark = reopened.offsets("payments")[("t", 0)]
        finally:
            reopened.close()
        assert mark == PartitionMark(7, "e2", frozenset({"e1", "e2"}))
        assert mark.knows("e1") and not mark.knows("e3")
        assert effects_store.offsets("statistics") == {}

    def test_a_mark_kept_before_epochs_were_remembered_knows_its_epoch(self) -> None:
        self.write_version_1_mark("payments", "t", 3, 42, "old-epoch")
        store = self.open()
        try:
            assert store.offsets("payments") == {
                ("t", 3): PartitionMark(42, "old-epoch", frozenset({"old-epoch"}))
            }
        finally:
            store.close()

    @abstractmethod
    def write_version_1_mark(
        self, group: str, topic: str, partition: int, offset: int, epoch: str
    ) -> None:
        """A mark in the bookkeeping tables as release 1 of them kept it (no epochs table)."""


VERSION_1 = Component(CONSUMER_BOOKKEEPING.name, CONSUMER_BOOKKEEPING.migrations[:1])
"""The consumer bookkeeping as it was before epochs were remembered."""


class TestSQLiteEffects(EffectStoreContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "consumer" / "effects.db"

    def open(self) -> EffectStore:
        store = SQLiteEffectStore(self.path)
        store.db.execute("CREATE TABLE IF NOT EXISTS effects (n INTEGER PRIMARY KEY, v TEXT)")
        return store

    def write_effect(self, tx: Any, value: str) -> None:
        tx.execute("INSERT INTO effects (v) VALUES (?)", (value,))

    def effects(self, store: EffectStore) -> list[str]:
        assert isinstance(store, SQLiteEffectStore)
        return [v for (v,) in store.db.execute("SELECT v FROM effects ORDER BY n")]

    def write_version_1_mark(
        self, group: str, topic: str, partition: int, offset: int, epoch: str
    ) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            migrate_sqlite(db, VERSION_1)
            db.execute("INSERT INTO consumer_offsets VALUES (?, ?, ?, ?, ?)",
                       (group, topic, partition, offset, epoch))
        finally:
            db.close()


@pytest.mark.postgres
class TestPostgresEffects(EffectStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, postgres_dsn: str) -> None:
        self.store = StoreConfig.parse(postgres_dsn)
        self.table = sql.Identifier(self.store.schema_name, "effects")

    def open(self) -> EffectStore:
        store = PostgresEffectStore(self.store.conninfo(), self.store.schema_name)
        store.connection.connection().execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (n serial PRIMARY KEY, v text)").format(
                self.table
            )
        )
        return store

    def write_effect(self, tx: Any, value: str) -> None:
        assert isinstance(tx, psycopg.Connection)
        tx.execute(sql.SQL("INSERT INTO {} (v) VALUES (%s)").format(self.table), (value,))

    def effects(self, store: EffectStore) -> list[str]:
        assert isinstance(store, PostgresEffectStore)
        rows = store.connection.connection().execute(
            sql.SQL("SELECT v FROM {} ORDER BY n").format(self.table))
        return [v for (v,) in rows]

    def write_version_1_mark(
        self, group: str, topic: str, partition: int, offset: int, epoch: str
    ) -> None:
        schema = self.store.schema_name
        with psycopg.connect(self.store.conninfo(), autocommit=True) as db:
            migrate_postgres(db, schema, VERSION_1)
            db.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(
                    sql.Identifier(schema, "consumer_offsets")
                ),
                (group, topic, partition, offset, epoch),
            )


del EffectStoreContract

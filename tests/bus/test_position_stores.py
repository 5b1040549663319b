"""The relay-position port's contract, on every backend: the position a relay saved is the one
it loads, per relay, across a reopened store, with epochs kept and updates in place. (The
PostgreSQL store had no test of its own before.)"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.positions import RelayPosition, RelayPositionStore, new_epoch
from bus.positions_postgres import PostgresPositionStore
from bus.positions_sqlite import SQLitePositionStore
from nervenbahn.config import StoreConfig


class PositionStoreContract(ABC):
    """What every `RelayPositionStore` does; a subclass per backend says how to open one."""

    @abstractmethod
    def open(self) -> RelayPositionStore:
        """A store on this test's own database (the same one each time it is called)."""

    @pytest.fixture
    def positions(self) -> Iterator[RelayPositionStore]:
        store = self.open()
        yield store
        store.close()

    def test_a_relay_that_never_ran_is_at_zero(self, positions: RelayPositionStore) -> None:
        assert positions.load("case-events") == RelayPosition(0, 0, "")

    def test_the_saved_position_is_loaded_again_after_reopening(
        self, positions: RelayPositionStore
    ) -> None:
        epoch = new_epoch()
        positions.save("case-events", RelayPosition(29_437, 29_440, epoch))
        reopened = self.open()
        try:
            assert reopened.load("case-events") == RelayPosition(29_437, 29_440, epoch)
        finally:
            reopened.close()

    def test_a_save_replaces_the_relays_position_and_leaves_the_others(
        self, positions: RelayPositionStore
    ) -> None:
        first, second = new_epoch(), new_epoch()
        positions.save("case-events", RelayPosition(10, 10, first))
        positions.save("reporting", RelayPosition(7, 6, first))
        positions.save("case-events", RelayPosition(0, 0, second))  # republish from the start
        assert positions.load("case-events") == RelayPosition(0, 0, second)
        assert positions.load("reporting") == RelayPosition(7, 6, first)

    def test_positions_beyond_32_bits_are_kept(self, positions: RelayPositionStore) -> None:
        positions.save("case-events", RelayPosition(2**40, 2**40 + 3, "e"))
        assert positions.load("case-events") == RelayPosition(2**40, 2**40 + 3, "e")

    def test_concurrent_saves_of_different_relays_are_all_kept(
        self, positions: RelayPositionStore
    ) -> None:
        def relay(name: str) -> None:
            for n in range(1, 51):
                positions.save(name, RelayPosition(n, n, name))

        threads = [threading.Thread(target=relay, args=(f"r{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [positions.load(f"r{i}") for i in range(4)] == [
            RelayPosition(50, 50, f"r{i}") for i in range(4)
        ]


class TestSQLitePositions(PositionStoreContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def open(self) -> RelayPositionStore:
        return SQLitePositionStore(self.path)


@pytest.mark.postgres
class TestPostgresPositions(PositionStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, postgres_dsn: str) -> None:
        self.store = StoreConfig.parse(postgres_dsn)

    def open(self) -> RelayPositionStore:
        return PostgresPositionStore(self.store.conninfo(), self.store.schema_name)


del PositionStoreContract

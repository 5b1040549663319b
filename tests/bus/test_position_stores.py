"""The relay-position port's contract, on every backend: the position a relay saved is the one
it loads, per relay, across a reopened store, with epochs kept and updates in place. (The
PostgreSQL store had no test of its own before.) And the lease: one holder at a time, a new
fencing token at each acquisition, and a position saved under a lost lease is refused. And the
serve instances' announcements: each sees the other live ones, not itself, not the withdrawn,
not those whose announcement ran out."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.errors import LeaseLostError
from bus.positions import InstanceRecord, Lease, RelayPosition, RelayPositionStore, new_epoch
from bus.positions_postgres import PostgresPositionStore
from bus.positions_sqlite import SQLitePositionStore
from nervenbahn.config import StoreConfig
from tests.bus.waiting import wait_until


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

    # --- the lease ---------------------------------------------------------------------------

    def test_only_one_instance_holds_a_relays_lease(self, positions: RelayPositionStore) -> None:
        first = positions.acquire("case-events", "a", 30)
        assert first == Lease("case-events", "a", 1)
        assert positions.acquire("case-events", "b", 30) is None
        assert positions.acquire("reporting", "b", 30) == Lease("reporting", "b", 1)
        assert positions.holder("case-events") == first
        assert positions.acquire("case-events", "a", 30) == first  # the holder keeps its token

    def test_a_released_lease_is_taken_over_with_a_new_token(
        self, positions: RelayPositionStore
    ) -> None:
        first = positions.acquire("case-events", "a", 30)
        assert first is not None
        positions.release(first)
        assert positions.holder("case-events") is None
        assert positions.acquire("case-events", "b", 30) == Lease("case-events", "b", 2)
        assert positions.renew(first, 30) is False

    def test_an_expired_lease_is_taken_over_and_its_holder_cannot_renew_it(
        self, positions: RelayPositionStore
    ) -> None:
        first = positions.acquire("case-events", "a", 0.2)
        assert first is not None and positions.renew(first, 0.2)
        taken = wait_until(lambda: positions.acquire("case-events", "b", 30), within=5)
        assert taken == Lease("case-events", "b", 2)
        assert positions.renew(first, 30) is False
        assert positions.holder("case-events") == taken

    def test_a_position_saved_under_a_lost_lease_is_refused(
        self, positions: RelayPositionStore
    ) -> None:
        first = positions.acquire("case-events", "a", 30)
        assert first is not None
        positions.save("case-events", RelayPosition(10, 10, "e"), first)
        positions.release(first)
        second = positions.acquire("case-events", "b", 30)
        assert second is not None
        with pytest.raises(LeaseLostError, match="fencing token 1"):
            positions.save("case-events", RelayPosition(20, 20, "e"), first)
        assert positions.load("case-events") == RelayPosition(10, 10, "e")
        positions.save("case-events", RelayPosition(15, 15, "e"), second)
        assert positions.load("case-events") == RelayPosition(15, 15, "e")

    def test_concurrent_acquisitions_make_exactly_one_holder(
        self, positions: RelayPositionStore
    ) -> None:
        stores = [self.open() for _ in range(6)]
        won: list[Lease | None] = [None] * len(stores)

        def race(i: int) -> None:
            won[i] = stores[i].acquire("case-events", f"h{i}", 30)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        for store in stores:
            store.close()
        holders = [lease for lease in won if lease is not None]
        assert len(holders) == 1 and holders[0].token == 1
        assert positions.holder("case-events") == holders[0]

    # --- the instances' announcements ----------------------------------------------------------

    def test_an_instance_sees_the_other_live_ones_until_withdrawn_or_run_out(
        self, positions: RelayPositionStore
    ) -> None:
        a, b, c = (_instance(name) for name in ("a", "b", "c"))
        assert positions.announce(a, 30) == []
        assert positions.announce(b, 30) == [a]
        assert positions.announce(c, 0.3) == [a, b]
        assert positions.announce(a, 30) == [b, c]  # a renewal; its start is kept
        assert positions.live_instances() == [a, b, c]
        positions.withdraw(b.holder)
        wait_until(lambda: positions.announce(a, 30) == [], within=5,
                   what="c's announcement run out")
        other = self.open()
        try:
            assert other.announce(b, 30) == [a]  # the table is in the store, not in memory
        finally:
            other.close()


def _instance(name: str) -> InstanceRecord:
    return InstanceRecord(holder=f"host:1:{name}", instance=name, host="host", pid=1,
                          read_models=f"sqlite://host/srv/{name}/projections",
                          group_suffix=f".{name}")


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

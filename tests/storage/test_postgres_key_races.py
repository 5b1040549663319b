"""PostgreSQL key store: an erasure and a write of the same person's key meet (the key-store
contract in test_key_stores.py checks each call alone).

Each race is set up with a third connection that holds a lock the erasure needs, so that the
erasure is certainly under way (its transaction open, waiting) when the write comes; the test
waits on the server's view of who waits (`pg_stat_activity`), never on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from nervenbahn.config import StoreConfig
from nervenbahn.keystores_postgres import PostgresKeyStore
from tests.bus.waiting import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def config(postgres_dsn: str) -> StoreConfig:
    return StoreConfig.parse(postgres_dsn)


@pytest.fixture
def stores(config: StoreConfig) -> Iterator[Callable[[str], PostgresKeyStore]]:
    """Key stores on the test's schema, each on a connection named as asked."""
    opened: list[PostgresKeyStore] = []

    def store(name: str) -> PostgresKeyStore:
        opened.append(PostgresKeyStore(config.model_copy(update={"application_name": name})))
        return opened[-1]

    yield store
    for each in opened:
        each.close()


def _waiting_on_a_lock(server: psycopg.Connection[Any], name: str) -> bool:
    row = server.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                         "AND wait_event_type = 'Lock'", (name,)).fetchone()
    return bool(row and row[0])


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as exc:  # handed to the test, which asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _race(
    postgres_server_url: str, config: StoreConfig, stores: Callable[[str], PostgresKeyStore],
    person: UUID, hold: str,
) -> tuple[object, PostgresKeyStore]:
    """`destroy(person)` held up by `hold` (a statement of a third connection's open
    transaction), then `store_new([person])` of another instance while it waits; returns
    what store_new returned once the hold is let go."""
    eraser, writer = stores(f"erase-{person.hex[:8]}"), stores(f"write-{person.hex[:8]}")
    with closing(psycopg.connect(postgres_server_url, autocommit=True)) as server, \
            closing(psycopg.connect(postgres_server_url)) as holder:
        holder.execute(sql.SQL(hold).format(sql.Identifier(config.schema_name)), (person,))
        erasing, erased = _in_thread(lambda: eraser.destroy(person))
        wait_until(lambda: _waiting_on_a_lock(server, f"erase-{person.hex[:8]}"),
                   what="the erasure waiting")
        writing, written = _in_thread(lambda: writer.store_new([person], lambda _: b"new key"))
        # The write waits too (on the person's lock; before, on the key row), or, when
        # nothing makes it wait, is done before the erasure is let go.
        wait_until(lambda: _waiting_on_a_lock(server, f"write-{person.hex[:8]}")
                   or not writing.is_alive(), what="the write waiting or done")
        holder.rollback()
        erasing.join(timeout=30)
        writing.join(timeout=30)
    assert "error" not in erased and "error" not in written, (erased, written)
    return written["result"], eraser


def test_a_key_written_while_its_person_is_erased_does_not_bring_the_person_back(
    postgres_server_url: str, config: StoreConfig, stores: Callable[[str], PostgresKeyStore],
) -> None:
    person = uuid4()
    stores("first")  # the tables
    assert stores("opening").store_new([person], lambda _: b"old key") == ([person], [])

    written, keys = _race(postgres_server_url, config, stores, person,
                          "SELECT 1 FROM {}.person_keys WHERE person_id = %s FOR UPDATE")

    assert written == ([], [person])  # refused: the person was erased
    assert keys.load(person) is None and keys.is_erased(person)


def test_a_first_key_written_while_its_person_is_erased_is_refused(
    postgres_server_url: str, config: StoreConfig, stores: Callable[[str], PostgresKeyStore],
) -> None:
    person = uuid4()  # no key yet: the erasure waits on a tombstone another one is writing
    stores("first")

    written, keys = _race(postgres_server_url, config, stores, person,
                          "INSERT INTO {}.erased_persons (person_id) VALUES (%s)")

    assert written == ([], [person])
    assert keys.load(person) is None and keys.is_erased(person)


def test_writes_naming_the_same_known_persons_in_any_order_meet_no_deadlock(
    stores: Callable[[str], PostgresKeyStore],
) -> None:
    # Two instances open cases for the same household, listing its members in opposite
    # orders; the members have keys, which each write marks as found.
    first, second = stores("first"), stores("second")
    errors: list[Exception] = []

    def write(keys: PostgresKeyStore, order: list[UUID], barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            keys.store_new(order, lambda _: b"other key")
        except psycopg.Error as exc:
            errors.append(exc)

    for _ in range(150):
        persons = [uuid4() for _ in range(3)]
        first.store_new(persons, lambda _: b"key")
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=write, args=(first, persons, barrier)),
                   threading.Thread(target=write, args=(second, persons[::-1], barrier))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [first.load(p) for p in persons] == [b"key"] * 3
    assert not errors, errors[:3]

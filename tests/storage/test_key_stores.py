"""The key-store port's contract, on every backend and on the in-memory fake the domain tests
use, so that the fake is held to what the real stores do: new keys kept (the first one wins),
keys stored only for persons without one and none for an erased one, destroyed
keys gone with a tombstone."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from domain.personal_data import KeyStore
from nervenbahn.config import StoreConfig
from nervenbahn.keystores_postgres import PostgresKeyStore
from nervenbahn.keystores_sqlite import SQLiteKeyStore
from tests.domain.fakes import InMemoryKeyStore


def _wrapped() -> bytes:
    return secrets.token_bytes(60)


def _store(keys: KeyStore, pairs: list[tuple[UUID, bytes]]) -> list[UUID]:
    """Store these keys as a write does (`store_new`); the persons whose keys were stored."""
    stored, erased = keys.store_new([person for person, _ in pairs], dict(pairs).__getitem__)
    assert not erased
    return stored


class KeyStoreContract(ABC):
    """What every `KeyStore` does; a subclass per backend says how to open one."""

    durable = True
    """False for a store that lives only as long as its object (the fake)."""

    @abstractmethod
    def open(self) -> KeyStore:
        """A store on this test's own database (the same one each time it is called)."""

    @pytest.fixture
    def keys(self) -> Iterator[KeyStore]:
        store = self.open()
        yield store
        store.close()

    def test_an_unknown_person_has_no_key_and_is_not_erased(self, keys: KeyStore) -> None:
        person = uuid4()
        assert keys.load(person) is None
        assert not keys.is_erased(person)

    def test_a_stored_key_is_loaded_and_the_first_key_wins(self, keys: KeyStore) -> None:
        person, other = uuid4(), uuid4()
        first, second = _wrapped(), _wrapped()
        _store(keys, [(person, first), (other, second)])
        _store(keys, [(person, second)])
        assert keys.load(person) == first
        assert keys.load(other) == second

    def test_a_destroyed_key_is_gone_with_a_tombstone(self, keys: KeyStore) -> None:
        person = uuid4()
        _store(keys, [(person, _wrapped())])
        assert keys.destroy(person) is True
        assert keys.load(person) is None
        assert keys.is_erased(person)
        assert keys.destroy(person) is False  # a second erasure finds nothing left
        assert keys.is_erased(person)
        assert keys.copies_left() is None  # nobody else reads the store

    def test_destroying_a_person_without_a_key_still_leaves_a_tombstone(
        self, keys: KeyStore
    ) -> None:
        person = uuid4()
        assert keys.destroy(person) is False
        assert keys.is_erased(person)

    def test_store_new_keys_those_without_one_and_names_only_the_keys_it_stored(
        self, keys: KeyStore
    ) -> None:
        keyed, first, second = uuid4(), uuid4(), uuid4()
        kept = _wrapped()
        _store(keys, [(keyed, kept)])
        made = {person: _wrapped() for person in (keyed, first, second)}

        stored = keys.store_new([first, keyed, second, first], made.__getitem__)

        assert stored == ([first, second], [])
        assert [keys.load(p) for p in (keyed, first, second)] == [kept, made[first],
                                                                  made[second]]
        again = {person: _wrapped() for person in (first, second)}
        assert keys.store_new([second, first], again.__getitem__) == ([], [])
        assert keys.load(first) == made[first]  # the first key stays
        assert keys.store_new([], made.__getitem__) == ([], [])

    def test_store_new_stores_nothing_when_one_of_them_was_erased(self, keys: KeyStore) -> None:
        keyed, new, erased = uuid4(), uuid4(), uuid4()
        _store(keys, [(keyed, _wrapped()), (erased, _wrapped())])
        keys.destroy(erased)

        stored = keys.store_new([keyed, new, erased], lambda _: _wrapped())

        assert stored == ([], [erased])
        assert keys.load(new) is None and keys.load(erased) is None
        assert keys.is_erased(erased) and not keys.is_erased(new)

    def test_a_key_another_write_found_is_not_discarded(self, keys: KeyStore) -> None:
        person, other = uuid4(), uuid4()
        made = {p: _wrapped() for p in (person, other)}
        assert keys.store_new([person, other], made.__getitem__) == ([person, other], [])
        assert keys.store_new([person], lambda _: _wrapped()) == ([], [])  # another write

        keys.discard_many([person, other])  # the first write failed

        assert keys.load(person) == made[person]
        assert keys.load(other) is None and not keys.is_erased(other)

    def test_keys_and_tombstones_survive_reopening(self, keys: KeyStore) -> None:
        if not self.durable:
            pytest.skip("the in-memory fake lives only as long as its object")
        person, erased = uuid4(), uuid4()
        wrapped = _wrapped()
        _store(keys, [(person, wrapped), (erased, _wrapped())])
        keys.destroy(erased)
        reopened = self.open()
        try:
            assert reopened.load(person) == wrapped
            assert reopened.load(erased) is None and reopened.is_erased(erased)
        finally:
            reopened.close()


class TestInMemoryKeys(KeyStoreContract):
    durable = False

    def open(self) -> KeyStore:
        return InMemoryKeyStore()


class TestSQLiteKeys(KeyStoreContract):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def open(self) -> KeyStore:
        return SQLiteKeyStore(self.path)


@pytest.mark.postgres
class TestPostgresKeys(KeyStoreContract):
    @pytest.fixture(autouse=True)
    def _store(self, postgres_dsn: str) -> None:
        self.store = StoreConfig.parse(postgres_dsn)

    def open(self) -> KeyStore:
        return PostgresKeyStore(self.store)


del KeyStoreContract

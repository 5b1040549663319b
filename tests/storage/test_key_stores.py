"""The key-store port's contract, on every backend and on the in-memory fake the domain tests
use, so that the fake is held to what the real stores do: new keys kept (the first one wins),
failed writes' keys discarded without a tombstone, destroyed keys gone with a tombstone."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from domain.personal_data import KeyStore
from nervenbahn.config import StoreConfig
from nervenbahn.keystores_postgres import PostgresKeyStore
from nervenbahn.keystores_sqlite import SQLiteKeyStore
from tests.domain.fakes import InMemoryKeyStore


def _wrapped() -> bytes:
    return secrets.token_bytes(60)


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
        keys.store_many([(person, first), (other, second)])
        keys.store_many([(person, second)])
        assert keys.load(person) == first
        assert keys.load(other) == second

    def test_discarded_keys_are_gone_without_a_tombstone(self, keys: KeyStore) -> None:
        person, kept = uuid4(), uuid4()
        keys.store_many([(person, _wrapped()), (kept, _wrapped())])
        keys.discard_many([person])
        assert keys.load(person) is None
        assert not keys.is_erased(person)
        assert keys.load(kept) is not None

    def test_a_destroyed_key_is_gone_with_a_tombstone(self, keys: KeyStore) -> None:
        person = uuid4()
        keys.store_many([(person, _wrapped())])
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

    def test_lacking_names_who_has_no_key_and_who_of_them_was_erased(
        self, keys: KeyStore
    ) -> None:
        keyed, new, erased, erased_unkeyed = uuid4(), uuid4(), uuid4(), uuid4()
        keys.store_many([(keyed, _wrapped()), (erased, _wrapped())])
        keys.destroy(erased)
        keys.destroy(erased_unkeyed)

        asked = [new, keyed, erased, new, erased_unkeyed]
        assert keys.lacking(asked) == ([new, erased, erased_unkeyed], {erased, erased_unkeyed})
        assert keys.lacking([keyed]) == ([], set())
        assert keys.lacking([]) == ([], set())

    def test_keys_and_tombstones_survive_reopening(self, keys: KeyStore) -> None:
        if not self.durable:
            pytest.skip("the in-memory fake lives only as long as its object")
        person, erased = uuid4(), uuid4()
        wrapped = _wrapped()
        keys.store_many([(person, wrapped), (erased, _wrapped())])
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

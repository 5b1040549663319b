"""Key stores: where wrapped per-person data keys live, beside the events.

Destroying a key must leave no copy behind in the database: the SQLite adapter deletes with
`secure_delete` on and truncates the write-ahead log; for PostgreSQL see docs/privacy.md.

This module holds the tables (`PERSON_KEYS`) and picks the adapter for the configured event store
(`open_keystore`); the port is `domain.personal_data.KeyStore`, each adapter a module of its own:
`nervenbahn.keystores_sqlite`, `nervenbahn.keystores_postgres`.
"""

from __future__ import annotations

from domain.personal_data import KeyStore
from nervenbahn.config import StoreConfig
from schemas.sql import Component, Migration

__all__ = ["PERSON_KEYS", "open_keystore"]

PERSON_KEYS = Component(
    "person_keys",
    [
        Migration(
            1,
            "wrapped data keys and the tombstones of erased persons",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS person_keys ("
                "person_id TEXT PRIMARY KEY, wrapped_key BLOB NOT NULL) WITHOUT ROWID",
                "CREATE TABLE IF NOT EXISTS erased_persons ("
                "person_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL DEFAULT (datetime('now')))",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.person_keys ("
                "person_id uuid PRIMARY KEY, wrapped_key bytea NOT NULL)",
                "CREATE TABLE IF NOT EXISTS {schema}.erased_persons ("
                "person_id uuid PRIMARY KEY, erased_at timestamptz NOT NULL DEFAULT now())",
            ],
        ),
        Migration(
            2,
            "keys another write found are never discarded (it may have sealed with them)",
            sqlite=["ALTER TABLE person_keys ADD COLUMN found INTEGER NOT NULL DEFAULT 0"],
            postgres=["ALTER TABLE {schema}.person_keys "
                      "ADD COLUMN IF NOT EXISTS found boolean NOT NULL DEFAULT false"],
        ),
    ],
    tables=["person_keys", "erased_persons"],
)
"""The key store's tables, beside the events."""


def open_keystore(config: StoreConfig) -> KeyStore:
    """The key store that belongs with the configured event store."""
    # Imported here: the adapters import PERSON_KEYS from this module.
    if config.kind == "sqlite":
        from nervenbahn.keystores_sqlite import SQLiteKeyStore

        assert config.sqlite_path is not None
        return SQLiteKeyStore(config.sqlite_path)
    from nervenbahn.keystores_postgres import PostgresKeyStore

    return PostgresKeyStore(config)

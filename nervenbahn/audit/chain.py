"""Hash-chained event recorders: every stored event is linked into a chain as it is written.

Each events table gets a chain table beside it, `<events table>_chain (position, hash)`, where
`position` is the event's notification id and

    hash = link(previous hash, encode_fields(position, originator id, version, topic, state))

over the *stored* bytes (personal data sealed), so that crypto-shredding a person never breaks
the chain. The chain row is written in the same transaction as its event. Both recorders are
selected through eventsourcing's `APPLICATION_RECORDER_TOPIC` (see `nervenbahn.config`); every
chained events table is listed in the `audit_chains` table, so verification and checkpoints
cover all of them (the case store's and any other application's in the same database).

A store created before the chain existed is chained once on first open (a warning says so).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import structlog
from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import sql
from psycopg.rows import DictRow

from nervenbahn.audit.hashing import ChainHead, genesis
from nervenbahn.config import StoreConfig

__all__ = [
    "CHAINS_TABLE",
    "RECORD_INT",
    "RECORD_LENGTH",
    "AuditDatabase",
    "ChainedPostgresApplicationRecorder",
    "ChainedSQLiteApplicationRecorder",
    "ChainedTable",
    "as_bytes",
    "chain_hash",
    "chain_name",
    "chain_table_name",
    "event_record",
    "open_audit_database",
    "originator_text",
]

log = structlog.get_logger("nervenbahn.audit.chain")

CHAINS_TABLE = "audit_chains"
"""Lists every chained events table of the database, and its chain table."""

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_BATCH = 2000
_INT = struct.Struct(">Iq")  # a length-prefixed 8-byte big-endian int
_LEN = struct.Struct(">I")
RECORD_INT, RECORD_LENGTH = _INT, _LEN
"""The packers of `event_record`, for loops that inline it (verification)."""


def chain_name(events_table: str) -> str:
    """The chain's name (and genesis purpose) of an events table: `events:<table>`."""
    return f"events:{events_table}"


def chain_table_name(events_table: str) -> str:
    """The chain table beside an events table."""
    return f"{events_table}_chain"


def originator_text(originator_id: UUID | str) -> str:
    """The originator id as it enters a record: a UUID as 32 hex digits, text as is."""
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


def event_record(
    position: int, originator_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    """The bytes a chain link covers: `hashing.encode_fields` of the stored event's fields.

    Written out (rather than calling `encode_fields`) because verification runs it for every
    event; `tests/audit/test_chain.py` checks both give the same bytes.
    """
    origin = originator_text(originator_id).encode()
    kind = topic.encode()
    return b"".join(
        (
            _INT.pack(8, position),
            _LEN.pack(len(origin)), origin,
            _INT.pack(8, version),
            _LEN.pack(len(kind)), kind,
            _LEN.pack(len(state)), state,
        )
    )


def chain_hash(previous: bytes, record: bytes) -> bytes:
    """`hashing.link` (SHA-256 of previous hash + record), without concatenating the bytes."""
    digest = hashlib.sha256(previous)
    digest.update(record)
    return digest.digest()


def _link_rows(
    previous: bytes, rows: Iterable[tuple[int, UUID | str, int, str, bytes]]
) -> list[tuple[int, bytes]]:
    """Chain rows for stored events in position order, starting from `previous`."""
    links = []
    for position, originator_id, version, topic, state in rows:
        previous = chain_hash(previous, event_record(position, originator_id, version, topic,
                                                     bytes(state)))
        links.append((position, previous))
    return links


# --- SQLite --------------------------------------------------------------------------------


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, chaining each event in its transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        _check_identifier(events_table_name)
        self.chain_table_name = chain_table_name(events_table_name)
        self.chain = chain_name(events_table_name)
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        """The events table, its chain table and the list of chains."""
        chain_table = chain_table_name(self.events_table_name)
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {chain_table} ("
            "position INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {CHAINS_TABLE} ("
            "events_table TEXT PRIMARY KEY, chain_table TEXT NOT NULL, chain TEXT NOT NULL)",
        ]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        # Every process opening the store comes here: write only when there is something to
        # write, so that opening never waits for (or blocks) a writer's lock needlessly.
        c.execute(
            f"SELECT 1 FROM {CHAINS_TABLE} WHERE events_table = ?",  # noqa: S608
            (self.events_table_name,),
        )
        if c.fetchone() is None:
            c.execute(
                f"INSERT OR IGNORE INTO {CHAINS_TABLE} VALUES (?, ?, ?)",  # noqa: S608
                (self.events_table_name, self.chain_table_name, self.chain),
            )
        self._chain_existing(c)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Insert first: that takes SQLite's write lock, so the head read next is the latest.
        positions = super()._insert_events(c, stored_events, **kwargs)
        assert positions is not None
        rows = [
            (position, s.originator_id, s.originator_version, s.topic, s.state)
            for position, s in zip(positions, stored_events, strict=True)
        ]
        c.executemany(
            f"INSERT INTO {self.chain_table_name} (position, hash) VALUES (?, ?)",  # noqa: S608
            _link_rows(self._head(c).hash, sorted(rows, key=lambda row: row[0])),
        )
        return positions

    def head(self) -> ChainHead:
        """The chain's last link (position 0 and the genesis hash when empty)."""
        with self.datastore.transaction(commit=False) as c:
            return self._head(c)

    def _head(self, c: SQLiteCursor) -> ChainHead:
        c.execute(
            f"SELECT position, hash FROM {self.chain_table_name} ORDER BY position DESC LIMIT 1"  # noqa: S608
        )
        row = c.fetchone()
        if row is None:
            return ChainHead(0, genesis(self.chain))
        return ChainHead(int(row[0]), bytes(row[1]))

    def _chain_existing(self, c: SQLiteCursor) -> None:
        """Chain the events of a store written before the chain existed (empty chain only)."""
        c.execute(f"SELECT 1 FROM {self.chain_table_name} LIMIT 1")  # noqa: S608
        if c.fetchone() is not None:
            return
        chained, last, previous = 0, 0, genesis(self.chain)
        while True:
            c.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
                f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, _MIGRATION_BATCH),
            )
            rows = [tuple(row) for row in c.fetchall()]
            if not rows:
                break
            links = _link_rows(previous, rows)
            c.executemany(
                f"INSERT INTO {self.chain_table_name} (position, hash) VALUES (?, ?)", links  # noqa: S608
            )
            last, previous = links[-1]
            chained += len(links)
        if chained:
            _warn_migrated(self.events_table_name, chained)


# --- PostgreSQL ----------------------------------------------------------------------------


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder, chaining each event in its transaction.

    The insert transaction holds the events table's EXCLUSIVE lock, so reading the chain's
    head there is safe. The database-function insert path is refused: it would bypass the
    chain.
    """

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        if datastore.enable_db_functions:
            raise ProgrammingError(
                "POSTGRES_ENABLE_DB_FUNCTIONS: the hash-chained recorder cannot insert through "
                "database functions (the chain would be bypassed); unset it"
            )
        _check_identifier(events_table_name)
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table_name = chain_table_name(events_table_name)
        self.chain = chain_name(events_table_name)
        schema = sql.Identifier(datastore.schema)
        chain_table = sql.Identifier(self.chain_table_name)
        self.sql_create_statements += [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} "
                "(position bigint PRIMARY KEY, hash bytea NOT NULL)"
            ).format(schema, chain_table),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (events_table text PRIMARY KEY, "
                "chain_table text NOT NULL, chain text NOT NULL)"
            ).format(schema, sql.Identifier(CHAINS_TABLE)),
        ]
        self._select_head = sql.SQL(
            "SELECT position, hash FROM {}.{} ORDER BY position DESC LIMIT 1"
        ).format(schema, chain_table)
        self._insert_link = sql.SQL("INSERT INTO {}.{} (position, hash) VALUES (%s, %s)").format(
            schema, chain_table
        )
        self._select_inserted = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} WHERE notification_id = ANY(%s) ORDER BY notification_id"
        ).format(schema, sql.Identifier(self.events_table_name))

    def _create_table(self, curs: psycopg.Cursor[DictRow]) -> None:
        super()._create_table(curs)
        curs.execute(
            sql.SQL("INSERT INTO {}.{} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(
                sql.Identifier(self.datastore.schema), sql.Identifier(CHAINS_TABLE)
            ),
            (self.events_table_name, self.chain_table_name, self.chain),
        )
        self._chain_existing(curs)

    def _fetch_ids_after_insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not ids:
            return ids
        # Chain what is stored, read back in position order (the table lock is still held).
        curs.execute(self._select_inserted, (list(ids),))
        rows = [
            (r["notification_id"], r["originator_id"], r["originator_version"], r["topic"],
             bytes(r["state"]))
            for r in curs.fetchall()
        ]
        curs.executemany(self._insert_link, _link_rows(self._head(curs).hash, rows))
        return ids

    def head(self) -> ChainHead:
        """The chain's last link (position 0 and the genesis hash when empty)."""
        with self.datastore.transaction(commit=False) as curs:
            return self._head(curs)

    def _head(self, curs: psycopg.Cursor[DictRow]) -> ChainHead:
        curs.execute(self._select_head)
        row = curs.fetchone()
        if row is None:
            return ChainHead(0, genesis(self.chain))
        return ChainHead(int(row["position"]), bytes(row["hash"]))

    def _chain_existing(self, curs: psycopg.Cursor[DictRow]) -> None:
        """Chain the events of a store written before the chain existed (empty chain only)."""
        schema = sql.Identifier(self.datastore.schema)
        curs.execute(
            sql.SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(
                schema, sql.Identifier(self.events_table_name)
            )
        )
        curs.execute(
            sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                schema, sql.Identifier(self.chain_table_name)
            )
        )
        if curs.fetchone() is not None:
            return
        select = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(schema, sql.Identifier(self.events_table_name))
        chained, last, previous = 0, 0, genesis(self.chain)
        while True:
            curs.execute(select, (last, _MIGRATION_BATCH))
            rows = [
                (r["notification_id"], r["originator_id"], r["originator_version"], r["topic"],
                 bytes(r["state"]))
                for r in curs.fetchall()
            ]
            if not rows:
                break
            links = _link_rows(previous, rows)
            curs.executemany(self._insert_link, links)
            last, previous = links[-1]
            chained += len(links)
        if chained:
            _warn_migrated(self.events_table_name, chained)


def _warn_migrated(events_table: str, count: int) -> None:
    log.warning(
        "existing events chained once: this store was written before the hash chain existed; "
        "the chain vouches for them only from now on",
        events_table=events_table,
        events=count,
    )


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ProgrammingError(f"events table {name!r}: not a plain lower-case identifier")


# --- reading a store's chains (for verification and checkpoints) ---------------------------


@dataclass(frozen=True)
class ChainedTable:
    """An events table, its chain table and the chain's name."""

    events_table: str
    chain_table: str
    chain: str


EventRow = tuple[int, str, int, str, bytes]
"""(position, originator id as text, version, topic, stored state)."""


class AuditDatabase(ABC):
    """The store's database as the auditor tools see it: chains, events, checkpoints.

    `dense_positions`: positions are gap-free (SQLite rowids; PostgreSQL sequences may skip).
    """

    dense_positions: bool = False
    placeholder: str = "?"

    @abstractmethod
    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query (`?` placeholders)."""

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement in a transaction of its own; the rows it changed."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def chained_tables(self) -> list[ChainedTable]:
        """Every chained events table of the store, by name."""
        if not self._has_table(CHAINS_TABLE):
            return []
        rows = self.fetch(
            f"SELECT events_table, chain_table, chain FROM {CHAINS_TABLE} ORDER BY events_table"  # noqa: S608
        )
        tables = [ChainedTable(str(a), str(b), str(c)) for a, b, c in rows]
        for table in tables:
            _check_identifier(table.events_table)
            _check_identifier(table.chain_table)
        return tables

    def events(self, table: ChainedTable, batch: int = 5000) -> Iterator[EventRow]:
        """The stored events of a chained table in position order, read in batches."""
        position = self._position_column()
        statement = (
            f"SELECT {position}, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {table.events_table} WHERE {position} > ? ORDER BY {position} LIMIT ?"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            for row in rows:
                yield (int(row[0]), originator_text(row[1]), int(row[2]), str(row[3]),
                       _as_bytes(row[4]))
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def links(self, table: ChainedTable, batch: int = 5000) -> Iterator[tuple[int, bytes]]:
        """The chain table's rows in position order, read in batches."""
        statement = (
            f"SELECT position, hash FROM {table.chain_table} WHERE position > ? "  # noqa: S608
            "ORDER BY position LIMIT ?"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            for row in rows:
                yield int(row[0]), bytes(row[1])
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def joined(self, table: ChainedTable, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Events with their chain entries (inner join), in position order, read in batches:
        (position, originator id, version, topic, state, hash). Rows of either table without
        a partner are left out: compare `count` of both tables to notice them."""
        position = self._position_column()
        statement = (
            f"SELECT e.{position}, e.originator_id, e.originator_version, e.topic, e.state, "  # noqa: S608
            f"c.hash FROM {table.events_table} e JOIN {table.chain_table} c "
            f"ON c.position = e.{position} WHERE e.{position} > ? ORDER BY e.{position} LIMIT ?"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            yield from rows
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def count(self, table_name: str) -> int:
        """Rows in one of the audit's tables."""
        _check_identifier(table_name)
        return int(self.fetch(f"SELECT COUNT(*) FROM {table_name}")[0][0])  # noqa: S608

    def head(self, table: ChainedTable) -> ChainHead:
        """The chain table's last row (position 0 and the genesis hash when empty)."""
        rows = self.fetch(
            f"SELECT position, hash FROM {table.chain_table} ORDER BY position DESC LIMIT 1"  # noqa: S608
        )
        if not rows:
            return ChainHead(0, genesis(table.chain))
        return ChainHead(int(rows[0][0]), bytes(rows[0][1]))

    @abstractmethod
    def _has_table(self, name: str) -> bool: ...

    @abstractmethod
    def _position_column(self) -> str: ...


class SQLiteAuditDatabase(AuditDatabase):
    """The SQLite file of a store."""

    dense_positions = True

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such store")
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10,
                                   check_same_thread=False)

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._db.execute(statement, tuple(params)).fetchall()]

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            count = self._db.execute(statement, tuple(params)).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return count

    def close(self) -> None:
        self._db.close()

    def _has_table(self, name: str) -> bool:
        return bool(self.fetch("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                               (name,)))

    def _position_column(self) -> str:
        return "rowid"


class PostgresAuditDatabase(AuditDatabase):
    """The schema of a PostgreSQL store."""

    def __init__(self, store: StoreConfig) -> None:
        self._schema = store.schema_name or "public"
        self._db = psycopg.connect(store.conninfo(), autocommit=True)
        self._db.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema))
        )

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(_pg(statement), tuple(params)).fetchall())

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._db.transaction():
            return self._db.execute(_pg(statement), tuple(params)).rowcount

    def close(self) -> None:
        self._db.close()

    def _has_table(self, name: str) -> bool:
        return bool(self.fetch(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            (self._schema, name),
        ))

    def _position_column(self) -> str:
        return "notification_id"


def as_bytes(value: Any) -> bytes:
    """A column value (bytes, memoryview, bytearray) as bytes."""
    return _as_bytes(value)


def _as_bytes(value: Any) -> bytes:
    """Stored state as bytes (text put there by hand is taken as its UTF-8 bytes)."""
    return value.encode() if isinstance(value, str) else bytes(value or b"")


def _pg(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


def open_audit_database(store: StoreConfig) -> AuditDatabase:
    """The store's database for the auditor tools."""
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteAuditDatabase(store.sqlite_path)
    return PostgresAuditDatabase(store)

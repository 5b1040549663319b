"""Hash-chained event recorders: every stored event is linked into a chain as it is written.

Each events table gets a chain table beside it, `<events table>_chain (position, hash)`, where
`position` is the event's notification id and

    hash = link(previous hash, encode_fields(position, originator id, version, topic, state))

over the *stored* bytes (personal data sealed), so that crypto-shredding a person never breaks
the chain. The chain row is written in the same transaction as its event. Both recorders are
selected through eventsourcing's `APPLICATION_RECORDER_TOPIC` (see `nervenbahn.config`); every
chained events table is listed in the `audit_chains` table, so verification and checkpoints
cover all of them (the case store's and any other application's in the same database).

Opening never chains anything on its own: a store whose events table holds events without a
link (a store written before the chain existed, or one whose chain rows or registration were
deleted) is refused with `UnchainedEventsError`. Only the explicit `nervenbahn audit
chain-existing --confirm` chains such events (inside `chaining_existing()`); it logs a warning
with the counts and records the rewrite in `audit_chain_rewrites`, which `audit verify` reports.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
import structlog
from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import sql
from psycopg.rows import DictRow

from nervenbahn.audit.errors import AuditError
from nervenbahn.audit.hashing import ChainHead, genesis, text_or_invalid, wrong_type
from nervenbahn.config import StoreConfig

__all__ = [
    "CHAINS_TABLE",
    "RECORD_INT",
    "RECORD_LENGTH",
    "REWRITES_TABLE",
    "AuditDatabase",
    "ChainRegistrations",
    "ChainRewrite",
    "ChainedPostgresApplicationRecorder",
    "ChainedSQLiteApplicationRecorder",
    "ChainedTable",
    "UnchainedEventsError",
    "UnreadableRow",
    "as_bytes",
    "chain_hash",
    "chain_name",
    "chain_table_name",
    "chaining_existing",
    "event_problem",
    "event_record",
    "open_audit_database",
    "originator_text",
]

log = structlog.get_logger("nervenbahn.audit.chain")

CHAINS_TABLE = "audit_chains"
"""Lists every chained events table of the database, and its chain table."""
REWRITES_TABLE = "audit_chain_rewrites"
"""One row per explicit `audit chain-existing` of an events table (when, how many events)."""


class UnchainedEventsError(AuditError):
    """The store holds events that the hash chain does not cover; opening it is refused.

    Either the store was written before the chain existed, or chain rows (or the table's
    `audit_chains` registration) were deleted. Chaining them is an explicit decision:
    `nervenbahn audit chain-existing --confirm`.
    """

    def __init__(self, events_table: str, unchained: int, registered: bool) -> None:
        self.events_table = events_table
        self.unchained = unchained
        self.registered = registered
        missing = "" if registered else f" and the table is not registered in {CHAINS_TABLE}"
        super().__init__(
            f"{events_table}: {unchained} events have no hash-chain link{missing}; the store "
            "is not opened (chain rows deleted, or a store from before the chain). Verify with "
            "`nervenbahn audit verify`; chain them only deliberately: `nervenbahn audit "
            "chain-existing --confirm`"
        )


@dataclass(frozen=True)
class ChainRewrite:
    """What one explicit chaining of existing events did."""

    events_table: str
    events: int
    unchained: int
    registered: bool


_CHAIN_EXISTING: ContextVar[list[ChainRewrite] | None] = ContextVar(
    "nervenbahn_chain_existing", default=None
)


@contextmanager
def chaining_existing() -> Iterator[list[ChainRewrite]]:
    """Within this block, opening a store chains its unchained events (from genesis, the whole
    table) instead of refusing; the list collects what was chained. Only for `audit
    chain-existing`."""
    done: list[ChainRewrite] = []
    token = _CHAIN_EXISTING.set(done)
    try:
        yield done
    finally:
        _CHAIN_EXISTING.reset(token)

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
        # Every process opening the store comes here: it only reads, unless a table is new
        # (never a needless write lock at start-up).
        def query(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            c.execute(statement, tuple(params))
            return [tuple(row) for row in c.fetchall()]

        _check_opening(_Opening(query, self.events_table_name, self.chain_table_name,
                                self.chain, "rowid", CHAINS_TABLE, REWRITES_TABLE))

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
        schema = self.datastore.schema

        def query(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            # Table names are checked identifiers, quoted; values are bound.
            curs.execute(_pg(statement).encode(), tuple(params))
            if curs.description is None:
                return []
            return [tuple(row.values()) for row in curs.fetchall()]

        def qualified(name: str) -> str:
            return f'"{schema}"."{name}"'

        _check_opening(_Opening(query, qualified(self.events_table_name),
                                qualified(self.chain_table_name), self.chain,
                                "notification_id", qualified(CHAINS_TABLE),
                                qualified(REWRITES_TABLE),
                                registered_name=self.events_table_name,
                                lock=f"LOCK TABLE {qualified(self.events_table_name)} "
                                     "IN EXCLUSIVE MODE"))

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


@dataclass(frozen=True)
class _Opening:
    """What opening one chained events table needs, for either database (`?` placeholders;
    table names already qualified and checked)."""

    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
    events: str
    chain_table: str
    chain: str
    position: str
    chains: str
    rewrites: str
    registered_name: str | None = None
    lock: str | None = None

    @property
    def name(self) -> str:
        """The events table's plain name (as registered)."""
        return self.registered_name or self.events


def _check_opening(o: _Opening) -> None:
    """Register a new, empty events table; refuse one with events the chain does not cover
    (or chain them, inside `chaining_existing`)."""
    registered = bool(o.query(
        f"SELECT 1 FROM {o.chains} WHERE events_table = ?", (o.name,)  # noqa: S608
    ))
    if registered and not _unchained(o):
        return
    if not registered and not o.query(f"SELECT 1 FROM {o.events} LIMIT 1", ()):  # noqa: S608
        o.query(f"INSERT INTO {o.chains} VALUES (?, ?, ?) ON CONFLICT DO NOTHING",  # noqa: S608
                (o.name, chain_table_name(o.name), o.chain))
        return
    done = _CHAIN_EXISTING.get()
    if done is None:
        raise UnchainedEventsError(o.name, _unchained(o), registered)
    done.append(_chain_whole_table(o, registered))


def _unchained(o: _Opening) -> int:
    """Events without a link in the chain table."""
    rows = o.query(
        f"SELECT COUNT(*) FROM {o.events} e WHERE NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {o.chain_table} c WHERE c.position = e.{o.position})", ()
    )
    return int(rows[0][0])


def _chain_whole_table(o: _Opening, registered: bool) -> ChainRewrite:
    """Chain every event of the table anew, from genesis (the explicit command only)."""
    if o.lock:
        o.query(o.lock, ())
    unchained = _unchained(o)
    o.query(f"DELETE FROM {o.chain_table}", ())  # noqa: S608
    chained, last, previous = 0, 0, genesis(o.chain)
    select = (
        f"SELECT {o.position}, originator_id, originator_version, topic, state "  # noqa: S608
        f"FROM {o.events} WHERE {o.position} > ? ORDER BY {o.position} LIMIT ?"
    )
    while rows := o.query(select, (last, _MIGRATION_BATCH)):
        links = _link_rows(previous, [(int(r[0]), r[1], int(r[2]), str(r[3]), as_bytes(r[4]))
                                      for r in rows])
        for link_row in links:
            o.query(f"INSERT INTO {o.chain_table} (position, hash) VALUES (?, ?)", link_row)  # noqa: S608
        last, previous = links[-1]
        chained += len(links)
    o.query(f"INSERT INTO {o.chains} VALUES (?, ?, ?) ON CONFLICT DO NOTHING",  # noqa: S608
            (o.name, chain_table_name(o.name), o.chain))
    o.query(
        f"CREATE TABLE IF NOT EXISTS {o.rewrites} (at TEXT NOT NULL, events_table TEXT NOT "
        "NULL, events BIGINT NOT NULL, unchained BIGINT NOT NULL, registered INTEGER NOT NULL)",
        (),
    )
    o.query(f"INSERT INTO {o.rewrites} VALUES (?, ?, ?, ?, ?)",  # noqa: S608
            (datetime.now(UTC).isoformat(), o.name, chained, unchained, int(registered)))
    log.warning(
        "existing events chained by explicit command: the chain vouches for them only from "
        "now on; checkpoints signed before show whether they were altered",
        events_table=o.name, events=chained, unchained=unchained, registered=registered,
    )
    return ChainRewrite(o.name, chained, unchained, registered)


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


class UnreadableRow(NamedTuple):
    """A stored row (event or chain link) whose values have the wrong type or cannot be
    decoded: it cannot be chained, and verification reports it as a break."""

    position: int
    problem: str


class ChainRegistrations(NamedTuple):
    """The chained tables `audit_chains` lists, and each of its rows that cannot be used
    (its row id, and why)."""

    tables: list[ChainedTable]
    unreadable: list[tuple[str, str]]


def event_problem(row: Sequence[Any]) -> str | None:
    """Why a stored event's values cannot be what the recorder wrote (position, originator
    id, version, topic, state), naming each column of the wrong type; None if they can."""
    _, origin, version, topic, state = row
    problems = []
    if not isinstance(origin, str | UUID):
        problems.append(wrong_type("originator_id", origin, "TEXT"))
    if type(version) is not int:
        problems.append(wrong_type("originator_version", version, "INTEGER"))
    if not isinstance(topic, str):
        problems.append(wrong_type("topic", topic, "TEXT"))
    if not isinstance(state, bytes | memoryview):
        problems.append(wrong_type("state", state, "BLOB"))
    return "; ".join(problems) or None


def _link_problem(value: Any) -> str | None:
    return None if isinstance(value, bytes | memoryview) else wrong_type("hash", value, "BLOB")


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
        """Every chained events table of the store, by name; ProgrammingError naming a row of
        `audit_chains` that cannot be used (verification reports those instead)."""
        found = self.registrations()
        if found.unreadable:
            row, problem = found.unreadable[0]
            raise ProgrammingError(f"{CHAINS_TABLE} row {row}: {problem}")
        return found.tables

    def registrations(self) -> ChainRegistrations:
        """The chained tables `audit_chains` lists, and its rows that cannot be used: a value
        of the wrong type, a name that is not a plain identifier, a chain table or chain name
        other than the events table's, or an events table that does not exist."""
        if not self._has_table(CHAINS_TABLE):
            return ChainRegistrations([], [])
        rows = self.fetch(
            f"SELECT {self._row_id()}, events_table, chain_table, chain FROM {CHAINS_TABLE} "  # noqa: S608
            "ORDER BY events_table"
        )
        tables, unreadable = [], []
        for row_id, *values in rows:
            problem = self._registration_problem(*values)
            if problem is None:
                tables.append(ChainedTable(*values))
            else:
                unreadable.append((str(row_id), problem))
        return ChainRegistrations(tables, unreadable)

    def _registration_problem(self, events_table: Any, chain_table: Any, chain: Any) -> str | None:
        for column, value in (("events_table", events_table), ("chain_table", chain_table),
                              ("chain", chain)):
            if not isinstance(value, str):
                return wrong_type(column, value, "TEXT")
        if not _IDENTIFIER.fullmatch(events_table):
            return "events_table is not a plain lower-case identifier"
        if (chain_table, chain) != (chain_table_name(events_table), chain_name(events_table)):
            return (f"chain_table or chain differ from those of {events_table} "
                    f"({chain_table_name(events_table)}, {chain_name(events_table)})")
        missing = [n for n in (events_table, chain_table) if not self._has_table(n)]
        if missing:
            return f"the table {missing[0]} does not exist"
        return None

    def events(
        self, table: ChainedTable, batch: int = 5000
    ) -> Iterator[EventRow | UnreadableRow]:
        """The stored events of a chained table in position order, read in batches (one whose
        values have the wrong type as an `UnreadableRow`)."""
        position = self._position_column()
        statement = (
            f"SELECT {position}, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {table.events_table} WHERE {position} > ? ORDER BY {position} LIMIT ?"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            for row in rows:
                problem = event_problem(row)
                if problem is not None:
                    yield UnreadableRow(int(row[0]), problem)
                else:
                    yield (int(row[0]), originator_text(row[1]), row[2], row[3], bytes(row[4]))
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def links(
        self, table: ChainedTable, batch: int = 5000
    ) -> Iterator[tuple[int, bytes] | UnreadableRow]:
        """The chain table's rows in position order, read in batches (one whose hash is not a
        BLOB as an `UnreadableRow`)."""
        statement = (
            f"SELECT position, hash FROM {table.chain_table} WHERE position > ? "  # noqa: S608
            "ORDER BY position LIMIT ?"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            for row in rows:
                problem = _link_problem(row[1])
                yield (int(row[0]), bytes(row[1])) if problem is None else UnreadableRow(
                    int(row[0]), problem)
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

    def chain_rewrites(self) -> list[dict[str, object]]:
        """Every explicit `audit chain-existing` recorded in the store, oldest first; a row
        whose values have the wrong type is listed with its row id and a `problem`."""
        if not self._has_table(REWRITES_TABLE):
            return []
        rows = self.fetch(f"SELECT {self._row_id()}, at, events_table, events, unchained, "  # noqa: S608
                          f"registered FROM {REWRITES_TABLE} ORDER BY at")
        return [_rewrite(*row) for row in rows]

    def unlisted_chains(self, listed: Iterable[str]) -> list[ChainedTable]:
        """Events tables that have a chain table beside them (`<table>_chain`) but are not in
        `listed` (events table names): chains whose `audit_chains` row was removed or damaged,
        still to be verified."""
        names, known = set(self._table_names()), set(listed)
        return [ChainedTable(n, chain_table_name(n), chain_name(n)) for n in sorted(names)
                if chain_table_name(n) in names and n not in known and _IDENTIFIER.fullmatch(n)]

    def has_table(self, name: str) -> bool:
        """True if the store has this (plain-named) table."""
        _check_identifier(name)
        return self._has_table(name)

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
        problem = _link_problem(rows[0][1])
        if problem is not None:
            raise ProgrammingError(f"{table.chain_table} position {rows[0][0]}: {problem}; "
                                   "verify the store (`nervenbahn audit verify`)")
        return ChainHead(int(rows[0][0]), bytes(rows[0][1]))

    @abstractmethod
    def _has_table(self, name: str) -> bool: ...

    @abstractmethod
    def _table_names(self) -> list[str]: ...

    @abstractmethod
    def _row_id(self) -> str:
        """An expression naming a row of any table in messages (its row id)."""

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
        try:
            return [tuple(row) for row in self._db.execute(statement, tuple(params)).fetchall()]
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
        # A TEXT value that is not UTF-8 (any bytes can be written): read again, such values
        # as `InvalidText`, so that verification names them (only then: it costs a call each).
        self._db.text_factory = text_or_invalid
        try:
            return [tuple(row) for row in self._db.execute(statement, tuple(params)).fetchall()]
        finally:
            self._db.text_factory = str

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

    def _row_id(self) -> str:
        return "rowid"

    def _table_names(self) -> list[str]:
        return [str(row[0]) for row in self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]


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

    def _row_id(self) -> str:
        return "ctid::text"

    def _table_names(self) -> list[str]:
        return [str(row[0]) for row in self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            (self._schema,))]


def as_bytes(value: Any) -> bytes:
    """A column value (bytes, memoryview, bytearray) as bytes."""
    return _as_bytes(value)


def _as_bytes(value: Any) -> bytes:
    """Stored state as bytes (text put there by hand is taken as its UTF-8 bytes); TypeError
    for any other type (never `bytes(n)`, which would make n zero bytes)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(wrong_type("state", value, "BLOB"))


def _rewrite(
    row_id: Any, at: Any, table: Any, events: Any, unchained: Any, registered: Any
) -> dict[str, object]:
    """One row of `audit_chain_rewrites` as reported (with a `problem` if it has values of the
    wrong type)."""
    columns = (("at", at, str, "TEXT"), ("events_table", table, str, "TEXT"),
               ("events", events, int, "INTEGER"), ("unchained", unchained, int, "INTEGER"),
               ("registered", registered, int, "INTEGER"))
    problems = [wrong_type(name, value, expected) for name, value, kind, expected in columns
                if not isinstance(value, kind) or isinstance(value, bool)]
    if problems:
        return {"row": str(row_id), "problem": "; ".join(problems)}
    return {"at": at, "events_table": table, "events": events, "unchained": unchained,
            "registered": bool(registered)}


def _pg(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


def open_audit_database(store: StoreConfig) -> AuditDatabase:
    """The store's database for the auditor tools."""
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteAuditDatabase(store.sqlite_path)
    return PostgresAuditDatabase(store)

"""Hash-chained event recorders: every stored event is linked into its chain as it is written.

eventsourcing's SQLite and PostgreSQL application recorders, with one more table each (the
chain table, `<events table>_chain`) and the list of chains (`audit_chains`); the chain row is
written in the same transaction as its event. Both are selected through eventsourcing's
`APPLICATION_RECORDER_TOPIC` (see `nervenbahn.config`); every chained events table is listed in
`audit_chains`, so that verification and checkpoints cover all of them.

Extension points used (eventsourcing 9.5): the tables come from the public
`construct_create_table_statements()` (SQLite) and `sql_create_statements` (PostgreSQL); the
opening check runs from the public `create_table()`, in a transaction of its own. Writing the
links needs the hook inside eventsourcing's insert transaction, which only private methods
offer: `_insert_events` (SQLite: the public `insert_events` only opens the transaction and
calls it) and, on PostgreSQL, `_insert_stored_events` (which pipelines the EXCLUSIVE table lock
and the insert: the chain's head read joins that pipeline) and `_fetch_ids_after_insert_events`
(called with the cursor while the lock is held, after the notification ids are known: the links
are inserted there, pipelined with the commit). So a save costs no round trip more than
eventsourcing's own (before: three more, reading the inserted rows back, the head, then the
links; 2.5 of 13.7 ms per command, one command per transaction). A link written
in a second transaction could be lost while its event stays, so these private hooks stay.
eventsourcing's own process recorders extend the same way (`SQLiteProcessRecorder` and
`PostgresProcessRecorder` override `_insert_events` to add their tracking row), so the hooks
are the library's intended seam, if not a documented one; `tests/audit/test_chain.py` pins
their behaviour against the installed eventsourcing (9.5.6).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

import psycopg
from eventsourcing.persistence import OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from psycopg import sql
from psycopg.rows import DictRow

from nervenbahn.audit.chain import (
    CHAINS_TABLE,
    REWRITES_TABLE,
    chain_name,
    chain_table_name,
    check_identifier,
    link_rows,
)
from nervenbahn.audit.chain_existing import Opening, check_opening
from nervenbahn.audit.hashing import ChainHead, genesis

__all__ = ["ChainedPostgresApplicationRecorder", "ChainedSQLiteApplicationRecorder"]

# --- SQLite --------------------------------------------------------------------------------


_OPENING_ATTEMPTS = 6
"""How often a SQLite store's opening check is tried when another writer got in between."""


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder, chaining each event in its transaction."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        check_identifier(events_table_name)
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

    def create_table(self) -> None:
        """Create the tables, then register a new events table in `audit_chains` or refuse
        one with events the chain does not cover (`check_opening`)."""
        super().create_table()
        # The check reads, then registers a new table: in WAL mode a writer that committed
        # in between makes SQLite refuse the upgrade to a write at once ("database is
        # locked", its busy timeout not applying). Read again in a new transaction.
        for attempt in range(_OPENING_ATTEMPTS):
            try:
                with self.datastore.transaction(commit=True) as c:
                    self._check_opening(c)
                return
            except (sqlite3.OperationalError, OperationalError) as exc:
                if "database is locked" not in str(exc) or attempt == _OPENING_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)  # 0.05 … 0.8 s between the attempts

    def _check_opening(self, c: SQLiteCursor) -> None:
        # Every process opening the store comes here: it only reads, unless a table is new
        # (never a needless write lock at start-up).
        def query(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            c.execute(statement, tuple(params))
            return [tuple(row) for row in c.fetchall()]

        check_opening(Opening(query, self.events_table_name, self.chain_table_name,
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
            link_rows(self._head(c).hash, sorted(rows, key=lambda row: row[0])),
        )
        return positions

    def head(self) -> ChainHead:
        """The chain's last link (position 0 and the genesis hash when empty)."""
        with self.datastore.transaction(commit=False) as c:
            return self._head(c)

    def link(self, position: int) -> tuple[bytes, bytes] | None:
        """(the link before, the link) of the event at `position`: what its chain row should
        be recomputed from and compared with; None if no link is stored there."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT hash FROM {self.chain_table_name} WHERE position = ?",  # noqa: S608
                      (position,))
            row = c.fetchone()
            if row is None:
                return None
            c.execute(f"SELECT hash FROM {self.chain_table_name} WHERE position < ? "  # noqa: S608
                      "ORDER BY position DESC LIMIT 1", (position,))
            before = c.fetchone()
        return (genesis(self.chain) if before is None else bytes(before[0])), bytes(row[0])

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
        check_identifier(events_table_name)
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
        self._select_link = sql.SQL("SELECT hash FROM {}.{} WHERE position = %s").format(
            schema, chain_table
        )
        self._select_link_before = sql.SQL(
            "SELECT hash FROM {}.{} WHERE position < %s ORDER BY position DESC LIMIT 1"
        ).format(schema, chain_table)
        self._insert_links = sql.SQL(
            "INSERT INTO {}.{} (position, hash) SELECT * FROM unnest(%s::bigint[], %s::bytea[])"
        ).format(schema, chain_table)
        self._head_cursors: WeakKeyDictionary[psycopg.Connection[DictRow],
                                              psycopg.Cursor[DictRow]] = WeakKeyDictionary()
        """The cursor of the head read pipelined with each connection's open insert (weak: a
        connection dropped after a failed insert takes its entry along)."""

    def create_table(self) -> None:
        """Create the tables, then register a new events table in `audit_chains` or refuse
        one with events the chain does not cover (`check_opening`)."""
        super().create_table()
        self.check_chain()

    def check_chain(self) -> None:
        """Register a new events table in `audit_chains` or refuse one with events the chain
        does not cover (`check_opening`); reads only, for a table already registered. Run
        without `create_table` when the store's tables are known to be made (no DDL)."""
        with self.datastore.transaction(commit=True) as curs:
            self._check_opening(curs)

    def _check_opening(self, curs: psycopg.Cursor[DictRow]) -> None:
        schema = self.datastore.schema

        def query(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            # Table names are checked identifiers, quoted; values are bound.
            curs.execute(statement.encode(), tuple(params))
            if curs.description is None:
                return []
            return [tuple(row.values()) for row in curs.fetchall()]

        def qualified(name: str) -> str:
            return f'"{schema}"."{name}"'

        check_opening(Opening(query, qualified(self.events_table_name),
                                qualified(self.chain_table_name), self.chain,
                                "notification_id", qualified(CHAINS_TABLE),
                                qualified(REWRITES_TABLE),
                                registered_name=self.events_table_name,
                                lock=f"LOCK TABLE {qualified(self.events_table_name)} "
                                     "IN EXCLUSIVE MODE", mark="%s"))

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # eventsourcing pipelines the table lock and the insert; the head read goes into the
        # same pipeline, after the lock (so it is the latest), on a cursor of its own: no round
        # trip of its own.
        super()._insert_stored_events(curs, stored_events, **kwargs)
        self._head_cursors[curs.connection] = curs.connection.execute(self._select_head)

    def _fetch_ids_after_insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        head_cursor = self._head_cursors.pop(curs.connection)
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if not ids:
            return ids
        head = head_cursor.fetchone()
        previous = genesis(self.chain) if head is None else bytes(head["hash"])
        # Chain what is stored (the table lock is still held): the ids come back in the order
        # of the events (eventsourcing's recordings rely on it too); the originator id as the
        # uuid column gives it back, the other fields are stored as they are.
        rows = sorted(
            (position, _as_uuid(s.originator_id), s.originator_version, s.topic, s.state)
            for position, s in zip(ids, stored_events, strict=True)
        )
        links = link_rows(previous, rows)
        # Pipelined with the commit: no round trip of its own either.
        curs.execute(self._insert_links, ([p for p, _ in links], [h for _, h in links]))
        return ids

    def head(self) -> ChainHead:
        """The chain's last link (position 0 and the genesis hash when empty)."""
        with self.datastore.transaction(commit=False) as curs:
            return self._head(curs)

    def link(self, position: int) -> tuple[bytes, bytes] | None:
        """(the link before, the link) of the event at `position` (as the SQLite recorder's)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_link, (position,))
            row = curs.fetchone()
            if row is None:
                return None
            curs.execute(self._select_link_before, (position,))
            before = curs.fetchone()
        previous = genesis(self.chain) if before is None else bytes(before["hash"])
        return previous, bytes(row["hash"])

    def _head(self, curs: psycopg.Cursor[DictRow]) -> ChainHead:
        curs.execute(self._select_head)
        row = curs.fetchone()
        if row is None:
            return ChainHead(0, genesis(self.chain))
        return ChainHead(int(row["position"]), bytes(row["hash"]))


def _as_uuid(originator_id: UUID | str) -> UUID:
    """An originator id as PostgreSQL's uuid column stores (and gives back) it."""
    return originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))

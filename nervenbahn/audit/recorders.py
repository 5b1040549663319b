"""Hash-chained event recorders: every stored event is linked into its chain as it is written.

eventsourcing's SQLite and PostgreSQL application recorders (this module and
`recorders_postgres`: a SQLite store never imports psycopg), with one more table each (the
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

from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

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

__all__ = ["ChainedSQLiteApplicationRecorder"]

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

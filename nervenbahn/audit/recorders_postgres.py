"""The hash-chained PostgreSQL application recorder (`nervenbahn.audit.recorders` says how
both recorders chain their events). A module of its own so that a SQLite store never imports
psycopg (about 0.2 s of every CLI start)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

import psycopg
from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
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

__all__ = ["ChainedPostgresApplicationRecorder"]

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
        self._insert_link = sql.SQL("INSERT INTO {}.{} (position, hash) VALUES (%s, %s)").format(
            schema, chain_table)
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
        # trip of its own. Never prepared: when the insert fails (a lost save) the server skips
        # what follows it in the pipeline, and psycopg, which prepares a statement by itself on
        # its fifth use, took the skipped one for prepared ("prepared statement _pg3_N does
        # not exist" on the connection's next save; tests/storage/test_postgres_store.py).
        super()._insert_stored_events(curs, stored_events, **kwargs)
        self._head_cursors[curs.connection] = curs.connection.execute(self._select_head,
                                                                      prepare=False)

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
        # Pipelined with the commit: no round trip of its own either. One link (a command's
        # one event) as plain values: adapting two arrays took a third of the time.
        if len(links) == 1:
            curs.execute(self._insert_link, links[0])
        else:
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

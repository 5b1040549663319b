"""The store's database as the auditor tools see it: chains, events, checkpoints.

`AuditDatabase` reads chains and events in batches for verification, checkpoints and
snapshots, on SQLite or PostgreSQL (`open_audit_database`).
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import ProgrammingError

from nervenbahn.audit.chain import (
    CHAINS_TABLE,
    IDENTIFIER,
    REWRITES_TABLE,
    ChainedTable,
    ChainRegistrations,
    EventRow,
    UnreadableRow,
    chain_name,
    chain_table_name,
    check_identifier,
    event_problem,
    link_problem,
    originator_text,
)
from nervenbahn.audit.hashing import ChainHead, genesis, text_or_invalid, wrong_type
from nervenbahn.config import StoreConfig
from schemas.sql import Component, migrate_postgres, migrate_sqlite

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "AuditDatabase",
    "PostgresAuditDatabase",
    "SQLiteAuditDatabase",
    "open_audit_database",
]

class AuditDatabase(ABC):
    """The store's database as the auditor tools see it: chains, events, checkpoints.

    `dense_positions`: positions are gap-free (SQLite rowids; PostgreSQL sequences may skip).
    """

    dense_positions: bool = False
    placeholder: str = "?"
    """The backend's parameter placeholder: statements are written with it (`?` sqlite3,
    `%s` psycopg), never rewritten."""

    @abstractmethod
    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query (parameters marked with `placeholder`)."""

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement in a transaction of its own; the rows it changed."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @abstractmethod
    def migrate(self, component: Component) -> None:
        """Bring one of the audit's components (its tables) to the newest version."""

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
        if not IDENTIFIER.fullmatch(events_table):
            return "events_table is not a plain lower-case identifier"
        if (chain_table, chain) != (chain_table_name(events_table), chain_name(events_table)):
            return (f"chain_table or chain differ from those of {events_table} "
                    f"({chain_table_name(events_table)}, {chain_name(events_table)})")
        missing = [n for n in (events_table, chain_table) if not self._has_table(n)]
        if missing:
            return f"the table {missing[0]} does not exist"
        return None

    def events(
        self, table: ChainedTable, batch: int = 5000, *, gt: int = -1
    ) -> Iterator[EventRow | UnreadableRow]:
        """The stored events of a chained table after position `gt` in position order, read
        in batches (one whose values have the wrong type as an `UnreadableRow`)."""
        position, p = self._position_column(), self.placeholder
        statement = (
            f"SELECT {position}, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {table.events_table} WHERE {position} > {p} ORDER BY {position} LIMIT {p}"
        )
        last = gt
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
        p = self.placeholder
        statement = (
            f"SELECT position, hash FROM {table.chain_table} WHERE position > {p} "  # noqa: S608
            f"ORDER BY position LIMIT {p}"
        )
        last = -1
        while True:
            rows = self.fetch(statement, (last, batch))
            for row in rows:
                problem = link_problem(row[1])
                yield (int(row[0]), bytes(row[1])) if problem is None else UnreadableRow(
                    int(row[0]), problem)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def joined(
        self, table: ChainedTable, batch: int = 5000, *, gt: int = -1, lte: int | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Events with their chain entries (inner join) with `gt` < position <= `lte`, in
        position order, read in batches: (position, originator id, version, topic, state,
        hash). Rows of either table without a partner are left out: compare `count` of both
        tables to notice them."""
        position, p = self._position_column(), self.placeholder
        upto = "" if lte is None else f" AND e.{position} <= {int(lte)}"
        statement = (
            f"SELECT e.{position}, e.originator_id, e.originator_version, e.topic, e.state, "  # noqa: S608
            f"c.hash FROM {table.events_table} e JOIN {table.chain_table} c "
            f"ON c.position = e.{position} WHERE e.{position} > {p}{upto} "
            f"ORDER BY e.{position} LIMIT {p}"
        )
        last = gt
        while True:
            rows = self.fetch(statement, (last, batch))
            yield from rows
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def link_position(self, table: ChainedTable, index: int) -> int | None:
        """The position of the chain table's `index`-th row (1-based; 0 for index 0), None if
        it has fewer rows: where a range of the chain that starts after `index` links
        begins."""
        if index == 0:
            return 0
        rows = self.fetch(
            f"SELECT position FROM {table.chain_table} ORDER BY position "  # noqa: S608
            f"LIMIT 1 OFFSET {int(index) - 1}"
        )
        return int(rows[0][0]) if rows and isinstance(rows[0][0], int) else None

    def link_at(self, table: ChainedTable, position: int) -> bytes | None:
        """The stored hash of the chain table's row at `position` (None if there is none, or
        if it is not a BLOB)."""
        rows = self.fetch(
            f"SELECT hash FROM {table.chain_table} WHERE position = {self.placeholder}",  # noqa: S608
            (position,),
        )
        return bytes(rows[0][0]) if rows and link_problem(rows[0][0]) is None else None

    def opener(self) -> Callable[[], AuditDatabase] | None:
        """How another process opens a connection of its own to the same store (picklable),
        for reading parts of a chain in parallel; None if it cannot."""
        return None

    def originator_links(self, table: ChainedTable, originator_id: str) -> list[tuple[Any, ...]]:
        """The stored events of one originator (a case) with their links, by version:
        (position, originator id, version, topic, state, its link or None, the link before it
        or None)."""
        position, p = self._position_column(), self.placeholder
        chain = table.chain_table
        statement = (
            f"SELECT e.{position}, e.originator_id, e.originator_version, e.topic, e.state, "  # noqa: S608
            f"(SELECT c.hash FROM {chain} c WHERE c.position = e.{position}), "
            f"(SELECT b.hash FROM {chain} b WHERE b.position < e.{position} "
            f"ORDER BY b.position DESC LIMIT 1) "
            f"FROM {table.events_table} e WHERE e.originator_id = {p} "
            "ORDER BY e.originator_version"
        )
        return self.fetch(statement, (originator_id,))

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
                if chain_table_name(n) in names and n not in known and IDENTIFIER.fullmatch(n)]

    def has_table(self, name: str) -> bool:
        """True if the store has this (plain-named) table."""
        check_identifier(name)
        return self._has_table(name)

    def count(self, table_name: str) -> int:
        """Rows in one of the audit's tables."""
        check_identifier(table_name)
        return int(self.fetch(f"SELECT COUNT(*) FROM {table_name}")[0][0])  # noqa: S608

    def head(self, table: ChainedTable) -> ChainHead:
        """The chain table's last row (position 0 and the genesis hash when empty)."""
        rows = self.fetch(
            f"SELECT position, hash FROM {table.chain_table} ORDER BY position DESC LIMIT 1"  # noqa: S608
        )
        if not rows:
            return ChainHead(0, genesis(table.chain))
        problem = link_problem(rows[0][1])
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
        self._path = path
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

    def opener(self) -> Callable[[], AuditDatabase]:
        return partial(SQLiteAuditDatabase, self._path)

    def joined(
        self, table: ChainedTable, batch: int = 5000, *, gt: int = -1, lte: int | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """As the base's, but one statement whose rows are read as they are asked for (a
        quarter less time per row than batches copied into lists: the quick path of
        verification reads every event this way). A TEXT value that is not UTF-8 ends the
        statement, and the rest is read in batches, which read such values as `InvalidText`."""
        upto = "" if lte is None else f" AND e.rowid <= {int(lte)}"
        statement = (
            "SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, "  # noqa: S608
            f"c.hash FROM {table.events_table} e JOIN {table.chain_table} c "
            f"ON c.position = e.rowid WHERE e.rowid > ?{upto} ORDER BY e.rowid"
        )
        last = gt
        try:
            for row in self._db.execute(statement, (gt,)):
                yield row
                last = row[0]
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
            yield from super().joined(table, batch, gt=last, lte=lte)

    def link_position(self, table: ChainedTable, index: int) -> int:
        """Positions are rowids, dense from 1 where a chain can be verified quickly: the
        `index`-th link is at position `index` (a range that starts elsewhere fails its own
        check and verification takes the careful walk)."""
        return index

    def migrate(self, component: Component) -> None:
        migrate_sqlite(self._db, component)

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

    placeholder = "%s"

    def __init__(self, store: StoreConfig) -> None:
        self._schema = store.schema_name or "public"
        self._store = store
        # Made on first use and again after a loss (schemas.postgres): reads run again on a
        # new connection, a write that loses it fails with DatabaseUnavailableError. psycopg
        # is imported here, not with the module: a SQLite store never needs it.
        from schemas.postgres import PostgresConnection

        self._db = PostgresConnection(store.conninfo(), prepare=self._set_search_path)
        self._db.connection()

    def _set_search_path(self, db: psycopg.Connection[Any]) -> None:
        from psycopg import sql

        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.run(
            lambda db: list(db.execute(statement, tuple(params) or None).fetchall()),
            idempotent=True,
        )

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self._db.transaction() as db:
            return db.execute(statement, tuple(params) or None).rowcount

    def close(self) -> None:
        self._db.close()

    def opener(self) -> Callable[[], AuditDatabase]:
        return partial(PostgresAuditDatabase, self._store)

    def migrate(self, component: Component) -> None:
        self._db.run(partial(migrate_postgres, schema=self._schema, component=component),
                     idempotent=True)

    def _has_table(self, name: str) -> bool:
        return bool(self.fetch(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self._schema, name),
        ))

    def _position_column(self) -> str:
        return "notification_id"

    def _row_id(self) -> str:
        return "ctid::text"

    def _table_names(self) -> list[str]:
        return [str(row[0]) for row in self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self._schema,))]



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


def open_audit_database(store: StoreConfig) -> AuditDatabase:
    """The store's database for the auditor tools."""
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteAuditDatabase(store.sqlite_path)
    return PostgresAuditDatabase(store)

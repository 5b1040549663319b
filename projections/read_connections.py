"""Read-only connections to SQLite read models kept open per thread, for a server's readers.

`projections.storage.open_read_model` connects anew for every reader: a rebuild replaces the
database file, and the next reader must read the new one. Connecting and loading the schema
again cost ~0.5–1 ms of an API request's ~3 ms (issue 17). `reused_read_model` keeps one
connection per thread and file instead, and checks before each use, with a `stat` of the
path, that the file is still the one it opened (device and inode): a rebuild's file is
created beside the old one while it still exists (then renamed over it), so it never has
the old one's inode while that connection holds the old file open. A replaced file gets a
new connection. Between readers a connection holds no transaction (each statement commits
its read), so it sees what was committed since, as a new connection would.

PostgreSQL read models are read through a connection pool per schema (`psycopg_pool`, at
most `PostgresReadModels.pool_size` connections, made on demand and closed after ten idle
minutes), shared by the process's threads. Before, each reader connected twice (to see that
the table is built, then to read): a server process forked per connection, most of every
request's time under load (`benchmarks/scale_out.py`: p50 130 ms, pooled 10). A pooled connection
is checked before use as the event store's are (`schemas.postgres.check_pooled`: pinged only
if the server said something on it), autocommit and read-only as a new one, so it sees what
was committed since; whether the table is built is asked on it. After each reader its session
is discarded (`DISCARD ALL`): the next reader gets it as it was opened, whatever the last one
set. TCP keepalives and a TCP user timeout bound what a server gone silent costs a reader.
`close_read_connections` closes the pools (a server's context, at its end); a reader waiting
for a connection then reads from a new pool. A pooled read (a 50-row table) took 0.50 ms
against 7.2 ms connecting anew, the session reset included (0.1 ms of it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolClosed

from projections.errors import ReadModelUnreadableError
from projections.storage import PostgresReadModels, ReadModelTarget, SQLConnection
from schemas.postgres import check_pooled, silent_server_limits

__all__ = ["close_read_connections", "reused_read_model"]

DEFAULT_CONNECT_TIMEOUT_S = 5.0
"""How long a reader waits for a pooled connection (all in use, or none to be made) before its
read fails as unreadable (the API's 503), if the connection string sets no `connect_timeout`
(NERVENBAHN_POSTGRES_CONNECT_TIMEOUT sets it)."""
POOL_MAX_IDLE_S = 600.0
"""A pooled connection unused this long is closed (psycopg_pool's default)."""


class _Open(threading.local):
    """This thread's connections: path → ((device, inode), connection)."""

    def __init__(self) -> None:
        self.connections: dict[Path, tuple[tuple[int, int], sqlite3.Connection]] = {}


_OPEN = _Open()


@contextmanager
def reused_read_model(target: ReadModelTarget, table: str) -> Iterator[SQLConnection]:
    """`open_read_model`, but a SQLite read model's connection stays open in this thread for
    the next reader of the same file, and a PostgreSQL one comes from the schema's pool
    (`ReadModelUnreadableError` alike)."""
    if not isinstance(target, Path):
        with _pooled(target, table) as pooled:
            yield pooled
        return
    db = _connection(target)
    try:
        yield db
    except sqlite3.OperationalError as exc:  # half-built, locked, I/O: start afresh next time
        _forget(target)
        raise ReadModelUnreadableError(f"cannot be read ({exc})") from exc


def _connection(path: Path) -> sqlite3.Connection:
    try:
        found = path.stat()
    except OSError as exc:
        _forget(path)
        raise ReadModelUnreadableError() from exc
    identity = (found.st_dev, found.st_ino)
    kept = _OPEN.connections.get(path)
    if kept is not None and kept[0] == identity:
        return kept[1]
    _forget(path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise ReadModelUnreadableError("cannot be opened") from exc
    _OPEN.connections[path] = (identity, db)
    return db


def _forget(path: Path) -> None:
    kept = _OPEN.connections.pop(path, None)
    if kept is not None:
        kept[1].close()


_POOLS: dict[PostgresReadModels, ConnectionPool[Any]] = {}
_POOLS_LOCK = threading.Lock()


@contextmanager
def _pooled(target: PostgresReadModels, table: str) -> Iterator[SQLConnection]:
    """A pooled connection to the schema whose `table` is built, errors translated as
    `open_read_model` translates them."""
    with ExitStack() as stack:
        try:
            try:
                db = stack.enter_context(_pool(target).connection())
            except PoolClosed:  # closed by another context while this reader waited: anew
                db = stack.enter_context(_pool(target).connection())
            row = db.execute("SELECT to_regclass(%s)", (f"{target.schema}.{table}",)).fetchone()
        except psycopg.Error as exc:  # refused, timed out waiting, lost while asking
            raise ReadModelUnreadableError("cannot be opened") from exc
        if row is None or row[0] is None:
            raise ReadModelUnreadableError()
        try:
            yield db
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
            raise ReadModelUnreadableError(f"cannot be read ({exc})") from exc
        finally:
            _reset(db)


def _pool(target: PostgresReadModels) -> ConnectionPool[Any]:
    with _POOLS_LOCK:
        pool = _POOLS.get(target)
        if pool is None:
            pool = _POOLS[target] = _open_pool(target)
        return pool


def _open_pool(target: PostgresReadModels) -> ConnectionPool[Any]:
    pool: ConnectionPool[Any]

    def check(conn: psycopg.Connection[Any]) -> None:
        check_pooled(pool, conn)

    timeout = _connect_timeout(target.conninfo)
    pool = ConnectionPool(
        target.connection_string(read_only=True, timed=True),
        kwargs={
            "autocommit": True,
            # No server-side prepared statements, as on a new connection: a read model's
            # table migrated (a column added) under a statement prepared before fails it
            # with "cached plan must not change result type".
            "prepare_threshold": None,
            # A server gone silent must not hold a reader (and its pooled connection).
            **silent_server_limits(),
        },
        min_size=0,
        max_size=target.pool_size,
        timeout=timeout,
        max_idle=POOL_MAX_IDLE_S,
        check=check,
        name=f"read-models-{target.schema}",
        open=False,
    )
    pool.open()
    return pool


def _reset(conn: psycopg.Connection[Any]) -> None:
    """The connection as a new one before it goes back to the pool: whatever a reader
    changed in its session (search path, read-only off, temporary tables, autocommit off)
    must not reach the next reader, who would read another schema's rows, or write. DISCARD
    ALL restores the settings the connection was opened with; one it fails on is closed, and
    the pool replaces a closed connection. Here, in the reader's thread, not as the pool's
    `reset` (which runs it in a worker: the next reader, not finding the connection back
    yet, made another)."""
    try:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()
        conn.autocommit = True
        conn.execute("DISCARD ALL")
    except psycopg.Error:
        conn.close()


def _connect_timeout(conninfo: str) -> float:
    """The connection string's `connect_timeout` in seconds: as long as a new connection
    would have waited, a reader waits for a pooled one (an unreachable server fails it after
    that long, not at once: the pool's workers try to connect meanwhile)."""
    given = psycopg.conninfo.conninfo_to_dict(conninfo).get("connect_timeout")
    return float(given) if given else DEFAULT_CONNECT_TIMEOUT_S


def close_read_connections() -> None:
    """Close every pool of PostgreSQL read-model connections of this process (a reader after
    this opens a new one)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()

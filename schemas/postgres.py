"""One PostgreSQL connection that comes back after it was lost: the one reconnect mechanism of
every adapter of ours that keeps a connection (relay positions, consumer bookkeeping and read
models, the key store, the embedded schema registry, the audit database).

Why: a PostgreSQL restart (or a failover, or an idle connection cut by a firewall) closes every
connection on the server side; the client learns it only on its next statement. Before this,
each adapter held one connection for the life of the process, so after a restart the relays
retried "the connection is closed" for ever, personal-data reads answered 500 and every
`open_case` failed until `serve` was restarted (issue 12, finding 5).

The rules, the same for every adapter:

- a connection is made on first need, and made again when the last one was closed or broken;
- a statement sent on a connection that turns out to be lost is **retried once** on a fresh
  connection only when the caller says it is idempotent (a read, an upsert, a delete by key):
  it may or may not have run before the loss, and running it again changes nothing;
- a transaction whose `BEGIN` fails on a lost connection is begun again on a fresh one (nothing
  of it ran); a transaction that loses its connection later is **not** retried here: its
  caller gets `DatabaseUnavailableError` (the API's 503, the CLI's exit 3) and the next call
  connects again;
- other errors (a constraint, a syntax error, a lock timeout) pass through unchanged.

Why not psycopg_pool here: each adapter serialises its work on one connection (a relay, a
consumer, the key store each do one thing at a time); a pool per adapter would add worker
threads and a pool's own timeouts for no gain. eventsourcing's event store keeps its own
pool (`psycopg_pool`, with `check_connection` before each use: `POSTGRES_PRE_PING`).

This module imports nothing of ours but the schemas' root error, so every layer may use it.
"""

from __future__ import annotations

import select
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from schemas import SchemasError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = [
    "SILENT_SERVER_S",
    "DatabaseUnavailableError",
    "PostgresConnection",
    "check_pooled",
    "connection_lost",
    "quiet_since_last_use",
    "silent_server_limits",
    "transaction_conflict",
]

T = TypeVar("T")


class DatabaseUnavailableError(SchemasError):
    """The PostgreSQL database cannot be reached, or the connection was lost during the work;
    the next call connects again."""


def connection_lost(exc: BaseException, db: psycopg.Connection[Any] | None) -> bool:
    """True if `exc` means the connection is gone (the server closed it, the network failed),
    not that the statement was refused."""
    if isinstance(exc, DatabaseUnavailableError):
        return True
    psycopg = sys.modules.get("psycopg")  # never imported: no error of its can be at hand
    if psycopg is None or not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    return db is None or db.closed or db.broken


def transaction_conflict(exc: BaseException) -> bool:
    """True if `exc` is PostgreSQL rolling a transaction back because it conflicted with
    another (SQLSTATE class 40: a deadlock, a serialization failure): the work was sound and
    succeeds when the whole transaction runs again."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("40")


def check_pooled(pool: ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's check of a pooled connection before its use (`check=`): none for one
    that is open and has heard nothing from the server since its last use; else a ping
    (`ConnectionPool.check_connection`), and if that fails, every idle connection of the pool
    is checked at once (`ConnectionPool.check`) before the error goes to the pool, which
    replaces the connection.

    Why no ping each time: it is a round trip per checkout. A server that ends a connection (a
    restart, `pg_terminate_backend`, a crash) sends a message and closes it, either of which
    makes its socket readable; an idle connection has nothing else to read (a listening one
    may: it is pinged, as any readable one). Why the sweep: psycopg_pool backs off between
    failed checks (1 s, 2 s, 4 s, ...), and after a restart every idle connection is dead: with
    5 of them the first `open_case` took 6.3 s, with the sweep 0.14 s."""
    if quiet_since_last_use(conn):
        return
    try:
        type(pool).check_connection(conn)
    except Exception:
        pool.check()  # the server went away: the other idle connections went with it
        raise


KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3}
"""TCP keepalives of our connections (libpq's parameters): probed after 10 idle seconds, every
5, given up after 3 unanswered."""


SILENT_SERVER_S = 30
"""How long a connection of ours waits for a server gone silent to acknowledge what was
sent, before the connection fails (libpq's `tcp_user_timeout`)."""


def silent_server_limits() -> dict[str, int]:
    """libpq's TCP settings that end a connection to a server gone silent (a failover behind
    the same address, a network partition), for every connection of ours: what was sent and
    not acknowledged for `SILENT_SERVER_S` fails the connection (`tcp_user_timeout`), and
    keepalives find an idle one dead within 25 s. Without them a statement on such a
    connection waits for the kernel's retransmissions, about a quarter of an hour (found by
    an attack on the read models' pool: readers hung without limit, and held every pooled
    connection). 30 s, not the connect timeout (5 s): a network that stalls for seconds
    must not cut a commit that would have gone through. A slow statement on a live server
    is unaffected: the server's kernel acknowledges what it receives at once."""
    return {"tcp_user_timeout": SILENT_SERVER_S * 1000, **KEEPALIVES}


def quiet_since_last_use(conn: psycopg.Connection[Any]) -> bool:
    """Whether a pooled (idle) connection is open and its socket has nothing to read."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class PostgresConnection:
    """One autocommit connection to `conninfo`, made on first use and again after a loss.

    `prepare(db)` runs on every new connection before it is used (a schema migration, a
    `SET search_path`). `lock` serialises the users of the connection (re-entrant); the
    methods take it themselves."""

    def __init__(
        self, conninfo: str, *, prepare: Callable[[psycopg.Connection[Any]], object] | None = None
    ) -> None:
        self._conninfo = conninfo
        self._prepare = prepare
        self._db: psycopg.Connection[Any] | None = None
        self.lock = threading.RLock()

    def describe(self) -> str:
        """host:port/dbname, without secrets (for messages)."""
        import psycopg  # here, not with the module: a SQLite store never needs it

        try:
            info = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError:
            info = {}
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection, made (and prepared) if there is none or it was lost."""
        import psycopg  # here, not with the module: a SQLite store never needs it

        with self.lock:
            if self._db is not None and not (self._db.closed or self._db.broken):
                return self._db
            self._forget()
            try:
                db = psycopg.connect(self._conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailableError(
                    f"PostgreSQL {self.describe()} cannot be reached: {_first_line(exc)}"
                ) from exc
            try:
                if self._prepare is not None:
                    self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
            return db

    def current(self) -> psycopg.Connection[Any] | None:
        """The connection last made, as it is (possibly lost), or None."""
        return self._db

    def run(self, work: Callable[[psycopg.Connection[Any]], T], *, idempotent: bool) -> T:
        """`work(connection)`; on a lost connection retried once on a fresh one if
        `idempotent`, else `DatabaseUnavailableError`."""
        import psycopg  # here, not with the module: a SQLite store never needs it

        with self.lock:
            for attempt in (1, 2):
                db = self.connection()
                try:
                    return work(db)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    if not connection_lost(exc, db):
                        raise
                    self._forget()
                    if attempt == 2 or not idempotent:
                        raise self._lost(exc) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection inside a transaction (committed on exit, rolled back on an error).
        A lost connection at `BEGIN` is replaced; lost later, `DatabaseUnavailableError`."""
        import psycopg  # here, not with the module: a SQLite store never needs it

        with self.lock:
            db, tx = self._begin()
            try:
                with tx:
                    yield db
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not connection_lost(exc, db):
                    raise
                self._forget()
                raise self._lost(exc) from exc

    def _begin(self) -> tuple[psycopg.Connection[Any], Any]:
        """A connection with its transaction begun (one new connection if BEGIN finds the
        old one lost: nothing of the transaction ran)."""
        import psycopg  # here, not with the module: a SQLite store never needs it

        for attempt in (1, 2):
            db = self.connection()
            tx = db.transaction()
            try:
                tx.__enter__()
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not connection_lost(exc, db):
                    raise
                self._forget()
                if attempt == 2:
                    raise self._lost(exc) from exc
                continue
            return db, _Entered(tx)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection (a later call would make a new one)."""
        with self.lock:
            self._forget()

    def _forget(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _lost(self, exc: BaseException) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(
            f"the connection to PostgreSQL {self.describe()} was lost ({_first_line(exc)}); "
            "what was under way may not have been done; the next call connects again"
        )


class _Entered:
    """A psycopg transaction already entered: `with` only exits it."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> Any:
        return self._tx.__exit__(*exc_info)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

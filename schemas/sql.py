"""The project's SQL schemas: numbered migrations per component, and the runner that applies them.

Every store that keeps tables of ours (consumer bookkeeping, relay positions, the embedded
schema registry, the key store, the audit tables, the access log, read models, connector state,
the payment and BFS sinks) declares its tables once, as a `Component`: a name and an ordered
list of `Migration`s, each with its SQLite and its PostgreSQL statements. When the store opens,
it hands its connection and its component to `migrate_sqlite` or `migrate_postgres`, which
brings the database up to the newest version the code knows:

- the table `schema_versions (component, version, applied_at, note)` records each component's
  version and what set it (the newest migration's description);
- each pending migration runs in a transaction of its own, together with the row recording it,
  under a write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL a transaction-scoped advisory lock),
  so two processes opening one store at once apply each step exactly once;
- a component already at the newest version costs one read and takes no write lock;
- a store whose recorded version is newer than the code knows is refused
  (`SchemaVersionError`, naming component and versions): older code must not write into it;
- a store made before versions were recorded (its tables exist, no row) is taken as version 1:
  migration 1 of every component is the DDL the stores ran before the runner existed, written
  with `IF NOT EXISTS`, so running it on such a store creates only what is missing (say an index
  added later) and changes no table; its version row's note begins with `baseline`.

PostgreSQL statements name the component's schema as `{schema}` (filled in as a quoted
identifier); SQLite has none. Values are never interpolated: migrations are constant DDL.

This module imports nothing of ours, so every layer (bus, projections, connectors, the
composition root) may use it.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemas import SchemasError

if TYPE_CHECKING:  # imported where used: a SQLite store never needs psycopg (0.2 s a start)
    import psycopg
    from psycopg import sql

__all__ = [
    "BASELINE_NOTE",
    "VERSIONS_TABLE",
    "Component",
    "Migration",
    "SchemaVersionError",
    "database_errors",
    "migrate",
    "migrate_postgres",
    "migrate_sqlite",
    "placeholder",
    "recorded_versions_postgres",
    "recorded_versions_sqlite",
]

BASELINE_NOTE = "baseline"
"""How a version row's note begins when its tables were found from a release before the
runner (a store taken as version 1 as it was)."""

VERSIONS_TABLE = "schema_versions"
"""One row per component: the newest migration applied to this database (or schema)."""

_SQLITE_VERSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (component TEXT PRIMARY KEY, "
    "version INTEGER NOT NULL, applied_at TEXT NOT NULL, note TEXT NOT NULL)"
)
_POSTGRES_VERSIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}." + VERSIONS_TABLE + " (component text PRIMARY KEY, "
    "version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
    "note text NOT NULL)"
)
_ADVISORY_LOCK = 0x6E62_6D69_6772  # "nbmigr": serialises migrations of every component


class SchemaVersionError(SchemasError):
    """The store was written by a newer release than this one: its tables are not opened."""

    def __init__(self, component: str, recorded: int, known: int) -> None:
        self.component = component
        self.recorded = recorded
        self.known = known
        super().__init__(
            f"{component}: the store's tables are at schema version {recorded}, this release "
            f"knows versions up to {known}; it was written by a newer release — run that one "
            "(a downgrade is not supported)"
        )


@dataclass(frozen=True)
class Migration:
    """One numbered step of a component's tables, written for each backend."""

    version: int
    description: str
    sqlite: Sequence[str]
    postgres: Sequence[str]


@dataclass(frozen=True)
class Component:
    """A group of tables with its own version: a name and its migrations, numbered 1, 2, …"""

    name: str
    migrations: Sequence[Migration]
    tables: Sequence[str] = field(default=())
    """The tables migration 1 creates: if any exists without a version row, the store
    predates the runner and version 1 is recorded as its baseline."""

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name}: migrations must be numbered 1..n, got {numbers}")

    @property
    def latest(self) -> int:
        """The newest version this release knows."""
        return len(self.migrations)


# --- SQLite --------------------------------------------------------------------------------


def recorded_versions_sqlite(db: sqlite3.Connection) -> dict[str, int]:
    """Every component's recorded version in a SQLite database (empty if none is)."""
    if not _sqlite_has_table(db, VERSIONS_TABLE):
        return {}
    rows = db.execute(f"SELECT component, version FROM {VERSIONS_TABLE}").fetchall()  # noqa: S608
    return {str(name): int(version) for name, version in rows}


def migrate_sqlite(db: sqlite3.Connection, component: Component) -> int:
    """Bring the component's tables in a SQLite database (a connection in autocommit mode,
    `isolation_level=None`) to the newest version; return the version it is at.

    Called inside a transaction the caller opened with `BEGIN IMMEDIATE` (a store that
    prepares itself under its own write lock), the steps run in that transaction."""
    if db.isolation_level is not None:
        raise ValueError("migrate_sqlite needs a connection with isolation_level=None")
    current = _sqlite_version(db, component.name)
    _refuse_newer(component, current)
    if db.in_transaction:  # the caller holds the write lock: its transaction is the step's
        if current is None or current < component.latest:
            db.execute(_SQLITE_VERSIONS_DDL)
        while current is None or current < component.latest:
            current = _sqlite_step(db, component, current)
        return current
    while current is None or current < component.latest:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_SQLITE_VERSIONS_DDL)
            current = _sqlite_version(db, component.name)  # another process may have moved it
            _refuse_newer(component, current)
            if current is None or current < component.latest:
                current = _sqlite_step(db, component, current)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return current


def _sqlite_step(db: sqlite3.Connection, component: Component, current: int | None) -> int:
    """Apply the next migration (or record the baseline) inside the open transaction."""
    baseline = current is None and any(_sqlite_has_table(db, t) for t in component.tables)
    migration = component.migrations[current or 0]
    for statement in migration.sqlite:
        db.execute(statement)
    db.execute(
        f"INSERT INTO {VERSIONS_TABLE} (component, version, applied_at, note) "  # noqa: S608
        "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?) ON CONFLICT (component) "
        "DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at, "
        "note = excluded.note",
        (component.name, migration.version, _note(migration, baseline)),
    )
    return migration.version


def _sqlite_version(db: sqlite3.Connection, name: str) -> int | None:
    if not _sqlite_has_table(db, VERSIONS_TABLE):
        return None
    row = db.execute(
        f"SELECT version FROM {VERSIONS_TABLE} WHERE component = ?", (name,)  # noqa: S608
    ).fetchone()
    return None if row is None else int(row[0])


def _sqlite_has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


# --- PostgreSQL ----------------------------------------------------------------------------


def recorded_versions_postgres(db: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    """Every component's recorded version in a PostgreSQL schema (empty if none is)."""
    from psycopg import sql

    if not _postgres_has_table(db, schema, VERSIONS_TABLE):
        return {}
    rows = db.execute(
        sql.SQL("SELECT component, version FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(VERSIONS_TABLE)
        )
    ).fetchall()
    return {str(name): int(version) for name, version in rows}


def migrate_postgres(db: psycopg.Connection[Any], schema: str, component: Component) -> int:
    """Bring the component's tables in a PostgreSQL schema to the newest version (a
    connection in autocommit mode); return the version it is at."""
    from psycopg import sql

    current = _postgres_version(db, schema, component.name)
    _refuse_newer(component, current)
    while current is None or current < component.latest:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            db.execute(_postgres_sql(_POSTGRES_VERSIONS_DDL, schema))
            current = _postgres_version(db, schema, component.name)
            _refuse_newer(component, current)
            if current is None or current < component.latest:
                current = _postgres_step(db, schema, component, current)
    return current


def _postgres_step(
    db: psycopg.Connection[Any], schema: str, component: Component, current: int | None
) -> int:
    """Apply the next migration (or record the baseline) inside the open transaction."""
    from psycopg import sql

    baseline = current is None and any(
        _postgres_has_table(db, schema, t) for t in component.tables
    )
    migration = component.migrations[current or 0]
    for statement in migration.postgres:
        db.execute(_postgres_sql(statement, schema))
    db.execute(
        sql.SQL(
            "INSERT INTO {}.{} (component, version, note) VALUES (%s, %s, %s) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
            "applied_at = now(), note = excluded.note"
        ).format(sql.Identifier(schema), sql.Identifier(VERSIONS_TABLE)),
        (component.name, migration.version, _note(migration, baseline)),
    )
    return migration.version


def _postgres_sql(statement: str, schema: str) -> sql.Composed:
    from psycopg import sql

    return sql.SQL(statement).format(schema=sql.Identifier(schema))


def _postgres_version(db: psycopg.Connection[Any], schema: str, name: str) -> int | None:
    from psycopg import sql

    if not _postgres_has_table(db, schema, VERSIONS_TABLE):
        return None
    row = db.execute(
        sql.SQL("SELECT version FROM {}.{} WHERE component = %s").format(
            sql.Identifier(schema), sql.Identifier(VERSIONS_TABLE)
        ),
        (name,),
    ).fetchone()
    return None if row is None else int(row[0])


def _postgres_has_table(db: psycopg.Connection[Any], schema: str, name: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (schema, name),
    ).fetchone()
    return row is not None


# --- both ----------------------------------------------------------------------------------


def migrate(db: sqlite3.Connection | psycopg.Connection[Any], component: Component) -> int:
    """`migrate_sqlite` or `migrate_postgres` (in the connection's current schema), for code
    handed a connection of either database (a connector's transaction)."""
    if isinstance(db, sqlite3.Connection):
        return migrate_sqlite(db, component)
    row = db.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise ValueError("the PostgreSQL connection has no current schema")
    return migrate_postgres(db, str(row[0]), component)


def database_errors(*others: type[Exception]) -> tuple[type[Exception], ...]:
    """The errors of both databases' drivers and `others`, for `except`: sqlite3's, and
    psycopg's once it is imported (a SQLite store never imports it, and a module never
    imported raises nothing)."""
    psycopg = sys.modules.get("psycopg")
    drivers = (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)
    return (*drivers, *others)


def placeholder(db: object) -> str:
    """The parameter placeholder of the connection's database (`?` sqlite3, `%s` psycopg), for
    code handed a connection of either (a read model's, a connector's transaction): it writes
    its statements with this marker, so no SQL text is ever rewritten for the other backend.
    On PostgreSQL a statement with parameters must not hold a literal `%` (pass it as one)."""
    return "?" if isinstance(db, sqlite3.Connection) else "%s"


def _refuse_newer(component: Component, current: int | None) -> None:
    if current is not None and current > component.latest:
        raise SchemaVersionError(component.name, current, component.latest)


def _note(migration: Migration, baseline: bool) -> str:
    """What the version row says about the step that set it."""
    if baseline:
        return f"{BASELINE_NOTE}: {migration.description}"
    return migration.description

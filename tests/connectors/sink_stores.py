"""A sink's consumer store on either backend, for the sink tests: the host keeps its sinks'
stores in SQLite, but the sinks' SQL is written for both (each statement with its connection's
placeholder, `schemas.sql.placeholder`), so their tests run on PostgreSQL too."""

from __future__ import annotations

from pathlib import Path

import psycopg.conninfo
import pytest

from bus.effects import EffectStore
from bus.effects_postgres import PostgresEffectStore
from bus.effects_sqlite import SQLiteEffectStore
from nervenbahn.config import StoreConfig

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""The `params` of a sink test's store fixture."""


def open_sink_store(request: pytest.FixtureRequest, path: Path) -> EffectStore:
    """A SQLite store at `path`, or one in a PostgreSQL schema of the test's own whose
    connection has it as search path (the sink creates its tables unqualified, as in a
    read model's schema)."""
    if request.param == "sqlite":
        return SQLiteEffectStore(path)
    store = StoreConfig.parse(request.getfixturevalue("postgres_dsn"))
    conninfo = psycopg.conninfo.make_conninfo(
        store.conninfo(), options=f"-c search_path={store.schema_name}"
    )
    return PostgresEffectStore(conninfo, store.schema_name)

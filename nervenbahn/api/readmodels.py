"""Opening a read model for one request: read-only, and a clear 503 if it is not built.

A connection per request: a rebuild replaces the database file (or, in PostgreSQL, commits
its refilled tables), and the next request must read the new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psycopg

from nervenbahn.api.errors import ReadModelUnavailableError
from projections import PROJECTIONS
from projections.storage import (
    ReadModelTarget,
    SQLConnection,
    read_model_built,
    read_model_connection,
)

__all__ = ["read_model"]


@contextmanager
def read_model(target: ReadModelTarget, name: str) -> Iterator[SQLConnection]:
    """A read-only connection to the projection `name` at `target` (its SQLite file, or the
    PostgreSQL schema of the read models)."""
    try:
        built = read_model_built(target, PROJECTIONS[name].tables[0])
    except psycopg.Error as exc:
        raise ReadModelUnavailableError(name, "cannot be opened") from exc
    if not built:
        raise ReadModelUnavailableError(name)
    with ExitStack() as stack:
        try:
            db = stack.enter_context(read_model_connection(target))
        except (sqlite3.Error, psycopg.Error) as exc:
            raise ReadModelUnavailableError(name, "cannot be opened") from exc
        try:
            yield db
        except (
            sqlite3.OperationalError, psycopg.OperationalError, psycopg.ProgrammingError
        ) as exc:  # no such table (half-built), locked, I/O, server gone
            raise ReadModelUnavailableError(name, f"cannot be read ({exc})") from exc

"""Opening a read model for one request: read-only, and a clear 503 if it is not built.

A connection per request: a rebuild replaces the database file (or, in PostgreSQL, commits
its refilled tables), and the next request must read the new one. The database errors of
either backend are translated by the read models' storage (`projections.storage.
open_read_model`); here they become the API's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nervenbahn.api.errors import ReadModelUnavailableError
from projections import PROJECTIONS
from projections.errors import ReadModelUnreadableError
from projections.storage import ReadModelTarget, SQLConnection, open_read_model

__all__ = ["read_model"]


@contextmanager
def read_model(target: ReadModelTarget, name: str) -> Iterator[SQLConnection]:
    """A read-only connection to the projection `name` at `target` (its SQLite file, or the
    PostgreSQL schema of the read models); ReadModelUnavailableError (503) if it cannot be
    opened or read."""
    try:
        with open_read_model(target, PROJECTIONS[name].tables[0]) as db:
            yield db
    except ReadModelUnreadableError as exc:
        raise ReadModelUnavailableError(name, exc.reason) from exc

"""Opening a read model for one request: read-only, and a clear 503 if it is not built.

A connection per request: a rebuild replaces the database file, and the next request must
read the new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nervenbahn.api.errors import ReadModelUnavailableError

__all__ = ["read_model"]


@contextmanager
def read_model(path: Path, name: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the projection `name` at `path`."""
    if not path.is_file():
        raise ReadModelUnavailableError(name)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise ReadModelUnavailableError(name, "cannot be opened") from exc
    try:
        yield db
    except sqlite3.OperationalError as exc:  # no such table (half-built), locked, I/O
        raise ReadModelUnavailableError(name, f"cannot be read ({exc})") from exc
    finally:
        db.close()

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

PostgreSQL read models are opened per reader as before (`open_read_model`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from projections.errors import ReadModelUnreadableError
from projections.storage import ReadModelTarget, SQLConnection, open_read_model

__all__ = ["reused_read_model"]


class _Open(threading.local):
    """This thread's connections: path → ((device, inode), connection)."""

    def __init__(self) -> None:
        self.connections: dict[Path, tuple[tuple[int, int], sqlite3.Connection]] = {}


_OPEN = _Open()


@contextmanager
def reused_read_model(target: ReadModelTarget, table: str) -> Iterator[SQLConnection]:
    """`open_read_model`, but a SQLite read model's connection stays open in this thread for
    the next reader of the same file (`ReadModelUnreadableError` alike)."""
    if not isinstance(target, Path):
        with open_read_model(target, table) as db:
            yield db
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

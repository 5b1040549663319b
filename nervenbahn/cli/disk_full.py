"""A full disk, recognised wherever it surfaces, so that the CLI reports it as one line and its
own exit code (`EXIT_NO_SPACE`) instead of 70 with a traceback.

It surfaces in many shapes: an `OSError` with errno ENOSPC or EDQUOT (a quota is a full disk
for its user), SQLite's "database or disk is full" (SQLITE_FULL, raised by sqlite3 and
re-raised by eventsourcing), PostgreSQL's `disk_full` (SQLSTATE 53100), and each of them
wrapped in one of our errors (`ConfigError`, `ApiKeyFileError`, …) by the code that caught it.
`disk_full` therefore walks the whole chain of causes and contexts.
"""

from __future__ import annotations

import errno

from domain.errors import NervenbahnError

__all__ = ["DiskFullError", "disk_full"]

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
"""SQLite's primary result code SQLITE_FULL."""
_POSTGRES_DISK_FULL = "53100"
"""PostgreSQL's SQLSTATE disk_full."""


class DiskFullError(NervenbahnError):
    """The disk (or the user's quota) is full: nothing more could be written."""


def disk_full(error: BaseException) -> DiskFullError | None:
    """A `DiskFullError` naming where, if `error` or anything in its chain of causes is a
    full disk; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        where = _full_at(current)
        if where is not None:
            return DiskFullError(
                f"no space left on device{where}; free some space (or move the store, "
                "NERVENBAHN_KEY_DIR or the output elsewhere) and run the command again"
            )
        current = current.__cause__ or current.__context__
    return None


def _full_at(error: BaseException) -> str | None:
    """' (writing PATH)', '' or None: whether `error` itself says the disk is full."""
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return f" (writing {error.filename})" if error.filename else ""
    if getattr(error, "sqlite_errorcode", None) is not None:
        return "" if error.sqlite_errorcode & 0xFF == _SQLITE_FULL else None  # type: ignore[attr-defined]
    if getattr(error, "sqlstate", None) == _POSTGRES_DISK_FULL:
        return ""
    return None

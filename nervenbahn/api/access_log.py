"""The access log (port): every read of personal data by a consumer, appended, never changed.

Who read (consumer and scope), which case and person, which fields, when, through which
endpoint. An entry is appended *before* the data is returned: a read that cannot be logged
is not served. The SQLite adapter refuses UPDATE and DELETE; a chained, tamper-evident
adapter (issue 5) will implement the same port. How long entries are kept is issue 5's too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

__all__ = ["AccessEntry", "AccessLog", "LoggedAccess"]


@dataclass(frozen=True)
class AccessEntry:
    """One read of a person's data by a consumer."""

    at: datetime
    consumer: str
    scope: str
    case_id: str
    person_id: str
    fields: tuple[str, ...]
    endpoint: str


@dataclass(frozen=True)
class LoggedAccess:
    """An entry as the log holds it, with its position in the log."""

    id: int
    entry: AccessEntry


class AccessLog(ABC):
    """Port: an append-only log of personal-data reads that auditors can query."""

    @abstractmethod
    def append(self, entry: AccessEntry) -> int:
        """Record the entry durably and return its id (ids increase); raise if it cannot."""

    @abstractmethod
    def select(
        self,
        *,
        person_id: str | None = None,
        case_id: str | None = None,
        gt: int = 0,
        limit: int = 100,
    ) -> list[LoggedAccess]:
        """Entries with id > gt, oldest first, optionally of one person and/or case."""

    @abstractmethod
    def close(self) -> None:
        """Release the log's resources."""

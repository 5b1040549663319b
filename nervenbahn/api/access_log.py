"""The access log (port): every read of personal data by a consumer, appended, never changed.

Who read (consumer and scope), which case and person, which fields, when, through which
endpoint. An entry is appended *before* the data is returned: a read that cannot be logged
is not served.

`ChainedAccessLog` is the tamper-evident kind (issue 5): every entry is chained to the one
before it with `nervenbahn.audit.hashing` (chain "access-log"), so that altering, removing,
inserting or reordering an entry is found by recomputing the chain, and a truncation by
comparing with a signed checkpoint's head. Entries are kept at least one year
(Art. 4 para. 5 DSV / OPDo); purging older ones leaves a `RetentionAnchor` from which
verification starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.case import Case
from nervenbahn.api.errors import ApiError
from nervenbahn.audit.hashing import ChainHead, ChainVerification

__all__ = [
    "ACCESS_LOG_CHAIN",
    "MINIMUM_RETENTION_DAYS",
    "AccessEntry",
    "AccessLog",
    "AccessLogRetentionError",
    "AccessLogTamperedError",
    "AccessLogVerification",
    "ChainedAccessLog",
    "LoggedAccess",
    "RetentionAnchor",
    "case_read_entries",
    "check_retention",
]

ACCESS_LOG_CHAIN = "access-log"
"""The chain's name: its genesis is `genesis("access-log")`."""

MINIMUM_RETENTION_DAYS = 365
"""Art. 4 para. 5 DSV / OPDo: logs of access to personal data are kept at least one year."""


class AccessLogRetentionError(ApiError):
    """A retention period shorter than the data-protection ordinance allows was asked for."""


class AccessLogTamperedError(ApiError):
    """The access log's chain is broken where an operation needs it intact (e.g. a purge)."""


def check_retention(days: int, setting: str = "retention") -> int:
    """`days` if it is at least one year; AccessLogRetentionError naming `setting` if not."""
    if days < MINIMUM_RETENTION_DAYS:
        raise AccessLogRetentionError(
            f"{setting}: {days} days is shorter than one year; Art. 4 para. 5 DSV / OPDo "
            f"requires access logs to be kept at least {MINIMUM_RETENTION_DAYS} days"
        )
    return days


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


def case_read_entries(
    case: Case, *, at: datetime, consumer: str, scope: str, fields: tuple[str, ...],
    endpoint: str,
) -> list[AccessEntry]:
    """The entries of one read of a case: one for each person of its household (applicant
    first). A case's data — phase, budget, decisions — concerns every member of the household
    (data on social assistance is sensitive personal data, Art. 5 let. c no. 5 FADP), so a
    read is logged under each of them, also when it shows no name."""
    persons = [case.applicant, *case.other_members]
    return [
        AccessEntry(at=at, consumer=consumer, scope=scope, case_id=str(case.id),
                    person_id=str(person.person_id), fields=fields, endpoint=endpoint)
        for person in persons
    ]


@dataclass(frozen=True)
class LoggedAccess:
    """An entry as the log holds it, with its position in the log."""

    id: int
    entry: AccessEntry


@dataclass(frozen=True)
class RetentionAnchor:
    """Where the chain starts after a purge: the last purged entry's position and hash, when
    it was purged, the time of that entry, how many entries the purge removed, and why."""

    position: int
    hash: bytes
    purged_at: datetime
    last_at: datetime
    entries: int
    reason: str

    @property
    def head(self) -> ChainHead:
        """The anchor as the head of the purged part of the chain."""
        return ChainHead(self.position, self.hash)

    def to_json(self) -> dict[str, object]:
        """As JSON (hash in hex, times in ISO 8601)."""
        return {
            "position": self.position,
            "hash": self.hash.hex(),
            "purged_at": self.purged_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "entries": self.entries,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class AccessLogVerification(ChainVerification):
    """A chain verification of the access log, with the retention anchor it started from and
    the expected heads that lie before it (purged: neither confirmed nor counted as breaks)."""

    anchor: RetentionAnchor | None = None
    before_anchor: tuple[ChainHead, ...] = ()

    def to_json(self) -> dict[str, object]:
        """As JSON: the chain verification plus the anchor and the heads before it."""
        return super().to_json() | {
            "anchor": self.anchor.to_json() if self.anchor else None,
            "before_anchor": [
                head.to_json() | {"note": "before the retention anchor"}
                for head in self.before_anchor
            ],
        }


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


class ChainedAccessLog(AccessLog):
    """Port: an access log whose entries are hash-chained, verifiable and purged by retention.

    Ids are consecutive positions in the chain (1, 2, …), also across purges.
    """

    log_id: str
    """The log's identity: a random id made with the log and kept in it. Checkpoints name the
    log they sign by it, so that a head is only ever compared with its own log."""

    @abstractmethod
    def head(self) -> ChainHead:
        """The last entry's position and stored hash; after a purge of every entry, the
        retention anchor; (0, genesis) for a log that never had an entry."""

    @abstractmethod
    def verify(self, expected: Sequence[ChainHead] = ()) -> AccessLogVerification:
        """Recompute the chain from the retention anchor (or genesis), compare it with the
        stored hashes and with each expected head (from signed checkpoints), and name every
        position found wrong and why (`breaks`; the first also as `first_break`); heads
        before the anchor are only listed."""

    @abstractmethod
    def anchor(self) -> RetentionAnchor | None:
        """The latest retention anchor, None if nothing was ever purged."""

    @abstractmethod
    def purge(
        self, *, now: datetime, retention_days: int, reason: str | None = None
    ) -> RetentionAnchor | None:
        """Remove the oldest entries recorded more than `retention_days` before `now`, with an
        anchor, in one transaction; None if none is that old. Refuses less than one year
        (AccessLogRetentionError) and a chain broken in the part to be removed
        (AccessLogTamperedError)."""

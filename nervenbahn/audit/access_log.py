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

The port lives in the audit feature beside its storage (`access_log_store`); its errors are
in `nervenbahn.audit.errors`, so that neither imports an entrypoint (API or CLI).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nervenbahn.audit.errors import AccessLogRetentionError
from nervenbahn.audit.hashing import ChainHead, ChainVerification, SignedAnchor

if TYPE_CHECKING:  # only annotated: the settings import this module, and start with it
    from domain.case import Case

__all__ = [
    "ACCESS_LOG_CHAIN",
    "APPLICANT_FIELDS",
    "MINIMUM_RETENTION_DAYS",
    "AccessEntry",
    "AccessLog",
    "AccessLogVerification",
    "ChainedAccessLog",
    "LoggedAccess",
    "Rechaining",
    "RetentionAnchor",
    "case_read_entries",
    "check_retention",
]

APPLICANT_FIELDS = (
    "given_name",
    "family_name",
    "ahvn13",
    "birth_date",
    "street",
    "postal_code",
    "town",
)
"""The personal fields a case detail returns (and the access log records)."""

ACCESS_LOG_CHAIN = "access-log"
"""The chain's name: its genesis is `genesis("access-log")`."""

MINIMUM_RETENTION_DAYS = 365
"""Art. 4 para. 5 DSV / OPDo: logs of access to personal data are kept at least one year."""


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
    it was purged, the time of that entry, how many entries the purge removed, why, and the
    anchor's number in the log (`seq`: 1, 2, … one per purge)."""

    position: int
    hash: bytes
    purged_at: datetime
    last_at: datetime
    entries: int
    reason: str
    seq: int = 0

    def signed(self) -> SignedAnchor:
        """The anchor as a checkpoint signs it (times in ISO 8601, UTC)."""
        return SignedAnchor(self.seq, self.position, self.hash,
                            self.purged_at.astimezone(UTC).isoformat(),
                            self.last_at.astimezone(UTC).isoformat(), self.entries)

    @property
    def head(self) -> ChainHead:
        """The anchor as the head of the purged part of the chain."""
        return ChainHead(self.position, self.hash)

    def to_json(self) -> dict[str, object]:
        """As JSON (hash in hex, times in ISO 8601)."""
        return {
            "seq": self.seq,
            "position": self.position,
            "hash": self.hash.hex(),
            "purged_at": self.purged_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "entries": self.entries,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Rechaining:
    """One explicit chaining of entries that had no hash (`audit access-chain-existing`):
    when, how many entries, which positions. Verification reports it; an earlier signed
    checkpoint still shows whether those entries were altered before."""

    at: datetime
    entries: int
    first: int
    last: int

    def to_json(self) -> dict[str, object]:
        """As JSON."""
        return {"at": self.at.isoformat(), "entries": self.entries, "first": self.first,
                "last": self.last}


@dataclass(frozen=True)
class AccessLogVerification(ChainVerification):
    """A chain verification of the access log, with the retention anchor it started from, the
    expected heads that lie before it (purged: neither confirmed nor counted as breaks), every
    anchor of the log with the signed checkpoints that name it (`vouched_by`: None if not
    compared with checkpoints), and the explicit re-chainings of the log."""

    anchor: RetentionAnchor | None = None
    before_anchor: tuple[ChainHead, ...] = ()
    anchors: tuple[RetentionAnchor, ...] = ()
    vouched_by: dict[int, tuple[int, ...]] | None = None
    rechained: tuple[Rechaining, ...] = ()

    def to_json(self) -> dict[str, object]:
        """As JSON: the chain verification plus the anchors, the heads before the latest
        anchor and the re-chainings."""
        vouched = self.vouched_by
        return super().to_json() | {
            "anchor": self.anchor.to_json() if self.anchor else None,
            "anchors": [
                a.to_json() | {"vouched_by": None if vouched is None
                               else list(vouched.get(a.seq, ()))}
                for a in self.anchors
            ],
            "before_anchor": [
                head.to_json() | {"note": "before the retention anchor"}
                for head in self.before_anchor
            ],
            "rechained": [r.to_json() for r in self.rechained],
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
    def anchors(self) -> list[RetentionAnchor]:
        """Every retention anchor, oldest first (one per purge)."""

    @abstractmethod
    def purge(
        self, *, now: datetime, retention_days: int, reason: str | None = None
    ) -> RetentionAnchor | None:
        """Remove the oldest entries recorded more than `retention_days` before `now`, with an
        anchor, in one transaction; None if none is that old. Refuses less than one year
        (AccessLogRetentionError) and a chain broken in the part to be removed
        (AccessLogTamperedError)."""

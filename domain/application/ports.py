"""Ports: what the adapters around the application services may ask of them.

Projections and relays depend on these small interfaces, never on `CaseService` or
`PaymentService` themselves (an import-linter contract keeps it so): a relay needs a store's
notification log, a projection its notification log to rebuild from and a case's events to
look back in. Both services implement them (`domain.application.eventlog`); a test can hand in
a fake. Connectors get `CaseAccess`: commands to execute and the current cases to read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from domain.case import Case
from domain.commands import Command
from domain.personal_data import PersonalDataVault
from domain.reference import ReferenceData

__all__ = [
    "CaseAccess",
    "CaseEventSource",
    "CommandResult",
    "Notification",
    "NotificationLog",
]


@dataclass(frozen=True)
class CommandResult:
    """What a command recorded."""

    case_id: UUID
    version: int
    events: tuple[str, ...]


class NotificationLog(ABC):
    """Every event a store recorded, in the order it was recorded (the outbox a relay
    publishes from and a projection rebuilds from). Positions start at 1 and only grow."""

    @abstractmethod
    def max_position(self) -> int:
        """The position of the last recorded event; 0 if nothing was recorded."""

    @abstractmethod
    def notifications(self, *, gt: int, limit: int) -> Sequence[Notification]:
        """Up to `limit` recorded events after position `gt`, in order, still encoded (their
        `id` is their position)."""

    @abstractmethod
    def decode(self, notification: Notification) -> Any:
        """The domain event a notification holds (decoding may fail for one event alone)."""


class CaseEventSource(ABC):
    """The recorded events of one case (to look back in a case's history)."""

    @abstractmethod
    def case_events(self, case_id: UUID, *, lte: int, desc: bool = False) -> Iterable[Any]:
        """The case's events up to and including version `lte`, in version order (latest
        first with `desc`)."""


class CaseAccess(ABC):
    """What a connector may do with cases: execute commands and read the current cases, with
    the reference data and the vault that opens sealed personal data."""

    reference: ReferenceData
    """The reference data commands are checked against (regions, municipalities, amounts)."""
    vault: PersonalDataVault
    """Opens the personal data sealed in cases (and seals new data)."""

    @abstractmethod
    def execute(self, command: Command) -> CommandResult:
        """Execute a validated command; record its events or raise a DomainError."""

    @abstractmethod
    def get_case(self, case_id: UUID) -> Case:
        """The current state of a case (CaseNotFoundError if none was recorded)."""

    @abstractmethod
    def case_ids(self) -> Iterator[UUID]:
        """The ids of all cases, in the order they were opened."""

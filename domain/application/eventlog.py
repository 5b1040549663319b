"""The ports of `domain.application.ports`, answered from an `eventsourcing` application's store.

A mixin for the case and payment services: each reads its own recorder (the payments service
has an events table of its own, so each log holds its own events only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, EventStore, Mapper, Notification

from domain.application.ports import CaseEventSource, NotificationLog

__all__ = ["StoredCaseEvents", "StoredNotificationLog"]


class StoredNotificationLog(NotificationLog):
    """`NotificationLog` over the application's recorder (set by `Application.__init__`)."""

    recorder: ApplicationRecorder
    mapper: Mapper[UUID]

    def max_position(self) -> int:
        """The recorder's last notification id; 0 for an empty store."""
        return self.recorder.max_notification_id() or 0

    def notifications(self, *, gt: int, limit: int) -> Sequence[Notification]:
        """The recorder's notifications after `gt`."""
        return self.recorder.select_notifications(start=gt + 1, limit=limit)

    def decode(self, notification: Notification) -> Any:
        """The notification's domain event, through the application's mapper."""
        return self.mapper.to_domain_event(notification)


class StoredCaseEvents(CaseEventSource):
    """`CaseEventSource` over the application's event store (set by `Application.__init__`)."""

    events: EventStore[UUID]

    def case_events(self, case_id: UUID, *, lte: int, desc: bool = False) -> Iterable[Any]:
        """The case's events from the event store."""
        return self.events.get(case_id, lte=lte, desc=desc)

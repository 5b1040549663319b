"""The case service's bitemporal queries: a case, and what it was owed, as known at a time.

A case's state as of a recorded time comes from the latest snapshot at or before that version
plus the events after it; the version itself is found by a binary search over the case's
recorded times (which never decrease within a case). Decoded snapshots are kept in a small
cache, since decoding a large one is most of a query's work. `CaseQueries` is a mixin of
`domain.application.cases.CaseService`: it reads the store the application opened.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from itertools import chain
from threading import Lock
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, EventStore, Mapper, StoredEvent
from eventsourcing.utils import get_topic

from domain.application.bitemporal import (
    ENTITLEMENT_EVENTS,
    BudgetDiff,
    MonthlyAnswer,
    answer_month,
    diff_answers,
)
from domain.application.history import HistoryEntry, history_entry
from domain.application.kept_cases import reseal_persons
from domain.case import SWISS_TIME, Case
from domain.entitlement import months_between
from domain.errors import CaseNotFoundError, InvalidCommandError
from domain.events import AdvanceStarted, CaseOpened
from domain.personal_data import PersonalDataVault

__all__ = ["SNAPSHOT_INTERVAL", "CaseQueries", "SnapshotCache", "fold"]

SNAPSHOT_INTERVAL = 100
"""A case is snapshotted every this many versions."""
_ENTITLEMENT_TOPICS = frozenset(get_topic(cls) for cls in ENTITLEMENT_EVENTS)


class SnapshotCache:
    """The most recently used decoded snapshots, by case and version (thread-safe)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[tuple[UUID, int], Any] = OrderedDict()
        self._lock = Lock()

    def get(self, case_id: UUID, version: int) -> Any | None:
        """The cached snapshot of the case at `version`, if any (it becomes the most recent)."""
        with self._lock:
            snapshot = self._items.get((case_id, version))
            if snapshot is not None:
                self._items.move_to_end((case_id, version))
            return snapshot

    def put(self, case_id: UUID, snapshot: Any) -> None:
        """Keep `snapshot`, dropping the least recently used beyond the size."""
        with self._lock:
            self._items[(case_id, snapshot.originator_version)] = snapshot
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Drop every cached snapshot."""
        with self._lock:
            self._items.clear()


class CaseQueries:
    """Bitemporal queries over the application's store (the attributes below are the ones
    `eventsourcing.Application.__init__` and `CaseService.__init__` set)."""

    recorder: ApplicationRecorder
    mapper: Mapper[UUID]
    events: EventStore[UUID]
    snapshots: EventStore[UUID] | None
    vault: PersonalDataVault
    _snapshot_cache: SnapshotCache

    def case_as_of(self, case_id: UUID, as_of: datetime) -> Case:
        """The state of a case as it was known at recorded time `as_of` (inclusive).

        From the latest snapshot at or before that version plus the events after it (a snapshot
        is used only if its MAC holds, see `domain.application.snapshots`; else the events are
        replayed).
        Decoded, verified snapshots are kept in a small cache (decoding a large one is most of
        the work); the
        case returned shares the unchanged parts of its state with that snapshot, so treat it
        as read-only (events replace containers, they never change one in place).
        """
        version = self.version_as_of(case_id, as_of)
        if version == 0:
            raise CaseNotFoundError(case_id, as_of.isoformat())
        return self._case_at(case_id, version)

    def version_as_of(self, case_id: UUID, as_of: datetime) -> int:
        """The case's last version recorded at or before `as_of` (0 if none was).

        Recorded times never decrease within a case (a live command records at the later of
        the clock and the case's last recorded time; an import may not go back in time, see
        `Case._check_common`), so a binary search over versions finds it, decoding about
        log2(versions) events instead of all of them.
        """
        _require_aware(as_of, "as_of")
        last = self.recorder.select_events(case_id, desc=True, limit=1)
        if not last:
            return 0
        high = last[0].originator_version
        if self._recorded_at(last[0]) <= as_of:
            return high
        low = 0  # invariant: recorded_at(low) <= as_of < recorded_at(high); version 0: none
        while high - low > 1:
            middle = (low + high) // 2
            (stored,) = self.recorder.select_events(case_id, gt=middle - 1, lte=middle)
            if self._recorded_at(stored) <= as_of:
                low = middle
            else:
                high = middle
        return low

    def budget_as_known_at(self, case_id: UUID, month: date, known_at: datetime) -> MonthlyAnswer:
        """What a case was owed for `month` as known at recorded time `known_at`.

        `domain.entitlement` applied to the case's state as of `known_at` (retroactive changes
        recorded until then included, later ones not), with the events it rests on.
        """
        version = self.version_as_of(case_id, known_at)
        if version == 0:
            raise CaseNotFoundError(case_id, known_at.isoformat())
        return self._answer(case_id, month, known_at, version)

    def budget_by_month(self, case_id: UUID, known_at: datetime) -> list[MonthlyAnswer]:
        """The answer for every month from the first support period's start to `known_at`'s
        month (Swiss time), as known at `known_at`; empty before support was granted."""
        case = self.case_as_of(case_id, known_at)
        if not case.support_periods:
            return []
        events = self._entitlement_events(case_id, case.version)
        last = known_at.astimezone(SWISS_TIME).date()
        first = case.support_periods[0].start
        return [
            answer_month(case_id, month, known_at, case, events)
            for month in months_between(first, max(first, last))
        ]

    def diff_as_known(
        self, case_id: UUID, month: date, known_at: datetime, compared_to: datetime
    ) -> BudgetDiff:
        """What changed about `month` between what was known at `known_at` and at
        `compared_to` (later), and which events recorded in between changed it."""
        _require_aware(known_at, "known_at")
        _require_aware(compared_to, "compared_to")
        if compared_to < known_at:
            raise InvalidCommandError(
                "audit diff",
                [("compared_to", f"{compared_to.isoformat()} lies before known_at "
                  f"{known_at.isoformat()}; compare an earlier knowledge time with a later one")],
            )
        v_before = self.version_as_of(case_id, known_at)
        v_after = self.version_as_of(case_id, compared_to)
        if v_after == 0:
            raise CaseNotFoundError(case_id, compared_to.isoformat())
        before = self._answer(case_id, month, known_at, v_before)
        after = self._answer(case_id, month, compared_to, v_after)
        between = list(self.events.get(case_id, gt=v_before, lte=v_after))
        return diff_answers(before, after, between)

    def history(self, case_id: UUID) -> list[HistoryEntry]:
        """Every recorded event of a case, in order, without personal data."""
        entries = [history_entry(event) for event in self.events.get(case_id)]
        if not entries:
            raise CaseNotFoundError(case_id)
        return entries

    def case_ids(self) -> Iterator[UUID]:
        """The ids of all cases, in the order they were opened."""
        for notification in self.recorder.select_notifications(
            start=None, limit=2**62, topics=[get_topic(CaseOpened)]
        ):
            yield UUID(str(notification.originator_id))

    def advances_started(self, *, gt: int = 0) -> list[tuple[int, UUID]]:
        """(position, case id) of every advance started after position `gt` of the store's
        notification log, in order: which cases advance, selected by event type in the store,
        no case loaded (the claims worker keeps its list of advancing cases by it)."""
        return [
            (notification.id, UUID(str(notification.originator_id)))
            for notification in self.recorder.select_notifications(
                start=gt + 1, limit=2**62, topics=[get_topic(AdvanceStarted)])
        ]

    def forget_decoded_snapshots(self) -> None:
        """Drop the decoded snapshots `case_as_of` keeps (to measure cold queries)."""
        self._snapshot_cache.clear()

    def _answer(
        self, case_id: UUID, month: date, known_at: datetime, version: int
    ) -> MonthlyAnswer:
        if version == 0:
            return answer_month(case_id, month, known_at, None, [])
        case = self._case_at(case_id, version)
        events = self._entitlement_events(case_id, version)
        return answer_month(case_id, month, known_at, case, events)

    def _case_at(self, case_id: UUID, version: int) -> Case:
        """The case at `version` (≥ 1, recorded) from a snapshot at or before it, if any."""
        snapshot = self._snapshot_cache.get(case_id, version - version % SNAPSHOT_INTERVAL)
        if snapshot is None and self.snapshots is not None:
            found = list(self.snapshots.get(case_id, desc=True, limit=1, lte=version))
            if found:
                snapshot = found[0]
                self._snapshot_cache.put(case_id, snapshot)
        start = [] if snapshot is None else [snapshot]
        after = None if snapshot is None else snapshot.originator_version
        case = fold(None, chain(start, self.events.get(case_id, gt=after, lte=version)))
        if case is None:
            raise CaseNotFoundError(case_id)
        if snapshot is not None:
            reseal_persons(case, self.vault)
        return case

    def _entitlement_events(self, case_id: UUID, version: int) -> list[Any]:
        """The case's events up to `version` that change what it is owed, decoding only
        those (the others are skipped by their topic)."""
        return [
            self.mapper.to_domain_event(stored)
            for stored in self.recorder.select_events(case_id, lte=version)
            if stored.topic in _ENTITLEMENT_TOPICS
        ]

    def _recorded_at(self, stored: StoredEvent) -> datetime:
        recorded_at = getattr(self.mapper.to_domain_event(stored), "timestamp", None)
        assert isinstance(recorded_at, datetime)
        return recorded_at


def fold(case: Case | None, events: Iterable[Any]) -> Case | None:
    """Apply events in order (eventsourcing's projector checks each against a slow Protocol)."""
    for event in events:
        case = event.mutate(case)
    return case


def _require_aware(moment: datetime, field: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidCommandError(
            "query", [(field, f"{moment.isoformat()} needs a time zone offset")]
        )

"""The case service: executes commands, answers queries, imports legacy history.

An `eventsourcing` application; which database it records into is configuration (SQLite file
or PostgreSQL), chosen by the composition root through the `env` it passes in.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from threading import Lock
from typing import Any, ClassVar
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import EventStore, IntegrityError, JSONTranscoder, StoredEvent
from eventsourcing.utils import get_topic

from domain import commands as c
from domain.application.bitemporal import (
    ENTITLEMENT_EVENTS,
    BudgetDiff,
    MonthlyAnswer,
    answer_month,
    diff_answers,
)
from domain.application.snapshots import SNAPSHOT_KEY_PURPOSE, MacSnapshotStore
from domain.application.transcodings import register_domain_transcodings
from domain.case import SWISS_TIME, Case, Recording, may_act_on
from domain.entitlement import months_between
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    ImportRejectedError,
    InvalidCommandError,
)
from domain.events import VALUE_TYPES, CaseOpened
from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)
from domain.reference import ReferenceData

__all__ = ["CaseService", "CommandResult", "HistoryEntry", "ImportReport"]

log = structlog.get_logger("nervenbahn.cases")

Clock = Callable[[], datetime]
_COMMON_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "correlation_id",
        "effective_date",
        "imported",
    }
)
_PERSONAL_FIELDS = frozenset({"applicant", "other_members"})
_ENTITLEMENT_TOPICS = frozenset(get_topic(cls) for cls in ENTITLEMENT_EVENTS)


@dataclass(frozen=True)
class CommandResult:
    """What a command recorded."""

    case_id: UUID
    version: int
    events: tuple[str, ...]


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded event of a case, for `case history` (no personal data)."""

    version: int
    event: str
    recorded_at: datetime
    effective_date: Any
    imported: bool
    actor: c.Actor
    correlation_id: UUID
    details: dict[str, Any]


@dataclass
class ImportReport:
    """What an import recorded."""

    records: int = 0
    events: int = 0
    cases: int = 0
    seconds: float = 0.0
    cases_by_id: dict[UUID, Case] = field(default_factory=dict, repr=False)


class CaseService(Application[UUID]):
    """Executes case commands against the event store."""

    name = "nervenbahn"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Case: 100}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        vault: PersonalDataVault,
        reference: ReferenceData,
        clock: Clock = datetime_now_with_tzinfo,
    ) -> None:
        self.vault = vault
        self.reference = reference
        self._clock = clock
        self._snapshot_cache = _SnapshotCache(maxsize=16)
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Add the domain's values and the sealed personal data to the default transcodings."""
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder, self.vault, VALUE_TYPES)

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots with a MAC (`domain.application.snapshots`): one that fails is never used."""
        return MacSnapshotStore(self.mapper, self.factory.aggregate_recorder(purpose="snapshots"),
                                self.vault.derive_key(SNAPSHOT_KEY_PURPOSE))

    # --- commands ------------------------------------------------------------------------

    def execute(self, command: c.Command) -> CommandResult:
        """Execute a validated command; record its events or raise a DomainError."""
        case_id = getattr(command, "case_id", None)
        bound = log.bind(
            command=command.name,
            case_id=str(case_id) if case_id else None,
            correlation_id=str(command.correlation_id),
            actor=command.actor.user_id,
        )
        started = time.perf_counter()
        try:
            case = (
                self._open(command) if isinstance(command, c.OpenCase) else self._on_case(command)
            )
            events = [type(event).__name__ for event in case.pending_events]
            self._save(case, command)
        except DomainError as exc:
            bound.warning(
                "command rejected",
                outcome="rejected",
                error=type(exc).__name__,
                rule=getattr(exc, "rule", None),
                duration_ms=_ms_since(started),
            )
            raise
        bound.info(
            "command executed",
            case_id=str(case.id),
            outcome="recorded",
            events=events,
            version=case.version,
            duration_ms=_ms_since(started),
        )
        return CommandResult(case.id, case.version, tuple(events))

    def _open(self, cmd: c.OpenCase) -> Case:
        return Case.open(cmd, Recording(self._clock()), self.reference)

    def _on_case(self, cmd: c.Command) -> Case:
        assert isinstance(cmd, c.CaseCommand)
        case = self.case_for(cmd.actor, cmd.case_id)
        if cmd.expected_version is not None and cmd.expected_version != case.version:
            raise ConcurrentChangeError(cmd.case_id)
        # The store's clock never runs backwards within a case.
        self._apply(case, cmd, Recording(max(self._clock(), case.modified_on)))
        return case

    def _apply(self, case: Case, cmd: c.CaseCommand, rec: Recording) -> None:
        method, needs_reference = _CASE_METHODS[type(cmd)]
        if needs_reference:
            method(case, cmd, rec, self.reference)
        else:
            method(case, cmd, rec)

    def _save(self, case: Case, command: c.Command | None = None) -> None:
        new_keys = self.vault.ensure_keys(_persons_in(case.pending_events))
        try:
            self.save(case)
        except IntegrityError as exc:
            self.vault.discard(new_keys)
            if isinstance(command, c.OpenCase):
                raise InvalidCommandError(
                    command.name, [("case_id", f"a case {case.id} exists already")]
                ) from exc
            raise ConcurrentChangeError(case.id) from exc

    def case_for(self, actor: c.Actor, case_id: UUID) -> Case:
        """The current case if `actor` may act on it (`domain.case.may_act_on`). A case of
        another social region is not found, with the very message of a missing one, before
        anything that depends on the case (its version, its rules) is looked at: a command
        tells no one outside the region that the case exists, where, or at which version."""
        case = self.get_case(case_id)
        if not may_act_on(actor, case.social_region):
            raise CaseNotFoundError(case_id)
        return case

    # --- queries -------------------------------------------------------------------------

    def get_case(self, case_id: UUID) -> Case:
        """The current state of a case."""
        try:
            return self.repository.get(case_id, projector_func=_fold)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None

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
        interval = self.snapshotting_intervals[Case]
        snapshot = self._snapshot_cache.get(case_id, version - version % interval)
        if snapshot is None and self.snapshots is not None:
            found = list(self.snapshots.get(case_id, desc=True, limit=1, lte=version))
            if found:
                snapshot = found[0]
                self._snapshot_cache.put(case_id, snapshot)
        start = [] if snapshot is None else [snapshot]
        after = None if snapshot is None else snapshot.originator_version
        case = _fold(None, chain(start, self.events.get(case_id, gt=after, lte=version)))
        if case is None:
            raise CaseNotFoundError(case_id)
        if snapshot is not None:
            _reseal_persons(case, self.vault)
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

    def forget_decoded_snapshots(self) -> None:
        """Drop the decoded snapshots `case_as_of` keeps (to measure cold queries)."""
        self._snapshot_cache.clear()

    def history(self, case_id: UUID) -> list[HistoryEntry]:
        """Every recorded event of a case, in order, without personal data."""
        entries = [_history_entry(event) for event in self.events.get(case_id)]
        if not entries:
            raise CaseNotFoundError(case_id)
        return entries

    def case_ids(self) -> Iterator[UUID]:
        """The ids of all cases, in the order they were opened."""
        for notification in self.recorder.select_notifications(
            start=None, limit=2**62, topics=[get_topic(CaseOpened)]
        ):
            yield UUID(str(notification.originator_id))

    def person(self, person_id: UUID) -> PersonalData | ErasedPersonalData | None:
        """The person's data as recorded when their case was opened (opened now, or what
        remains after erasure); None if no case names them. Scans the opening events of all
        cases (their sealed form names the person id): for erasure, not for hot paths."""
        needle = person_id.hex.encode("ascii")
        for notification in self.recorder.select_notifications(
            start=None, limit=2**62, topics=[get_topic(CaseOpened)]
        ):
            if needle not in notification.state:
                continue
            case = self.get_case(UUID(str(notification.originator_id)))
            for member in (case.applicant, *case.other_members):
                if member.person_id == person_id:
                    return member.open() if isinstance(member, SealedPersonalData) else member
        return None

    def erase_person(self, person_id: UUID) -> bool:
        """Crypto-shred a person: destroy their data key. True if they had one."""
        erased = self.vault.erase(person_id)
        log.info("person erased", person_id=str(person_id), outcome="erased" if erased else "none")
        return erased

    # --- legacy import -------------------------------------------------------------------

    def import_records(self, lines: Iterable[str]) -> ImportReport:
        """Import legacy history (JSON Lines), keeping each record's original recorded time.

        All or nothing: every record is validated by the same rules as a live command before
        anything is written; the events are marked as imported.
        """
        started = time.perf_counter()
        report = ImportReport()
        batch = _ImportBatch(now=self._clock())
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            batch.line = line_no
            try:
                self._import_one(json.loads(line), batch)
            except (DomainError, ValueError, TypeError, KeyError) as exc:
                raise ImportRejectedError(line_no, _describe(exc)) from exc
            report.records += 1
        cases = list(batch.cases.values())
        report.cases_by_id = batch.cases
        report.events = sum(len(case.pending_events) for case in cases)
        new_keys = self.vault.ensure_keys(
            _persons_in(e for case in cases for e in case.pending_events)
        )
        try:
            self.save(*cases)
        except IntegrityError as exc:
            self.vault.discard(new_keys)
            raise self._explain_conflict(batch) from exc
        report.cases = len(cases)
        report.seconds = time.perf_counter() - started
        log.info(
            "import finished",
            records=report.records,
            events=report.events,
            cases=report.cases,
            duration_ms=round(report.seconds * 1000, 1),
        )
        return report

    def _explain_conflict(self, batch: _ImportBatch) -> ImportRejectedError:
        """Name the first opened case that exists already (checked only when saving failed)."""
        for case_id, line in batch.opened_on_line.items():
            if self.recorder.select_events(case_id, limit=1):
                return ImportRejectedError(
                    line, f"case {case_id} is already recorded (was this file imported before?)"
                )
        return ImportRejectedError(None, "a case of the file was changed by someone else meanwhile")

    def _import_one(self, record: dict[str, Any], batch: _ImportBatch) -> None:
        unknown = set(record) - {"recorded_at", "command", "data"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected recorded_at, command, data")
        recorded_at = datetime.fromisoformat(record["recorded_at"])
        if recorded_at.tzinfo is None:
            raise ValueError("recorded_at: needs a time zone offset")
        if recorded_at > batch.now:
            raise ValueError(f"recorded_at: {record['recorded_at']} lies in the future")
        command = c.parse_command(record["command"], record["data"])
        rec = Recording(recorded_at, imported=True)
        if isinstance(command, c.OpenCase):
            case_id = command.case_id
            if case_id is None or case_id in batch.cases:
                raise ValueError("data.case_id: an imported open_case needs a case id of its own")
            batch.cases[case_id] = Case.open(command, rec, self.reference)
            batch.opened_on_line[case_id] = batch.line
            return
        assert isinstance(command, c.CaseCommand)
        case = batch.cases.get(command.case_id)
        if case is None:
            case = batch.cases[command.case_id] = self.case_for(command.actor, command.case_id)
            batch.recorded_until[case.id] = case.modified_on
        floor = batch.recorded_until.get(case.id)
        if floor is not None and recorded_at <= floor:
            # Imported history continues a recorded case strictly after what it holds, so
            # that importing the same file twice cannot record anything twice.
            raise ValueError(
                f"recorded_at: {record['recorded_at']} is not after the case's last recorded "
                f"event ({floor.isoformat()}); was this file imported before?"
            )
        self._apply(case, command, rec)


@dataclass
class _ImportBatch:
    """The cases an import touches, kept in memory until all records have been checked."""

    now: datetime
    line: int = 0
    cases: dict[UUID, Case] = field(default_factory=dict)
    recorded_until: dict[UUID, datetime] = field(default_factory=dict)
    opened_on_line: dict[UUID, int] = field(default_factory=dict)


_CASE_METHODS: dict[type[c.Command], tuple[Callable[..., None], bool]] = {
    c.CompleteAssessment: (Case.complete_assessment, False),
    c.GrantSupport: (Case.grant_support, True),
    c.RefuseSupport: (Case.refuse_support, False),
    c.AgreeGoal: (Case.agree_goal, False),
    c.RecordGoalOutcome: (Case.record_goal_outcome, False),
    c.StartMeasure: (Case.start_measure, False),
    c.CompleteMeasure: (Case.complete_measure, False),
    c.BreakOffMeasure: (Case.break_off_measure, False),
    c.ChangeBudget: (Case.change_budget, True),
    c.CompleteReview: (Case.complete_review, False),
    c.HandOverCase: (Case.hand_over, True),
    c.CloseCase: (Case.close, False),
    c.ReopenCase: (Case.reopen, False),
    c.ProposeHandover: (Case.propose_handover, True),
    c.ProposeClosure: (Case.propose_closure, False),
    c.DismissProposal: (Case.dismiss_proposal, False),
}
"""Each case command's aggregate method, and whether it needs the reference data."""


def _fold(case: Case | None, events: Iterable[Any]) -> Case | None:
    """Apply events in order (eventsourcing's projector checks each against a slow Protocol)."""
    for event in events:
        case = event.mutate(case)
    return case


class _SnapshotCache:
    """The most recently used decoded snapshots, by case and version (thread-safe)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[tuple[UUID, int], Any] = OrderedDict()
        self._lock = Lock()

    def get(self, case_id: UUID, version: int) -> Any | None:
        with self._lock:
            snapshot = self._items.get((case_id, version))
            if snapshot is not None:
                self._items.move_to_end((case_id, version))
            return snapshot

    def put(self, case_id: UUID, snapshot: Any) -> None:
        with self._lock:
            self._items[(case_id, snapshot.originator_version)] = snapshot
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _reseal_persons(case: Case, vault: PersonalDataVault) -> None:
    """Give the case persons of its own, still sealed: a cached snapshot's persons may have
    been opened before an erasure, and must not show the data after it."""
    case.applicant = _resealed(case.applicant, vault)
    case.other_members = [_resealed(member, vault) for member in case.other_members]


def _resealed(person: Any, vault: PersonalDataVault) -> Any:
    if isinstance(person, SealedPersonalData):
        return SealedPersonalData(person.sealed, vault)
    return person


def _persons_in(events: Iterable[Any]) -> list[UUID]:
    persons: list[UUID] = []
    for event in events:
        if isinstance(event, CaseOpened):
            persons.extend(p.person_id for p in (event.applicant, *event.other_members))
    return persons


def _history_entry(event: Any) -> HistoryEntry:
    state = vars(event)
    details = {
        key: value
        for key, value in state.items()
        if key not in _COMMON_FIELDS and key not in _PERSONAL_FIELDS
    }
    if isinstance(event, CaseOpened):
        details["persons"] = 1 + len(event.other_members)
    return HistoryEntry(
        version=event.originator_version,
        event=type(event).__name__,
        recorded_at=event.timestamp,
        effective_date=state["effective_date"],
        imported=state["imported"],
        actor=state["actor"],
        correlation_id=state["correlation_id"],
        details=details,
    )


def _require_aware(moment: datetime, field: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidCommandError(
            "query", [(field, f"{moment.isoformat()} needs a time zone offset")]
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

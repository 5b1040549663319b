"""The case service: executes commands against the event store, the application's front.

An `eventsourcing` application; which database it records into is configuration (SQLite file
or PostgreSQL), chosen by the composition root through the `env` it passes in. Its concerns
live in modules of their own: the bitemporal queries (`domain.application.queries`, a mixin),
the legacy importer (`domain.application.importer`), history formatting
(`domain.application.history`) and the ports adapters depend on
(`domain.application.ports`, answered by `domain.application.eventlog`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from threading import Lock
from typing import Any, ClassVar
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    StoredEvent,
)
from eventsourcing.persistence import Recording as SavedRecording
from eventsourcing.utils import get_topic

from domain import commands
from domain.application.eventlog import StoredCaseEvents, StoredNotificationLog
from domain.application.importer import ImportReport, LegacyImporter, MigrationStep
from domain.application.kept_cases import KeptCases
from domain.application.ports import CaseAccess, CommandResult
from domain.application.queries import SNAPSHOT_INTERVAL, CaseQueries, SnapshotCache, fold
from domain.application.snapshots import SNAPSHOT_KEY_PURPOSE, MacSnapshotStore
from domain.application.transcodings import register_domain_transcodings
from domain.case import BenefitLookup, BenefitOnRecord, Case, Recording, may_act_on
from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
    RuleViolationError,
)
from domain.events import VALUE_TYPES, CaseOpened
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)
from domain.reference import ReferenceData

__all__ = ["CaseService", "CommandResult"]

log = structlog.get_logger("nervenbahn.cases")

Clock = Callable[[], datetime]

_LIVE_SCAN_PAGE = 1000
"""Events read per page when looking for a live one (`CaseService.has_live_events`)."""


class CaseService(
    CaseQueries, StoredNotificationLog, StoredCaseEvents, CaseAccess, Application[UUID]
):
    """Executes case commands against the event store."""

    name = "nervenbahn"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Case: SNAPSHOT_INTERVAL}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        vault: PersonalDataVault,
        reference: ReferenceData,
        clock: Clock = datetime_now_with_tzinfo,
        benefits: BenefitLookup | None = None,
        identity: EstablishedIdentity = UNKNOWN_IDENTITY,
    ) -> None:
        self.vault = vault
        self.reference = reference
        self.identity = identity
        """Who records when a command names no one else: the process's operating-system user,
        as the composition root established it (`nervenbahn.identity`); unknown without."""
        self._clock = clock
        self._benefits = benefits
        self._snapshot_cache = SnapshotCache(maxsize=16)
        self._below_snapshots = _CasesBelowSnapshots(SNAPSHOT_INTERVAL, maxsize=10_000)
        self._kept = KeptCases()
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Add the domain's values and the sealed personal data to the default transcodings."""
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder, self.vault, VALUE_TYPES)

    def mapper_sealing_with(self, vault: PersonalDataVault) -> Mapper[UUID]:
        """A mapper like the service's that seals personal data with `vault` (an import's
        workers seal with keys they make: `domain.application.import_workers`)."""
        transcoder = self.factory.transcoder()
        if isinstance(transcoder, JSONTranscoder):
            super().register_transcodings(transcoder)
            register_domain_transcodings(transcoder, vault, VALUE_TYPES)
        return self.factory.mapper(transcoder=transcoder)

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots with a MAC (`domain.application.snapshots`): one that fails is never used."""
        return MacSnapshotStore(self.mapper, self.factory.aggregate_recorder(purpose="snapshots"),
                                self.vault.derive_key(SNAPSHOT_KEY_PURPOSE))

    # --- commands ------------------------------------------------------------------------

    def execute(
        self, command: commands.Command, *, recorded_by: EstablishedIdentity | None = None
    ) -> CommandResult:
        """Execute a validated command; record its events or raise a DomainError.
        `recorded_by`: the identity the edge established for this command (a web session's
        user); None: the service's own (`identity`, the process's user)."""
        case_id = getattr(command, "case_id", None)
        identity = recorded_by or self.identity
        bound = log.bind(
            command=command.name,
            case_id=str(case_id) if case_id else None,
            correlation_id=str(command.correlation_id),
            actor=command.actor.user_id,
            recorded_by=str(identity),
        )
        started = time.perf_counter()
        try:
            case = (
                self._open(command, identity)
                if isinstance(command, commands.OpenCase)
                else self._on_case(command, identity)
            )
            events = [type(event).__name__ for event in case.pending_events]
            recordings = self._save(case, command)
        except DomainError as exc:
            bound.warning(
                "command rejected",
                outcome="rejected",
                error=type(exc).__name__,
                rule=getattr(exc, "rule", None),
                duration_ms=_ms_since(started),
            )
            raise
        self._kept.keep(case, recordings[-1].notification if recordings else None, self.vault)
        bound.info(
            "command executed",
            case_id=str(case.id),
            outcome="recorded",
            events=events,
            version=case.version,
            duration_ms=_ms_since(started),
        )
        return CommandResult(case.id, case.version, tuple(events))

    def _open(self, cmd: commands.OpenCase, identity: EstablishedIdentity) -> Case:
        return Case.open(cmd, Recording(self._clock(), recorded_by=identity), self.reference)

    def _on_case(self, cmd: commands.Command, identity: EstablishedIdentity) -> Case:
        assert isinstance(cmd, commands.CaseCommand)
        case = self._case_for_command(cmd.actor, cmd.case_id)
        if cmd.expected_version is not None and cmd.expected_version != case.version:
            raise ConcurrentChangeError(cmd.case_id)
        # The store's clock never runs backwards within a case.
        recorded_at = max(self._clock(), case.modified_on)
        self.dispatch(case, cmd, Recording(recorded_at, recorded_by=identity))
        return case

    def dispatch(self, case: Case, cmd: commands.CaseCommand, rec: Recording) -> None:
        """Apply a case command to `case` through its aggregate method (nothing is saved):
        live commands and imported records go the same way."""
        if isinstance(cmd, commands.StartAdvance | commands.EndAdvance):
            self._on_advance(case, cmd, rec)
            return
        method, needs_reference = _CASE_METHODS[type(cmd)]
        if needs_reference:
            method(case, cmd, rec, self.reference)
        else:
            method(case, cmd, rec)

    def _on_advance(self, case: Case, cmd: commands.StartAdvance | commands.EndAdvance,
                    rec: Recording) -> None:
        if isinstance(cmd, commands.StartAdvance):
            case.start_advance(cmd, rec, self._benefit)
        else:
            case.end_advance(cmd, rec, self._benefit)

    def _benefit(self, application_id: UUID) -> BenefitOnRecord:
        if self._benefits is None:
            raise RuleViolationError(
                "benefits-connected",
                f"application_id: advances need the benefits store, which this service was "
                f"not given; {application_id} cannot be looked up")
        return self._benefits(application_id)

    def _save(self, case: Case, command: commands.Command | None = None
              ) -> list[SavedRecording[UUID]]:
        try:
            return self.save_with_keys(case)
        except IntegrityError as exc:
            if isinstance(command, commands.OpenCase):
                raise InvalidCommandError(
                    command.name, [("case_id", f"a case {case.id} exists already")]
                ) from exc
            raise ConcurrentChangeError(case.id) from exc

    def save_with_keys(self, *cases: Case) -> list[SavedRecording[UUID]]:
        """Save the cases' pending events, creating the data keys of the persons they open
        first; if saving fails (IntegrityError: someone recorded meanwhile), the keys just
        created are discarded again and the error raised. The recordings, as `save` gives
        them (each event as stored, with its position)."""
        new_keys = self.vault.ensure_keys(
            _persons_in(event for case in cases for event in case.pending_events)
        )
        try:
            recordings = self.save(*cases)
        except IntegrityError:
            self.vault.discard(new_keys)
            raise
        for case in cases:
            self._below_snapshots.note(case)
        return recordings

    def record_imported(
        self, stored: list[StoredEvent], keys: list[tuple[UUID, bytes]]
    ) -> None:
        """Record the events of new cases an import's workers checked and encoded, with the
        wrapped data keys they sealed new persons with, as `save_with_keys` would: the keys
        first, the events in one transaction (chained), then the snapshots `save` takes.
        IntegrityError if a case exists already, or if a person got a key (or was erased)
        since the workers checked: the events are sealed with keys that would not be
        stored. Then nothing is recorded and the keys this call stored are discarded again
        (`KeyStore.discard_many`)."""
        persons = [person_id for person_id, _ in keys]
        new_keys, erased = self.vault.keystore.store_new(persons, dict(keys).__getitem__)
        try:
            if erased:
                raise IntegrityError(f"person {erased[0]} was erased while the import was "
                                     "checked")
            if len(new_keys) != len(persons):
                keyed = next(p for p in persons if p not in new_keys)
                raise IntegrityError(f"person {keyed} was recorded by someone else while the "
                                     "import was checked; import the file again")
            self.recorder.insert_events(stored)
        except IntegrityError:
            self.vault.discard(new_keys)
            raise
        projector = self.snapshotting_projectors.get(Case, project_aggregate)
        for event in stored:
            if event.originator_version % SNAPSHOT_INTERVAL == 0:
                self.take_snapshot(UUID(str(event.originator_id)), event.originator_version,
                                   projector)

    def case_for(self, actor: commands.Actor, case_id: UUID) -> Case:
        """The current case if `actor` may act on it (`domain.case.may_act_on`). A case of
        another social region is not found, with the very message of a missing one, before
        anything that depends on the case (its version, its rules) is looked at: a command
        tells no one outside the region that the case exists, where, or at which version."""
        case = self.get_case(case_id)
        if not may_act_on(actor, case.social_region):
            raise CaseNotFoundError(case_id)
        return case

    def _case_for_command(self, actor: commands.Actor, case_id: UUID) -> Case:
        """As `case_for`, for a command that saves the case or drops it: the case this
        process saved last if it was kept (`domain.application.kept_cases`), with the events
        recorded since folded onto it; loaded from the store if it was not kept, or if the
        event stored at the kept version is not, byte for byte, the one this process saved."""
        kept = self._kept.take(case_id)
        if kept is not None:
            case, saved = kept
            # From the kept version on (inclusive): one query, as loading the case would be;
            # the event stored at that version must be, byte for byte, the one it saved.
            stored = self.recorder.select_events(case_id, gt=case.version - 1)
            if stored and _same_stored(stored[0], saved):
                folded = fold(case, map(self.mapper.to_domain_event, stored[1:]))
                assert folded is not None
                case = folded
            else:
                log.warning("kept case not in the store as saved: loaded from the store",
                            case_id=str(case_id), version=case.version)
                case = self.get_case(case_id)
            self._below_snapshots.note(case)
        else:
            case = self.get_case(case_id)
        if not may_act_on(actor, case.social_region):
            raise CaseNotFoundError(case_id)
        return case

    def get_case(self, case_id: UUID) -> Case:
        """The current state of a case.

        A case this process last saw below the first snapshot's version is replayed from its
        events without looking for a snapshot first: one query fewer for most commands (on
        PostgreSQL a round trip and a pool check, 0.9 of 9 statements per command). Replaying
        the events is always right; were the case taken past a snapshot by another process
        meanwhile, only this one load replays more than it needed to.
        """
        if self._below_snapshots.holds(case_id):
            case = fold(None, self.events.get(case_id))
            if case is None:
                raise CaseNotFoundError(case_id)
        else:
            try:
                case = self.repository.get(case_id, projector_func=fold)
            except AggregateNotFoundError:
                raise CaseNotFoundError(case_id) from None
        self._below_snapshots.note(case)
        return case

    # --- persons -------------------------------------------------------------------------

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

    def import_records(
        self, lines: Iterable[str], step: MigrationStep | None = None
    ) -> ImportReport:
        """Import legacy history (JSON Lines), keeping each record's original recorded time.

        All or nothing: every record is validated by the same rules as a live command before
        anything is written; the events are marked as imported (`domain.application.importer`).
        `step`: the import as a migration step (`nervenbahn import`): admitted first, and its
        importer, time, file and digest recorded on every event.
        """
        return LegacyImporter(self, self._clock, step).run(lines)

    def has_live_events(self) -> bool:
        """Whether the store holds a case event recorded live (not imported). Read newest
        first, a page at a time: a store in use has one at its end; only a store of imported
        history alone is read through."""
        top = self.recorder.max_notification_id() or 0
        while top > 0:
            start = max(1, top - _LIVE_SCAN_PAGE + 1)
            page = self.recorder.select_notifications(start=start, limit=_LIVE_SCAN_PAGE,
                                                      stop=top)
            for notification in reversed(page):
                event = self.mapper.to_domain_event(notification)
                if getattr(event, "imported", True) is False:
                    return True
            top = start - 1
        return False


def _same_stored(stored: StoredEvent, saved: Any) -> bool:
    """Whether `stored` is the event `saved` (as `save` recorded it), byte for byte."""
    return (stored.originator_version == saved.originator_version and stored.topic == saved.topic
            and bytes(stored.state) == bytes(saved.state))


class _CasesBelowSnapshots:
    """The cases this process last saw at a version below the first snapshot's (the most
    recent `maxsize` seen; thread-safe)."""

    def __init__(self, interval: int, maxsize: int) -> None:
        self._interval = interval
        self._maxsize = maxsize
        self._ids: OrderedDict[UUID, None] = OrderedDict()
        self._lock = Lock()

    def holds(self, case_id: UUID) -> bool:
        """Whether the case was last seen below the first snapshot's version."""
        return case_id in self._ids

    def note(self, case: Case) -> None:
        """Remember the version the case was seen at (loaded or saved)."""
        with self._lock:
            if case.version >= self._interval:
                self._ids.pop(case.id, None)
                return
            self._ids[case.id] = None
            self._ids.move_to_end(case.id)
            while len(self._ids) > self._maxsize:
                self._ids.popitem(last=False)


_CASE_METHODS: dict[type[commands.Command], tuple[Callable[..., None], bool]] = {
    commands.CompleteAssessment: (Case.complete_assessment, False),
    commands.GrantSupport: (Case.grant_support, True),
    commands.RefuseSupport: (Case.refuse_support, False),
    commands.AgreeGoal: (Case.agree_goal, False),
    commands.RecordGoalOutcome: (Case.record_goal_outcome, False),
    commands.StartMeasure: (Case.start_measure, False),
    commands.CompleteMeasure: (Case.complete_measure, False),
    commands.BreakOffMeasure: (Case.break_off_measure, False),
    commands.ChangeBudget: (Case.change_budget, True),
    commands.AdjustBasicNeeds: (Case.adjust_basic_needs, True),
    commands.CompleteReview: (Case.complete_review, False),
    commands.HandOverCase: (Case.hand_over, True),
    commands.CloseCase: (Case.close, False),
    commands.ReopenCase: (Case.reopen, False),
    commands.ProposeHandover: (Case.propose_handover, True),
    commands.ProposeClosure: (Case.propose_closure, False),
    commands.DismissProposal: (Case.dismiss_proposal, False),
    commands.RecordReimbursement: (Case.record_reimbursement, False),
    commands.RecordReimbursementPaid: (Case.record_reimbursement_paid, False),
}
"""Each case command's aggregate method, and whether it needs the reference data."""


def _persons_in(events: Iterable[Any]) -> list[UUID]:
    persons: list[UUID] = []
    for event in events:
        if isinstance(event, CaseOpened):
            persons.extend(p.person_id for p in (event.applicant, *event.other_members))
    return persons


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

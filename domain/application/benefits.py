"""The benefits service: benefit applications and delegations, in a store of their own.

An `eventsourcing` application named "benefits" with its own events table
(`benefits_events`, as the payments store), so that the case store's notification log stays
case-only. An application outside a branch office's municipalities is answered to that
office exactly as one that does not exist (`ApplicationNotFoundError`), before anything that
depends on it (its stage, its rules) is looked at. The applicant's personal data is sealed
by the same vault as the cases' (erasing a person shreds it here too). Answers the auditor's
questions: what was owed for a month as known at a recorded time, and what was done under
which delegation.

Every event records the identity the edge established (`recorded_by`, `domain.identity`): the
one a command brings (`execute(..., recorded_by=...)`: a web session's account), else the
service's own (`identity`: the process's operating-system user, as the composition root gives
it to the case service too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, datetime_now_with_tzinfo
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, JSONTranscoder
from eventsourcing.utils import get_topic

from domain import benefit_commands as bc
from domain.application.eventlog import StoredNotificationLog
from domain.application.payments import recorder_with_own_table
from domain.application.transcodings import register_domain_transcodings
from domain.benefits import (
    BENEFIT_VALUE_TYPES,
    OFFICE_ROLE,
    ApplicationEvent,
    ApplicationReceived,
    BenefitApplication,
    Delegation,
    require_benefit_role,
)
from domain.case import BenefitOnRecord, Recording
from domain.commands import Actor, Command
from domain.errors import (
    ApplicationNotFoundError,
    DomainError,
    InvalidCommandError,
    RuleViolationError,
)
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from domain.personal_data import (
    ErasedPersonalData,
    PersonalData,
    PersonalDataVault,
    SealedPersonalData,
)
from domain.reference import BranchOffice, ReferenceData, load_benefit_checklists

__all__ = ["BENEFITS_EVENTS_TABLE", "BenefitResult", "BenefitService", "DelegatedAction"]

log = structlog.get_logger("nervenbahn.benefits")

BENEFITS_EVENTS_TABLE = "benefits_events"
_ALL = 2**62


@dataclass(frozen=True)
class BenefitResult:
    """What a command recorded: the aggregate (application or delegation), its version and
    event names."""

    id: UUID
    version: int
    events: tuple[str, ...]


@dataclass(frozen=True)
class DelegatedAction:
    """One action done under a delegation (for auditors): no personal data."""

    delegation_id: UUID
    application_id: UUID
    event: str
    recorded_at: datetime
    user_id: str
    branch_office: str
    recorded_by: str
    """The identity the recording edge established (`unknown` before it was recorded)."""


class BenefitService(StoredNotificationLog, Application[UUID]):
    """Executes benefit commands against the benefits store."""

    name = "benefits"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        vault: PersonalDataVault,
        reference: ReferenceData,
        offices: Mapping[str, BranchOffice],
        clock: Callable[[], datetime] = datetime_now_with_tzinfo,
        identity: EstablishedIdentity = UNKNOWN_IDENTITY,
    ) -> None:
        self.vault = vault
        self.identity = identity
        """Who records when a command brings no identity of its own: the process's
        operating-system user (the composition root's); unknown without."""
        self.reference = reference
        self.offices = offices
        self.checklists = load_benefit_checklists()
        self._clock = clock
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Dates, actors, amounts and sealed personal data, as the case store writes them."""
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder, self.vault, BENEFIT_VALUE_TYPES)

    def construct_recorder(self) -> ApplicationRecorder:
        """The recorder, on SQLite with a table of its own (see the payments service)."""
        return recorder_with_own_table(self, BENEFITS_EVENTS_TABLE) or super().construct_recorder()

    # --- commands --------------------------------------------------------------------------

    def execute(
        self, command: Command, *, recorded_by: EstablishedIdentity | None = None
    ) -> BenefitResult:
        """Execute a validated command; record its events or raise a DomainError (nothing
        recorded). `recorded_by`: the identity the edge established for this command (a web
        session's account); None: the service's own (`identity`)."""
        started = time.perf_counter()
        identity = recorded_by or self.identity
        bound = log.bind(command=command.name, actor=command.actor.user_id,
                         correlation_id=str(command.correlation_id),
                         recorded_by=str(identity))
        try:
            aggregate = self._apply(command, Recording(self._clock(), recorded_by=identity))
            events = tuple(type(event).__name__ for event in aggregate.pending_events)
            self._save(aggregate, command)
        except DomainError as exc:
            bound.warning("command rejected", outcome="rejected", error=type(exc).__name__,
                          rule=getattr(exc, "rule", None))
            raise
        bound.info("command executed", id=str(aggregate.id), outcome="recorded", events=events,
                   duration_ms=round((time.perf_counter() - started) * 1000, 2))
        return BenefitResult(aggregate.id, aggregate.version, events)

    def _apply(self, cmd: Command, rec: Recording) -> Aggregate:
        if isinstance(cmd, bc.ReceiveApplication):
            return BenefitApplication.receive(cmd, rec, self.reference, self.offices)
        if isinstance(cmd, bc.GrantDelegation):
            return Delegation.grant(cmd, rec, self.offices)
        if isinstance(cmd, bc.DelegationCommand):
            delegation = self.delegation(cmd.delegation_id)
            rec = Recording(max(rec.recorded_at, delegation.modified_on),
                            recorded_by=rec.recorded_by)
            if isinstance(cmd, bc.RevokeDelegation):
                delegation.revoke(cmd, rec)
            else:
                delegation.expire(cast(bc.ExpireDelegation, cmd), rec)
            return delegation
        if not isinstance(cmd, bc.BenefitCommand):
            raise InvalidCommandError(cmd.name, [("command", "not a benefits command")])
        application = self.application_for(cmd.actor, cmd.application_id)
        rec = Recording(max(rec.recorded_at, application.modified_on),
                        recorded_by=rec.recorded_by)
        self._on_application(application, cmd, rec)
        return application

    def _on_application(self, app: BenefitApplication, cmd: bc.BenefitCommand,
                        rec: Recording) -> None:
        checklist = self.checklists[app.kind]
        if isinstance(cmd, bc.CheckCompleteness):
            app.check_completeness(cmd, rec, checklist, self._delegation_of(cmd))
        elif isinstance(cmd, bc.RequestDocuments):
            app.request_documents(cmd, rec, self._delegation_of(cmd))
        elif isinstance(cmd, bc.RecordDocumentsReceived):
            app.record_documents(cmd, rec, checklist, self._delegation_of(cmd))
        elif isinstance(cmd, bc.ForwardApplication):
            app.forward(cmd, rec)
        elif isinstance(cmd, bc.GrantBenefit):
            app.grant(cmd, rec)
        elif isinstance(cmd, bc.RefuseBenefit):
            app.refuse(cmd, rec)
        elif isinstance(cmd, bc.AmendDecision):
            app.amend(cmd, rec)
        elif isinstance(cmd, bc.EndBenefit):
            app.end(cmd, rec)
        elif isinstance(cmd, bc.WithdrawApplication):
            app.withdraw(cmd, rec)
        else:
            raise InvalidCommandError(cmd.name, [("command", "not a benefits command")])

    def _delegation_of(self, cmd: Any) -> Delegation | None:
        delegation_id = getattr(cmd, "delegation_id", None)
        if delegation_id is None:
            return None
        found: Delegation | None = self._get(delegation_id, Delegation)
        return found

    def _save(self, aggregate: Aggregate, command: Command) -> None:
        persons = [e.applicant.person_id for e in aggregate.pending_events
                   if isinstance(e, ApplicationReceived)]
        new_keys = self.vault.ensure_keys(persons)
        try:
            self.save(aggregate)
        except IntegrityError as exc:
            self.vault.discard(new_keys)
            raise RuleViolationError(
                "one-change-at-a-time",
                f"{command.name}: {aggregate.id} exists already or was changed meanwhile; "
                "nothing was recorded",
            ) from exc

    # --- queries -----------------------------------------------------------------------------

    def application(self, application_id: UUID) -> BenefitApplication:
        """The current state of an application (ApplicationNotFoundError if none)."""
        found: BenefitApplication | None = self._get(application_id, BenefitApplication)
        if found is None:
            raise ApplicationNotFoundError(application_id)
        return found

    def on_record(self, application_id: UUID) -> BenefitOnRecord:
        """What a case needs to know of an application to advance in view of it: id, kind,
        the applicant's person id and stage (no personal data); ApplicationNotFoundError if
        there is none. The case service's `benefits` lookup."""
        application = self.application(application_id)
        return BenefitOnRecord(application.id, application.kind,
                               application.applicant.person_id, application.stage)

    def application_for(self, actor: Actor, application_id: UUID) -> BenefitApplication:
        """The current application if `actor` may act on it. A role with no part in benefit
        applications is refused before the lookup (rule `benefit-roles`, the same for every
        id); an application outside a branch office's municipalities is not found, with the
        very message of a missing one, before its stage or rules are looked at: a command
        tells no other office that it exists, where, or in which stage."""
        require_benefit_role(actor)
        application = self.application(application_id)
        if actor.role == OFFICE_ROLE and actor.organisation != application.branch_office:
            raise ApplicationNotFoundError(application_id)
        return application

    def recorded_with(self, application_id: UUID, correlation_id: UUID) -> bool:
        """True if an event of the application was recorded under `correlation_id` (a command
        that names its own, e.g. a fund decision's id, is then recorded already);
        ApplicationNotFoundError if there is no such application."""
        self.application(application_id)
        return any(getattr(event, "correlation_id", None) == correlation_id
                   for event in self.events.get(application_id))

    def delegation(self, delegation_id: UUID) -> Delegation:
        """The current state of a delegation (RuleViolationError naming the id if none)."""
        found: Delegation = self._required(delegation_id, Delegation, "delegation-unknown",
                                           "delegation")
        return found

    def application_as_known(self, application_id: UUID, known_at: datetime
                             ) -> BenefitApplication | None:
        """The application as it was known at recorded time `known_at` (None if not yet)."""
        if known_at.tzinfo is None:
            raise InvalidCommandError("query", [("known_at", "needs a time zone offset")])
        state: BenefitApplication | None = None
        for stored in self.events.get(application_id):
            event: Any = stored
            if event.timestamp > known_at:
                break
            state = event.mutate(state)
        return state

    def owed_as_known(self, application_id: UUID, month: date, known_at: datetime) -> Decimal:
        """What was owed for `month` as known at recorded time `known_at` (0.00 before the
        grant was recorded): retroactive amendments recorded until then count, later not."""
        state = self.application_as_known(application_id, known_at)
        return state.owed_for(month) if state is not None else Decimal("0.00")

    def application_ids(self) -> Iterator[UUID]:
        """Every application's id, in the order received."""
        for event in self._all_events(ApplicationReceived):
            yield event.originator_id

    def application_histories(self) -> list[list[Any]]:
        """Every application's events in recorded order, applications in the order received
        (for the backlog figures, `projections.backlog.timelines`; delegations left out)."""
        histories: dict[UUID, list[Any]] = {}
        for event in self._all_events(object):
            if isinstance(event, ApplicationReceived | ApplicationEvent):
                histories.setdefault(event.originator_id, []).append(event)
        return list(histories.values())

    def last_recorded_at(self) -> datetime | None:
        """The recorded time of the newest event in the store (None: empty)."""
        last = self.recorder.max_notification_id()
        if not last:
            return None
        (notification,) = self.recorder.select_notifications(start=last, limit=1)
        event: Any = self.mapper.to_domain_event(notification)
        return cast(datetime, event.timestamp)

    def person(self, person_id: UUID) -> PersonalData | ErasedPersonalData | None:
        """The applicant's data as recorded when an application named them (opened now, or
        what remains after erasure); None if no application names them. Scans the received
        applications: for erasure, which must find a person known only to this store (a
        pensioner with no social-assistance case), not for hot paths."""
        for notification in self.recorder.select_notifications(
            start=None, limit=_ALL, topics=[get_topic(ApplicationReceived)]
        ):
            applicant = cast(ApplicationReceived,
                             self.mapper.to_domain_event(notification)).applicant
            if applicant.person_id == person_id:
                opened: PersonalData | ErasedPersonalData = (
                    applicant.open() if isinstance(applicant, SealedPersonalData) else applicant)
                return opened
        return None

    def delegated_actions(self, delegation_id: UUID | None = None) -> list[DelegatedAction]:
        """What was done under which delegation (under one, if given), in recording order."""
        actions = []
        for event in self._all_events(ApplicationEvent):
            if event.delegation_id is None:
                continue
            if delegation_id is None or event.delegation_id == delegation_id:
                actions.append(DelegatedAction(
                    event.delegation_id, event.originator_id, type(event).__name__,
                    event.timestamp, event.actor.user_id, event.actor.organisation,
                    str(event.recorded_by)))
        return actions

    def _all_events(self, kind: type[Any]) -> Iterator[Any]:
        for notification in self.recorder.select_notifications(start=None, limit=_ALL):
            event = self.mapper.to_domain_event(notification)
            if isinstance(event, kind):
                yield event

    def _required(self, aggregate_id: UUID, kind: type[Any], rule: str, what: str) -> Any:
        found = self._get(aggregate_id, kind)
        if found is None:
            raise RuleViolationError(rule, f"{what}_id: no {what} {aggregate_id}")
        return found

    def _get(self, aggregate_id: UUID, kind: type[Any]) -> Any:
        try:
            found: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

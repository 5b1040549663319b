"""Benefit applications (EL to AHV or IV, premium reduction) and the fund's delegations.

A bounded context beside the case process (DOMAIN.md, "The compensation fund (AKSO), its
branch offices and EL"): a resident applies at the AKSO branch office of their municipality;
the application is checked for completeness against the checklist of its kind
(`domain/reference/data/benefit_checklists.json`), missing documents are requested with a due
date and recorded when they arrive, the application is forwarded to the fund, and the fund
decides: granted from a month with monthly CHF amounts by period, or refused. A grant can be
amended (retroactively) and ends at the end of the month in which a condition ceased
(ELG Art. 12); an undecided application can be withdrawn.

Who does what (DOMAIN.md: receiving, checking for completeness, completing and forwarding
applications are an AHV branch office's own tasks):
- branch-office staff (role `branch_office`, organisation: the office id) act only on
  applications of their own office's municipalities: they receive, forward and withdraw them,
  and until an application is forwarded they check it for completeness, request documents and
  record documents received **in their own right** (no delegation);
- once forwarded, the application is the fund's: those three tasks on a forwarded application
  are the fund's, done by fund officers (role `fund_officer`, who may do every task at any
  stage), or by the application's branch office only under a `Delegation` to it for that task
  whose period includes the recording day (seed 000: offices may temporarily take over part of
  AKSO's tasks). Every delegated action records the delegation's id. A delegation is granted,
  revoked or expired (events); an action under a revoked or expired one is refused with a rule
  naming it;
- decisions (grant, refuse, amend, end) are the fund's alone and never delegable.

Every event also keeps the identity the recording edge established (`recorded_by`,
`domain.identity`: the operating-system user of the CLI or a connector, the signed-in web
account) beside the actor the command declares. It came with class version 2 of every
application and delegation event; version 1 events are upcast on read to `unknown` (the stored
events are not rewritten), as the case events' (`domain.events.CaseEvent`).

Every refusal is a `RuleViolationError` naming the rule and the field; nothing is recorded.
The applicant's data is `PersonalData`, sealed with the person's own key like a case's
(erasing the person shreds it here too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, NoReturn
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.benefit_commands import (
    AmendDecision,
    AmountPeriod,
    BenefitCommand,
    CheckCompleteness,
    DelegableTask,
    EndBenefit,
    ExpireDelegation,
    ForwardApplication,
    GrantBenefit,
    GrantDelegation,
    ReceiveApplication,
    RecordDocumentsReceived,
    RefuseBenefit,
    RequestDocuments,
    RevokeDelegation,
    WithdrawApplication,
)
from domain.case import (  # the case's own rules for persons and dates
    FUTURE_LIMIT_DAYS,
    RETROACTIVE_LIMIT_DAYS,
    Recording,
    _person,
    _within,
)
from domain.commands import Actor
from domain.entitlement import month_of
from domain.errors import RuleViolationError
from domain.events import Person
from domain.identity import EstablishedIdentity, RecordedBySinceVersion2
from domain.money import ZERO
from domain.reference import BenefitDocument, BranchOffice, ReferenceData

__all__ = [
    "APPLICATION_EVENT_TYPES",
    "BENEFIT_VALUE_TYPES",
    "DECIDED_STAGES",
    "DELEGATION_EVENT_TYPES",
    "OFFICE_ROLE",
    "ApplicationEvent",
    "ApplicationForwarded",
    "ApplicationReceived",
    "ApplicationWithdrawn",
    "BenefitApplication",
    "BenefitEnded",
    "BenefitGranted",
    "BenefitRefused",
    "CompletenessChecked",
    "DecisionAmended",
    "Delegation",
    "DelegationEvent",
    "DelegationExpired",
    "DelegationGranted",
    "DelegationRevoked",
    "DocumentRequest",
    "DocumentsReceived",
    "DocumentsRequested",
    "MonthlyAmount",
    "office_of",
    "require_benefit_role",
]

FUND_ROLE = "fund_officer"
OFFICE_ROLE = "branch_office"
"""The role of branch-office staff (organisation: the office id)."""
DECIDED_STAGES = ("granted", "refused", "ended")
"""Stages after the fund's decision."""


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthlyAmount:
    """A monthly CHF amount owed from `from_month` (its first day) on."""

    from_month: date
    monthly_chf: Decimal


@dataclass(frozen=True)
class DocumentRequest:
    """Documents asked of the applicant on `requested_on`, to be handed in by `due_on`."""

    documents: list[str]
    requested_on: date
    due_on: date


BENEFIT_VALUE_TYPES: tuple[type, ...] = (Actor, MonthlyAmount, DocumentRequest,
                                         EstablishedIdentity)
"""Value types stored inside benefit events (each needs a transcoding)."""


def office_of(offices: Mapping[str, BranchOffice], municipality_bfs: int) -> str:
    """The id of the branch office that serves the municipality (RuleViolationError if none)."""
    for office in offices.values():
        if municipality_bfs in office.municipalities:
            return office.id
    raise RuleViolationError(
        "municipality-has-office",
        f"municipality_bfs: no branch office serves municipality {municipality_bfs}")


# --- delegations -------------------------------------------------------------------------------


class DelegationGranted(RecordedBySinceVersion2, Aggregate.Created):
    """The fund delegated a task to a branch office for a period (days, inclusive).

    Version 2 added `recorded_by` (module docstring); version 1 reads as unknown."""

    branch_office: str
    task: str
    valid_from: date
    valid_until: date
    actor: Actor
    correlation_id: UUID
    recorded_by: EstablishedIdentity

    def apply(self, delegation: Delegation) -> None:
        delegation.branch_office = self.branch_office
        delegation.task = self.task
        delegation.valid_from = self.valid_from
        delegation.valid_until = self.valid_until


class DelegationEvent(RecordedBySinceVersion2, Aggregate.Event):
    """Base of a delegation's events after the grant: who declared it, under which
    correlation id, and the identity the recording edge established.

    Version 2 added `recorded_by` (module docstring); version 1 reads as unknown."""

    actor: Actor
    correlation_id: UUID
    recorded_by: EstablishedIdentity


class DelegationRevoked(DelegationEvent):
    """The fund took the task back before the period ended."""

    reason: str
    revoked_on: date

    def apply(self, delegation: Delegation) -> None:
        delegation.revoked_on = self.revoked_on


class DelegationExpired(DelegationEvent):
    """The delegation's period passed."""

    def apply(self, delegation: Delegation) -> None:
        delegation.expired = True


class Delegation(Aggregate):
    """A task of the fund delegated to one branch office for a period."""

    branch_office: str
    task: str
    valid_from: date
    valid_until: date

    def __init__(self) -> None:
        self.revoked_on: date | None = None
        self.expired = False

    @classmethod
    def grant(cls, cmd: GrantDelegation, rec: Recording,
              offices: Mapping[str, BranchOffice]) -> Delegation:
        """Delegate `cmd.task` to `cmd.branch_office` (by a fund officer)."""
        _require_fund(cmd.actor, "delegation-by-fund", "delegate a task")
        if cmd.branch_office not in offices:
            _refuse("branch-office-known",
                    f"branch_office: {cmd.branch_office!r} is not an AKSO branch office")
        if cmd.valid_until < rec.today:
            _refuse("delegation-period-not-past",
                    f"valid_until: {cmd.valid_until} lies before today ({rec.today})")
        return cls._create(
            DelegationGranted, id=cmd.delegation_id or uuid4(), timestamp=rec.recorded_at,
            branch_office=cmd.branch_office, task=cmd.task, valid_from=cmd.valid_from,
            valid_until=cmd.valid_until, actor=cmd.actor, correlation_id=cmd.correlation_id,
            recorded_by=rec.recorded_by,
        )

    def revoke(self, cmd: RevokeDelegation, rec: Recording) -> None:
        """Take the task back (by a fund officer); later actions under it are refused."""
        _require_fund(cmd.actor, "delegation-by-fund", "revoke a delegation")
        self._require_not_ended(rec.today)
        self.trigger_event(DelegationRevoked, timestamp=rec.recorded_at, reason=cmd.reason,
                           revoked_on=rec.today, actor=cmd.actor,
                           correlation_id=cmd.correlation_id, recorded_by=rec.recorded_by)

    def expire(self, cmd: ExpireDelegation, rec: Recording) -> None:
        """Record that the period passed (by a fund officer or the system)."""
        if cmd.actor.role not in (FUND_ROLE, "system"):
            _refuse("delegation-by-fund",
                    f"actor.role: a {cmd.actor.role} cannot expire a delegation")
        if rec.today <= self.valid_until:
            _refuse("expiry-after-period",
                    f"delegation_id: delegation {self.id} runs until {self.valid_until}")
        self._require_not_ended(rec.today, expiring=True)
        self.trigger_event(DelegationExpired, timestamp=rec.recorded_at, actor=cmd.actor,
                           correlation_id=cmd.correlation_id, recorded_by=rec.recorded_by)

    def status_on(self, day: date) -> str:
        """`revoked`, `expired`, `not_yet_valid` or `active` on `day`."""
        if self.revoked_on is not None:
            return "revoked"
        if self.expired or day > self.valid_until:
            return "expired"
        return "not_yet_valid" if day < self.valid_from else "active"

    def check_use(self, actor: Actor, task: DelegableTask, today: date) -> None:
        """Refuse unless `actor`'s office may do `task` under this delegation `today`."""
        if self.branch_office != actor.organisation:
            _refuse("delegation-to-this-office",
                    f"delegation_id: delegation {self.id} was granted to {self.branch_office}, "
                    f"not {actor.organisation}")
        if self.task != task:
            _refuse("delegation-task",
                    f"delegation_id: delegation {self.id} covers {self.task}, not {task}")
        status = self.status_on(today)
        if status != "active":
            rule = {"revoked": "delegation-revoked", "expired": "delegation-expired",
                    "not_yet_valid": "delegation-not-yet-valid"}[status]
            _refuse(rule, f"delegation_id: delegation {self.id} is {status.replace('_', ' ')} "
                          f"on {today} (period {self.valid_from} to {self.valid_until})")

    def _require_not_ended(self, today: date, *, expiring: bool = False) -> None:
        status = self.status_on(today)
        if status == "revoked" or self.expired or (status == "expired" and not expiring):
            rule = "delegation-revoked" if status == "revoked" else "delegation-expired"
            _refuse(rule, f"delegation_id: delegation {self.id} is {status} already")


# --- application events --------------------------------------------------------------------------


class ApplicationEvent(RecordedBySinceVersion2, Aggregate.Event):
    """Base of the events of an application after it was received.

    Version 2 added `recorded_by` (module docstring); version 1 events stay stored as they
    were and are upcast on every read (`RecordedBySinceVersion2.upcast_v1_v2`), which every
    application event inherits."""

    actor: Actor
    correlation_id: UUID
    delegation_id: UUID | None
    """The delegation a branch office acted under on a forwarded application (None: in its
    own right, or by the fund)."""
    recorded_by: EstablishedIdentity


class ApplicationReceived(RecordedBySinceVersion2, Aggregate.Created):
    """A branch office received an application for a benefit.

    Version 2 added `recorded_by` (module docstring); version 1 reads as unknown."""

    kind: str
    municipality_bfs: int
    branch_office: str
    applicant: Person
    received_on: date
    actor: Actor
    correlation_id: UUID
    delegation_id: UUID | None
    recorded_by: EstablishedIdentity

    def apply(self, application: BenefitApplication) -> None:
        application.kind = self.kind
        application.municipality_bfs = self.municipality_bfs
        application.branch_office = self.branch_office
        application.applicant = self.applicant
        application.received_on = self.received_on
        application.stage = "received"


class CompletenessChecked(ApplicationEvent):
    """The application was compared with its checklist: what is there, what is missing."""

    documents_present: list[str]
    missing: list[str]

    def apply(self, application: BenefitApplication) -> None:
        application.documents_present = sorted(self.documents_present)
        application.missing = sorted(self.missing)
        application.checked = True


class DocumentsRequested(ApplicationEvent):
    """Missing documents were asked of the applicant by a due date."""

    request: DocumentRequest

    def apply(self, application: BenefitApplication) -> None:
        application.requests = [*application.requests, self.request]


class DocumentsReceived(ApplicationEvent):
    """Documents the applicant handed in later."""

    documents: list[str]
    received_on: date

    def apply(self, application: BenefitApplication) -> None:
        present = set(application.documents_present) | set(self.documents)
        application.documents_present = sorted(present)
        application.missing = sorted(set(application.missing) - present)


class ApplicationForwarded(ApplicationEvent):
    """The application went to the fund (with documents missing only with a reason)."""

    forwarded_on: date
    missing: list[str]
    override_reason: str | None

    def apply(self, application: BenefitApplication) -> None:
        application.stage = "forwarded"
        application.forwarded_on = self.forwarded_on


class BenefitGranted(ApplicationEvent):
    """The fund granted the benefit from a month, with monthly amounts by period."""

    from_month: date
    amounts: list[MonthlyAmount]
    decided_on: date

    def apply(self, application: BenefitApplication) -> None:
        application.stage = "granted"
        application.granted_from = self.from_month
        application.schedule = list(self.amounts)
        application.decided_on = self.decided_on


class BenefitRefused(ApplicationEvent):
    """The fund refused the benefit."""

    reason: str
    note: str | None
    decided_on: date

    def apply(self, application: BenefitApplication) -> None:
        application.stage = "refused"
        application.refusal_reason = self.reason
        application.decided_on = self.decided_on


class DecisionAmended(ApplicationEvent):
    """The amounts from a month on were changed (retroactively too)."""

    amounts: list[MonthlyAmount]
    reason: str

    def apply(self, application: BenefitApplication) -> None:
        first = self.amounts[0].from_month
        kept = [period for period in application.schedule if period.from_month < first]
        application.schedule = [*kept, *self.amounts]


class BenefitEnded(ApplicationEvent):
    """A condition ceased: nothing is owed after the end of `last_month`."""

    condition_ceased_on: date
    last_month: date
    reason: str

    def apply(self, application: BenefitApplication) -> None:
        application.stage = "ended"
        application.last_month = self.last_month


class ApplicationWithdrawn(ApplicationEvent):
    """The applicant withdrew the application before the decision."""

    reason: str
    withdrawn_on: date

    def apply(self, application: BenefitApplication) -> None:
        application.stage = "withdrawn"


# --- the application ---------------------------------------------------------------------------


class BenefitApplication(Aggregate):
    """An application for EL (to AHV or IV) or a premium reduction, and the fund's decision."""

    kind: str
    municipality_bfs: int
    branch_office: str
    applicant: Person
    received_on: date
    stage: str

    def __init__(self) -> None:
        self.checked = False
        self.documents_present: list[str] = []
        self.missing: list[str] = []
        self.requests: list[DocumentRequest] = []
        self.forwarded_on: date | None = None
        self.decided_on: date | None = None
        self.granted_from: date | None = None
        self.schedule: list[MonthlyAmount] = []
        self.last_month: date | None = None
        self.refusal_reason: str | None = None

    # --- receipt ----------------------------------------------------------------------------

    @classmethod
    def receive(cls, cmd: ReceiveApplication, rec: Recording, reference: ReferenceData,
                offices: Mapping[str, BranchOffice]) -> BenefitApplication:
        """A branch office (or the fund) received an application of a resident."""
        reference.municipality(cmd.municipality_bfs)
        office = office_of(offices, cmd.municipality_bfs)
        _require_office_or_fund(cmd.actor, office, cmd.municipality_bfs)
        _within(cmd.received_on, rec, "received_on", back=RETROACTIVE_LIMIT_DAYS, ahead=0)
        return cls._create(
            ApplicationReceived, id=cmd.application_id or uuid4(), timestamp=rec.recorded_at,
            kind=cmd.kind, municipality_bfs=cmd.municipality_bfs, branch_office=office,
            applicant=_person(cmd.applicant), received_on=cmd.received_on, actor=cmd.actor,
            correlation_id=cmd.correlation_id, delegation_id=None, recorded_by=rec.recorded_by,
        )

    # --- completing: the office's own work until forwarded, then the fund's (delegable) -------

    def check_completeness(self, cmd: CheckCompleteness, rec: Recording,
                           checklist: tuple[BenefitDocument, ...],
                           delegation: Delegation | None) -> None:
        """Compare what was handed in with the checklist of the benefit kind."""
        self._completing(cmd, rec, "completeness_check", delegation)
        required = [document.code for document in checklist]
        _on_checklist(cmd.documents_present, required, "documents_present", self.kind)
        present = set(cmd.documents_present) | set(self.documents_present)
        self._trigger(CompletenessChecked, cmd, rec, documents_present=sorted(present),
                      missing=[code for code in required if code not in present])

    def request_documents(self, cmd: RequestDocuments, rec: Recording,
                          delegation: Delegation | None) -> None:
        """Ask for missing documents by a due date."""
        self._completing(cmd, rec, "document_request", delegation)
        if not self.checked:
            _refuse("request-after-check",
                    "application_id: documents are requested after the completeness check")
        not_missing = sorted(set(cmd.documents) - set(self.missing))
        if not_missing:
            _refuse("request-missing-documents",
                    f"documents: {', '.join(not_missing)} are not missing")
        if cmd.due_on <= rec.today or cmd.due_on > rec.today + timedelta(days=FUTURE_LIMIT_DAYS):
            _refuse("due-date-ahead",
                    f"due_on: {cmd.due_on} must lie after today ({rec.today}) and at most "
                    f"{FUTURE_LIMIT_DAYS} days ahead")
        request = DocumentRequest(sorted(set(cmd.documents)), rec.today, cmd.due_on)
        self._trigger(DocumentsRequested, cmd, rec, request=request)

    def record_documents(self, cmd: RecordDocumentsReceived, rec: Recording,
                         checklist: tuple[BenefitDocument, ...],
                         delegation: Delegation | None) -> None:
        """Record documents the applicant handed in later."""
        self._completing(cmd, rec, "documents_received", delegation)
        _on_checklist(cmd.documents, [d.code for d in checklist], "documents", self.kind)
        if cmd.received_on < self.received_on:
            _refuse("documents-after-application",
                    f"received_on: {cmd.received_on} lies before the application was "
                    f"received ({self.received_on})")
        _within(cmd.received_on, rec, "received_on", back=None, ahead=0)
        self._trigger(DocumentsReceived, cmd, rec, documents=sorted(set(cmd.documents)),
                      received_on=cmd.received_on)

    # --- forwarding, withdrawal ------------------------------------------------------------

    def forward(self, cmd: ForwardApplication, rec: Recording) -> None:
        """Send the application to the fund; with documents missing only with a reason."""
        _require_office_or_fund(cmd.actor, self.branch_office, self.municipality_bfs)
        self._require_open(cmd)
        if self.stage == "forwarded":
            _refuse("forward-once", f"application_id: {self.id} was forwarded already")
        incomplete = not self.checked or bool(self.missing)
        if incomplete and cmd.override_reason is None:
            what = ", ".join(self.missing) if self.checked else "the completeness check"
            _refuse("forward-requires-complete",
                    f"override_reason: missing {what}; forward anyway only with a reason")
        self._trigger(ApplicationForwarded, cmd, rec, forwarded_on=rec.today,
                      missing=list(self.missing) if self.checked else ["completeness_check"],
                      override_reason=cmd.override_reason if incomplete else None)

    def withdraw(self, cmd: WithdrawApplication, rec: Recording) -> None:
        """The applicant withdrew the application (before the decision)."""
        _require_office_or_fund(cmd.actor, self.branch_office, self.municipality_bfs)
        self._require_open(cmd)
        self._trigger(ApplicationWithdrawn, cmd, rec, reason=cmd.reason, withdrawn_on=rec.today)

    # --- the fund's decision ---------------------------------------------------------------

    def grant(self, cmd: GrantBenefit, rec: Recording) -> None:
        """Grant from a month (ELG Art. 12: not before the month of the application)."""
        self._decision(cmd)
        if cmd.from_month < month_of(self.received_on):
            _refuse("benefit-from-month-of-application",
                    f"from_month: {cmd.from_month:%Y-%m} lies before the month of the "
                    f"application ({self.received_on:%Y-%m}; ELG Art. 12)")
        self._trigger(BenefitGranted, cmd, rec, from_month=cmd.from_month,
                      amounts=_amounts(cmd.amounts), decided_on=self._decided_on(cmd, rec))

    def refuse(self, cmd: RefuseBenefit, rec: Recording) -> None:
        """Refuse the benefit with a reason."""
        self._decision(cmd)
        self._trigger(BenefitRefused, cmd, rec, reason=cmd.reason, note=cmd.note,
                      decided_on=self._decided_on(cmd, rec))

    def amend(self, cmd: AmendDecision, rec: Recording) -> None:
        """Change the amounts from the first given month on (retroactively too)."""
        self._require_granted(cmd, "amend a decision", ("granted", "ended"))
        first = cmd.amounts[0].from_month
        assert self.granted_from is not None
        if first < self.granted_from:
            _refuse("amend-within-grant",
                    f"amounts: {first:%Y-%m} lies before the grant ({self.granted_from:%Y-%m})")
        if self.last_month is not None and first > self.last_month:
            _refuse("amend-within-grant",
                    f"amounts: {first:%Y-%m} lies after the benefit ended "
                    f"({self.last_month:%Y-%m})")
        self._trigger(DecisionAmended, cmd, rec, amounts=_amounts(cmd.amounts),
                      reason=cmd.reason)

    def end(self, cmd: EndBenefit, rec: Recording) -> None:
        """End at the end of the month in which a condition ceased (ELG Art. 12)."""
        self._require_granted(cmd, "end a benefit", ("granted",))
        assert self.granted_from is not None
        last = month_of(cmd.condition_ceased_on)
        if last < self.granted_from:
            _refuse("end-after-grant",
                    f"condition_ceased_on: {cmd.condition_ceased_on} lies before the grant "
                    f"({self.granted_from:%Y-%m})")
        _within(cmd.condition_ceased_on, rec, "condition_ceased_on", back=None,
                ahead=FUTURE_LIMIT_DAYS)
        self._trigger(BenefitEnded, cmd, rec, condition_ceased_on=cmd.condition_ceased_on,
                      last_month=last, reason=cmd.reason)

    # --- what is owed ----------------------------------------------------------------------

    def owed_for(self, month: date) -> Decimal:
        """The monthly amount owed for `month` (any day of it) in this state; 0.00 if none."""
        month = month_of(month)
        if self.granted_from is None or month < self.granted_from:
            return ZERO
        if self.last_month is not None and month > self.last_month:
            return ZERO
        in_force = [p for p in self.schedule if p.from_month <= month]
        return in_force[-1].monthly_chf if in_force else ZERO

    @property
    def waiting_for_documents(self) -> bool:
        """True if documents are missing after the check (whether requested or not)."""
        return self.checked and bool(self.missing)

    # --- helpers -----------------------------------------------------------------------------

    def _completing(self, cmd: BenefitCommand, rec: Recording, task: DelegableTask,
                    delegation: Delegation | None) -> None:
        _authorise_completing(cmd, task, self.branch_office, self.municipality_bfs,
                              self.forwarded_on is not None, delegation, rec.today)
        self._require_open(cmd)

    def _decision(self, cmd: BenefitCommand) -> None:
        _require_fund(cmd.actor, "decision-by-fund", "decide")
        if self.stage != "forwarded":
            rule = "decision-once" if self.stage in DECIDED_STAGES else "decision-after-forwarding"
            _refuse(rule, f"application_id: {self.id} is {self.stage}; the fund decides once, "
                          "on a forwarded application")

    def _decided_on(self, cmd: GrantBenefit | RefuseBenefit, rec: Recording) -> date:
        """The fund's date of the decision: as given, else today; neither in the future nor
        before the forwarding (the figures count days from receipt to this date)."""
        if cmd.decided_on is None:
            return rec.today
        if cmd.decided_on > rec.today:
            _refuse("decision-date-not-future",
                    f"decided_on: {cmd.decided_on} lies after today ({rec.today})")
        assert self.forwarded_on is not None  # _decision: only a forwarded application
        if cmd.decided_on < self.forwarded_on:
            _refuse("decision-date-after-forwarding",
                    f"decided_on: {cmd.decided_on} lies before the forwarding "
                    f"({self.forwarded_on})")
        return cmd.decided_on

    def _require_granted(self, cmd: BenefitCommand, what: str, stages: tuple[str, ...]) -> None:
        _require_fund(cmd.actor, "decision-by-fund", what)
        if self.stage not in stages:
            _refuse("benefit-granted",
                    f"application_id: {self.id} is {self.stage}; only a granted benefit can "
                    "be changed")

    def _require_open(self, cmd: BenefitCommand) -> None:
        if self.stage in (*DECIDED_STAGES, "withdrawn"):
            _refuse("application-undecided",
                    f"application_id: {self.id} is {self.stage}; nothing more can be done "
                    "before a decision")

    def _trigger(self, event: type[ApplicationEvent], cmd: BenefitCommand, rec: Recording,
                 **fields: Any) -> None:
        self.trigger_event(event, timestamp=max(rec.recorded_at, self.modified_on),
                           actor=cmd.actor, correlation_id=cmd.correlation_id,
                           delegation_id=getattr(cmd, "delegation_id", None),
                           recorded_by=rec.recorded_by, **fields)


APPLICATION_EVENT_TYPES: tuple[type[Any], ...] = (
    ApplicationReceived, CompletenessChecked, DocumentsRequested, DocumentsReceived,
    ApplicationForwarded, BenefitGranted, BenefitRefused, DecisionAmended, BenefitEnded,
    ApplicationWithdrawn,
)
"""Every event of a benefit application."""
DELEGATION_EVENT_TYPES: tuple[type[Any], ...] = (
    DelegationGranted, DelegationRevoked, DelegationExpired,
)
"""Every event of a delegation."""


# --- authorisation -------------------------------------------------------------------------------


def _require_fund(actor: Actor, rule: str, what: str) -> None:
    if actor.role != FUND_ROLE:
        _refuse(rule, f"actor.role: only a fund officer may {what}, not a {actor.role}")


def require_benefit_role(actor: Actor) -> None:
    """Refuse (rule `benefit-roles`) an actor who is neither branch-office staff nor a fund
    officer: they have no part in benefit applications."""
    if actor.role not in (FUND_ROLE, OFFICE_ROLE):
        _refuse("benefit-roles", f"actor.role: a {actor.role} has no part in benefit "
                                 "applications (branch_office or fund_officer)")


def _require_office_or_fund(actor: Actor, office: str, municipality_bfs: int) -> None:
    # Defence in depth: the service answers an application outside the office's
    # municipalities as not found before it gets here (`BenefitService.application_for`); a
    # caller using the aggregate directly still cannot record on another office's application.
    require_benefit_role(actor)
    if actor.role == FUND_ROLE:
        return
    if actor.organisation != office:
        _refuse("office-own-municipalities",
                f"actor.organisation: {actor.organisation} does not serve municipality "
                f"{municipality_bfs} ({office} does)")


def _authorise_completing(cmd: BenefitCommand, task: DelegableTask, office: str,
                          municipality_bfs: int, forwarded: bool,
                          delegation: Delegation | None, today: date) -> None:
    """Who may check, request or record documents: a fund officer always, in their own right;
    the branch office of the application's municipality in its own right until the
    application is forwarded, and on a forwarded one (the fund's task then) only under a
    delegation for `task` that is active today."""
    delegation_id = getattr(cmd, "delegation_id", None)
    _require_office_or_fund(cmd.actor, office, municipality_bfs)
    if cmd.actor.role == FUND_ROLE:
        if delegation_id is not None:
            _refuse("delegation-for-branch-offices",
                    "delegation_id: a fund officer acts in their own right, without one")
        return
    if not forwarded:
        if delegation_id is not None:
            _refuse("office-own-work-before-forwarding",
                    f"delegation_id: until the application is forwarded, {task} is the "
                    "branch office's own work, done without a delegation")
        return
    if delegation_id is None:
        _refuse("delegation-required",
                f"delegation_id: the application is forwarded, so {task} is a task of the "
                "fund; a branch office does it only under a delegation")
    if delegation is None or delegation.id != delegation_id:
        _refuse("delegation-unknown", f"delegation_id: no delegation {delegation_id}")
    delegation.check_use(cmd.actor, task, today)


# --- helpers -------------------------------------------------------------------------------------


def _amounts(periods: list[AmountPeriod]) -> list[MonthlyAmount]:
    return [MonthlyAmount(p.from_month, p.monthly_chf) for p in periods]


def _on_checklist(codes: list[str], required: list[str], field: str, kind: str) -> None:
    unknown = sorted(set(codes) - set(required))
    if unknown:
        _refuse("document-on-checklist",
                f"{field}: {', '.join(unknown)} not on the checklist of {kind} "
                f"({', '.join(required)})")


def _refuse(rule: str, message: str) -> NoReturn:
    raise RuleViolationError(rule, message)

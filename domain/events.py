"""Case events: immutable facts, past tense, each with its actor, correlation id, effective
date, whether it was imported from a legacy system, the identity the recording edge
established (`recorded_by`) and, for imported history, its origin (`import_origin`,
`domain.identity`).

Identity and origin are kept in the store only: the bus does not carry them (a consumer reads
them as unknown / None, `bus.codec.CASE_EVENTS.constants`); auditors read them from the store.

`apply` evolves a `Case`; the rules were checked by the aggregate before the event was made.
The event's `timestamp` is its recorded time, set by the core and never by a client.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.budget import BudgetLine
from domain.commands import Actor, HouseholdStructure
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity, ImportOrigin
from domain.personal_data import ErasedPersonalData, PersonalData, SealedPersonalData

if TYPE_CHECKING:
    from domain.case import Case

__all__ = [
    "EVENT_TYPES",
    "Advance",
    "AdvanceEnded",
    "AdvanceStarted",
    "AssessmentCompleted",
    "BudgetChangeProposed",
    "BudgetChanged",
    "BudgetVersion",
    "CaseClosed",
    "CaseEvent",
    "CaseHandedOver",
    "CaseOpened",
    "CaseReopened",
    "Claim",
    "ClaimFigures",
    "ClosureProposed",
    "Goal",
    "GoalAchieved",
    "GoalAgreed",
    "GoalMissed",
    "Handover",
    "HandoverProposed",
    "Measure",
    "MeasureBrokenOff",
    "MeasureCompleted",
    "MeasureStarted",
    "Proposal",
    "ProposalDismissed",
    "ReimbursementPaid",
    "ReimbursementRecorded",
    "ReviewCompleted",
    "SupportGranted",
    "SupportPeriod",
    "SupportRefused",
    "add_months",
    "advances_of",
    "claims_of",
    "proposals_of",
]

Person = PersonalData | ErasedPersonalData | SealedPersonalData


# --- value objects held in the case state ---------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A goal of the goal agreement."""

    goal_id: UUID
    category: str
    title: str
    agreed_on: date
    due_date: date
    status: str = "open"
    resolved_on: date | None = None


@dataclass(frozen=True)
class Measure:
    """An integration measure."""

    measure_id: UUID
    kind: str
    start_date: date
    status: str = "running"
    end_date: date | None = None
    break_off_reason: str | None = None


@dataclass(frozen=True)
class BudgetVersion:
    """A budget in force from an effective date, as recorded at a time."""

    effective_date: date
    lines: list[BudgetLine]
    total: Decimal
    reason: str
    recorded_at: datetime
    changed: list[str] | None = None
    """The lines this version changes (each line has a timeline of its own, see
    `domain.entitlement`); None: every line (a grant, and every change recorded before budget
    changes named their lines). `lines` holds the whole budget as in force from
    `effective_date` when the version was recorded."""


@dataclass(frozen=True)
class SupportPeriod:
    """A period in which support was granted; `until` is None while it lasts."""

    start: date
    until: date | None = None


@dataclass(frozen=True)
class Handover:
    """A handover from one social region to another."""

    from_region: str
    to_region: str
    to_municipality_bfs: int
    effective_date: date


@dataclass(frozen=True)
class Proposal:
    """A work-list item from a connected register: hand the case over or close it.

    Never an automatic change: a caseworker hands over, closes or dismisses. Identified by the
    source's external reference, so the same input twice proposes nothing new.
    """

    external_reference: str
    kind: str
    """"handover", "closure" or "budget_change"."""
    source: str
    proposed_on: date
    """The effective date the register reported (move or death)."""
    reason: str
    """For a closure: death or moved_away; for a handover: moved."""
    to_municipality_bfs: int | None = None
    to_region: str | None = None
    income: Decimal | None = None
    """For a budget change: the benefit to count as income, CHF per month."""
    status: str = "open"
    """open, dismissed or resolved (the case was handed over or closed)."""


@dataclass(frozen=True)
class Advance:
    """Social assistance advanced in view of a benefit (Bevorschussung, DOMAIN.md): the case
    pays living costs while an EL application of a household member is pending, and claims
    them back from the back-payment (ELV Art. 22 para. 4). SKOS F.2 requires the person's
    written commitment (Abtretung/Verpflichtung) or payment order (Zahlungsanweisung)."""

    application_id: UUID
    benefit_kind: str
    """el_ahv or el_iv."""
    person_id: UUID
    """The applicant of the benefit application: the case's applicant or a household member."""
    commitment_kind: str
    """commitment or payment_order."""
    commitment_date: date
    started_on: date
    """The first day advanced (its month is the first month claimable)."""
    ended_on: date | None = None
    end_reason: str | None = None
    """decided, withdrawn or case_closed."""

    @property
    def is_open(self) -> bool:
        """Whether the advance still runs."""
        return self.ended_on is None


@dataclass(frozen=True)
class ClaimFigures:
    """One month's figures of a reimbursement, all CHF (`domain.reimbursement.MonthClaim`):
    paid by the social service, EL, premium-reduction offset, claim, the person's surplus. In
    a correction, each is the difference to what was recorded before."""

    month: date
    paid: Decimal
    el: Decimal
    ipv_offset: Decimal
    claim: Decimal
    surplus: Decimal

    def minus(self, before: ClaimFigures) -> ClaimFigures:
        """The difference of this month's figures to `before` (same month)."""
        return ClaimFigures(self.month, self.paid - before.paid, self.el - before.el,
                            self.ipv_offset - before.ipv_offset, self.claim - before.claim,
                            self.surplus - before.surplus)

    @property
    def is_zero(self) -> bool:
        """Whether nothing changes for the fund or the person (claim, offset, surplus 0)."""
        return not (self.claim or self.ipv_offset or self.surplus)


@dataclass(frozen=True)
class Claim:
    """One recorded reimbursement computation of an advance: the first is the claim, each
    later one a correction (only the months that changed); and, once the fund reports it,
    when and in which payment file it was paid.

    The fields after `ipv_offset_total` have defaults so that a snapshot taken before they
    existed still loads: its claims have no `case_version` (they are found by nothing, and a
    payment of one is refused until the case's next snapshot is replayed from the events) and
    are unpaid."""

    application_id: UUID
    recorded_on: date
    months: list[ClaimFigures]
    corrections: list[ClaimFigures]
    claim_total: Decimal
    surplus_total: Decimal
    ipv_offset_total: Decimal
    case_version: int | None = None
    """The version of the `ReimbursementRecorded` that recorded it: the claim's identity (the
    claims topic sends it as `case_version`, its event id as `claim_id`)."""
    paid_on: date | None = None
    """The day the fund paid it (its payment file's day); None while unpaid."""
    paid_to_region: Decimal | None = None
    """What the fund paid the social region (CHF): max(claim_total, 0)."""
    paid_to_person: Decimal | None = None
    """What the fund paid the person (CHF): max(surplus_total, 0)."""
    payment_message_id: str | None = None
    """The fund's payment file (pain.001 `MsgId`) that paid it."""

    @property
    def is_paid(self) -> bool:
        """Whether the fund reported it paid."""
        return self.payment_message_id is not None


VALUE_TYPES: tuple[type, ...] = (
    Actor,
    EstablishedIdentity,
    ImportOrigin,
    BudgetLine,
    BudgetVersion,
    Goal,
    Measure,
    SupportPeriod,
    Handover,
    Proposal,
    Advance,
    ClaimFigures,
    Claim,
)
"""Value types stored inside events and snapshots (each needs a transcoding)."""


# --- events ----------------------------------------------------------------------------------


def _upcast_identity(state: dict[str, Any]) -> None:
    """An event stored before identities were established: recorded by an unknown identity,
    and (if imported) from an unrecorded origin."""
    state["recorded_by"] = UNKNOWN_IDENTITY
    state["import_origin"] = None


class CaseEvent(Aggregate.Event):
    """Base of all case events after the opening.

    Version 2 added `recorded_by` and `import_origin` (`domain.identity`); version 1 events
    stay stored as they were and are upcast on every read (`upcast_v1_v2`), which every case
    event inherits.
    """

    class_version = 2

    actor: Actor
    correlation_id: UUID
    effective_date: date
    imported: bool
    recorded_by: EstablishedIdentity
    import_origin: ImportOrigin | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version 1 event (stored before identities were established): unknown."""
        _upcast_identity(state)


class CaseOpened(Aggregate.Created):
    """A household applied; the case belongs to its municipality's social region.

    Version 2 added `household_structure` (for the federal statistics), version 3
    `recorded_by` and `import_origin` (as every case event, `CaseEvent`). Older events stay
    stored as they were written; eventsourcing's mapper upcasts them on every read
    (`upcast_v1_v2`: not recorded, None; `upcast_v2_v3`: unknown). See docs/evolution.md.
    """

    class_version = 3

    actor: Actor
    correlation_id: UUID
    effective_date: date
    imported: bool
    recorded_by: EstablishedIdentity
    import_origin: ImportOrigin | None
    municipality_bfs: int
    social_region: str
    household_size: int
    applicant: Person
    other_members: list[Person]
    household_structure: HouseholdStructure | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version 1 event (stored before the household structure was recorded): None."""
        state["household_structure"] = None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """A version 2 event (stored before identities were established): unknown."""
        _upcast_identity(state)

    def apply(self, case: Case) -> None:
        case.municipality_bfs = self.municipality_bfs
        case.social_region = self.social_region
        case.household_size = self.household_size
        case.applicant = self.applicant
        case.other_members = list(self.other_members)
        case.opened_on = self.effective_date
        case.phase = "intake"


class AssessmentCompleted(CaseEvent):
    """The initial assessment (Erstabklärung) is done."""

    needs: list[str]
    employability: str

    def apply(self, case: Case) -> None:
        case.assessment = {
            "needs": list(self.needs),
            "employability": self.employability,
            "completed_on": self.effective_date,
        }
        case.phase = "assessed"


class SupportGranted(CaseEvent):
    """Support granted with a monthly budget from the effective date."""

    lines: list[BudgetLine]
    total: Decimal
    decision_date: date

    def apply(self, case: Case) -> None:
        case.decision = {"outcome": "granted", "decided_on": self.decision_date, "reasons": []}
        case.support_periods = [*case.support_periods, SupportPeriod(self.effective_date)]
        case.budgets = [*case.budgets, _budget_version(self, "initial_decision")]
        case.next_review_due = add_months(self.effective_date, 12)
        case.phase = "supported"


class SupportRefused(CaseEvent):
    """Support refused, with reasons."""

    reasons: list[str]

    def apply(self, case: Case) -> None:
        case.decision = {
            "outcome": "refused",
            "decided_on": self.effective_date,
            "reasons": list(self.reasons),
        }
        case.phase = "refused"


class GoalAgreed(CaseEvent):
    """A goal was agreed (Zielvereinbarung)."""

    goal_id: UUID
    category: str
    title: str
    due_date: date

    def apply(self, case: Case) -> None:
        goal = Goal(self.goal_id, self.category, self.title, self.effective_date, self.due_date)
        case.goals = {**case.goals, self.goal_id.hex: goal}


class GoalAchieved(CaseEvent):
    """A goal was achieved."""

    goal_id: UUID

    def apply(self, case: Case) -> None:
        _resolve_goal(case, self.goal_id, "achieved", self.effective_date)


class GoalMissed(CaseEvent):
    """A goal was missed."""

    goal_id: UUID

    def apply(self, case: Case) -> None:
        _resolve_goal(case, self.goal_id, "missed", self.effective_date)


class MeasureStarted(CaseEvent):
    """An integration measure started."""

    measure_id: UUID
    kind: str

    def apply(self, case: Case) -> None:
        measure = Measure(self.measure_id, self.kind, self.effective_date)
        case.measures = {**case.measures, self.measure_id.hex: measure}


class MeasureCompleted(CaseEvent):
    """An integration measure was completed."""

    measure_id: UUID

    def apply(self, case: Case) -> None:
        _end_measure(case, self.measure_id, "completed", self.effective_date, None)


class MeasureBrokenOff(CaseEvent):
    """An integration measure was broken off."""

    measure_id: UUID
    reason: str

    def apply(self, case: Case) -> None:
        _end_measure(case, self.measure_id, "broken_off", self.effective_date, self.reason)


class BudgetChanged(CaseEvent):
    """Budget lines changed from the effective date (possibly retroactively).

    `changed` names the lines that change; the others keep their own timelines. `lines` and
    `total` are the whole budget as in force from the effective date when it was recorded.
    Version 2 added `recorded_by` and `import_origin` (as every case event: `upcast_v1_v2` is
    `CaseEvent`'s), version 3 `changed`. Events recorded before lines had timelines of their
    own changed the whole budget: they are upcast on every read with `changed` None (every
    line), so an old store answers as before for what was known then (the stored events are
    not rewritten).
    """

    class_version = 3

    lines: list[BudgetLine]
    total: Decimal
    reason: str
    household_size: int
    changed: list[str] | None

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """A version 2 event (a whole-budget version): every line changes (None)."""
        state["changed"] = None

    def apply(self, case: Case) -> None:
        case.household_size = self.household_size
        case.budgets = [*case.budgets, _budget_version(self, self.reason)]
        _resolve_proposals(case, kinds=("budget_change",))  # the caseworker acted on it


class ReviewCompleted(CaseEvent):
    """A periodic review was held."""

    outcome: str
    next_review_due: date

    def apply(self, case: Case) -> None:
        case.last_review_on = self.effective_date
        case.next_review_due = self.next_review_due


class CaseHandedOver(CaseEvent):
    """The case moved to another social region with its full history."""

    from_region: str
    to_region: str
    to_municipality_bfs: int

    def apply(self, case: Case) -> None:
        handover = Handover(
            self.from_region, self.to_region, self.to_municipality_bfs, self.effective_date
        )
        case.handovers = [*case.handovers, handover]
        case.social_region = self.to_region
        case.municipality_bfs = self.to_municipality_bfs
        _resolve_proposals(case, kinds=("handover",))


class CaseClosed(CaseEvent):
    """The case was closed (Ablösung)."""

    reason: str

    def apply(self, case: Case) -> None:
        case.closure = {"reason": self.reason, "closed_on": self.effective_date}
        if case.support_periods and case.support_periods[-1].until is None:
            last = replace(case.support_periods[-1], until=self.effective_date)
            case.support_periods = [*case.support_periods[:-1], last]
        case.measures = {
            key: replace(
                measure,
                status="broken_off",
                end_date=self.effective_date,
                break_off_reason="case_closed",
            )
            if measure.status == "running"
            else measure
            for key, measure in case.measures.items()
        }
        _resolve_proposals(case, kinds=("handover", "closure"))
        case.phase = "closed"


class CaseReopened(CaseEvent):
    """A closed case was reopened; it needs a new assessment and decision."""

    reason: str

    def apply(self, case: Case) -> None:
        case.reopenings = [*case.reopenings, {"on": self.effective_date, "reason": self.reason}]
        case.closure = None
        case.assessment = None
        case.decision = None
        case.phase = "intake"


class HandoverProposed(CaseEvent):
    """A connected register reported a move to a municipality of another social region: the
    case's work list proposes a handover (the effective date is the move's)."""

    external_reference: str
    source: str
    to_municipality_bfs: int
    to_region: str

    def apply(self, case: Case) -> None:
        _add_proposal(
            case,
            Proposal(
                external_reference=self.external_reference,
                kind="handover",
                source=self.source,
                proposed_on=self.effective_date,
                reason="moved",
                to_municipality_bfs=self.to_municipality_bfs,
                to_region=self.to_region,
            ),
        )


class ClosureProposed(CaseEvent):
    """A connected register reported a death or a move out of the canton: the case's work
    list proposes closing it (the effective date is the death's or the move's)."""

    external_reference: str
    source: str
    reason: str

    def apply(self, case: Case) -> None:
        _add_proposal(
            case,
            Proposal(
                external_reference=self.external_reference,
                kind="closure",
                source=self.source,
                proposed_on=self.effective_date,
                reason=self.reason,
            ),
        )


class ProposalDismissed(CaseEvent):
    """A caseworker dismissed a proposal; it leaves the work list."""

    external_reference: str
    reason: str

    def apply(self, case: Case) -> None:
        proposal = proposals_of(case)[self.external_reference]
        case.proposals = {
            **proposals_of(case),
            self.external_reference: replace(proposal, status="dismissed"),
        }


class AdvanceStarted(CaseEvent):
    """The case advances living costs in view of a pending benefit application of a household
    member, from the effective date, with the person's commitment or payment order."""

    application_id: UUID
    benefit_kind: str
    person_id: UUID
    commitment_kind: str
    commitment_date: date

    def apply(self, case: Case) -> None:
        advance = Advance(
            application_id=self.application_id,
            benefit_kind=self.benefit_kind,
            person_id=self.person_id,
            commitment_kind=self.commitment_kind,
            commitment_date=self.commitment_date,
            started_on=self.effective_date,
        )
        case.advances = [*advances_of(case), advance]


class AdvanceEnded(CaseEvent):
    """An advance ended on the effective date: the application was decided or withdrawn, or
    the case closed."""

    application_id: UUID
    reason: str

    def apply(self, case: Case) -> None:
        case.advances = [
            replace(a, ended_on=self.effective_date, end_reason=self.reason)
            if a.application_id == self.application_id and a.is_open
            else a
            for a in advances_of(case)
        ]


class ReimbursementRecorded(CaseEvent):
    """The social service's claim on an EL back-payment for the months it advanced (ELV Art.
    22 para. 4 and 5), or a correction of it: every month's figures as known when computed,
    the corrections to what was recorded before, and the corrections' totals."""

    application_id: UUID
    months: list[ClaimFigures]
    corrections: list[ClaimFigures]
    claim_total: Decimal
    surplus_total: Decimal
    ipv_offset_total: Decimal

    def apply(self, case: Case) -> None:
        claim = Claim(self.application_id, self.effective_date, list(self.months),
                      list(self.corrections), self.claim_total, self.surplus_total,
                      self.ipv_offset_total, case_version=self.originator_version)
        case.claims = [*claims_of(case), claim]


class ReimbursementPaid(CaseEvent):
    """The fund paid a recorded claim (or correction), reported back over the decisions topic
    (`ClaimPaid`): `to_region` to the social region, `to_person` to the person, in its payment
    file `message_id`; the effective date is the day it paid. A negative total is not paid
    (it is to be returned) and shows as 0."""

    application_id: UUID
    claim_version: int
    """The version of the claim's `ReimbursementRecorded` in this case."""
    to_region: Decimal
    to_person: Decimal
    message_id: str

    def apply(self, case: Case) -> None:
        case.claims = [
            replace(c, paid_on=self.effective_date, paid_to_region=self.to_region,
                    paid_to_person=self.to_person, payment_message_id=self.message_id)
            if c.case_version == self.claim_version else c
            for c in claims_of(case)
        ]


class BudgetChangeProposed(CaseEvent):
    """A benefit decision (EL with a monthly amount) proposes counting the benefit as income
    in the budget from `from_month` (the decision's month); a caseworker changes the budget or
    dismisses the proposal, never automatically. The effective date is the decision's day."""

    external_reference: str
    source: str
    reason: str
    income: Decimal
    from_month: date

    def apply(self, case: Case) -> None:
        _add_proposal(
            case,
            Proposal(
                external_reference=self.external_reference,
                kind="budget_change",
                source=self.source,
                proposed_on=self.effective_date,
                reason=self.reason,
                income=self.income,
            ),
        )


EVENT_TYPES: tuple[type[Any], ...] = (
    CaseOpened,
    AssessmentCompleted,
    SupportGranted,
    SupportRefused,
    GoalAgreed,
    GoalAchieved,
    GoalMissed,
    MeasureStarted,
    MeasureCompleted,
    MeasureBrokenOff,
    BudgetChanged,
    ReviewCompleted,
    CaseHandedOver,
    CaseClosed,
    CaseReopened,
    HandoverProposed,
    ClosureProposed,
    ProposalDismissed,
    AdvanceStarted,
    AdvanceEnded,
    ReimbursementRecorded,
    BudgetChangeProposed,
    ReimbursementPaid,
)
"""Every case event type."""


def _budget_version(event: SupportGranted | BudgetChanged, reason: str) -> BudgetVersion:
    changed = event.changed if isinstance(event, BudgetChanged) else None
    return BudgetVersion(
        effective_date=event.effective_date,
        lines=list(event.lines),
        total=event.total,
        reason=reason,
        recorded_at=event.timestamp,
        changed=None if changed is None else list(changed),
    )


def _add_proposal(case: Case, proposal: Proposal) -> None:
    case.proposals = {**proposals_of(case), proposal.external_reference: proposal}


def _resolve_proposals(case: Case, *, kinds: tuple[str, ...]) -> None:
    case.proposals = {
        key: replace(p, status="resolved") if p.status == "open" and p.kind in kinds else p
        for key, p in proposals_of(case).items()
    }


def proposals_of(case: Case) -> dict[str, Proposal]:
    """The case's proposals by external reference (none in a snapshot taken before
    proposals existed)."""
    return getattr(case, "proposals", {})


def claims_of(case: Case) -> list[Claim]:
    """The case's recorded reimbursement computations, in the order recorded (none in a
    snapshot taken before claims existed)."""
    return getattr(case, "claims", [])


def advances_of(case: Case) -> list[Advance]:
    """The case's advances in view of a benefit, in the order started (none in a snapshot
    taken before advances existed)."""
    return getattr(case, "advances", [])


def _resolve_goal(case: Case, goal_id: UUID, status: str, on: date) -> None:
    goal = case.goals[goal_id.hex]
    case.goals = {**case.goals, goal_id.hex: replace(goal, status=status, resolved_on=on)}


def _end_measure(case: Case, measure_id: UUID, status: str, on: date, reason: str | None) -> None:
    measure = case.measures[measure_id.hex]
    ended = replace(measure, status=status, end_date=on, break_off_reason=reason)
    case.measures = {**case.measures, measure_id.hex: ended}


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")

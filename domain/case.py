"""The social-assistance case: the aggregate that enforces the harmonised case process.

intake → assessment → decision (granted | refused) → goals, measures, budget changes, reviews,
handovers → closure → (reopening). Each public method checks the rules, then triggers one
event; a refused command raises and triggers nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from domain.basic_needs import ADJUSTMENT_REASON, adjustment_for
from domain.budget import BudgetLine, compute_budget, priced_household_size
from domain.commands import (
    Actor,
    AdjustBasicNeeds,
    AgreeGoal,
    BreakOffMeasure,
    CaseCommand,
    ChangeBudget,
    CloseCase,
    CompleteAssessment,
    CompleteMeasure,
    CompleteReview,
    DismissProposal,
    EndAdvance,
    GrantSupport,
    HandOverCase,
    OpenCase,
    PersonInput,
    ProposeClosure,
    ProposeHandover,
    RecordGoalOutcome,
    RecordReimbursement,
    RecordReimbursementPaid,
    RefuseSupport,
    ReopenCase,
    StartAdvance,
    StartMeasure,
)
from domain.entitlement import budget_in_force, line_changes, month_of
from domain.errors import RuleViolationError
from domain.events import (
    Advance,
    AdvanceEnded,
    AdvanceStarted,
    AssessmentCompleted,
    BudgetChanged,
    BudgetChangeProposed,
    BudgetVersion,
    CaseClosed,
    CaseEvent,
    CaseHandedOver,
    CaseOpened,
    CaseReopened,
    Claim,
    ClosureProposed,
    Goal,
    GoalAchieved,
    GoalAgreed,
    GoalMissed,
    Handover,
    HandoverProposed,
    Measure,
    MeasureBrokenOff,
    MeasureCompleted,
    MeasureStarted,
    Person,
    Proposal,
    ProposalDismissed,
    ReimbursementPaid,
    ReimbursementRecorded,
    ReviewCompleted,
    SupportGranted,
    SupportPeriod,
    SupportRefused,
    add_months,
    advances_of,
    claims_of,
    proposals_of,
)
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity, ImportOrigin
from domain.money import ZERO, chf
from domain.personal_data import PersonalData
from domain.reference import ReferenceData
from domain.reimbursement import (
    AdvancePeriod,
    Reimbursement,
    claimed_so_far,
    compute_reimbursement,
)

__all__ = [
    "ADVANCE_BENEFIT_KINDS",
    "CANTON_WIDE_ACTORS",
    "FUTURE_LIMIT_DAYS",
    "PENDING_BENEFIT_STAGES",
    "PROPOSAL_ROLES",
    "RETROACTIVE_LIMIT_DAYS",
    "REVIEW_INTERVAL_MONTHS",
    "SWISS_TIME",
    "BenefitLookup",
    "BenefitOnRecord",
    "Case",
    "Recording",
    "acts_canton_wide",
    "may_act_on",
]

SWISS_TIME = ZoneInfo("Europe/Zurich")
RETROACTIVE_LIMIT_DAYS = 365
"""How far back a decision or budget change may take effect (back-payment or claim-back)."""
FUTURE_LIMIT_DAYS = 92
"""How far ahead a decision, budget change or handover may be dated."""
REVIEW_INTERVAL_MONTHS = 12
"""A supported case is reviewed at least this often."""

_CASEWORK_PHASES = ("supported",)
PROPOSAL_ROLES = ("system",)
"""Who may put a proposal on a work list: connected registers act as system actors (e.g.
`population-register:system:so-canton`); a caseworker acts on a case directly instead."""


ADVANCE_BENEFIT_KINDS = ("el_ahv", "el_iv")
"""Benefits social assistance is advanced in view of: EL covers living costs as social
assistance does (SKOS F.2, sachliche Kongruenz); a premium reduction does not."""
PENDING_BENEFIT_STAGES = ("received", "forwarded")
"""The stages of a benefit application that is pending (not yet decided nor withdrawn)."""
_DECIDED_STAGES = ("granted", "refused", "ended")


@dataclass(frozen=True)
class BenefitOnRecord:
    """What the case needs to know of a benefit application to advance in view of it (from
    the benefits store; no personal data): its id, kind, applicant's person id and stage
    (received, forwarded, granted, refused, ended or withdrawn)."""

    application_id: UUID
    kind: str
    applicant_id: UUID
    stage: str


BenefitLookup = Callable[[UUID], BenefitOnRecord]
"""The benefit application with an id, as the benefits store knows it now
(`BenefitService.on_record`); ApplicationNotFoundError if there is none."""


@dataclass(frozen=True)
class Recording:
    """When the core records a command's events, whether they come from a legacy import, who
    the recording edge established the issuer to be, and where imported history came from."""

    recorded_at: datetime
    imported: bool = False
    recorded_by: EstablishedIdentity = UNKNOWN_IDENTITY
    origin: ImportOrigin | None = None

    @property
    def today(self) -> date:
        """The recording day in Swiss time: the default effective date."""
        return self.recorded_at.astimezone(SWISS_TIME).date()


class Case(Aggregate):
    """A social-assistance case of one household."""

    municipality_bfs: int
    social_region: str
    household_size: int
    applicant: Person
    other_members: list[Person]
    opened_on: date
    phase: str

    def __init__(self) -> None:
        self.assessment: dict[str, Any] | None = None
        self.decision: dict[str, Any] | None = None
        self.budgets: list[BudgetVersion] = []
        self.support_periods: list[SupportPeriod] = []
        self.goals: dict[str, Goal] = {}
        self.measures: dict[str, Measure] = {}
        self.last_review_on: date | None = None
        self.next_review_due: date | None = None
        self.handovers: list[Handover] = []
        self.closure: dict[str, Any] | None = None
        self.reopenings: list[dict[str, Any]] = []
        self.proposals: dict[str, Proposal] = {}
        self.advances: list[Advance] = []
        self.claims: list[Claim] = []

    # --- intake --------------------------------------------------------------------------

    @classmethod
    def open(cls, cmd: OpenCase, rec: Recording, reference: ReferenceData) -> Case:
        """Intake: open a case in the social region of the household's municipality."""
        region = reference.municipality(cmd.municipality_bfs).region_id
        _authorise(cmd.actor, region)
        effective = cmd.application_date or rec.today
        _within(effective, rec, "application_date", back=RETROACTIVE_LIMIT_DAYS, ahead=0)
        members = [_person(cmd.applicant), *(_person(m) for m in cmd.other_members)]
        if len({m.person_id for m in members}) != len(members) or len(
            {m.ahvn13 for m in members}
        ) != len(members):
            _refuse("distinct-persons", "other_members: a person appears twice in the household")
        return cls._create(
            CaseOpened,
            id=cmd.case_id or uuid4(),
            timestamp=rec.recorded_at,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
            effective_date=effective,
            imported=rec.imported,
            recorded_by=rec.recorded_by,
            import_origin=rec.origin,
            municipality_bfs=cmd.municipality_bfs,
            social_region=region,
            household_size=cmd.household_size,
            applicant=members[0],
            other_members=members[1:],
            household_structure=cmd.household_structure,
        )

    # --- assessment and decision ---------------------------------------------------------

    def complete_assessment(self, cmd: CompleteAssessment, rec: Recording) -> None:
        """Record the initial assessment (Erstabklärung)."""
        self._require_phase(cmd, rec, ("intake",), "assessment-once-per-intake")
        effective = self._effective(cmd.assessment_date, rec, "assessment_date")
        self._trigger(
            AssessmentCompleted,
            cmd,
            rec,
            effective,
            needs=list(cmd.needs),
            employability=cmd.employability,
        )

    def grant_support(self, cmd: GrantSupport, rec: Recording, reference: ReferenceData) -> None:
        """Decide to grant support with a monthly budget from `support_from`."""
        self._require_phase(cmd, rec, ("assessed",), "decision-requires-assessment")
        decided = self._effective(cmd.decision_date, rec, "decision_date")
        # Support may start with the month in which the household applied (or reapplied), and
        # never inside an earlier support period of the same case.
        earliest = (self.reopenings[-1]["on"] if self.reopenings else self.opened_on).replace(day=1)
        if self.support_periods and self.support_periods[-1].until is not None:
            earliest = max(earliest, self.support_periods[-1].until + timedelta(days=1))
        self._check_budget_date(cmd.support_from, rec, "support_from", earliest=earliest)
        budget = compute_budget(
            reference.skos,
            effective_date=cmd.support_from,
            household_size=self.household_size,
            housing=cmd.housing,
            health_insurance=cmd.health_insurance,
            income=cmd.income,
        )
        if budget.total <= 0:
            _refuse(
                "no-entitlement",
                f"income: the budget comes to CHF {budget.total}; with no need, refuse support",
            )
        self._trigger(
            SupportGranted,
            cmd,
            rec,
            cmd.support_from,
            lines=list(budget.lines),
            total=budget.total,
            decision_date=decided,
        )

    def refuse_support(self, cmd: RefuseSupport, rec: Recording) -> None:
        """Decide to refuse support, with reasons."""
        self._require_phase(cmd, rec, ("assessed",), "decision-requires-assessment")
        effective = self._effective(cmd.decision_date, rec, "decision_date")
        self._trigger(SupportRefused, cmd, rec, effective, reasons=list(dict.fromkeys(cmd.reasons)))

    # --- goals and measures --------------------------------------------------------------

    def agree_goal(self, cmd: AgreeGoal, rec: Recording) -> None:
        """Add a goal to the goal agreement (Zielvereinbarung)."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "goals-require-support")
        effective = self._effective(cmd.agreed_on, rec, "agreed_on")
        goal_id = cmd.goal_id or uuid4()
        if goal_id.hex in self.goals:
            _refuse("distinct-goals", f"goal_id: goal {goal_id} was agreed already")
        if cmd.due_date <= effective:
            _refuse("goal-due-after-agreement", "due_date: must lie after the day it was agreed")
        self._trigger(
            GoalAgreed,
            cmd,
            rec,
            effective,
            goal_id=goal_id,
            category=cmd.category,
            title=cmd.title,
            due_date=cmd.due_date,
        )

    def record_goal_outcome(self, cmd: RecordGoalOutcome, rec: Recording) -> None:
        """Record that a goal was achieved or missed."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "goals-require-support")
        goal = self.goals.get(cmd.goal_id.hex)
        if goal is None:
            _refuse("known-goal", f"goal_id: case has no goal {cmd.goal_id}")
        if goal.status != "open":
            _refuse("goal-resolved-once", f"goal_id: goal {cmd.goal_id} is already {goal.status}")
        effective = self._effective(cmd.outcome_date, rec, "outcome_date", earliest=goal.agreed_on)
        event_class = GoalAchieved if cmd.outcome == "achieved" else GoalMissed
        self._trigger(event_class, cmd, rec, effective, goal_id=cmd.goal_id)

    def start_measure(self, cmd: StartMeasure, rec: Recording) -> None:
        """Start an integration measure."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "measures-require-support")
        effective = self._effective(cmd.start_date, rec, "start_date", ahead=FUTURE_LIMIT_DAYS)
        measure_id = cmd.measure_id or uuid4()
        if measure_id.hex in self.measures:
            _refuse("distinct-measures", f"measure_id: measure {measure_id} was started already")
        self._trigger(MeasureStarted, cmd, rec, effective, measure_id=measure_id, kind=cmd.kind)

    def complete_measure(self, cmd: CompleteMeasure, rec: Recording) -> None:
        """Record that an integration measure was completed."""
        measure = self._running_measure(cmd, rec, cmd.measure_id)
        effective = self._effective(cmd.end_date, rec, "end_date", earliest=measure.start_date)
        self._trigger(MeasureCompleted, cmd, rec, effective, measure_id=cmd.measure_id)

    def break_off_measure(self, cmd: BreakOffMeasure, rec: Recording) -> None:
        """Record that an integration measure was broken off."""
        measure = self._running_measure(cmd, rec, cmd.measure_id)
        effective = self._effective(cmd.end_date, rec, "end_date", earliest=measure.start_date)
        self._trigger(
            MeasureBrokenOff, cmd, rec, effective, measure_id=cmd.measure_id, reason=cmd.reason
        )

    # --- budget and review ---------------------------------------------------------------

    def change_budget(self, cmd: ChangeBudget, rec: Recording, reference: ReferenceData) -> None:
        """Change the budget from an effective date (retroactive within the limit)."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "budget-requires-support")
        support_start = self.support_periods[-1].start
        self._check_budget_date(cmd.effective_date, rec, "effective_date", earliest=support_start)
        household_size = cmd.household_size or self.household_size
        if household_size < 1 + len(self.other_members):
            _refuse(
                "household-fits-members",
                f"household_size: {household_size} is fewer than the recorded members",
            )
        stated = compute_budget(
            reference.skos,
            effective_date=cmd.effective_date,
            household_size=household_size,
            housing=cmd.housing,
            health_insurance=cmd.health_insurance,
            income=cmd.income,
        )
        # Only the lines whose amount differs from the one in force on the effective date
        # change; the others keep their own timelines (domain.entitlement). Basic needs are
        # re-priced only for another household size: a new year's rate reaches them by the
        # yearly adjustment, never as a side effect of an unrelated change (issue 19).
        in_force = budget_in_force(self.budgets, cmd.effective_date)
        before = {line.code: line.amount for line in in_force.lines} if in_force else {}
        kept = {line.code: line for line in in_force.lines} if in_force else {}
        if not self._household_changes(kept.get("basic_needs"), household_size):
            stated = replace(stated, lines=tuple(
                kept["basic_needs"] if line.code == "basic_needs" else line
                for line in stated.lines))
        changed = [line for line in stated.lines if before.get(line.code) != line.amount]
        for line in changed:
            self._check_no_stale_later_change(line, cmd.effective_date)
        lines = [line if line in changed else kept.get(line.code, line) for line in stated.lines]
        self._trigger(
            BudgetChanged,
            cmd,
            rec,
            cmd.effective_date,
            lines=lines,
            total=chf(sum((line.amount for line in lines), ZERO)),
            reason=cmd.reason,
            household_size=household_size,
            changed=[line.code for line in changed],
        )

    def _household_changes(self, basic_needs: BudgetLine | None, household_size: int) -> bool:
        """Whether `household_size` differs from the size the basic-needs line in force was
        priced for (its basis; else the case's recorded size); True without such a line."""
        if basic_needs is None:
            return True
        priced = priced_household_size(basic_needs) or self.household_size
        return household_size != priced

    def adjust_basic_needs(
        self, cmd: AdjustBasicNeeds, rec: Recording, reference: ReferenceData
    ) -> None:
        """The yearly adjustment (`domain.basic_needs`): basic needs at `cmd.year`'s rate from
        1 January for the household size the line in force was priced for, changing only that
        line; nothing is recorded where there is nothing to adjust. A system actor's command."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "budget-requires-support")
        if cmd.actor.role != "system":
            _refuse("adjustment-by-system",
                    f"actor.role: {cmd.actor.role} may not adjust basic needs; the yearly "
                    "adjustment is recorded by a system actor (budgets adjust-basic-needs)")
        adjustment = adjustment_for(self.budgets, self.support_periods, cmd.year,
                                    reference.skos, self.household_size)
        if adjustment is None:
            return
        effective = adjustment.effective_date
        self._check_budget_date(effective, rec, "year", earliest=self.support_periods[-1].start)
        self._check_no_stale_later_change(adjustment.line, effective)
        in_force = budget_in_force(self.budgets, effective)
        assert in_force is not None  # adjustment_for found basic needs in force
        lines = [adjustment.line if line.code == "basic_needs" else line
                 for line in in_force.lines]
        self._trigger(
            BudgetChanged,
            cmd,
            rec,
            effective,
            lines=lines,
            total=chf(sum((line.amount for line in lines), ZERO)),
            reason=ADJUSTMENT_REASON,
            household_size=self.household_size,
            changed=["basic_needs"],
        )

    def _check_no_stale_later_change(self, line: BudgetLine, effective: date) -> None:
        """Refuse a change of a line that the next later-effective change of that line, a
        whole-budget version (recorded before lines had timelines of their own), restates at
        the amount this change replaces: from that version on the change would silently be
        undone (issue 19). A later change that names the line changed it on purpose: it stands."""
        changes = line_changes(self.budgets, line.code)  # in recording order
        later = [(v.effective_date, -i, v) for i, v in enumerate(changes)
                 if v.effective_date > effective]
        if not later:
            return
        _, _, first = min(later, key=lambda item: item[:2])  # a later recording wins ties
        restated = _line_amount(first, line.code)
        replaced = _line_amount(
            budget_in_force(self.budgets, first.effective_date - timedelta(days=1)), line.code)
        if first.changed is None and restated != line.amount and restated == replaced:
            _refuse(
                "budget-line-collision",
                f"{line.code}: the budget version effective {first.effective_date} (recorded "
                f"{first.recorded_at.astimezone(SWISS_TIME):%Y-%m-%d %H:%M}) restates "
                f"{line.code} at CHF {restated}, the amount this change replaces, and would undo "
                f"it from {first.effective_date}; record {line.code} CHF {line.amount} from "
                f"{first.effective_date} first, then this change",
            )

    def complete_review(self, cmd: CompleteReview, rec: Recording) -> None:
        """Record a periodic review; the next one is due within the review interval."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "review-requires-support")
        earliest = self.last_review_on or self.support_periods[-1].start
        effective = self._effective(cmd.review_date, rec, "review_date", earliest=earliest)
        self._trigger(
            ReviewCompleted,
            cmd,
            rec,
            effective,
            outcome=cmd.outcome,
            next_review_due=add_months(effective, REVIEW_INTERVAL_MONTHS),
        )

    # --- handover, closure, reopening ----------------------------------------------------

    def hand_over(self, cmd: HandOverCase, rec: Recording, reference: ReferenceData) -> None:
        """Hand the case over to the social region of the household's new municipality."""
        self._require_open(cmd, rec)
        to_region = reference.municipality(cmd.to_municipality_bfs).region_id
        if to_region == self.social_region:
            _refuse(
                "handover-to-other-region",
                f"to_municipality_bfs: {cmd.to_municipality_bfs} belongs to {to_region}, "
                "the case's own social region",
            )
        effective = self._effective(
            cmd.effective_date, rec, "effective_date", ahead=FUTURE_LIMIT_DAYS
        )
        self._trigger(
            CaseHandedOver,
            cmd,
            rec,
            effective,
            from_region=self.social_region,
            to_region=to_region,
            to_municipality_bfs=cmd.to_municipality_bfs,
        )

    def close(self, cmd: CloseCase, rec: Recording) -> None:
        """Close the case (Ablösung) with a reason from the fixed list; every open advance
        ends with it (reason case_closed)."""
        self._require_open(cmd, rec)
        effective = self._effective(cmd.closing_date, rec, "closing_date")
        for advance in [a for a in advances_of(self) if a.is_open]:
            self._trigger(AdvanceEnded, cmd, rec, max(effective, advance.started_on),
                          application_id=advance.application_id, reason="case_closed")
        self._trigger(CaseClosed, cmd, rec, effective, reason=cmd.reason)

    def reopen(self, cmd: ReopenCase, rec: Recording) -> None:
        """Reopen a closed case; it starts again with an assessment."""
        self._check_common(cmd, rec)
        if self.phase != "closed":
            _refuse("reopen-requires-closed", f"case {self.id} is not closed (phase {self.phase})")
        assert self.closure is not None
        earliest = self.closure["closed_on"]
        effective = self._effective(cmd.reopening_date, rec, "reopening_date", earliest=earliest)
        self._trigger(CaseReopened, cmd, rec, effective, reason=cmd.reason)

    # --- advances in view of a benefit ----------------------------------------------------

    def start_advance(self, cmd: StartAdvance, rec: Recording, benefits: BenefitLookup) -> None:
        """Advance living costs in view of a pending EL application of the case's applicant or
        a household member (SKOS F.2: only with the person's written commitment or payment
        order; one open advance per application). The case's own rules are checked before
        the application is looked up in `benefits`."""
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "advance-requires-support")
        if cmd.commitment_kind is None or cmd.commitment_date is None:
            missing = "commitment_kind" if cmd.commitment_kind is None else "commitment_date"
            _refuse("advance-requires-commitment",
                    f"{missing}: an advance needs the person's written commitment or payment "
                    "order, its kind and date (SKOS F.2)")
        _within(cmd.commitment_date, rec, "commitment_date", back=None, ahead=0)
        if self._open_advance(cmd.application_id) is not None:
            _refuse("one-open-advance-per-application",
                    f"application_id: the case advances in view of {cmd.application_id} "
                    "already")
        start = cmd.advance_from
        _within(start, rec, "advance_from", back=RETROACTIVE_LIMIT_DAYS, ahead=0)
        if start < self.support_periods[-1].start:
            _refuse("advance-within-support",
                    f"advance_from: {start} lies before the support began "
                    f"({self.support_periods[-1].start})")
        benefit = _benefit(benefits, cmd.application_id)
        if benefit.kind not in ADVANCE_BENEFIT_KINDS:
            _refuse("advance-in-view-of-el",
                    f"application_id: {benefit.application_id} is an application for "
                    f"{benefit.kind}; advances are made in view of EL only")
        if benefit.stage not in PENDING_BENEFIT_STAGES:
            _refuse("advance-for-pending-application",
                    f"application_id: {benefit.application_id} is {benefit.stage}, not pending")
        members = {m.person_id for m in (self.applicant, *self.other_members)}
        if benefit.applicant_id not in members:
            _refuse("advance-for-household-member",
                    f"application_id: the applicant of {benefit.application_id} is not a "
                    "member of the case's household")
        self._trigger(AdvanceStarted, cmd, rec, start, application_id=benefit.application_id,
                      benefit_kind=benefit.kind, person_id=benefit.applicant_id,
                      commitment_kind=cmd.commitment_kind,
                      commitment_date=cmd.commitment_date)

    def end_advance(self, cmd: EndAdvance, rec: Recording, benefits: BenefitLookup) -> None:
        """End the open advance in view of an application that was decided or withdrawn (its
        stage as `benefits` knows it says which)."""
        self._require_open(cmd, rec)
        advance = self._open_advance(cmd.application_id)
        if advance is None:
            _refuse("open-advance",
                    f"application_id: the case has no open advance in view of "
                    f"{cmd.application_id}")
        ended = self._effective(cmd.ended_on, rec, "ended_on", earliest=advance.started_on)
        benefit = _benefit(benefits, cmd.application_id)
        expected = _DECIDED_STAGES if cmd.reason == "decided" else ("withdrawn",)
        if benefit.stage not in expected:
            _refuse("advance-ends-with-application",
                    f"reason: {cmd.reason} does not fit application {benefit.application_id}, "
                    f"which is {benefit.stage}")
        self._trigger(AdvanceEnded, cmd, rec, ended, application_id=advance.application_id,
                      reason=cmd.reason)

    def record_reimbursement(self, cmd: RecordReimbursement, rec: Recording) -> None:
        """The EL decision on an application the case advanced for: end the open advance
        (reason `decided`), record the claim or its correction (only what differs from what
        was recorded before: the same facts twice record nothing) and propose the budget
        follow the decision (never applied). Refused `advance-for-application` without an
        advance for the application; a system actor's command (`reimbursement-by-system`)."""
        if cmd.actor.role not in PROPOSAL_ROLES:
            _refuse("reimbursement-by-system",
                    f"actor.role: {cmd.actor.role} may not record reimbursements; the "
                    "claims process does (role system)")
        advance = self._last_advance(cmd.application_id)
        if advance is None:
            _refuse("advance-for-application",
                    f"application_id: the case advanced nothing in view of {cmd.application_id}")
        if advance.is_open:
            ended = max(cmd.decided_on, advance.started_on)
            self._trigger(AdvanceEnded, cmd, rec, ended, application_id=advance.application_id,
                          reason="decided")
            advance = self._last_advance(cmd.application_id)
            assert advance is not None
        self._record_claim(cmd, rec, AdvancePeriod(advance.started_on, advance.ended_on))
        self._propose_budget(cmd, rec)

    def _record_claim(self, cmd: RecordReimbursement, rec: Recording,
                      period: AdvancePeriod) -> None:
        before = claimed_so_far(
            Reimbursement((), tuple(claim.corrections))
            for claim in claims_of(self) if claim.application_id == cmd.application_id)
        computed = compute_reimbursement(period, cmd.el, cmd.paid, ipv=cmd.ipv, before=before)
        if not computed.claims_something:
            return
        self._trigger(ReimbursementRecorded, cmd, rec, rec.today,
                      application_id=cmd.application_id,
                      months=list(computed.months), corrections=list(computed.corrections),
                      claim_total=computed.claim_total, surplus_total=computed.surplus_total,
                      ipv_offset_total=computed.ipv_offset_total)

    def _propose_budget(self, cmd: RecordReimbursement, rec: Recording) -> None:
        """A budget change counting the EL as income from the decision's month, or a closure
        (`other_insurance`) where the EL covers the budget in force in the decision's month
        (as known now); due from the decision's day; once per application, month and amount
        (an amended amount proposes anew)."""
        from_month = month_of(cmd.decided_on)
        budget = budget_in_force(self.budgets, from_month)
        if self.phase not in _CASEWORK_PHASES or cmd.monthly_el <= 0 or budget is None:
            return
        reference = f"el:{cmd.application_id}:{from_month:%Y-%m}:{cmd.monthly_el}"
        if reference in proposals_of(self):
            return
        fields: dict[str, Any] = {"external_reference": reference, "source": "el_decision",
                                  "reason": "other_insurance"}
        if cmd.monthly_el >= budget.total:
            self._trigger(ClosureProposed, cmd, rec, cmd.decided_on, **fields)
        else:
            self._trigger(BudgetChangeProposed, cmd, rec, cmd.decided_on, income=cmd.monthly_el,
                          from_month=from_month, **fields)

    def record_reimbursement_paid(self, cmd: RecordReimbursementPaid, rec: Recording) -> None:
        """The fund paid a recorded claim: the claim at `claim_version` must be one of
        `application_id` (`known-claim`), paid as claimed — max(claim_total, 0) to the region,
        max(surplus_total, 0) to the person (`paid-as-claimed`) — not before it was recorded,
        and only once (`claim-paid-once`): the same payment file again records nothing, another
        is refused. A closed case still records it; a system actor's command
        (`reimbursement-paid-by-system`)."""
        if cmd.actor.role not in PROPOSAL_ROLES:
            _refuse("reimbursement-paid-by-system",
                    f"actor.role: {cmd.actor.role} may not record payments of claims; the "
                    "fund's connector does (role system)")
        self._check_common(cmd, rec)
        claim = next((c for c in claims_of(self) if c.case_version == cmd.claim_version), None)
        if claim is None:
            _refuse("known-claim",
                    f"claim_version: case {self.id} recorded no claim at version "
                    f"{cmd.claim_version}")
        if claim.application_id != cmd.application_id:
            _refuse("known-claim",
                    f"application_id: the claim at version {cmd.claim_version} is of "
                    f"application {claim.application_id}, not {cmd.application_id}")
        _check_paid_as_claimed(claim, cmd)
        if claim.payment_message_id == cmd.message_id:
            return  # the same payment reported again
        if claim.is_paid:
            _refuse("claim-paid-once",
                    f"message_id: the claim at version {cmd.claim_version} was paid in "
                    f"{claim.payment_message_id!r} already, not again in {cmd.message_id!r}")
        paid_on = self._effective(cmd.paid_on, rec, "paid_on", earliest=claim.recorded_on,
                                  ahead=FUTURE_LIMIT_DAYS)
        self._trigger(ReimbursementPaid, cmd, rec, paid_on, application_id=cmd.application_id,
                      claim_version=cmd.claim_version, to_region=cmd.to_region,
                      to_person=cmd.to_person, message_id=cmd.message_id)

    def _last_advance(self, application_id: UUID) -> Advance | None:
        return next((a for a in reversed(advances_of(self))
                     if a.application_id == application_id), None)

    def _open_advance(self, application_id: UUID) -> Advance | None:
        return next((a for a in advances_of(self)
                     if a.application_id == application_id and a.is_open), None)

    # --- work-list proposals from connected registers -------------------------------------

    def propose_handover(
        self, cmd: ProposeHandover, rec: Recording, reference: ReferenceData
    ) -> None:
        """Put a handover to the new municipality's social region on the work list."""
        self._check_proposal(cmd, rec)
        to_region = reference.municipality(cmd.to_municipality_bfs).region_id
        if to_region == self.social_region:
            _refuse(
                "handover-to-other-region",
                f"to_municipality_bfs: {cmd.to_municipality_bfs} belongs to {to_region}, "
                "the case's own social region",
            )
        effective = _reported_date(cmd.effective_date, rec)
        self._trigger(
            HandoverProposed,
            cmd,
            rec,
            effective,
            external_reference=cmd.external_reference,
            source=cmd.source,
            to_municipality_bfs=cmd.to_municipality_bfs,
            to_region=to_region,
        )

    def propose_closure(self, cmd: ProposeClosure, rec: Recording) -> None:
        """Put a closure (death, moved away) on the work list."""
        self._check_proposal(cmd, rec)
        effective = _reported_date(cmd.effective_date, rec)
        self._trigger(
            ClosureProposed,
            cmd,
            rec,
            effective,
            external_reference=cmd.external_reference,
            source=cmd.source,
            reason=cmd.reason,
        )

    def dismiss_proposal(self, cmd: DismissProposal, rec: Recording) -> None:
        """Take an open proposal off the work list without acting on it."""
        self._require_open(cmd, rec)
        proposal = proposals_of(self).get(cmd.external_reference)
        if proposal is None:
            _refuse(
                "known-proposal",
                f"external_reference: case has no proposal {cmd.external_reference!r}",
            )
        if proposal.status != "open":
            _refuse(
                "proposal-open",
                f"external_reference: proposal {cmd.external_reference!r} is {proposal.status}",
            )
        self._trigger(
            ProposalDismissed,
            cmd,
            rec,
            rec.today,
            external_reference=cmd.external_reference,
            reason=cmd.reason,
        )

    def _check_proposal(self, cmd: ProposeHandover | ProposeClosure, rec: Recording) -> None:
        # The same input record twice changes nothing: checked first, so a delivery read
        # again after the case was closed still counts as already applied.
        if cmd.external_reference in proposals_of(self):
            _refuse(
                "already-received",
                f"external_reference: {cmd.external_reference!r} was proposed already",
            )
        self._require_open(cmd, rec)
        if cmd.actor.role not in PROPOSAL_ROLES:
            _refuse(
                "proposal-from-connector",
                f"actor.role: {cmd.actor.role} may not make proposals; only a connected "
                "register (role system) does",
            )

    # --- helpers -------------------------------------------------------------------------

    def _trigger(
        self,
        event_class: type[CaseEvent],
        cmd: CaseCommand,
        rec: Recording,
        effective: date,
        **fields: Any,
    ) -> None:
        self.trigger_event(
            event_class,
            timestamp=rec.recorded_at,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
            effective_date=effective,
            imported=rec.imported,
            recorded_by=rec.recorded_by,
            import_origin=rec.origin,
            **fields,
        )

    def _check_common(self, cmd: CaseCommand, rec: Recording) -> None:
        if rec.recorded_at < self.modified_on:
            _refuse(
                "recorded-time-order",
                f"recorded_at: {rec.recorded_at.isoformat()} lies before the case's last "
                f"recorded event ({self.modified_on.isoformat()})",
            )
        _authorise(cmd.actor, self.social_region)

    def _require_open(self, cmd: CaseCommand, rec: Recording) -> None:
        self._check_common(cmd, rec)
        if self.phase == "closed":
            _refuse(
                "closed-case-only-reopens", f"case {self.id} is closed; only reopening is allowed"
            )

    def _require_phase(
        self, cmd: CaseCommand, rec: Recording, phases: tuple[str, ...], rule: str
    ) -> None:
        self._require_open(cmd, rec)
        if self.phase not in phases:
            _refuse(rule, f"{cmd.name} is not allowed in phase {self.phase!r}")

    def _running_measure(self, cmd: CaseCommand, rec: Recording, measure_id: UUID) -> Measure:
        self._require_phase(cmd, rec, _CASEWORK_PHASES, "measures-require-support")
        measure = self.measures.get(measure_id.hex)
        if measure is None:
            _refuse("known-measure", f"measure_id: case has no measure {measure_id}")
        if measure.status != "running":
            _refuse(
                "measure-ends-once", f"measure_id: measure {measure_id} is already {measure.status}"
            )
        return measure

    def _effective(
        self,
        given: date | None,
        rec: Recording,
        field: str,
        *,
        earliest: date | None = None,
        ahead: int = 0,
    ) -> date:
        effective = given or rec.today
        _within(effective, rec, field, back=None, ahead=ahead)
        floor = max(earliest or self.opened_on, self.opened_on)
        if effective < floor:
            _refuse("effective-date-order", f"{field}: {effective} lies before {floor}")
        return effective

    def _check_budget_date(self, day: date, rec: Recording, field: str, *, earliest: date) -> None:
        _within(day, rec, field, back=RETROACTIVE_LIMIT_DAYS, ahead=FUTURE_LIMIT_DAYS)
        if day < earliest:
            _refuse("budget-within-support", f"{field}: {day} lies before {earliest}")


def _line_amount(budget: BudgetVersion | None, code: str) -> Decimal | None:
    return next((line.amount for line in budget.lines if line.code == code), None) if (
        budget is not None) else None


def _benefit(benefits: BenefitLookup, application_id: UUID) -> BenefitOnRecord:
    benefit = benefits(application_id)
    if benefit.application_id != application_id:  # a wiring error, not the caller's
        raise ValueError(f"benefit {benefit.application_id} given for {application_id}")
    return benefit


def _check_paid_as_claimed(claim: Claim, cmd: RecordReimbursementPaid) -> None:
    """The fund pays the claim's totals, a negative one (to be returned) as nothing."""
    for field, paid, total in (("to_region", cmd.to_region, claim.claim_total),
                               ("to_person", cmd.to_person, claim.surplus_total)):
        owed = max(total, Decimal("0.00"))
        if paid != owed:
            _refuse("paid-as-claimed",
                    f"{field}: CHF {paid} paid, but the claim at version {cmd.claim_version} "
                    f"owes CHF {owed} (its total {total}; a negative total is paid as 0)")


def _person(data: PersonInput) -> PersonalData:
    fields = data.model_dump(exclude={"person_id"})
    return PersonalData(person_id=data.person_id or uuid4(), **fields)


CANTON_WIDE_ACTORS = frozenset({"administrator", "system"})
"""Roles that act on every region's cases; caseworkers and supervisors act on their own."""


def acts_canton_wide(actor: Actor) -> bool:
    """Whether `actor` holds a canton-wide role (`CANTON_WIDE_ACTORS`): they may act on the
    cases of every social region, and only they start payment runs."""
    return actor.role in CANTON_WIDE_ACTORS


def may_act_on(actor: Actor, region: str) -> bool:
    """Whether `actor` may record anything on a case of social region `region`: only the
    region the case belongs to now (during a handover the handing-over region, until the
    handover is recorded; from then on the receiving one), or a canton-wide role."""
    return acts_canton_wide(actor) or actor.organisation == region


def _authorise(actor: Actor, region: str) -> None:
    # Defence in depth: the services answer a case the actor may not act on as not found
    # before they get here (`CaseService.case_for`); a caller using the aggregate directly
    # still cannot record on another region's case.
    if not may_act_on(actor, region):
        _refuse(
            "actor-responsible",
            f"actor.organisation: {actor.organisation} is not responsible for cases of {region}",
        )


def _reported_date(day: date, rec: Recording) -> date:
    # A register may report a move or death from before the case was opened (the household
    # applied in the old municipality): only the general limits apply, not the case's dates.
    _within(day, rec, "effective_date", back=RETROACTIVE_LIMIT_DAYS, ahead=FUTURE_LIMIT_DAYS)
    return day


def _within(day: date, rec: Recording, field: str, *, back: int | None, ahead: int) -> None:
    today = rec.today
    if day > today + timedelta(days=ahead):
        limit = "in the future" if ahead == 0 else f"more than {ahead} days ahead"
        _refuse("effective-date-limit", f"{field}: {day} lies {limit} (recorded on {today})")
    if back is not None and day < today - timedelta(days=back):
        _refuse(
            "retroactive-limit",
            f"{field}: {day} lies more than {back} days before the recording day {today}",
        )


def _refuse(rule: str, message: str) -> NoReturn:
    raise RuleViolationError(rule, message)

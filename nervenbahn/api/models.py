"""The API's answers (response models), one per endpoint, named in the business's words."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from nervenbahn.audit.access_log import APPLICANT_FIELDS
from projections.region import WorkItemKind

__all__ = [
    "APPLICANT_FIELDS",
    "AccessLogEntry",
    "AccessLogPage",
    "AdvanceQuarterFigures",
    "Applicant",
    "BacklogFigures",
    "BenefitApplicationDetail",
    "BenefitApplicationList",
    "BenefitApplicationSummary",
    "BenefitDecision",
    "BenefitKindName",
    "BenefitStage",
    "CantonAdvances",
    "CantonBacklog",
    "CantonQuarter",
    "Caseload",
    "ChfAmount",
    "DelegatedTaskView",
    "DelegationList",
    "DelegationView",
    "DocumentRequestView",
    "OfficeCaseDetail",
    "OfficeCaseList",
    "OfficeCaseSummary",
    "Phase",
    "QuarterFigures",
    "WorkItem",
    "WorkList",
]

Phase = Literal["intake", "assessed", "supported", "refused", "closed"]


class OfficeCaseSummary(BaseModel):
    """A case of the office's municipalities, without personal data."""

    case_id: str
    municipality_bfs: int
    municipality: str
    phase: Phase
    household_size: int
    support_since: date | None
    support_until: date | None


class OfficeCaseList(BaseModel):
    """A page of the office's cases, newest first."""

    office_id: str
    limit: int
    offset: int
    cases: list[OfficeCaseSummary]


class Applicant(BaseModel):
    """The applicant's personal data; every field reads "[erased]" after erasure."""

    person_id: str
    erased: bool
    given_name: str
    family_name: str
    ahvn13: str
    birth_date: str = Field(description='ISO date, or "[erased]"')
    street: str
    postal_code: str
    town: str


class OfficeCaseDetail(OfficeCaseSummary):
    """One case of the office's municipalities, with the applicant (the read is logged)."""

    social_region: str
    opened_on: date
    applicant: Applicant


BenefitStage = Literal["received", "forwarded", "granted", "refused", "ended", "withdrawn"]
BenefitKindName = Literal["el_ahv", "el_iv", "ipv"]


class DocumentRequestView(BaseModel):
    """Documents asked of the applicant on a day, due by a day; `open`: those still missing."""

    documents: list[str]
    requested_on: date
    due_on: date
    open: list[str]


class BenefitDecision(BaseModel):
    """The fund's decision: granted from a month (ended after `last_month`, if ended), or
    refused with a reason."""

    outcome: Literal["granted", "refused"]
    decided_on: date
    granted_from: date | None = Field(None, description="First day of the first month owed")
    last_month: date | None = Field(None, description="First day of the last month owed")
    refusal_reason: str | None = None


class BenefitApplicationSummary(BaseModel):
    """A benefit application of the office's municipalities, without personal data."""

    application_id: str
    kind: BenefitKindName
    municipality_bfs: int
    municipality: str
    stage: BenefitStage
    received_on: date
    days_since_receipt: int = Field(description="Days from receipt to today (Swiss time)")
    checked: bool = Field(description="The completeness check was made")
    missing_documents: list[str]
    open_document_requests: list[DocumentRequestView]
    forwarded_on: date | None
    decision: BenefitDecision | None


class BenefitApplicationList(BaseModel):
    """A page of the office's benefit applications, newest received first."""

    office_id: str
    today: date
    limit: int
    offset: int
    applications: list[BenefitApplicationSummary]


class BenefitApplicationDetail(BenefitApplicationSummary):
    """One application of the office, with the applicant (the read is logged)."""

    documents_present: list[str]
    document_requests: list[DocumentRequestView]
    applicant: Applicant


class DelegatedTaskView(BaseModel):
    """A forwarded application on which a live delegation lets the office do its task."""

    application_id: str
    task: str
    missing_documents: list[str]


class DelegationView(BaseModel):
    """A task the fund delegated to the office, its period and status today; `open_tasks`
    only while active."""

    delegation_id: str
    task: str
    valid_from: date
    valid_until: date
    revoked_on: date | None
    status: Literal["active", "not_yet_valid", "expired", "revoked"]
    open_tasks: list[DelegatedTaskView]


class DelegationList(BaseModel):
    """The delegations granted to the office, newest period first."""

    office_id: str
    today: date
    delegations: list[DelegationView]


class Caseload(BaseModel):
    """The social region's cases by phase."""

    region_id: str
    total: int
    by_phase: dict[str, int]


class WorkItem(BaseModel):
    """Something a caseworker of the region has to do by a date: an initial assessment, a
    periodic review, a goal's due date, a register's open proposal to hand the case over
    (`handover_proposal`, due from the reported move) or to close it (`closure_proposal`,
    due from the reported death or departure, or from an EL decision covering the needs), an
    EL decision's proposal to count it as income (`budget_proposal`, from the decision's
    month), or an open advance in view of EL (`advance`, from its first day; its age in the
    detail)."""

    kind: WorkItemKind = Field(
        description="assessment, review, goal, handover_proposal, closure_proposal, "
        "budget_proposal or advance"
    )
    case_id: str
    due: date
    overdue: bool
    detail: str


class WorkList(BaseModel):
    """A page of the assessments, reviews, goals and register proposals due or overdue in the
    region, soonest first."""

    region_id: str
    today: date
    total: int = Field(description="items in the whole work list, of which this is a page")
    limit: int
    offset: int
    items: list[WorkItem]


class AccessLogEntry(BaseModel):
    """One read of a person's data by a consumer."""

    id: int
    at: datetime
    consumer: str
    scope: str
    case_id: str
    person_id: str
    fields: list[str]
    endpoint: str


class AccessLogPage(BaseModel):
    """Access-log entries, oldest first; ask again with `gt` = the last id for more."""

    entries: list[AccessLogEntry]


class QuarterFigures(BaseModel):
    """A social region's (or the whole canton's) key figures for a quarter; counts only."""

    region: str = Field(description='A social region id, or "canton"')
    new_cases: int
    closed_cases: int
    closures_by_reason: dict[str, int]
    median_duration_days: float | None
    decisions: int
    median_days_to_decision: float | None
    supported_cases: int
    with_goal_agreement: int
    goal_agreement_share: float | None
    measures_started: int
    measures_completed: int


class CantonQuarter(BaseModel):
    """The canton's quarterly figures: the whole canton and each social region."""

    quarter: str
    canton: QuarterFigures
    regions: list[QuarterFigures]


ChfAmount = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$",
                                 description='CHF with two decimals, e.g. "1234.50"')]


class AdvanceQuarterFigures(BaseModel):
    """A social region's (or the canton's) advances in view of EL and their reimbursement in
    a quarter (definitions: docs/reporting.md, "Advances in view of EL")."""

    region: str = Field(description='A social region id, or "canton"')
    advances_open: int = Field(description="Advances running on the quarter's last day")
    advances_decided: int = Field(description="Advances ended in the quarter by the decision")
    median_days_to_decision: float | None = Field(
        description="Days from the advance's first day to the decision (median)")
    claims_recorded: int = Field(description="Claims and corrections recorded in the quarter")
    claimed_chf: ChfAmount = Field(description="CHF claimed by them, net of corrections")
    surplus_chf: ChfAmount = Field(description="CHF of the EL back-payments left to persons")
    reimbursements_paid: int = Field(description="Payments of the fund to the region")
    reimbursed_chf: ChfAmount = Field(description="CHF the fund paid to the social region")


class CantonAdvances(BaseModel):
    """The advances' figures of a quarter: the whole canton and each social region."""

    quarter: str
    canton: AdvanceQuarterFigures
    regions: list[AdvanceQuarterFigures]


class BacklogFigures(BaseModel):
    """A branch office's, social region's or the canton's backlog of benefit applications in
    an ISO week; counts, days and shares only (definitions: docs/benefits.md)."""

    unit_kind: Literal["canton", "region", "branch_office"]
    unit: str = Field(description='A branch office id, a social region id, or "canton"')
    week: str = Field(description="The ISO week, e.g. 2026-W49")
    received: int
    decided: int = Field(description="Granted or refused in the week (withdrawn: not decided)")
    withdrawn: int
    pending: int = Field(description="Neither decided nor withdrawn at the week's Sunday")
    pending_at_office: int
    pending_at_fund: int
    pending_over_target: int
    late_waiting_for_documents: int
    decided_within_target: int
    median_days_to_decision: float | None
    p90_days_to_decision: int | None = Field(description="Nearest-rank 90th percentile")
    share_decided_within_target: float | None
    share_late_waiting_for_documents: float | None


class CantonBacklog(BaseModel):
    """The backlog of benefit applications in a week: the canton, each social region, each
    branch office, against the named processing target."""

    week: str
    week_start: date
    week_end: date
    target_months: int = Field(description="The processing target, in calendar months")
    target: str = Field(description='The target as reports name it, e.g. "3 months"')
    known_at: datetime = Field(description="The applications as known at this recorded time")
    canton: BacklogFigures
    regions: list[BacklogFigures]
    branch_offices: list[BacklogFigures]

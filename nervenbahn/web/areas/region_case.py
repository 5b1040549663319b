"""What the region's case page shows, gathered from the case as the case service holds it.

The page is `nervenbahn case show` and `nervenbahn case history` in one: the phase, the
household with its personal data, the budget in force and by month (the domain's
entitlement, `domain.entitlement.month_entitlement`, on the case as known now: the 12 months
up to this one and the 3 after), goals, measures, advances and claims, the open proposals, the
timeline of events (recorded time and effective date), and a link to each command of the case
process (the command pages are the `region_commands` area's). The domain does not expose
which commands a phase allows, so every command is offered; the domain refuses the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.application.history import HistoryEntry
from domain.budget import BudgetLine
from domain.case import SWISS_TIME, Case
from domain.entitlement import budget_in_force, month_entitlement, month_of
from domain.events import (
    Advance,
    BudgetVersion,
    Claim,
    Person,
    Proposal,
    add_months,
    advances_of,
    claims_of,
    proposals_of,
)
from nervenbahn.api.errors import ReadModelUnavailableError
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.web.actions import read_model
from nervenbahn.web.areas.office_shared import KINDS, STAGES
from nervenbahn.web.auth import WebState
from nervenbahn.web.i18n import N_
from projections.benefit_applications import OfficeApplication, person_applications

__all__ = ["APPLICATION_FIELDS", "CASE_COMMANDS", "CASE_PAGE_FIELDS", "CasePage",
           "HouseholdApplication", "MonthRow", "case_page", "household_applications",
           "persons_of"]

APPLICATION_FIELDS = ("benefit_applications",)
"""What is read of a person where their benefit applications are shown (kind, stage, office,
received and decided days; no personal field)."""
CASE_PAGE_FIELDS = (*APPLICANT_FIELDS, "case_state", "history", *APPLICATION_FIELDS)
"""What the case page shows of each person of the household: the personal data (as `case
show`), the case's state and its history (as `case history`), and their benefit
applications."""

MONTHS_BACK, MONTHS_AHEAD = 11, 3
"""The budget by month: this month, the 11 before it and the 3 after it."""

CASE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("complete_assessment", N_("Complete the initial assessment (Erstabklärung)")),
    ("grant_support", N_("Grant support")),
    ("refuse_support", N_("Refuse support")),
    ("agree_goal", N_("Agree a goal (Zielvereinbarung)")),
    ("record_goal_outcome", N_("Record a goal's outcome")),
    ("start_measure", N_("Start a measure")),
    ("complete_measure", N_("Complete a measure")),
    ("break_off_measure", N_("Break off a measure")),
    ("change_budget", N_("Change the budget")),
    ("complete_review", N_("Complete the periodic review")),
    ("hand_over_case", N_("Hand the case over")),
    ("close_case", N_("Close the case")),
    ("reopen_case", N_("Reopen the case")),
    ("dismiss_proposal", N_("Dismiss a proposal")),
    ("start_advance", N_("Start an advance in view of EL")),
    ("end_advance", N_("End an advance")),
)
"""The commands of the case process a caseworker gives, with their link's label, in the
order of the process (`domain.commands.COMMANDS` names)."""

@dataclass(frozen=True)
class MonthRow:
    """One month of the budget by month: what the case is owed for it as known now."""

    month: date
    supported_days: int
    amount: Decimal
    budget_total: Decimal | None
    current: bool


@dataclass(frozen=True)
class HouseholdApplication:
    """A benefit application of a person of the household, as the caseworker sees it: no
    personal data (whose: the applicant or another member; the labels in English source
    text)."""

    application_id: str
    kind: str
    kind_label: str
    stage: str
    stage_label: str
    office: str
    received_on: date
    decided_on: date | None
    of_applicant: bool


@dataclass(frozen=True)
class CasePage:
    """Everything the case page shows."""

    case: Case
    today: date
    region_name: str
    municipality: str
    applicant: dict[str, str]
    members: list[dict[str, str]]
    budget: BudgetVersion | None
    budget_lines: list[BudgetLine]
    months: list[MonthRow]
    goals: list[Any]
    measures: list[Any]
    advances: list[Advance]
    claims: list[Claim]
    proposals: list[Proposal]
    timeline: list[HistoryEntry]
    applications: list[HouseholdApplication] | None
    """The household's benefit applications (None: the read model is not available here)."""
    commands: tuple[tuple[str, str], ...] = CASE_COMMANDS


def persons_of(case: Case) -> list[Person]:
    """The household's persons, applicant first."""
    return [case.applicant, *case.other_members]


def case_page(case: Case, web: WebState, region_id: str) -> CasePage:
    """The case page of `case` (one of `region_id`'s) as known now."""
    reference = web.context.reference
    today = web.now().astimezone(SWISS_TIME).date()
    municipality = reference.municipalities.get(case.municipality_bfs)
    region = reference.regions.get(region_id)
    budget = budget_in_force(case.budgets, today)
    service = web.context.service
    history = service.history(case.id) if service is not None else []
    return CasePage(
        case=case,
        today=today,
        region_name=region.name if region else region_id,
        municipality=municipality.name if municipality else str(case.municipality_bfs),
        applicant=_person(case.applicant),
        members=[_person(member) for member in case.other_members],
        budget=budget,
        budget_lines=list(budget.lines) if budget else [],
        months=budget_by_month(case, today) if case.support_periods else [],
        goals=sorted(case.goals.values(), key=lambda goal: goal.due_date),
        measures=sorted(case.measures.values(), key=lambda measure: measure.start_date),
        advances=list(advances_of(case)),
        claims=list(claims_of(case)),
        proposals=[p for p in proposals_of(case).values() if p.status == "open"],
        timeline=list(history),
        applications=household_applications(web, case),
    )


def household_applications(web: WebState, case: Case) -> list[HouseholdApplication] | None:
    """The benefit applications of the household's persons, any office's, oldest received
    first (the benefit applications' read model, by person id); None where this instance has
    no such read model."""
    if web.context.benefit_applications_db is None:
        return None
    persons = [str(person.person_id) for person in persons_of(case)]
    try:
        with read_model(web, "benefit_applications") as db:
            found = person_applications(db, persons)
    except ReadModelUnavailableError:
        return None
    return [_application(web, a, persons[0]) for a in found]


def _application(web: WebState, a: OfficeApplication, applicant: str) -> HouseholdApplication:
    office = web.context.branch_offices.get(a.branch_office)
    return HouseholdApplication(
        a.application_id, a.kind, KINDS.get(a.kind, a.kind), a.stage,
        STAGES.get(a.stage, a.stage), office.name if office else a.branch_office,
        a.received_on, a.decided_on, a.applicant_person_id == applicant)


def budget_by_month(case: Case, today: date) -> list[MonthRow]:
    """What the case is owed, as known now, for this month, the months before it and after
    it (`MONTHS_BACK`, `MONTHS_AHEAD`)."""
    this_month = month_of(today)
    rows = []
    for step in range(-MONTHS_BACK, MONTHS_AHEAD + 1):
        month = add_months(this_month, step)
        owed = month_entitlement(case.budgets, case.support_periods, month)
        in_force = budget_in_force(case.budgets, month)
        rows.append(MonthRow(month, owed.supported_days, owed.amount,
                             in_force.total if in_force else None, step == 0))
    return rows


def _person(person: Person) -> dict[str, str]:
    """A person's fields for display (each "[erased]" after erasure), and whether erased."""
    return {**person.to_plain(), "erased": "yes" if person.is_erased else ""}

"""The pages' words for the codes the domain and the read models store, for every area that
shows them: phases, events, the values of the commands' choices (needs, reasons, outcomes,
kinds …), budget lines, documents, benefits and the fields of an event.

Each map takes a code to its English source text (marked with `N_`, translated where shown).
The templates translate a code with the `label` filter (`{{ case.phase|label }}`: the code's
label in the page's language, the code itself where none is known) and show an event's own
fields with `shown` (dates as 31.12.2026, amounts as CHF 1'234.50, codes by their label; see
`rendering`). One label per code, so a code reads the same on every page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.budget import BudgetLine
from nervenbahn.web.i18n import N_, chf, day
from nervenbahn.web.roles import ROLE_NAMES

__all__ = [
    "BANK_OUTCOMES",
    "BENEFIT_EVENTS",
    "BENEFIT_KINDS",
    "CASE_EVENTS",
    "CHOICES",
    "CODES",
    "DOCUMENTS",
    "EVENTS",
    "FIELDS",
    "FREE_TEXT",
    "LINES",
    "ORDER_KINDS",
    "PHASES",
    "ROLES",
    "label",
    "shown",
]

PHASES = {
    "intake": N_("Intake (Erstabklärung)"),
    "assessed": N_("Assessed"),
    "supported": N_("Supported"),
    "refused": N_("Support refused"),
    "closed": N_("Closed"),
}
"""The phases of a case."""

CASE_EVENTS: dict[str, str] = {
    "CaseOpened": N_("case opened"), "AssessmentCompleted": N_("assessment completed"),
    "SupportGranted": N_("support granted"), "SupportRefused": N_("support refused"),
    "GoalAgreed": N_("goal agreed"), "GoalAchieved": N_("goal achieved"),
    "GoalMissed": N_("goal missed"), "MeasureStarted": N_("measure started"),
    "MeasureCompleted": N_("measure completed"), "MeasureBrokenOff": N_("measure broken off"),
    "BudgetChanged": N_("budget changed"), "ReviewCompleted": N_("review completed"),
    "CaseHandedOver": N_("case handed over"), "CaseClosed": N_("case closed"),
    "CaseReopened": N_("case reopened"), "HandoverProposed": N_("handover proposed"),
    "ClosureProposed": N_("closure proposed"), "ProposalDismissed": N_("proposal dismissed"),
    "AdvanceStarted": N_("advance started"), "AdvanceEnded": N_("advance ended"),
    "ReimbursementRecorded": N_("reimbursement recorded"),
    "BudgetChangeProposed": N_("budget change proposed"),
    "ReimbursementPaid": N_("reimbursement paid"),
}
"""The events of a case (`domain.events`)."""

BENEFIT_EVENTS = {
    "ApplicationReceived": N_("Application received"),
    "CompletenessChecked": N_("Completeness checked"),
    "DocumentsRequested": N_("Documents requested"),
    "DocumentsReceived": N_("Documents received"),
    "ApplicationForwarded": N_("Forwarded to the fund"),
    "BenefitGranted": N_("Benefit granted"),
    "BenefitRefused": N_("Benefit refused"),
    "DecisionAmended": N_("Decision amended"),
    "BenefitEnded": N_("Benefit ended"),
    "ApplicationWithdrawn": N_("Application withdrawn"),
    "DelegationGranted": N_("Delegation granted"),
    "DelegationRevoked": N_("Delegation revoked"),
}
"""The events of a benefit application and of the fund's delegations."""

EVENTS = {**CASE_EVENTS, **BENEFIT_EVENTS}
"""Every event by its name."""

CHOICES: dict[str, str] = {
    # needs, goal categories, closure reasons
    "financial": N_("Financial"), "housing": N_("Housing"), "health": N_("Health"),
    "employment": N_("Employment"), "childcare": N_("Childcare"), "debt": N_("Debts"),
    "language": N_("Language"), "other": N_("Other"), "education": N_("Education"),
    "finances": N_("Finances"), "social": N_("Social integration"),
    "other_insurance": N_("Other insurance covers the needs"), "moved_away": N_("Moved away"),
    "death": N_("Death"),
    # employability
    "employable": N_("Employable"), "partially_employable": N_("Partially employable"),
    "not_employable": N_("Not employable"),
    # refusal reasons
    "income_sufficient": N_("Income sufficient"),
    "assets_above_limit": N_("Assets above the limit"),
    "not_resident": N_("Not resident"), "documents_missing": N_("Documents missing"),
    # goal outcomes, review outcomes, goals' and measures' states
    "achieved": N_("Achieved"), "missed": N_("Missed"), "continue": N_("Continue"),
    "adjust": N_("Adjust"), "close_recommended": N_("Closure recommended"),
    "open": N_("Open"), "running": N_("Running"), "completed": N_("Completed"),
    "broken_off": N_("Broken off"),
    # measures and why they were broken off
    "job_coaching": N_("Job coaching"), "language_course": N_("Language course"),
    "rav_registration": N_("RAV registration"), "qualification": N_("Qualification"),
    "social_integration": N_("Social integration programme"), "no_show": N_("Did not attend"),
    "found_employment": N_("Found employment"), "unsuitable": N_("Unsuitable"),
    # budget changes (and a budget's first version)
    "income_change": N_("Income changed"), "rent_change": N_("Rent changed"),
    "household_change": N_("Household changed"), "premium_change": N_("Premium changed"),
    "correction": N_("Correction"), "initial_decision": N_("Initial decision"),
    "yearly_adjustment": N_("Yearly adjustment of basic needs"),
    # reopening, dismissal, advances
    "reapplication": N_("Reapplication"), "closed_in_error": N_("Closed in error"),
    "not_applicable": N_("Not applicable"), "already_handled": N_("Already handled"),
    "register_error": N_("Error of the register"),
    "commitment": N_("Commitment to repay (Verpflichtung)"),
    "payment_order": N_("Payment order (Zahlungsanweisung)"),
    "decided": N_("Decided"), "withdrawn": N_("Withdrawn"), "granted": N_("Granted"),
    "el_ahv": N_("EL to the AHV"), "el_iv": N_("EL to the IV"),
    # household structures
    "one_person": N_("One person"), "single_parent": N_("Single parent"),
    "couple_with_children": N_("Couple with children"),
    "couple_without_children": N_("Couple without children"),
    # proposals' kinds
    "handover": N_("Handover"), "closure": N_("Closure"), "budget_change": N_("Budget change"),
}
"""The label of each value of the commands' choices (one label per value, whatever the
field), and the states of goals and measures."""

LINES = {
    "basic_needs": N_("Basic needs"), "housing": N_("Housing"),
    "health_insurance": N_("Health insurance"), "income": N_("Income"),
}
"""The budget lines' codes."""

DOCUMENTS = {
    "signed_application": N_("Signed application form"),
    "pension_statement": N_("AHV pension decision and pension-fund statement"),
    "iv_decision": N_("IV decision"),
    "tax_assessment": N_("Latest tax assessment"),
    "account_statements": N_("Bank and postal account statements"),
    "income_statements": N_("Salary statements and other income"),
    "rent_contract": N_("Rent contract and proof of the last rent payment"),
    "health_insurance_policy": N_("Health-insurance policy of the current year"),
}
"""The documents an application needs."""

BENEFIT_KINDS = {
    "el_ahv": N_("EL to an AHV pension"),
    "el_iv": N_("EL to an IV pension"),
    "ipv": N_("Premium reduction (IPV)"),
}
"""The benefits a branch office takes applications for."""

ORDER_KINDS = {
    "regular": N_("Regular payment"), "back_payment": N_("Back-payment"),
    "claim_back": N_("Claim-back"),
}
"""The kinds of a payment order (`domain.payments.OrderKind`)."""

BANK_OUTCOMES = {
    "executed": N_("executed"), "rejected": N_("rejected by the bank"),
    "returned": N_("returned by the bank"),
}
"""What a bank answered to a payment order (`domain.settlement`: pain.002, camt.054)."""

ROLES = {**{role: role for role in ROLE_NAMES}, "system": N_("system")}
"""Who recorded an event (the role of its actor)."""

FIELDS = {
    "municipality_bfs": N_("Municipality (BFS)"), "social_region": N_("Social region"),
    "household_size": N_("Household size"), "household_structure": N_("Household structure"),
    "persons": N_("Persons"), "needs": N_("Needs"), "employability": N_("Employability"),
    "lines": N_("Budget lines"), "total": N_("Total"), "decision_date": N_("Decided on"),
    "reasons": N_("Reasons"), "reason": N_("Reason"), "goal_id": N_("Goal id"),
    "category": N_("Category"), "title": N_("Title"), "due_date": N_("Due"),
    "measure_id": N_("Measure id"), "kind": N_("Kind"), "outcome": N_("Outcome"),
    "next_review_due": N_("Next review due"), "from_region": N_("From region"),
    "to_region": N_("To region"), "to_municipality_bfs": N_("To municipality (BFS)"),
    "external_reference": N_("Reference"), "source": N_("Source"),
    "application_id": N_("EL application"), "benefit_kind": N_("Benefit"),
    "person_id": N_("Person id"), "commitment_kind": N_("Signed by the person"),
    "commitment_date": N_("Signed on"), "months": N_("Months"),
    "corrections": N_("Corrections"), "income": N_("Income"),
    "claim_total": N_("Claim"), "surplus_total": N_("Surplus to the person"),
    "paid_on": N_("Paid on"), "paid_to_region": N_("Paid to the region"),
    "paid_to_person": N_("Paid to the person"), "case_version": N_("Case version"),
    "ipv_offset_total": N_("IPV offset"), "payment_message_id": N_("Payment message"),
    "completed_on": N_("Completed on"), "decided_on": N_("Decided on"),
    "changed": N_("Changed lines"), "closed_on": N_("Closed on"),
}
"""The fields of the case events, as an event's details name them."""

CODES = {**CHOICES, **LINES, **DOCUMENTS, **PHASES, **EVENTS, **ORDER_KINDS, **BANK_OUTCOMES,
         **ROLES}
"""Every code the `label` filter knows (the same code means the same everywhere)."""

FREE_TEXT = frozenset({"title", "external_reference", "payment_message_id"})
"""Fields a person wrote or a register gave as they are (not translated)."""


def label(code: object, gettext: Callable[[str], str]) -> str:
    """The label of `code` in the language of `gettext` (the code itself if none is
    known)."""
    text = str(code)
    return gettext(CODES[text]) if text in CODES else text


def shown(value: Any, gettext: Callable[[str], str]) -> str:
    """An event's field for a page: dates 31.12.2026, amounts CHF 1'234.50, codes by their
    label, budget lines by line and amount, a list of records by their number."""
    if isinstance(value, datetime | date):
        return day(value)
    if isinstance(value, Decimal):
        return chf(value)
    if isinstance(value, list | tuple):
        return _shown_list(value, gettext)
    if isinstance(value, str):
        return label(value, gettext)
    return str(value)


def _shown_list(values: Iterable[Any], gettext: Callable[[str], str]) -> str:
    items = list(values)
    if items and isinstance(items[0], BudgetLine):
        return ", ".join(f"{label(line.code, gettext)} {chf(line.amount)}" for line in items)
    if items and is_dataclass(items[0]):
        return f"{len(items)} ×"
    return ", ".join(shown(item, gettext) for item in items)

"""The advances part of `nervenbahn demo`: the social-assistance households of the synthetic
benefits that applied for EL while supported start an advance in view of it (SKOS F.2), so that
the fund's decisions later in the demo lead to reimbursement claims (issue 15).

Only applications still pending when the synthetic history ends get an advance: the case
history was imported before the applications existed, so an advance for an application decided
in that history could only be recorded after its decision, which the case refuses (rule
`advance-for-pending-application`). Each advance starts in the month the application was
received (EL is owed from that month, ELG Art. 12), not before the support began nor more than
the retroactive limit back, with the person's written commitment of the day received.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from domain.benefits import BenefitApplication
from domain.case import RETROACTIVE_LIMIT_DAYS, SWISS_TIME
from domain.commands import Actor, StartAdvance
from domain.errors import NervenbahnError
from nervenbahn.demo_session import DemoSession

__all__ = ["DEMO_CASEWORKER", "start_advances"]

DEMO_CASEWORKER = "demo.caseworker"
"""Who records the demo's advances: a caseworker of each case's own social region."""

_PENDING = ("received", "forwarded")
"""The stages an advance may start in (`domain.case`, rule advance-for-pending-application)."""


def start_advances(rt: DemoSession, advances: dict[str, str]) -> int:
    """Start an advance on each case of `advances` (application id → case id) whose
    application is pending; the number started (one refused is said, not fatal)."""
    today = datetime.now(SWISS_TIME).date()
    started = 0
    for application_id, case_id in sorted(advances.items()):
        application = rt.container.benefits.application(uuid.UUID(application_id))
        if application.stage not in _PENDING:
            continue
        case = rt.service.get_case(uuid.UUID(case_id))
        try:
            rt.service.execute(StartAdvance(
                actor=Actor(user_id=DEMO_CASEWORKER, role="caseworker",
                            organisation=case.social_region),
                correlation_id=uuid.uuid4(), case_id=case.id,
                application_id=application.id,
                advance_from=_advance_from(application, case.support_periods[-1].start, today),
                commitment_kind="commitment", commitment_date=application.received_on))
        except NervenbahnError as exc:
            rt.console.print(f"[yellow]advance on case {case_id} not started: {exc}[/yellow]")
            continue
        started += 1
    return started


def _advance_from(application: BenefitApplication, support_from: date, today: date) -> date:
    month = application.received_on.replace(day=1)
    return max(month, support_from, today - timedelta(days=RETROACTIVE_LIMIT_DAYS))

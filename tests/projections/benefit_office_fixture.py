"""A real SQLite store with benefit applications of two branch offices, recorded through
`BenefitService` commands on a fake clock (shared by the read model's, API and CLI tests).

  A  Grenchen   received 2025-11-03; rent_contract missing, requested (due 2025-12-03)
  B  Grenchen   received 2025-11-03, complete, forwarded; granted from 2025-11 on 2025-11-10
  L  Lommiswil  received 2025-11-03 (another office's)
  C  Grenchen   received 2025-11-10; tax_assessment missing, forwarded with a reason
  D  Grenchen   received 2025-11-10; withdrawn the same day
  E  Grenchen   received 2025-11-10, complete, forwarded; refused (income_sufficient)
  delegations to akso-grenchen on 2025-11-10: document_request until 2025-12-31 (active,
  leaves C's tax_assessment open), completeness_check until 2025-12-31 revoked the same day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

from domain.application.benefits import BenefitService
from domain.case import SWISS_TIME
from domain.commands import Actor
from tests.cli.test_backlog_report import _Recorder
from tests.domain.fakes import FakeClock

GRENCHEN, LOMMISWIL = 2546, 2551
GRENCHEN_OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
LOMMISWIL_OFFICE = Actor("urs.kurz", "branch_office", "akso-lommiswil")
FUND = Actor("max.akso", "fund_officer", "akso")
START = datetime(2025, 11, 3, 9, 0, tzinfo=SWISS_TIME)


@dataclass
class Recorded:
    """The ids of what `record_offices` recorded, by the letters of the module docstring."""

    ids: dict[str, UUID] = field(default_factory=dict)
    person_ids: dict[str, UUID] = field(default_factory=dict)
    active_delegation: UUID | None = None
    revoked_delegation: UUID | None = None


def record_offices(service: BenefitService, clock: FakeClock) -> Recorded:
    """Record the module docstring's applications and delegations."""
    desk, out = _Recorder(service, clock), Recorded()
    desk.on(date(2025, 11, 3))
    out.ids["A"] = a = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.check(GRENCHEN_OFFICE, a, ("rent_contract",))
    desk.run("request_documents", GRENCHEN_OFFICE, application_id=a,
             documents=["rent_contract"], due_on=date(2025, 12, 3))
    out.ids["B"] = b = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.check(GRENCHEN_OFFICE, b)
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=b)
    out.ids["L"] = desk.receive(LOMMISWIL_OFFICE, LOMMISWIL)
    desk.on(date(2025, 11, 10))
    desk.run("grant_benefit", application_id=b, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "812.40"}])
    out.ids["C"] = c = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.check(GRENCHEN_OFFICE, c, ("tax_assessment",))
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=c,
             override_reason="the tax assessment follows")
    out.ids["D"] = d = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.run("withdraw_application", GRENCHEN_OFFICE, application_id=d,
             reason="applicant_request")
    out.ids["E"] = e = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.check(GRENCHEN_OFFICE, e)
    desk.run("forward_application", GRENCHEN_OFFICE, application_id=e)
    desk.run("refuse_benefit", application_id=e, reason="income_sufficient")
    start, end = date(2025, 11, 10), date(2025, 12, 31)
    out.active_delegation = desk.run("grant_delegation", branch_office="akso-grenchen",
                                     task="document_request", valid_from=start, valid_until=end)
    out.revoked_delegation = desk.run("grant_delegation", branch_office="akso-grenchen",
                                      task="completeness_check", valid_from=start,
                                      valid_until=end)
    desk.run("revoke_delegation", delegation_id=out.revoked_delegation,
             reason="the fund checks again itself")
    for letter, application_id in out.ids.items():
        out.person_ids[letter] = service.application(application_id).applicant.person_id
    return out

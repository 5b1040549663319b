"""The claims process: records the reimbursement of every advance whose EL was decided.

For each case that advanced in view of an EL application the fund granted (or granted and
ended; a refused one only ends the advance), it gathers the facts as known now (the EL owed
per month from the application, what the case was paid per month from the payment orders,
the premium reductions the canton paid for the same person and months) and hands them to the
case as one `RecordReimbursement` command; the case computes the claim, records only the
difference to what it recorded before, ends the open advance (`decided`) and proposes the
budget follow the decision, all in one atomic save.

Why a command that can run again rather than a handler of each decision: every fact it reads
is in the stores, and everything it writes is one save per case that the next run reads back.
So a run stopped anywhere (a crash, a restart) is finished by the next run, which records
nothing where the facts did not change; two runs at once collide on the case's version and
the loser's case is counted as `concurrent` (the next run takes it). A late payment
correction or an amended decision is picked up by the next run the same way.

The premium reduction (IPV) offset (ELV Art. 22 para. 5): premium reductions are benefit
applications of kind `ipv` in the same benefits store. What the canton paid for a month is
taken as what the EL applicant's granted premium-reduction application(s) owe for it
(`BenefitApplication.owed_for`, summed if there are several), as known now, for the
back-payment months only. The store has no record of the premium reductions actually paid
out; the grant is the closest fact it holds (to confirm with the fund: a premium reduction
granted and not yet paid would be offset too). A later grant or amendment of a premium
reduction is picked up by the next run as a correction, like any other fact. The applications
are scanned once per run for the `ipv` ones (few thousand at a time, DOMAIN.md "Scale").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import structlog
from eventsourcing.domain import datetime_now_with_tzinfo

from domain.application.benefits import BenefitService
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.benefits import BenefitApplication
from domain.commands import Actor, RecordReimbursement
from domain.entitlement import month_of
from domain.errors import ConcurrentChangeError
from domain.events import advances_of
from domain.money import ZERO
from domain.reimbursement import owed_by_month, paid_by_month

__all__ = ["CLAIMS_ACTOR", "AdvanceClaims", "ClaimOutcome", "PremiumReductions", "ipv_by_month"]

log = structlog.get_logger("nervenbahn.claims")

CLAIMS_ACTOR = Actor(user_id="advance-claims", role="system", organisation="so-canton")
"""Who records reimbursements: the claims process, a system actor acting canton-wide."""

_DECIDED_WITH_AMOUNTS = ("granted", "ended")

_PREMIUM_REDUCTION = "ipv"
"""The benefit kind of a premium-reduction application (`domain.benefit_commands.BenefitKind`)."""

PremiumReductions = Mapping[UUID, Sequence[BenefitApplication]]
"""Granted premium-reduction applications by the applicant's person id."""


@dataclass(frozen=True)
class ClaimOutcome:
    """What one run did for one advance: the events recorded (none: nothing new), or
    `concurrent` if another writer moved the case on meanwhile."""

    case_id: UUID
    application_id: UUID
    events: tuple[str, ...]
    concurrent: bool = False


class AdvanceClaims:
    """Records the reimbursements of decided advances from the facts as known now."""

    def __init__(self, cases: CaseService, benefits: BenefitService, payments: PaymentService,
                 *, actor: Actor = CLAIMS_ACTOR,
                 clock: Callable[[], datetime] = datetime_now_with_tzinfo) -> None:
        self._cases = cases
        self._benefits = benefits
        self._payments = payments
        self._actor = actor
        self._clock = clock

    def run(self, case_ids: Iterable[UUID] | None = None) -> list[ClaimOutcome]:
        """Record what changed for every decided advance (of `case_ids`, default every case):
        granted (or granted and ended) ones, and refused ones whose advance is still open (it
        ends, nothing is claimed); an outcome per advance looked at."""
        outcomes = []
        premium_reductions: PremiumReductions | None = None  # looked up at the first decision
        for case_id in self._cases.case_ids() if case_ids is None else case_ids:
            case = self._cases.get_case(case_id)
            open_for = {a.application_id for a in advances_of(case) if a.is_open}
            for application_id in dict.fromkeys(a.application_id for a in advances_of(case)):
                application = self._benefits.application(application_id)
                if application.stage in _DECIDED_WITH_AMOUNTS or (
                        application.stage == "refused" and application_id in open_for):
                    if premium_reductions is None:
                        premium_reductions = self.premium_reductions()
                    outcomes.append(self._record(case_id, application, premium_reductions))
        return outcomes

    def command(self, case_id: UUID, application: BenefitApplication,
                premium_reductions: PremiumReductions | None = None) -> RecordReimbursement:
        """The facts of one advance as known now, as the case's command; the premium
        reductions from `premium_reductions` (default: looked up now)."""
        now = self._clock()
        assert application.decided_on is not None
        decided_month = month_of(application.decided_on)
        el = owed_by_month(application, decided_month)
        if premium_reductions is None:
            premium_reductions = self.premium_reductions()
        return RecordReimbursement(
            actor=self._actor, correlation_id=uuid4(), case_id=case_id,
            application_id=application.id, decided_on=application.decided_on,
            el=el, paid=paid_by_month(self._payments.orders(case_id), case_id, now,
                                      self._payments.refusals()),
            ipv=ipv_by_month(premium_reductions.get(application.applicant.person_id, ()), el),
            monthly_el=application.owed_for(decided_month),
        )

    def premium_reductions(self) -> dict[UUID, list[BenefitApplication]]:
        """The granted premium-reduction applications as known now, by the applicant's
        person id."""
        found: dict[UUID, list[BenefitApplication]] = {}
        for application_id in self._benefits.application_ids():
            application = self._benefits.application(application_id)
            if application.kind == _PREMIUM_REDUCTION and application.granted_from is not None:
                found.setdefault(application.applicant.person_id, []).append(application)
        return found

    def _record(self, case_id: UUID, application: BenefitApplication,
                premium_reductions: PremiumReductions) -> ClaimOutcome:
        command = self.command(case_id, application, premium_reductions)
        try:
            result = self._cases.execute(command)
        except ConcurrentChangeError:
            log.warning("claim postponed: the case moved on meanwhile", case_id=str(case_id),
                        application_id=str(application.id))
            return ClaimOutcome(case_id, application.id, (), concurrent=True)
        return ClaimOutcome(case_id, application.id, tuple(result.events))


def ipv_by_month(premium_reductions: Iterable[BenefitApplication],
                 months: Iterable[date]) -> dict[date, Decimal]:
    """What `premium_reductions` (one person's granted applications) owe for each of `months`
    (first days), summed; months they owe nothing for are left out."""
    owed: dict[date, Decimal] = {}
    applications = list(premium_reductions)
    for month in months:
        total = sum((a.owed_for(month) for a in applications), ZERO)
        if total > ZERO:
            owed[month] = total
    return owed

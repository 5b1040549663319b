"""Commands of the compensation-fund pathway: benefit applications and delegations.

Validated like every command (`domain.commands.Command`): a malformed one raises
`InvalidCommandError` naming the field, before anything is looked up. The rules that depend on
recorded state (stages, delegations, who acts for which municipality) are the aggregates'
(`domain.benefits`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.commands import Code, Command, Count, Day, PersonInput, printable_text
from domain.money import NonNegativeCHF
from domain.payments import Month

__all__ = [
    "BENEFIT_COMMANDS",
    "AmendDecision",
    "AmountPeriod",
    "BenefitCommand",
    "BenefitKind",
    "CheckCompleteness",
    "DelegableTask",
    "DelegationCommand",
    "EndBenefit",
    "ExpireDelegation",
    "ForwardApplication",
    "GrantBenefit",
    "GrantDelegation",
    "ReceiveApplication",
    "RecordDocumentsReceived",
    "RefuseBenefit",
    "RequestDocuments",
    "RevokeDelegation",
    "WithdrawApplication",
]

BenefitKind = Literal["el_ahv", "el_iv", "ipv"]
"""EL to an AHV pension, EL to an IV pension, individual premium reduction (IPV)."""
DelegableTask = Literal["completeness_check", "document_request", "documents_received"]
"""Completing an application: the branch office's own work until the application is
forwarded, the fund's afterwards, which the fund may then delegate to the office; a decision
never is one."""
BenefitRefusalReason = Literal[
    "income_sufficient", "assets_above_limit", "not_resident", "no_pension",
    "documents_missing", "other",
]
EndReason = Literal["death", "moved_away", "income_sufficient", "assets_above_limit", "other"]
WithdrawalReason = Literal["applicant_request", "death", "moved_away", "other"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
"""A reason in words (an override, a revocation): at least three characters."""
DocumentCodes = Annotated[list[Code], Field(max_length=30)]


class AmountPeriod(BaseModel):
    """A monthly amount owed from a month on (until the next period's month or the end)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_month: Month
    monthly_chf: NonNegativeCHF


def _periods_in_order(periods: list[AmountPeriod]) -> list[AmountPeriod]:
    months = [period.from_month for period in periods]
    if months != sorted(set(months)):
        raise ValueError("periods must start in strictly increasing months")
    return periods


class BenefitCommand(Command):
    """A command addressed to an existing benefit application."""

    application_id: UUID


class _Delegable(BenefitCommand):
    """A fund task a branch office may do under a delegation (named by `delegation_id`)."""

    delegation_id: UUID | None = None


class ReceiveApplication(Command):
    """A branch office received an application for a benefit from a resident."""

    name: ClassVar[str] = "receive_application"
    application_id: UUID | None = None
    kind: BenefitKind
    municipality_bfs: Count = Field(ge=1, le=9999)
    applicant: PersonInput
    received_on: Day


class CheckCompleteness(_Delegable):
    """Compare what the applicant handed in with the checklist of the benefit kind."""

    name: ClassVar[str] = "check_completeness"
    documents_present: DocumentCodes


class RequestDocuments(_Delegable):
    """Ask the applicant for missing documents by a due date."""

    name: ClassVar[str] = "request_documents"
    documents: Annotated[list[Code], Field(min_length=1, max_length=30)]
    due_on: Day


class RecordDocumentsReceived(_Delegable):
    """Documents the applicant handed in later."""

    name: ClassVar[str] = "record_documents_received"
    documents: Annotated[list[Code], Field(min_length=1, max_length=30)]
    received_on: Day


class ForwardApplication(BenefitCommand):
    """Forward the application to the fund (with documents missing only with a reason)."""

    name: ClassVar[str] = "forward_application"
    override_reason: Reason | None = None


class GrantBenefit(BenefitCommand):
    """The fund's decision: the benefit is owed from a month, with monthly amounts."""

    name: ClassVar[str] = "grant_benefit"
    decided_on: Day | None = None
    """The day the fund decided (its own application's date); None: the day it is recorded.
    Not in the future, not before the application was forwarded."""
    from_month: Month
    amounts: Annotated[list[AmountPeriod], Field(min_length=1, max_length=120)]

    @model_validator(mode="after")
    def _amounts_from_the_grant(self) -> GrantBenefit:
        _periods_in_order(self.amounts)
        if self.amounts[0].from_month != self.from_month:
            raise ValueError("amounts: the first period must start in from_month")
        return self


class RefuseBenefit(BenefitCommand):
    """The fund's decision: the benefit is refused."""

    name: ClassVar[str] = "refuse_benefit"
    decided_on: Day | None = None
    """The day the fund decided; None: the day it is recorded (as for GrantBenefit)."""
    reason: BenefitRefusalReason
    note: Reason | None = None


class AmendDecision(BenefitCommand):
    """Change the amounts of a granted benefit from a month on (retroactively too)."""

    name: ClassVar[str] = "amend_decision"
    amounts: Annotated[list[AmountPeriod], Field(min_length=1, max_length=120)]
    reason: Reason

    @model_validator(mode="after")
    def _in_order(self) -> AmendDecision:
        _periods_in_order(self.amounts)
        return self


class EndBenefit(BenefitCommand):
    """A condition ceased: the benefit ends at the end of that month (ELG Art. 12)."""

    name: ClassVar[str] = "end_benefit"
    condition_ceased_on: Day
    reason: EndReason


class WithdrawApplication(BenefitCommand):
    """The applicant withdrew the application before it was decided."""

    name: ClassVar[str] = "withdraw_application"
    reason: WithdrawalReason


class DelegationCommand(Command):
    """A command about an existing delegation."""

    delegation_id: UUID


class GrantDelegation(Command):
    """The fund delegates one task to a branch office for a period (days, inclusive)."""

    name: ClassVar[str] = "grant_delegation"
    delegation_id: UUID | None = None
    branch_office: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                    max_length=64)]
    task: DelegableTask
    valid_from: Day
    valid_until: Day

    @model_validator(mode="after")
    def _period(self) -> GrantDelegation:
        printable_text(self.branch_office)
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until: the period ends before it starts")
        return self


class RevokeDelegation(DelegationCommand):
    """The fund takes a delegated task back before its period ends."""

    name: ClassVar[str] = "revoke_delegation"
    reason: Reason


class ExpireDelegation(DelegationCommand):
    """Record that a delegation's period has passed."""

    name: ClassVar[str] = "expire_delegation"


BENEFIT_COMMANDS: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        ReceiveApplication, CheckCompleteness, RequestDocuments, RecordDocumentsReceived,
        ForwardApplication, GrantBenefit, RefuseBenefit, AmendDecision, EndBenefit,
        WithdrawApplication, GrantDelegation, RevokeDelegation, ExpireDelegation,
    )
}
"""Every command of the pathway by name (as `domain.commands.COMMANDS` for cases)."""


"""The fund-decisions connector: each decision the fund's application writes to the decisions
topic (`<prefix>.benefits.decisions.v1`, `ch.nervenbahn.benefits.FundDecision`) becomes the
benefits service's command, recorded as the fund officer named after the connector.

A thin edge (STYLE.md): decode, build one command, hand it on; the rules (a decision only on a
forwarded application, amounts in order, ELG Art. 12) are the domain's. The consumer framework
(`bus.consumer`) schema-validates (a message its codec cannot read is dead-lettered as
`undecodable`) and calls `handle` once per decision id. A decision whose command cannot be
recorded (unknown application, a field the command refuses, a rule of the application) raises
`DecisionRefusedError` naming the field or rule: the consumer dead-letters the message whole
with that text in `dlq_error` (`dlq_reason` `rejected`) and goes on with the next one. What may
succeed later is never dead-lettered: a concurrent change of the same application (rule
`one-change-at-a-time`) and a benefits store that is busy or unreachable (eventsourcing's
`OperationalError`/`InterfaceError`: "database is locked", a PostgreSQL restart) raise
`TransientError`, and the consumer retries the message with back-off (safe: see below).

**Idempotent.** The command's correlation id is the decision id, so the recorded event carries
it, written in the same transaction as the event itself: a decision delivered again (the
broker redelivers, the fund sends it twice, the consumer's effect store was lost) finds its
event and changes nothing. The consumer's own dedup by decision id (its effect store) is the
fast path in front of that.

**Claims paid.** The same topic carries the fund's `ClaimPaid` (`bus.claims_codec`): it paid a
reimbursement claim of the claims topic. It becomes the case's `RecordReimbursementPaid`,
recorded as a system actor named after the connector (a fund officer acts on no social
region's case; the claims process records the claim as a system actor too). The claim is
named three ways — `claim_id`, the case and the version that recorded it — and must agree
(`claim_id` is the event id of that version), else it is refused. The case decides the rest
(the claim exists and is of that application, the amounts are its totals) and is idempotent
itself: the fund re-sends `ClaimPaid` after a restart for every claim whose payment file
exists, and the same claim paid in the same file records nothing; a claim reported paid in
another file is refused (`claim-paid-once`) and dead-lettered. A concurrent change of the case
(`ConcurrentChangeError`) is retried.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

import structlog
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError

from bus.benefits_codec import FundDecision
from bus.claims_codec import ClaimPaid
from bus.consumer import Received, TransientError
from bus.envelope import event_id
from connectors.errors import ConnectorError
from domain.benefit_commands import AmendDecision, EndBenefit, GrantBenefit, RefuseBenefit
from domain.commands import Actor, Command, RecordReimbursementPaid
from domain.errors import (
    ApplicationNotFoundError,
    CaseNotFoundError,
    ConcurrentChangeError,
    DomainError,
    InvalidCommandError,
    RuleViolationError,
)

__all__ = [
    "FUND_ORGANISATION",
    "BenefitCommands",
    "CaseCommands",
    "DecisionRecorder",
    "DecisionRefusedError",
    "decision_command",
    "payment_command",
]

log = structlog.get_logger("nervenbahn.connectors.fund_decisions")

RETRYABLE_RULES = frozenset({"one-change-at-a-time"})
"""Rules a command breaks only because of a concurrent change: the decision is tried again."""

FUND_ORGANISATION = "akso"
"""The organisation of the fund's officers (`domain.commands.Role`)."""


class DecisionRefusedError(ConnectorError):
    """A fund decision could not be recorded: its message is dead-lettered with this reason."""


class BenefitCommands(Protocol):
    """What the connector needs of the benefits service."""

    def execute(self, command: Command) -> Any:
        """Record the command's events or raise a DomainError (nothing recorded)."""

    def recorded_with(self, application_id: UUID, correlation_id: UUID) -> bool:
        """True if an event of the application was recorded under `correlation_id`;
        ApplicationNotFoundError if there is no such application."""


class CaseCommands(Protocol):
    """What the connector needs of the case service."""

    def execute(self, command: Command) -> Any:
        """Record the command's events (none if it changes nothing) or raise a DomainError."""


class DecisionRecorder:
    """The consumer handler of the decisions topic: one fund decision → one command; one
    claim paid → one case command."""

    def __init__(self, name: str, benefits: BenefitCommands,
                 cases: CaseCommands | None = None) -> None:
        self.name = name
        self.actor = Actor(user_id=name, role="fund_officer", organisation=FUND_ORGANISATION)
        """The system actor the decisions are recorded as: a fund officer named after the
        connector."""
        self.payments_actor = Actor(user_id=name, role="system", organisation=FUND_ORGANISATION)
        """Who records a claim paid on the case: the connector as a system actor."""
        self._benefits = benefits
        self._cases = cases

    def handle(self, received: Received, tx: Any) -> None:
        """Record the decision or the claim paid (`tx`, the consumer's transaction, is not
        needed: the events themselves make it idempotent); DecisionRefusedError if it cannot
        be recorded."""
        if isinstance(received.event, ClaimPaid):
            self._record_paid(received.event)
            return
        decision = received.event
        if not isinstance(decision, FundDecision):  # the codec reads nothing else
            raise DecisionRefusedError(f"{received.event_type} is not a FundDecision")
        where = f"decision {decision.decision_id} on application {decision.application_id}"
        try:
            if self._benefits.recorded_with(decision.application_id, decision.decision_id):
                log.info("decision recorded already", decision_id=str(decision.decision_id))
                return
            self._benefits.execute(decision_command(decision, self.actor))
        except ApplicationNotFoundError as exc:
            raise DecisionRefusedError(
                f"application_id: {where}: no such application") from exc
        except InvalidCommandError as exc:
            raise DecisionRefusedError(f"{where}: {exc}") from exc
        except RuleViolationError as exc:
            if exc.rule in RETRYABLE_RULES:
                raise TransientError(f"{where}: changed meanwhile; tried again") from exc
            raise DecisionRefusedError(f"{where}: rule {exc.rule}: {exc}") from exc
        except DomainError as exc:
            raise DecisionRefusedError(f"{where}: {exc}") from exc
        except (StoreOperationalError, StoreInterfaceError) as exc:
            raise TransientError(f"{where}: the benefits store is not available now") from exc

    def _record_paid(self, paid: ClaimPaid) -> None:
        """Record a claim paid on its case (module docstring, "Claims paid")."""
        where = f"claim {paid.claim_id} paid in {paid.message_id!r}"
        if self._cases is None:
            raise DecisionRefusedError(f"{where}: this connector records no claims paid")
        try:
            result = self._cases.execute(payment_command(paid, self.payments_actor))
        except CaseNotFoundError as exc:
            raise DecisionRefusedError(f"case_id: {where}: no such case") from exc
        except ConcurrentChangeError as exc:
            raise TransientError(f"{where}: the case changed meanwhile; tried again") from exc
        except RuleViolationError as exc:
            raise DecisionRefusedError(f"{where}: rule {exc.rule}: {exc}") from exc
        except DomainError as exc:
            raise DecisionRefusedError(f"{where}: {exc}") from exc
        except (StoreOperationalError, StoreInterfaceError) as exc:
            raise TransientError(f"{where}: the case store is not available now") from exc
        if not getattr(result, "events", ()):
            log.info("claim paid recorded already", claim_id=str(paid.claim_id))


def payment_command(paid: ClaimPaid, actor: Actor) -> RecordReimbursementPaid:
    """The case command of one claim paid, its correlation id the report's event id;
    InvalidCommandError naming the field if `claim_id` is not the event the case and version
    name, or a field is out of range."""
    if paid.claim_id != event_id(paid.case_id, paid.case_version):
        raise InvalidCommandError("claim_paid", [(
            "claim_id", f"{paid.claim_id} is not the event at version {paid.case_version} of "
            f"case {paid.case_id}")])
    return RecordReimbursementPaid(
        actor=actor, correlation_id=paid.event_id, case_id=paid.case_id,
        application_id=paid.application_id, claim_version=paid.case_version,
        paid_on=paid.paid_on, to_region=paid.to_region, to_person=paid.to_person,
        message_id=paid.message_id)


_COMMANDS: dict[str, type[Command]] = {
    "granted": GrantBenefit, "refused": RefuseBenefit, "amended": AmendDecision,
    "ended": EndBenefit,
}
"""The command of each kind of decision."""


def decision_command(decision: FundDecision, actor: Actor) -> Command:
    """The benefits command of one decision, its correlation id the decision id;
    InvalidCommandError naming the field if the decision lacks what its kind needs (the
    command validates what it is given, as for every caller)."""
    command = _COMMANDS.get(decision.kind)
    if command is None:
        raise InvalidCommandError("fund_decision", [("kind", f"{decision.kind!r} is no decision")])
    data: dict[str, Any] = {
        "actor": actor, "correlation_id": decision.decision_id,
        "application_id": decision.application_id,
    }
    amounts = [{"from_month": a.from_month, "monthly_chf": a.monthly_chf}
               for a in decision.amounts]
    if decision.kind == "granted":
        data |= {"from_month": decision.from_month, "amounts": amounts,
                 "decided_on": decision.decided_on}
    elif decision.kind == "refused":
        data |= {"reason": decision.reason, "decided_on": decision.decided_on}
    elif decision.kind == "amended":
        data |= {"amounts": amounts, "reason": decision.reason}
    else:
        data |= {"condition_ceased_on": decision.condition_ceased_on, "reason": decision.reason}
    return command(**data)

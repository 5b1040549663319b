"""Settlement of payment orders: what the bank did with them, and claim-backs until recovered.

A payment run orders; the bank reports back. Its pain.002 status report rejects orders (or a
whole message), its camt.054 notifications book them (debit: executed) and book returns
(credit: the payee's bank sent the money back). Claim-backs (orders of kind `claim_back`) are
recovered from the household, in parts if need be, or written off by an administrator.

One aggregate per payment run, `RunSettlement` (id `settlement_id(run_id)`), in the payments
store beside the run: every settlement event of the run's orders goes there, so that two
files read at once that touch the same run are serialised by its version (optimistic lock),
and reading one bank file saves every run it touches at once (all or nothing). The run itself
is never changed: its events are what the payments topic carries, settlement is not (the
pain.001 sink has nothing to do with it), so the payments relay passes these events by.

Per order the states are: ordered (open) → executed | rejected; executed → returned. Nothing
else: a status contradicting what was recorded is refused (`SETTLEMENT_RULE`), the same status
again records nothing, and a bank file read before (its SHA-256) records nothing at all.

A rejected or returned order no longer counts for its month (`REFUSAL_EVENT_TYPES`: the
payments service subtracts what the bank refused), so the next run orders the month again; to
the same payout account only if the bank refused the message, not the transfer
(`refuses_account`): otherwise the new order is held (`refused_account_reason`) until a new
payout account is recorded.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from domain.commands import Actor, Command, printable_text, with_a_letter
from domain.money import CHF, ZERO

__all__ = [
    "REASON_LABELS",
    "REFUSAL_EVENT_TYPES",
    "SETTLEMENT_EVENT_TYPES",
    "SETTLEMENT_RULE",
    "BankFileKind",
    "BankFileRead",
    "BankStatus",
    "ClaimBackRecovered",
    "ClaimBackWrittenOff",
    "Outcome",
    "PaymentExecuted",
    "PaymentRejected",
    "PaymentReturned",
    "ReconcileBankFile",
    "RecoverClaimBack",
    "Refusal",
    "RejectionScope",
    "RunSettlement",
    "RunSettlementOpened",
    "WriteOffClaimBack",
    "reason_label",
    "refused_account_reason",
    "refuses_account",
    "settlement_id",
]

Outcome = Literal["executed", "rejected", "returned"]
"""What the bank did with a paid-out order."""
BankFileKind = Literal["pain.002", "camt.054"]
RejectionScope = Literal["transaction", "payment_information", "group"]
"""Where a pain.002 rejected: one transaction, the payment instruction or the whole message
(then every order of the message is rejected)."""

SETTLEMENT_RULE = "settlement-in-order"
"""The rule a contradicting status breaks: ordered → executed | rejected, executed → returned."""

REASON_LABELS: dict[str, str] = {
    "AC01": "incorrect account number",
    "AC04": "closed account number",
    "AC06": "blocked account",
    "AG01": "transaction forbidden on this account",
    "AM04": "insufficient funds",
    "AM05": "duplication",
    "BE04": "missing creditor address",
    "BE05": "unrecognised initiating party",
    "CURR": "incorrect currency",
    "DT01": "invalid date",
    "DU01": "duplicate message id",
    "FF01": "invalid file format",
    "MD07": "end customer deceased",
    "MS02": "not specified reason, customer generated",
    "MS03": "not specified reason, agent generated",
    "RC01": "bank identifier incorrect",
    "RR01": "missing debtor account or identification",
}
"""Labels of the ISO 20022 external status and return reason codes (ExternalStatusReason1Code,
ExternalReturnReason1Code) a Swiss bank commonly sends; others print as their code."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def reason_label(code: str | None) -> str:
    """`code` with its label ("AC04 closed account number"), the code alone if unknown."""
    if not code:
        return ""
    label = REASON_LABELS.get(code)
    return f"{code} {label}" if label else code


def settlement_id(run_id: UUID) -> UUID:
    """The id of the `RunSettlement` of run `run_id`."""
    return uuid5(run_id, "settlement")


def _sha256(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise ValueError("a SHA-256 is 64 lower-case hex digits")
    return value


def _reason(value: str) -> str:
    value = printable_text(value).strip()
    if not value:
        raise ValueError("give a reason")
    return with_a_letter(value)


Text = Annotated[str, StringConstraints(max_length=500), AfterValidator(printable_text)]
Reason = Annotated[str, StringConstraints(max_length=500), AfterValidator(_reason)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
PositiveCHF = Annotated[CHF, Field(gt=0)]


class BankStatus(BaseModel):
    """One finding of a bank file about an order (or a whole message), before it is checked
    against what was ordered. `where` names the element it comes from, for error messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    where: str
    """The element path in the file, e.g. `OrgnlPmtInfAndSts[1]/TxInfAndSts[2]`."""
    message_id: str | None = None
    """The original pain.001 message id (a run id's hex), when the bank states it."""
    message_where: str = ""
    """The element the message id comes from (default: `where`)."""
    end_to_end_id: str | None = None
    """The order (its id's hex); None when the whole message is meant (group rejection)."""
    scope: RejectionScope = "transaction"
    amount: Decimal | None = None
    booking_date: date | None = None
    bank_reference: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None


class ReconcileBankFile(Command):
    """Record what a bank file (pain.002 or camt.054) says about our payment orders."""

    name: ClassVar[str] = "reconcile_bank_file"
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    file_sha256: Sha256
    kind: BankFileKind
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=35)]
    """The bank file's own message id (GrpHdr/MsgId)."""
    statuses: list[BankStatus]


class RecoverClaimBack(Command):
    """Record an amount recovered on a claim-back (partial recoveries allowed)."""

    name: ClassVar[str] = "recover_claim_back"
    order_id: UUID
    amount: PositiveCHF
    recovered_on: date
    note: Text | None = None


class WriteOffClaimBack(Command):
    """Write off what is still outstanding on a claim-back (an administrator, with a reason)."""

    name: ClassVar[str] = "write_off_claim_back"
    order_id: UUID
    reason: Reason


# --- events -----------------------------------------------------------------------------------


class RunSettlementOpened(Aggregate.Created):
    """The settlement of a payment run was opened (with its first bank file or recovery)."""

    run_id: UUID

    def apply(self, settlement: RunSettlement) -> None:
        settlement.run_id = self.run_id


class BankFileRead(Aggregate.Event):
    """A bank file touching the run was read (recorded with what it said, once per file)."""

    file_name: str
    file_sha256: str
    kind: str
    """pain.002 or camt.054 (`BankFileKind`)."""
    message_id: str
    actor: Actor
    recorded_by: str
    correlation_id: UUID

    def apply(self, settlement: RunSettlement) -> None:
        settlement.files = settlement.files | {self.file_sha256}


class _OrderSettled(Aggregate.Event):
    """Base of the events that settle one order (not recorded itself)."""

    order_id: UUID
    case_id: UUID
    for_month: date
    amount: Decimal
    """CHF: executed, rejected or returned."""
    file_sha256: str
    actor: Actor
    recorded_by: str
    correlation_id: UUID
    outcome: ClassVar[str] = ""

    def apply(self, settlement: RunSettlement) -> None:
        settlement.states = {**settlement.states, str(self.order_id): self.outcome}


class PaymentExecuted(_OrderSettled):
    """The bank executed (booked) the transfer of an order (camt.054 debit)."""

    booking_date: date
    bank_reference: str | None
    outcome: ClassVar[str] = "executed"


class PaymentRejected(_OrderSettled):
    """The bank rejected the transfer of an order (pain.002), and why."""

    scope: str
    """transaction, payment_information or group (`RejectionScope`)."""
    reason_code: str | None
    reason_text: str | None
    outcome: ClassVar[str] = "rejected"


class PaymentReturned(_OrderSettled):
    """An executed transfer came back (camt.054 credit with return information)."""

    booking_date: date
    bank_reference: str | None
    reason_code: str | None
    reason_text: str | None
    outcome: ClassVar[str] = "returned"


class ClaimBackRecovered(Aggregate.Event):
    """An amount of a claim-back was recovered (never more than was outstanding)."""

    order_id: UUID
    case_id: UUID
    for_month: date
    amount: Decimal
    recovered_on: date
    outstanding: Decimal
    """CHF still to recover after this recovery."""
    note: str | None
    actor: Actor
    recorded_by: str
    correlation_id: UUID

    def apply(self, settlement: RunSettlement) -> None:
        key = str(self.order_id)
        settlement.recovered = {
            **settlement.recovered,
            key: settlement.recovered.get(key, ZERO) + self.amount,
        }


class ClaimBackWrittenOff(Aggregate.Event):
    """What was outstanding on a claim-back was written off by an administrator."""

    order_id: UUID
    case_id: UUID
    for_month: date
    amount: Decimal
    """CHF written off (what was outstanding)."""
    reason: str
    actor: Actor
    recorded_by: str
    correlation_id: UUID

    def apply(self, settlement: RunSettlement) -> None:
        settlement.written_off = settlement.written_off | {str(self.order_id)}


Refusal = PaymentRejected | PaymentReturned
"""A bank's refusal of a paid-out order: rejected before, or returned after, execution."""
REFUSAL_EVENT_TYPES: tuple[type[Any], ...] = (PaymentRejected, PaymentReturned)
"""The events after which an order no longer counts for its month (the money did not reach
the payee, or came back): what they record as `amount` is subtracted from what was ordered."""


def refuses_account(event: Refusal) -> bool:
    """True if the refusal is about the payee's account: a return, or the rejection of the
    transfer itself. A rejected message or payment instruction (`scope` group or
    payment_information: a duplicate message id, a file format error) says nothing about it."""
    return isinstance(event, PaymentReturned) or event.scope == "transaction"


def refused_account_reason(event: Refusal) -> str:
    """The `held_reason` of an order held because the bank refused the case's payout account
    (`event`): the refusal, its reason code and label, the order."""
    what = "returned" if isinstance(event, PaymentReturned) else "rejected"
    why = reason_label(event.reason_code) or "no reason code given"
    return (
        f"payout account refused by the bank: {what} {why} (order {event.order_id.hex} for "
        f"{event.for_month:%Y-%m}); record a new payout account"
    )


SETTLEMENT_EVENT_TYPES: tuple[type[Any], ...] = (
    RunSettlementOpened,
    BankFileRead,
    PaymentExecuted,
    PaymentRejected,
    PaymentReturned,
    ClaimBackRecovered,
    ClaimBackWrittenOff,
)
"""Every settlement event type (in the payments store, not on the payments topic)."""


class RunSettlement(Aggregate):
    """What the bank and the recoveries made of one payment run's orders."""

    run_id: UUID

    def __init__(self) -> None:
        self.files: frozenset[str] = frozenset()
        self.states: dict[str, str] = {}
        self.recovered: dict[str, Decimal] = {}
        self.written_off: frozenset[str] = frozenset()

    @classmethod
    def open(cls, run_id: UUID, at: Any) -> RunSettlement:
        """The settlement of `run_id`, before anything was recorded."""
        return cls._create(
            RunSettlementOpened, id=settlement_id(run_id), timestamp=at, run_id=run_id
        )

    def state_of(self, order_id: UUID) -> str | None:
        """executed, rejected, returned, or None while the order is open."""
        return self.states.get(str(order_id))

    def outstanding(self, order_id: UUID, amount: Decimal) -> Decimal:
        """What is still to recover of a claim-back of `amount` (0 once written off)."""
        if str(order_id) in self.written_off:
            return ZERO
        return amount - self.recovered.get(str(order_id), ZERO)

    def record(self, event_class: type[Any], at: Any, **fields: Any) -> None:
        """Append one settlement event (the service checked it against the rules)."""
        self.trigger_event(event_class, timestamp=max(at, self.modified_on), **fields)

"""Payments: payout accounts, monthly payment runs and the orders they record.

What a case is owed for a month is `domain.entitlement.month_entitlement` (the one
definition); a payment run for month M orders, for every case with support in or before M and
for every month m from its first supported month to M, the difference between what m is owed
*as known now* and what was ordered for m so far. So the orders of a case always add up to
what its bitemporal budget says was owed, however often the budget changed retroactively.

Three aggregates, kept in their own event store (application "payments", see
`domain.application.payments`), so that the case store's notification log stays case-only:

- `PayoutAccount` (one per case, id `payout_account_id(case_id)`): the IBAN and account
  holder, sealed with the applicant's personal-data key (erasing the person shreds them too);
- `PaymentRun` (id `new_payment_run_id()`, random): `PaymentRunStarted` (who prepared it),
  one `PaymentOrdered` per order, one `PaymentHeld` per case held for an open closure
  proposal, `PaymentRunCompleted` — all recorded at once, or nothing; later
  `PaymentRunApproved` (who approved it: a second person, four-eyes), which releases its file;
- `PaymentRunBook` (a single one): one `PaymentRunBooked` per run. Every run appends to it in
  the same transaction as the run itself, so two runs computed from the same state can never
  both be recorded (the second is refused and can simply be run again).

For the pain.001 sink (`connectors/payments/`), the events that matter are on the payments
topic (`nervenbahn.payments.payment-orders.v1`, key: run id, in order): a run's
`PaymentRunStarted` (month, execution date), its `PaymentOrdered` events and its
`PaymentRunCompleted` (counts and control sums to check the file against). An order is paid
out in the pain.001 file only if `order.paid_out` (kind `regular` or `back_payment`, not
`held`); a `claim_back` is an amount to recover from the household, never a transfer; a
`held` order (no usable payout account, or one the bank refused: `held_reason`) is neither: it
is ordered again by a later run. The
sink writes a run's file only once the run's `PaymentRunApproved` arrived.

Run ids are random (UUIDv4), not derived from month and sequence: two installations, or a
store restored from a backup that then records "the same" run again, would otherwise repeat
run ids and so pain.001 message ids (a bank's duplicate check refuses or, worse, drops the
file). Nothing relied on the determinism: two runs computed at once are kept apart by the
`PaymentRunBook` (optimistic lock in the run's transaction), and the sink is idempotent on the
run id carried by the run's events. Order ids stay derived from the run id (`payment_order_id`),
so they are unique too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, BeforeValidator, Field
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from domain.commands import Actor, Command, printable_text, with_a_letter
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity, RecordedBySinceVersion2
from domain.money import ZERO
from domain.personal_data import PersonalDataCorruptError, PersonalDataVault

__all__ = [
    "NO_USABLE_ACCOUNT",
    "PAYMENT_EVENT_TYPES",
    "PAYMENT_VALUE_TYPES",
    "RUN_BOOK_ID",
    "RUN_EVENT_TYPES",
    "AccountSealer",
    "ApprovePaymentRun",
    "HoldDraft",
    "HoldReason",
    "LargeBackPayment",
    "OrderDraft",
    "OrderKind",
    "PaymentHeld",
    "PaymentOrdered",
    "PaymentRun",
    "PaymentRunApproved",
    "PaymentRunBook",
    "PaymentRunBookOpened",
    "PaymentRunBooked",
    "PaymentRunCompleted",
    "PaymentRunStarted",
    "PayoutAccount",
    "PayoutAccountChanged",
    "PayoutAccountDetails",
    "PayoutAccountRecorded",
    "RecordPayoutAccount",
    "RunPayments",
    "SealedPayoutAccount",
    "large_back_payments",
    "new_payment_run_id",
    "normalise_iban",
    "parse_month",
    "payment_order_id",
    "payout_account_id",
]

_IDS = uuid5(NAMESPACE_URL, "https://nervenbahn.ch/payments")
"""The namespace of every deterministic payments id."""
RUN_BOOK_ID = uuid5(_IDS, "payment-run-book")
"""The id of the one `PaymentRunBook`."""

OrderKind = Literal["regular", "back_payment", "claim_back"]
"""regular: month M's first payment in M's run; back_payment: more owed for a month than was
ordered (an earlier month, or M again after a change); claim_back: less owed than was ordered
(an amount to recover, never paid out)."""

HoldReason = Literal["death", "moved_away"]
"""Why a run holds a case: an open closure proposal of a connected register for a death or a
departure out of the canton (docs/payments.md, "Holds")."""

NO_USABLE_ACCOUNT = "no usable payout account"
"""`PaymentOrdered.held_reason` of an order held because the case has no payout account, or
one that no longer opens (the person was erased)."""

_QR_IID = range(30000, 32000)
"""QR-IIDs (positions 5-9 of a QR-IBAN): such an IBAN takes QR-bill payments only, it is not a
payee's account (SIX, Swiss Implementation Guidelines QR-bill, 'QR-IBAN')."""
_NONCE_BYTES = 12
_ACCOUNT_AAD = b"payout-account:"


# --- ids ---------------------------------------------------------------------------------------


def payout_account_id(case_id: UUID) -> UUID:
    """The id of a case's `PayoutAccount` aggregate."""
    return uuid5(_IDS, f"payout-account/{case_id}")


def new_payment_run_id() -> UUID:
    """A new payment run's id: random (UUIDv4), so that no other installation and no restored
    copy of this store can repeat it (its hex is the pain.001 message id)."""
    return uuid4()


def payment_order_id(run_id: UUID, case_id: UUID, for_month: date) -> UUID:
    """The id of the order of `run_id` for `case_id` and `for_month` (the pain.001
    end-to-end id is its hex: 32 characters, within the standard's 35)."""
    return uuid5(run_id, f"{case_id}/{for_month:%Y-%m}")


# --- input ---------------------------------------------------------------------------------------


def normalise_iban(value: str) -> str:
    """An IBAN of a Swiss or Liechtenstein payee account, compact; ValueError naming why not.

    Checks length, check digits and bank code (schwifty); refuses other countries and
    QR-IBANs (a QR-IBAN only receives QR-bill payments).
    """
    try:
        iban = IBAN(value)
    except SchwiftyException as exc:
        raise ValueError(f"not a valid IBAN ({exc})") from exc
    if iban.country_code not in ("CH", "LI"):
        raise ValueError(f"a payout account must be Swiss or Liechtenstein (CH/LI), not "
                         f"{iban.country_code}")
    if int(iban.bank_code) in _QR_IID:
        raise ValueError("a QR-IBAN takes QR-bill payments only; give the account's IBAN")
    return str(iban.compact)


def parse_month(value: str | date) -> date:
    """`YYYY-MM` (or a date) as the first day of that month; ValueError naming the format."""
    if isinstance(value, date):
        return value.replace(day=1)
    text = value.strip()
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"{value!r} is not a month YYYY-MM") from None


def _month_input(value: Any) -> Any:
    if isinstance(value, str | date):
        return parse_month(value)
    raise ValueError("a month must be given as YYYY-MM")


def _holder(value: str) -> str:
    value = printable_text(value)
    if not value.strip():
        raise ValueError("the account holder's name is missing")
    with_a_letter(value)
    if len(value) > 70:
        raise ValueError("at most 70 characters (ISO 20022 Max70Text)")
    return value.strip()


Month = Annotated[date, BeforeValidator(_month_input)]
Iban = Annotated[str, AfterValidator(normalise_iban)]
Holder = Annotated[str, AfterValidator(_holder)]


class _PaymentCommand(Command):
    """Base of the payments commands (errors name the field, as for every command)."""


class RecordPayoutAccount(_PaymentCommand):
    """Record (or replace) the account a case's support is paid to."""

    name: ClassVar[str] = "record_payout_account"
    case_id: UUID
    iban: Iban
    holder: Holder


class RunPayments(_PaymentCommand):
    """Run the payments of a month: order what is owed and not yet ordered."""

    name: ClassVar[str] = "run_payments"
    month: Month
    execution_date: date | None = None
    """The requested execution date of the transfers (default: the day of the run)."""


class ApprovePaymentRun(_PaymentCommand):
    """Approve a prepared payment run (four-eyes): releases its pain.001 file.

    `acknowledged` names every case whose back-payments in the run exceed the approval
    threshold (`large_back_payments`): the approver confirms each one explicitly."""

    name: ClassVar[str] = "approve_payment_run"
    run_id: UUID
    acknowledged: list[UUID] = Field(default_factory=list)
    """The cases with large back-payments the approver has checked (see the refusal's list)."""


# --- values --------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PayoutAccountDetails:
    """A payout account in clear: only ever held in memory, never stored or logged."""

    iban: str
    holder: str

    def __repr__(self) -> str:
        return "PayoutAccountDetails(...)"


@dataclass(frozen=True)
class SealedPayoutAccount:
    """A payout account sealed with the key of `person_id` (the case's applicant).

    `sealed` is base64 of a 12-byte nonce and the AES-GCM ciphertext of
    `{"iban": …, "holder": …}` (associated data: `b"payout-account:" + person_id.bytes`).
    Open it with `AccountSealer.open`; after the person's erasure it opens as None.
    """

    person_id: UUID
    sealed: str


PAYMENT_VALUE_TYPES: tuple[type, ...] = (Actor, SealedPayoutAccount, EstablishedIdentity)
"""Value types stored inside payment events (each needs a transcoding)."""


class AccountSealer:
    """Seals and opens payout accounts with the person's own data key.

    The key is the one `PersonalDataVault` keeps for the person, so `nervenbahn person erase`
    shreds the account with the rest of the person's data.
    """

    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    def seal(self, person_id: UUID, account: PayoutAccountDetails) -> SealedPayoutAccount:
        """Encrypt `account` for `person_id` (who must have a data key: an applicant has)."""
        fields = {"iban": account.iban, "holder": account.holder}
        sealed = self._vault.seal_fields(person_id, _ACCOUNT_AAD, fields)
        if sealed is None:
            raise PersonalDataCorruptError(
                f"person {person_id} has no data key (erased?): the account cannot be sealed"
            )
        return SealedPayoutAccount(person_id, sealed)

    def open(self, account: SealedPayoutAccount) -> PayoutAccountDetails | None:
        """The account in clear, or None if the person was erased."""
        data = self._vault.open_fields(account.person_id, _ACCOUNT_AAD, account.sealed)
        if data is None:
            return None
        return PayoutAccountDetails(data["iban"], data["holder"])


# --- payout accounts --------------------------------------------------------------------------


class PayoutAccountRecorded(RecordedBySinceVersion2, Aggregate.Created):
    """A case's payout account was recorded for the first time.

    Version 2 added `recorded_by`, the identity the recording edge established
    (`domain.identity`); version 1 events are upcast on read to `unknown`."""

    case_id: UUID
    account: SealedPayoutAccount
    actor: Actor
    correlation_id: UUID
    recorded_by: EstablishedIdentity

    def apply(self, aggregate: PayoutAccount) -> None:
        aggregate.case_id = self.case_id
        aggregate.account = self.account


class PayoutAccountChanged(RecordedBySinceVersion2, Aggregate.Event):
    """A case's payout account was replaced (later runs pay to the new one).

    Version 2 added `recorded_by` (as `PayoutAccountRecorded`)."""

    account: SealedPayoutAccount
    actor: Actor
    correlation_id: UUID
    recorded_by: EstablishedIdentity

    def apply(self, aggregate: PayoutAccount) -> None:
        aggregate.account = self.account


class PayoutAccount(Aggregate):
    """The account a case's support is paid to (sealed)."""

    case_id: UUID
    account: SealedPayoutAccount

    @classmethod
    def record(
        cls, cmd: RecordPayoutAccount, account: SealedPayoutAccount, at: datetime,
        recorded_by: EstablishedIdentity = UNKNOWN_IDENTITY,
    ) -> PayoutAccount:
        """The first payout account of a case, recorded by the identity the edge
        established."""
        return cls._create(
            PayoutAccountRecorded,
            id=payout_account_id(cmd.case_id),
            timestamp=at,
            case_id=cmd.case_id,
            account=account,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
            recorded_by=recorded_by,
        )

    def change(
        self, cmd: RecordPayoutAccount, account: SealedPayoutAccount, at: datetime,
        recorded_by: EstablishedIdentity = UNKNOWN_IDENTITY,
    ) -> None:
        """Replace the account (recorded by the identity the edge established)."""
        self.trigger_event(
            PayoutAccountChanged,
            timestamp=max(at, self.modified_on),
            account=account,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
            recorded_by=recorded_by,
        )


# --- payment runs ------------------------------------------------------------------------------


class PaymentRunStarted(Aggregate.Created):
    """A payment run for a month began (the run's first event; its id is the run id)."""

    month: date
    """The month the run is for (its first day)."""
    sequence: int
    """1 for the month's first run, 2 for the second, …"""
    execution_date: date
    """The requested execution date of the run's transfers (pain.001 ReqdExctnDt)."""
    actor: Actor
    correlation_id: UUID

    def apply(self, run: PaymentRun) -> None:
        run.month = self.month
        run.actor = self.actor
        run.sequence = self.sequence
        run.execution_date = self.execution_date
        run.orders = []
        run.holds = []
        run.completed = False
        run.approved = False


class PaymentOrdered(Aggregate.Event):
    """One order of a run: an amount for one case and month.

    `amount` is always positive; `kind` says which way it goes. Paid out (pain.001) only if
    `paid_out`; a `claim_back` is to be recovered; a `held` order had no usable payout account
    (or only one the bank refused, `held_reason`) and counts for nothing (a later run orders it
    again).

    Version 2 added `held_reason`; version 1 events stay stored as written and are upcast on
    every read (`upcast_v1_v2`).
    """

    class_version = 2

    order_id: UUID
    """Deterministic (`payment_order_id`): the pain.001 end-to-end id is its hex."""
    case_id: UUID
    for_month: date
    """The month the amount is for (its first day)."""
    kind: OrderKind
    amount: Decimal
    """CHF, two decimals, > 0."""
    held: bool
    """True if the case had no usable payout account: nothing is paid or counted."""
    held_reason: str | None
    """Why a held order is held: `NO_USABLE_ACCOUNT`, or the bank's refusal of the case's
    payout account (`domain.settlement.refused_account_reason`, naming the reason code);
    None if not held."""
    creditor: SealedPayoutAccount | None
    """The payout account (sealed), None for a held order or a claim-back without account."""
    social_region: str
    """The social region responsible for the case at the run (the paying organisation)."""
    entitlement: Decimal
    """What `for_month` is owed as known at the run (`month_entitlement`)."""
    previously_ordered: Decimal
    """The sum of earlier counted orders for the case and month (claims negative)."""
    budget_effective_date: date | None
    """The budget version the entitlement rests on (the latest recorded of those in force in
    the month): its effective date; None if nothing is owed for the month any more."""
    budget_recorded_at: datetime | None
    """… and its recorded time."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A version 1 event (stored before orders were held for a refused account): a held
        one was held for want of a usable payout account."""
        state["held_reason"] = NO_USABLE_ACCOUNT if state["held"] else None

    @property
    def signed_amount(self) -> Decimal:
        """What the order counts for: +amount paid, -amount claimed back, 0 when held."""
        if self.held:
            return ZERO
        return -self.amount if self.kind == "claim_back" else self.amount

    @property
    def paid_out(self) -> bool:
        """True if the order is a transfer to the payee (it goes into the pain.001 file)."""
        return not self.held and self.kind != "claim_back"

    def apply(self, run: PaymentRun) -> None:
        run.orders = [*run.orders, self.order_id]


class PaymentHeld(Aggregate.Event):
    """The run held a case: an open closure proposal (death, departure out of the canton)
    says its support may end on `proposal_effective_date`, so the run ordered nothing for the
    days from `held_from` on. Once the proposal is decided, a later run orders what is owed:
    a dismissed proposal back-pays what was held, an accepted one (the case closed) owes
    nothing after the closing date."""

    case_id: UUID
    reason: str
    """death or moved_away (`HoldReason`)."""
    proposal: str
    """The proposal's external reference (the register's message id and event index)."""
    proposal_effective_date: date
    """The date the register reported (of death, of departure): the last day still ordered,
    as it would be as the closing date of the case."""
    held_from: date
    """The first day the run ordered nothing for (the day after the proposal's date)."""
    held_amount: Decimal
    """CHF the run did not order because of the hold (≥ 0; what was ordered before stays)."""
    social_region: str

    def apply(self, run: PaymentRun) -> None:
        run.holds = [*run.holds, self.case_id]


class PaymentRunCompleted(Aggregate.Event):
    """A payment run ended: its counts and control sums (to check a pain.001 file against)."""

    order_count: int
    """Orders of the run, held ones included."""
    paid_out_count: int
    control_sum: Decimal
    """The sum of what is paid out (pain.001 CtrlSum)."""
    claim_count: int
    claim_sum: Decimal
    held_count: int
    held_sum: Decimal

    def apply(self, run: PaymentRun) -> None:
        run.completed = True


class PaymentRunApproved(Aggregate.Event):
    """A second person approved the run (four-eyes): its pain.001 file may be released.

    `actor` is not the one who prepared the run (`PaymentRunStarted.actor`); the back-payments
    above `threshold` were listed to them and acknowledged, case by case."""

    actor: Actor
    correlation_id: UUID
    threshold: Decimal
    """CHF: the approval threshold in force (NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD)."""
    large_back_payments: list[UUID]
    """The cases whose back-payments in the run exceed `threshold`, acknowledged one by one."""
    large_back_payment_sum: Decimal
    """CHF: what those cases are back-paid in the run."""

    def apply(self, run: PaymentRun) -> None:
        run.approved = True


RUN_EVENT_TYPES: tuple[type[Any], ...] = (
    PaymentRunStarted, PaymentOrdered, PaymentHeld, PaymentRunCompleted, PaymentRunApproved,
)
"""The events of a payment run: what the payments topic carries (in this order per run;
`PaymentRunApproved` later, when a second person approves)."""


@dataclass(frozen=True)
class OrderDraft:
    """An order before it is recorded."""

    case_id: UUID
    for_month: date
    kind: OrderKind
    amount: Decimal
    held: bool
    creditor: SealedPayoutAccount | None
    social_region: str
    entitlement: Decimal
    previously_ordered: Decimal
    budget_effective_date: date | None
    budget_recorded_at: datetime | None
    held_reason: str | None = None
    """Why it is held (`PaymentOrdered.held_reason`); None if not held."""


@dataclass(frozen=True)
class HoldDraft:
    """A case held by a run, before it is recorded (see `PaymentHeld`)."""

    case_id: UUID
    reason: HoldReason
    proposal: str
    proposal_effective_date: date
    held_from: date
    held_amount: Decimal
    social_region: str


@dataclass(frozen=True)
class LargeBackPayment:
    """A case back-paid more than the approval threshold in one run."""

    case_id: UUID
    amount: Decimal
    months: tuple[date, ...]


def large_back_payments(
    orders: list[PaymentOrdered] | list[OrderDraft], threshold: Decimal
) -> list[LargeBackPayment]:
    """The cases whose paid-out back-payments in one run add up to more than `threshold`
    (by case: many small months are as large as one big one), largest first."""
    by_case: dict[UUID, list[PaymentOrdered | OrderDraft]] = {}
    for order in orders:
        if order.kind == "back_payment" and not order.held:
            by_case.setdefault(order.case_id, []).append(order)
    found = [
        LargeBackPayment(case_id, sum((o.amount for o in found), ZERO),
                         tuple(sorted(o.for_month for o in found)))
        for case_id, found in by_case.items()
    ]
    return sorted((b for b in found if b.amount > threshold),
                  key=lambda b: (-b.amount, str(b.case_id)))


class PaymentRun(Aggregate):
    """One payment run: its orders and holds, recorded together; approved later."""

    month: date
    sequence: int
    execution_date: date
    actor: Actor

    def __init__(self) -> None:
        self.orders: list[UUID] = []
        self.holds: list[UUID] = []
        self.completed = False
        self.approved = False

    @classmethod
    def record(
        cls,
        cmd: RunPayments,
        sequence: int,
        execution_date: date,
        drafts: list[OrderDraft],
        at: datetime,
        *,
        holds: list[HoldDraft] | None = None,
        run_id: UUID | None = None,
    ) -> PaymentRun:
        """A run with its orders, holds and totals, as pending events (`run_id`: default a
        new random one)."""
        run = cls._create(
            PaymentRunStarted,
            id=run_id or new_payment_run_id(),
            timestamp=at,
            month=cmd.month,
            sequence=sequence,
            execution_date=execution_date,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
        )
        for draft in drafts:
            run.trigger_event(
                PaymentOrdered,
                timestamp=at,
                order_id=payment_order_id(run.id, draft.case_id, draft.for_month),
                **vars(draft),
            )
        for hold in holds or []:
            run.trigger_event(PaymentHeld, timestamp=at, **vars(hold))
        paid = [d for d in drafts if not d.held and d.kind != "claim_back"]
        claims = [d for d in drafts if d.kind == "claim_back"]
        held = [d for d in drafts if d.held]
        run.trigger_event(
            PaymentRunCompleted,
            timestamp=at,
            order_count=len(drafts),
            paid_out_count=len(paid),
            control_sum=_total(paid),
            claim_count=len(claims),
            claim_sum=_total(claims),
            held_count=len(held),
            held_sum=_total(held),
        )
        return run

    def approve(
        self,
        cmd: ApprovePaymentRun,
        threshold: Decimal,
        large: list[LargeBackPayment],
        at: datetime,
    ) -> None:
        """Record the second person's approval (the service checks who may approve)."""
        self.trigger_event(
            PaymentRunApproved,
            timestamp=max(at, self.modified_on),
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
            threshold=threshold,
            large_back_payments=[b.case_id for b in large],
            large_back_payment_sum=sum((b.amount for b in large), ZERO),
        )


class PaymentRunBookOpened(Aggregate.Created):
    """The book of payment runs was opened (with the installation's first run)."""


class PaymentRunBooked(Aggregate.Event):
    """A payment run was recorded (in the same transaction as the run itself)."""

    run_id: UUID
    month: date
    sequence: int

    def apply(self, book: PaymentRunBook) -> None:
        key = self.month.isoformat()
        book.runs_by_month = {**book.runs_by_month, key: [*book.runs_by_month.get(key, []),
                                                            self.run_id]}


class PaymentRunBook(Aggregate):
    """Every payment run, by month: numbers the runs and serialises them (optimistic lock)."""

    def __init__(self) -> None:
        self.runs_by_month: dict[str, list[UUID]] = {}

    @classmethod
    def open(cls, at: datetime) -> PaymentRunBook:
        """The book, before its first run."""
        return cls._create(PaymentRunBookOpened, id=RUN_BOOK_ID, timestamp=at)

    def next_sequence(self, month: date) -> int:
        """The sequence number of the next run for `month`."""
        return len(self.runs_by_month.get(month.isoformat(), [])) + 1

    def book(self, run: PaymentRun, at: datetime) -> None:
        """Note a run about to be recorded."""
        self.trigger_event(
            PaymentRunBooked,
            timestamp=max(at, self.modified_on),
            run_id=run.id,
            month=run.month,
            sequence=run.sequence,
        )


PAYMENT_EVENT_TYPES: tuple[type[Any], ...] = (
    PayoutAccountRecorded,
    PayoutAccountChanged,
    *RUN_EVENT_TYPES,
    PaymentRunBookOpened,
    PaymentRunBooked,
)
"""Every event type of the payments store."""


def _total(drafts: list[OrderDraft]) -> Decimal:
    return sum((d.amount for d in drafts), ZERO)

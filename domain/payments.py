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
- `PaymentRun` (id `payment_run_id(month, sequence)`): `PaymentRunStarted`, one
  `PaymentOrdered` per order, `PaymentRunCompleted` — all recorded at once, or nothing;
- `PaymentRunBook` (a single one): one `PaymentRunBooked` per run. Every run appends to it in
  the same transaction as the run itself, so two runs computed from the same state can never
  both be recorded (the second is refused and can simply be run again).

For the pain.001 sink (`connectors/payments/`), the events that matter are on the payments
topic (`nervenbahn.payments.payment-orders.v1`, key: run id, in order): a run's
`PaymentRunStarted` (month, execution date), its `PaymentOrdered` events and its
`PaymentRunCompleted` (counts and control sums to check the file against). An order is paid
out in the pain.001 file only if `order.paid_out` (kind `regular` or `back_payment`, not
`held`); a `claim_back` is an amount to recover from the household, never a transfer; a
`held` order (no usable payout account) is neither: it is ordered again by a later run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, BeforeValidator
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from domain.commands import Actor, Command, printable_text, with_a_letter
from domain.money import ZERO
from domain.personal_data import PersonalDataCorruptError, PersonalDataVault

__all__ = [
    "PAYMENT_EVENT_TYPES",
    "PAYMENT_VALUE_TYPES",
    "RUN_BOOK_ID",
    "RUN_EVENT_TYPES",
    "AccountSealer",
    "OrderDraft",
    "OrderKind",
    "PaymentOrdered",
    "PaymentRun",
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
    "normalise_iban",
    "parse_month",
    "payment_order_id",
    "payment_run_id",
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

_QR_IID = range(30000, 32000)
"""QR-IIDs (positions 5-9 of a QR-IBAN): such an IBAN takes QR-bill payments only, it is not a
payee's account (SIX, Swiss Implementation Guidelines QR-bill, 'QR-IBAN')."""
_NONCE_BYTES = 12
_ACCOUNT_AAD = b"payout-account:"


# --- ids ---------------------------------------------------------------------------------------


def payout_account_id(case_id: UUID) -> UUID:
    """The id of a case's `PayoutAccount` aggregate."""
    return uuid5(_IDS, f"payout-account/{case_id}")


def payment_run_id(month: date, sequence: int) -> UUID:
    """The id of the `sequence`-th payment run for `month` (1 for the first)."""
    return uuid5(_IDS, f"payment-run/{month:%Y-%m}/{sequence}")


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


PAYMENT_VALUE_TYPES: tuple[type, ...] = (Actor, SealedPayoutAccount)
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


class PayoutAccountRecorded(Aggregate.Created):
    """A case's payout account was recorded for the first time."""

    case_id: UUID
    account: SealedPayoutAccount
    actor: Actor
    correlation_id: UUID

    def apply(self, aggregate: PayoutAccount) -> None:
        aggregate.case_id = self.case_id
        aggregate.account = self.account


class PayoutAccountChanged(Aggregate.Event):
    """A case's payout account was replaced (later runs pay to the new one)."""

    account: SealedPayoutAccount
    actor: Actor
    correlation_id: UUID

    def apply(self, aggregate: PayoutAccount) -> None:
        aggregate.account = self.account


class PayoutAccount(Aggregate):
    """The account a case's support is paid to (sealed)."""

    case_id: UUID
    account: SealedPayoutAccount

    @classmethod
    def record(
        cls, cmd: RecordPayoutAccount, account: SealedPayoutAccount, at: datetime
    ) -> PayoutAccount:
        """The first payout account of a case."""
        return cls._create(
            PayoutAccountRecorded,
            id=payout_account_id(cmd.case_id),
            timestamp=at,
            case_id=cmd.case_id,
            account=account,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
        )

    def change(self, cmd: RecordPayoutAccount, account: SealedPayoutAccount, at: datetime) -> None:
        """Replace the account."""
        self.trigger_event(
            PayoutAccountChanged,
            timestamp=max(at, self.modified_on),
            account=account,
            actor=cmd.actor,
            correlation_id=cmd.correlation_id,
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
        run.sequence = self.sequence
        run.execution_date = self.execution_date
        run.orders = []
        run.completed = False


class PaymentOrdered(Aggregate.Event):
    """One order of a run: an amount for one case and month.

    `amount` is always positive; `kind` says which way it goes. Paid out (pain.001) only if
    `paid_out`; a `claim_back` is to be recovered; a `held` order had no usable payout account
    and counts for nothing (a later run orders it again).
    """

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


RUN_EVENT_TYPES: tuple[type[Any], ...] = (PaymentRunStarted, PaymentOrdered, PaymentRunCompleted)
"""The events of a payment run: what the payments topic carries (in this order per run)."""


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


class PaymentRun(Aggregate):
    """One payment run: its orders, recorded together."""

    month: date
    sequence: int
    execution_date: date
    def __init__(self) -> None:
        self.orders: list[UUID] = []
        self.completed = False

    @classmethod
    def record(
        cls,
        cmd: RunPayments,
        sequence: int,
        execution_date: date,
        drafts: list[OrderDraft],
        at: datetime,
    ) -> PaymentRun:
        """A run with its orders and totals, as pending events."""
        run = cls._create(
            PaymentRunStarted,
            id=payment_run_id(cmd.month, sequence),
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

"""The payments service: payout accounts and monthly payment runs, in a store of their own.

An `eventsourcing` application named "payments" on the same database as the case store, with
its own events table (`payments_events`), so that the case store's notification log (relays,
projections, rebuilds) stays case-only and the payments relay reads payment events only.
It reads cases through the `CaseService` it is given; it never changes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    EventStore,
    IntegrityError,
    JSONTranscoder,
)
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteApplicationRecorder, SQLiteFactory
from eventsourcing.utils import get_topic, resolve_topic

from domain.application.cases import CaseService
from domain.application.eventlog import StoredNotificationLog
from domain.application.snapshots import SNAPSHOT_KEY_PURPOSE, MacSnapshotStore
from domain.application.transcodings import register_domain_transcodings
from domain.case import SWISS_TIME, Case, acts_canton_wide
from domain.entitlement import month_entitlement, month_of, months_between
from domain.errors import RuleViolationError
from domain.events import Proposal, SupportPeriod, proposals_of
from domain.identity import EstablishedIdentity
from domain.money import ZERO
from domain.payments import (
    NO_USABLE_ACCOUNT,
    PAYMENT_VALUE_TYPES,
    RUN_BOOK_ID,
    AccountSealer,
    ApprovePaymentRun,
    HoldDraft,
    HoldReason,
    LargeBackPayment,
    OrderDraft,
    OrderKind,
    PaymentOrdered,
    PaymentRun,
    PaymentRunApproved,
    PaymentRunBook,
    PaymentRunStarted,
    PayoutAccount,
    PayoutAccountDetails,
    RecordPayoutAccount,
    RunPayments,
    SealedPayoutAccount,
    large_back_payments,
    payout_account_id,
)
from domain.settlement import (
    REFUSAL_EVENT_TYPES,
    Refusal,
    refused_account_reason,
    refuses_account,
)

__all__ = [
    "APPROVING_ROLES",
    "DEFAULT_APPROVAL_THRESHOLD",
    "HOLDING_CLOSURE_REASONS",
    "PAYMENTS_EVENTS_TABLE",
    "AccountResult",
    "ApprovalResult",
    "PaymentService",
    "RunSummary",
    "recorder_with_own_table",
]

log = structlog.get_logger("nervenbahn.payments")

PAYMENTS_EVENTS_TABLE = "payments_events"
"""The payments store's events table (eventsourcing names it so on PostgreSQL; on SQLite,
where it would share `stored_events` with the case store, the service names it)."""
_ALL = 2**62
HOLDING_CLOSURE_REASONS: frozenset[str] = frozenset({"death", "moved_away"})
"""Open closure proposals with these reasons hold a case's payments from their date on. A
handover proposal does not hold: the register proposes one only for a move to another social
region of the canton (a move out of the canton is a closure proposal `moved_away`), and the
case stays owed, by the receiving region."""
APPROVING_ROLES: frozenset[str] = frozenset({"administrator"})
"""Who may approve a payment run: a person with a canton-wide role (not the system)."""
DEFAULT_APPROVAL_THRESHOLD = Decimal("5000.00")
"""CHF: back-payments of one case in one run above this are listed for the approval
(NERVENBAHN_PAYMENT_APPROVAL_THRESHOLD overrides it)."""


@dataclass(frozen=True)
class AccountResult:
    """What recording a payout account did."""

    case_id: UUID
    version: int
    changed: bool
    """False for a case's first account, True when it replaced one."""


@dataclass(frozen=True)
class ApprovalResult:
    """What approving a run recorded."""

    run_id: UUID
    approved_by: str
    large_back_payments: list[LargeBackPayment]
    threshold: Decimal


@dataclass
class RunSummary:
    """What a payment run ordered (or would have: nothing is recorded without a payable or
    claimable order)."""

    month: date
    recorded: bool
    run_id: UUID | None = None
    sequence: int | None = None
    execution_date: date | None = None
    orders: list[OrderDraft] = field(default_factory=list)
    holds: list[HoldDraft] = field(default_factory=list)
    """Cases held for an open closure proposal (death, departure out of the canton)."""
    large_back_payments: list[LargeBackPayment] = field(default_factory=list)
    """Cases back-paid more than the approval threshold (listed for the approval)."""
    cases_checked: int = 0
    seconds: float = 0.0

    @property
    def paid_out(self) -> list[OrderDraft]:
        """Orders that are transfers (pain.001)."""
        return [o for o in self.orders if not o.held and o.kind != "claim_back"]

    @property
    def claims(self) -> list[OrderDraft]:
        """Orders to recover."""
        return [o for o in self.orders if o.kind == "claim_back"]

    @property
    def held(self) -> list[OrderDraft]:
        """Orders held for want of a usable payout account (none, or one the bank refused)."""
        return [o for o in self.orders if o.held]

    @property
    def control_sum(self) -> Decimal:
        """The sum paid out."""
        return sum((o.amount for o in self.paid_out), ZERO)

    @property
    def message(self) -> str:
        """One line saying what happened."""
        month = f"{self.month:%Y-%m}"
        held = (f"; {len(self.held)} held (no usable payout account, or one the bank refused)"
                if self.held else "")
        if self.holds:
            held += (f"; {len(self.holds)} cases held for an open closure proposal "
                     f"(CHF {sum((h.held_amount for h in self.holds), ZERO)} not ordered)")
        if not self.recorded:
            return f"payment run {month}: nothing to pay or claim back{held}; nothing recorded"
        large = (f"; {len(self.large_back_payments)} back-payments above the approval "
                 "threshold" if self.large_back_payments else "")
        return (
            f"payment run {month} #{self.sequence} prepared: {len(self.paid_out)} payments "
            f"CHF {self.control_sum}, {len(self.claims)} claims back "
            f"CHF {sum((o.amount for o in self.claims), ZERO)}{held}{large}; run {self.run_id} "
            "awaits a second person's approval (payments approve) before its file is released"
        )


class PaymentService(StoredNotificationLog, Application[UUID]):
    """Records payout accounts and payment runs; reads cases from a `CaseService`. Its
    notification log (`NotificationLog`) is what the payments relay publishes."""

    name = "payments"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        cases: CaseService,
        clock: Callable[[], datetime] = datetime_now_with_tzinfo,
        approval_threshold: Decimal = DEFAULT_APPROVAL_THRESHOLD,
    ) -> None:
        self.cases = cases
        self.approval_threshold = approval_threshold
        self.sealer = AccountSealer(cases.vault)
        self._clock = clock
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Dates, actors and sealed accounts, as the case store writes them."""
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder, self.cases.vault, PAYMENT_VALUE_TYPES)

    def construct_recorder(self) -> ApplicationRecorder:
        """The recorder, on SQLite with a table of its own (`recorder_with_own_table`)."""
        return recorder_with_own_table(self, PAYMENTS_EVENTS_TABLE) or super().construct_recorder()

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots with a MAC, as the case service's (`domain.application.snapshots`), in a
        table of
        their own. The service takes none today (no snapshotting interval); should it, no
        unverified snapshot is ever used."""
        factory = self.factory
        recorder: AggregateRecorder
        if isinstance(factory, SQLiteFactory):
            recorder = SQLiteAggregateRecorder(factory.datastore, "payments_snapshots")
            if factory.env_create_table():
                recorder.create_table()
        else:
            recorder = factory.aggregate_recorder(purpose="snapshots")
        return MacSnapshotStore(self.mapper, recorder,
                                self.cases.vault.derive_key(SNAPSHOT_KEY_PURPOSE))

    def now(self) -> datetime:
        """The service's clock (what every payments event is recorded at)."""
        return self._clock()

    # --- payout accounts -------------------------------------------------------------------

    def record_account(
        self, cmd: RecordPayoutAccount, *, recorded_by: EstablishedIdentity | None = None
    ) -> AccountResult:
        """Record or replace a case's payout account, sealed with the applicant's key;
        recorded by `recorded_by` (the edge's identity), else the case service's own (the
        process's operating-system user)."""
        identity = recorded_by or self.cases.identity
        case = self.cases.case_for(cmd.actor, cmd.case_id)
        person_id = case.applicant.person_id
        if self.cases.vault.keystore.load(person_id) is None:
            raise RuleViolationError(
                "payee-not-erased",
                f"case_id: the applicant of case {case.id} was erased; no account can be "
                "recorded for them",
            )
        sealed = self.sealer.seal(person_id, PayoutAccountDetails(cmd.iban, cmd.holder))
        now = self._clock()
        existing = self._account_aggregate(cmd.case_id)
        if existing is None:
            account = PayoutAccount.record(cmd, sealed, now, identity)
        else:
            account = existing
            account.change(cmd, sealed, now, identity)
        try:
            self.save(account)
        except IntegrityError as exc:
            raise RuleViolationError(
                "one-change-at-a-time",
                f"case_id: the payout account of case {cmd.case_id} was changed meanwhile; "
                "nothing was recorded, retry",
            ) from exc
        log.info("payout account recorded", case_id=str(cmd.case_id), changed=existing
                 is not None, actor=cmd.actor.user_id, correlation_id=str(cmd.correlation_id))
        return AccountResult(cmd.case_id, account.version, existing is not None)

    def payout_account(self, case_id: UUID) -> PayoutAccountDetails | None:
        """The case's payout account in clear; None if none was recorded or it was erased."""
        sealed = self._sealed_account(case_id)
        return None if sealed is None else self.sealer.open(sealed)

    # --- payment runs ----------------------------------------------------------------------

    def run(self, cmd: RunPayments) -> RunSummary:
        """Order, for every case, what is owed up to `cmd.month` and not yet ordered.

        Records the run (all its orders at once) if anything is to be paid or claimed back;
        a run with nothing but held orders records nothing. Refused for a month after the
        current one, and if another run was recorded while this one was computed.
        """
        started = time.perf_counter()
        now = self._clock()
        today = now.astimezone(SWISS_TIME).date()
        execution_date = self._check_run(cmd, today)
        book = self._book()
        sequence = book.next_sequence(cmd.month) if book is not None else 1
        orders, refusals = list(self.orders()), list(self.refusals())
        counted = _counted(orders, refusals)
        refused = _refused_accounts(orders, refusals)
        summary = RunSummary(cmd.month, recorded=False, execution_date=execution_date)
        for case_id in self.cases.case_ids():
            case = self.cases.get_case(case_id)
            drafts, hold = self._orders_for(case, cmd.month, counted, refused.get(case_id, []))
            summary.cases_checked += 1
            summary.orders.extend(drafts)
            if hold is not None:
                summary.holds.append(hold)
        summary.large_back_payments = large_back_payments(summary.orders,
                                                          self.approval_threshold)
        if summary.paid_out or summary.claims:
            run = PaymentRun.record(cmd, sequence, execution_date, summary.orders, now,
                                    holds=summary.holds)
            book = book or PaymentRunBook.open(now)
            book.book(run, now)
            try:
                self.save(run, book)
            except IntegrityError as exc:
                raise RuleViolationError(
                    "one-run-at-a-time",
                    f"month: another payment run was recorded while the run for "
                    f"{cmd.month:%Y-%m} was computed; nothing was recorded, run it again",
                ) from exc
            summary.recorded, summary.run_id, summary.sequence = True, run.id, sequence
        summary.seconds = time.perf_counter() - started
        log.info(
            "payment run",
            month=f"{cmd.month:%Y-%m}",
            outcome="recorded" if summary.recorded else "nothing",
            run_id=str(summary.run_id) if summary.run_id else None,
            payments=len(summary.paid_out),
            control_sum=str(summary.control_sum),
            claims=len(summary.claims),
            held=len(summary.held),
            held_for_proposals=len(summary.holds),
            large_back_payments=len(summary.large_back_payments),
            cases=summary.cases_checked,
            duration_ms=round(summary.seconds * 1000, 1),
            actor=cmd.actor.user_id,
            correlation_id=str(cmd.correlation_id),
        )
        return summary

    def approve(self, cmd: ApprovePaymentRun) -> ApprovalResult:
        """Record a second person's approval of a prepared run (four-eyes): its pain.001 file
        is released only then. Refused unless the approver is an administrator other than
        the one who prepared the run, the run is not approved yet, and every case back-paid
        more than the approval threshold in the run is acknowledged."""
        run = self._run(cmd.run_id)
        _check_approver(cmd, run)
        orders = [e for e in self.run_events(run.id) if isinstance(e, PaymentOrdered)]
        large = large_back_payments(orders, self.approval_threshold)
        _check_acknowledged(cmd, large, self.approval_threshold)
        run.approve(cmd, self.approval_threshold, large, self._clock())
        try:
            self.save(run)
        except IntegrityError as exc:
            raise RuleViolationError(
                "run-approved-once",
                f"run_id: run {run.id} was approved meanwhile; nothing was recorded",
            ) from exc
        log.info("payment run approved", run_id=str(run.id), prepared_by=run.actor.user_id,
                 actor=cmd.actor.user_id, large_back_payments=len(large),
                 correlation_id=str(cmd.correlation_id))
        return ApprovalResult(run.id, cmd.actor.user_id, large, self.approval_threshold)

    def pending_approval(self, run_id: UUID) -> list[LargeBackPayment]:
        """The back-payments above the threshold a run's approval must acknowledge."""
        run = self._run(run_id)
        orders = [e for e in self.run_events(run.id) if isinstance(e, PaymentOrdered)]
        return large_back_payments(orders, self.approval_threshold)

    def approval_of(self, run_id: UUID) -> PaymentRunApproved | None:
        """The run's approval, None while it waits for one."""
        return next((e for e in self.run_events(run_id) if isinstance(e, PaymentRunApproved)),
                    None)

    def _run(self, run_id: UUID) -> PaymentRun:
        try:
            return cast(PaymentRun, self.repository.get(run_id))
        except AggregateNotFoundError:
            raise RuleViolationError(
                "known-run", f"run_id: no payment run {run_id}"
            ) from None

    def _check_run(self, cmd: RunPayments, today: date) -> date:
        if not acts_canton_wide(cmd.actor):
            raise RuleViolationError(
                "payment-run-by-administrator",
                f"actor.role: a payment run is started by an administrator or the system, "
                f"not a {cmd.actor.role}",
            )
        if cmd.month > month_of(today):
            raise RuleViolationError(
                "payment-run-not-in-future",
                f"month: {cmd.month:%Y-%m} lies after the current month {today:%Y-%m}",
            )
        execution_date = cmd.execution_date or today
        if execution_date < today or execution_date > today + timedelta(days=92):
            raise RuleViolationError(
                "execution-date-limit",
                f"execution_date: {execution_date} must lie between today ({today}) and "
                "92 days ahead",
            )
        return execution_date

    def _orders_for(
        self,
        case: Case,
        month: date,
        counted: dict[tuple[UUID, date], Decimal],
        refused: list[tuple[SealedPayoutAccount | None, Refusal]],
    ) -> tuple[list[OrderDraft], HoldDraft | None]:
        """What the run for `month` orders for one case (each month's difference), and the
        case's hold if an open closure proposal holds it (`_hold_of`). `refused`: the bank's
        refusals of the case's payout accounts (`_refused_accounts`)."""
        if not case.support_periods or month_of(case.support_periods[0].start) > month:
            return [], None
        proposal = _holding_proposal(case, month)
        held_periods = (_periods_until(case.support_periods, proposal.proposed_on)
                        if proposal else case.support_periods)
        creditor: SealedPayoutAccount | None = None
        held_reason: str | None = None
        looked_up = False
        drafts: list[OrderDraft] = []
        withheld = ZERO
        for m in months_between(case.support_periods[0].start, month):
            entitlement = month_entitlement(case.budgets, case.support_periods, m)
            before = counted.get((case.id, m))
            difference = entitlement.amount - (before or ZERO)
            if proposal is not None:
                held = month_entitlement(case.budgets, held_periods, m)
                ordered = _held_difference(difference, held.amount - (before or ZERO))
                withheld += max(difference, ZERO) - max(ordered, ZERO)
                difference, entitlement = ordered, held
            if difference == ZERO:
                continue
            if not looked_up:  # only for cases with something to order
                creditor, held_reason = self._creditor(case.id, refused)
                looked_up = True
            drafts.append(_draft(case, m, entitlement, before, difference,
                                 creditor, held_reason, m == month))
        return drafts, _hold(case, proposal, withheld)

    def _creditor(
        self, case_id: UUID, refused: list[tuple[SealedPayoutAccount | None, Refusal]]
    ) -> tuple[SealedPayoutAccount | None, str | None]:
        """The account to pay the case's orders to, or None and why they are held: no usable
        account, or the bank refused this very account (the latest such refusal is named)."""
        account = self._sealed_account(case_id)
        if account is None or self.sealer.open(account) is None:
            return None, NO_USABLE_ACCOUNT
        refusal = next((r for creditor, r in reversed(refused) if creditor == account), None)
        if refusal is not None:
            return None, refused_account_reason(refusal)
        return account, None

    # --- queries ---------------------------------------------------------------------------

    def orders(self, case_id: UUID | None = None) -> Iterator[PaymentOrdered]:
        """Every recorded order (of one case, if given), in recording order."""
        for notification in self.recorder.select_notifications(
            start=None, limit=_ALL, topics=[get_topic(PaymentOrdered)]
        ):
            order = cast(PaymentOrdered, self.mapper.to_domain_event(notification))
            if case_id is None or order.case_id == case_id:
                yield order

    def refusals(self) -> Iterator[Refusal]:
        """Every order the bank rejected (pain.002) or returned (camt.054), in recording
        order (`domain.settlement`: recorded on the run's settlement)."""
        for notification in self.recorder.select_notifications(
            start=None, limit=_ALL, topics=[get_topic(cls) for cls in REFUSAL_EVENT_TYPES]
        ):
            yield cast(Refusal, self.mapper.to_domain_event(notification))

    def counted_by_case_and_month(self) -> dict[tuple[UUID, date], Decimal]:
        """What the recorded orders count for, by case and month: paid out less what the bank
        rejected or returned, claimed back negative, held ones not at all."""
        return _counted(self.orders(), self.refusals())

    def runs(self) -> list[PaymentRun]:
        """Every recorded payment run, by month and sequence."""
        book = self._book()
        if book is None:
            return []
        ids = [run_id for month in sorted(book.runs_by_month)
               for run_id in book.runs_by_month[month]]
        return [cast(PaymentRun, self.repository.get(run_id)) for run_id in ids]

    def run_events(self, run_id: UUID) -> list[Any]:
        """The events of one run, in order (started, orders, completed)."""
        return list(self.events.get(run_id))

    def run_starts(self) -> Iterator[PaymentRunStarted]:
        """The first event of every run, in recording order."""
        for notification in self.recorder.select_notifications(
            start=None, limit=_ALL, topics=[get_topic(PaymentRunStarted)]
        ):
            yield cast(PaymentRunStarted, self.mapper.to_domain_event(notification))

    # --- helpers ---------------------------------------------------------------------------

    def _book(self) -> PaymentRunBook | None:
        try:
            return cast(PaymentRunBook, self.repository.get(RUN_BOOK_ID))
        except AggregateNotFoundError:
            return None

    def _account_aggregate(self, case_id: UUID) -> PayoutAccount | None:
        try:
            return cast(PayoutAccount, self.repository.get(payout_account_id(case_id)))
        except AggregateNotFoundError:
            return None

    def _sealed_account(self, case_id: UUID) -> SealedPayoutAccount | None:
        aggregate = self._account_aggregate(case_id)
        return None if aggregate is None else aggregate.account


def _counted(
    orders: Iterable[PaymentOrdered], refusals: Iterable[Refusal]
) -> dict[tuple[UUID, date], Decimal]:
    """What `orders` count for by case and month (`PaymentOrdered.signed_amount`), less what
    the bank rejected or returned of them: that money never reached the payee, so the next
    run orders it again. An executed order and one without any answer yet count in full."""
    counted: dict[tuple[UUID, date], Decimal] = {}
    for order in orders:
        if not order.held:
            key = (order.case_id, order.for_month)
            counted[key] = counted.get(key, ZERO) + order.signed_amount
    for refusal in refusals:
        key = (refusal.case_id, refusal.for_month)
        counted[key] = counted.get(key, ZERO) - refusal.amount
    return counted


def _refused_accounts(
    orders: Iterable[PaymentOrdered], refusals: Iterable[Refusal]
) -> dict[UUID, list[tuple[SealedPayoutAccount | None, Refusal]]]:
    """By case, the payout accounts the bank refused (the refused order's creditor) and the
    refusal, in recording order; rejections of a whole message are no refusal of an account
    (`refuses_account`)."""
    creditors = {order.order_id: order.creditor for order in orders}
    refused: dict[UUID, list[tuple[SealedPayoutAccount | None, Refusal]]] = {}
    for refusal in refusals:
        if refuses_account(refusal):
            refused.setdefault(refusal.case_id, []).append(
                (creditors.get(refusal.order_id), refusal)
            )
    return refused


def _holding_proposal(case: Case, month: date) -> Proposal | None:
    """The case's open closure proposal for a death or a departure out of the canton with the
    earliest date, if that date lies before the end of `month` (else it holds nothing yet)."""
    open_ = [p for p in proposals_of(case).values()
             if p.status == "open" and p.kind == "closure" and p.reason in HOLDING_CLOSURE_REASONS]
    first = min(open_, key=lambda p: (p.proposed_on, p.external_reference), default=None)
    if first is None or month_of(first.proposed_on + timedelta(days=1)) > month:
        return None
    return first


def _periods_until(periods: list[SupportPeriod], last: date) -> list[SupportPeriod]:
    """The support periods as a closure on `last` would leave them (it is the last supported
    day, as for `CaseClosed`)."""
    return [
        SupportPeriod(p.start, last if p.until is None else min(p.until, last))
        for p in periods
        if p.start <= last
    ]


def _held_difference(full: Decimal, held: Decimal) -> Decimal:
    """What a held month orders: what the held entitlement still owes, or — never because of
    the hold — a claim back that the full entitlement makes anyway (undecided proposals claim
    nothing back; a closure does, once recorded)."""
    if held > ZERO:
        return held
    return min(full, ZERO)


def _hold(case: Case, proposal: Proposal | None, withheld: Decimal) -> HoldDraft | None:
    if proposal is None:
        return None
    reason = cast(HoldReason, proposal.reason)
    return HoldDraft(
        case_id=case.id,
        reason=reason,
        proposal=proposal.external_reference,
        proposal_effective_date=proposal.proposed_on,
        held_from=proposal.proposed_on + timedelta(days=1),
        held_amount=withheld,
        social_region=case.social_region,
    )


def _draft(
    case: Case,
    m: date,
    entitlement: Any,
    before: Decimal | None,
    difference: Decimal,
    creditor: SealedPayoutAccount | None,
    held_reason: str | None,
    is_run_month: bool,
) -> OrderDraft:
    kind: OrderKind
    if difference < ZERO:
        kind = "claim_back"
    elif is_run_month and before is None:
        kind = "regular"
    else:
        kind = "back_payment"
    basis = max(
        (segment.budget for segment in entitlement.segments),
        key=lambda version: version.recorded_at,
        default=None,
    )
    return OrderDraft(
        case_id=case.id,
        for_month=m,
        kind=kind,
        amount=abs(difference),
        held=kind != "claim_back" and creditor is None,
        creditor=creditor,
        social_region=case.social_region,
        entitlement=entitlement.amount,
        previously_ordered=before or ZERO,
        budget_effective_date=basis.effective_date if basis else None,
        budget_recorded_at=basis.recorded_at if basis else None,
        held_reason=held_reason if kind != "claim_back" and creditor is None else None,
    )


def _check_approver(cmd: ApprovePaymentRun, run: PaymentRun) -> None:
    if cmd.actor.role not in APPROVING_ROLES:
        raise RuleViolationError(
            "payment-approval-by-administrator",
            f"actor.role: a payment run is approved by an administrator, not a {cmd.actor.role}",
        )
    if cmd.actor.user_id == run.actor.user_id:
        raise RuleViolationError(
            "four-eyes",
            f"actor: {cmd.actor.user_id} prepared run {run.id}; a second person approves it",
        )
    if run.approved:
        raise RuleViolationError("run-approved-once", f"run_id: run {run.id} is approved already")


def _check_acknowledged(
    cmd: ApprovePaymentRun, large: list[LargeBackPayment], threshold: Decimal
) -> None:
    listed = {b.case_id for b in large}
    missing = [b for b in large if b.case_id not in set(cmd.acknowledged)]
    if missing:
        cases = ", ".join(f"{b.case_id} (CHF {b.amount}, {len(b.months)} months)"
                          for b in missing)
        raise RuleViolationError(
            "large-back-payments-acknowledged",
            f"acknowledged: back-payments above CHF {threshold} need to be acknowledged one by "
            f"one: {cases}",
        )
    unknown = sorted(str(c) for c in set(cmd.acknowledged) - listed)
    if unknown:
        raise RuleViolationError(
            "large-back-payments-acknowledged",
            f"acknowledged: no back-payment above CHF {threshold} in the run for "
            f"{', '.join(unknown)}",
        )


def recorder_with_own_table(app: Application[UUID], table: str) -> ApplicationRecorder | None:
    """On SQLite, `app`'s recorder with an events table of its own (eventsourcing's SQLite
    factory names every application's table `stored_events`); None elsewhere (PostgreSQL
    names the table after the application). The recorder class is still the configured one
    (APPLICATION_RECORDER_TOPIC), so the store's other policies apply."""
    factory = app.factory
    if not isinstance(factory, SQLiteFactory):
        return None
    topic = factory.env.get(factory.APPLICATION_RECORDER_TOPIC)
    recorder_class = cast(
        type[SQLiteApplicationRecorder],
        resolve_topic(topic) if topic else factory.application_recorder_class,
    )
    recorder = recorder_class(datastore=factory.datastore, events_table_name=table)
    if factory.env_create_table():
        recorder.create_table()
    return recorder

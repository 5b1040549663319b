"""Money the bank did not pay is owed again: a rejected (pain.002) or returned (camt.054)
order no longer counts for its month, so the next run orders it again, held while the case's
payout account is still the one the bank refused (naming the reason code) and paid once a new
one is recorded. Executed orders and orders without an answer still count. Real runs on a
real SQLite file (one on PostgreSQL), the test bank's files for the runs' own pain.001, the
amounts computed by hand, and the pain.001 sink fed the recorded run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.effects_sqlite import SQLiteEffectStore
from connectors.payments.sink import pain001_path, report_path
from domain import commands
from domain.application.cases import CaseService
from domain.application.payments import PaymentService, RunSummary
from domain.application.settlement import Settlements
from domain.errors import RuleViolationError
from domain.money import ZERO
from domain.payments import (
    NO_USABLE_ACCOUNT,
    ApprovePaymentRun,
    PaymentOrdered,
    PaymentRunCompleted,
    RunPayments,
)
from tests.bus.pipeline import command
from tests.connectors.test_payments_sink import consume, make_sink
from tests.payments.bank_files import (
    CAMT054,
    assert_valid,
    camt054,
    pain001_of_run,
    pain002,
    transfers_of,
)
from tests.payments.test_reconciliation import (
    ADMIN,
    _month,
    _order_of,
    _owed,
    _paid_run,
    _reconcile,
    _record_account,
    _store,
)

APPROVER = commands.Actor("pay.control", "administrator", "so-canton")
NEW_IBAN = "CH5604835012345678009"
RAISE = Decimal("100.00")
"""A housing cost raised by CHF 100 from the month on: a back-payment, so that a run records."""


@pytest.fixture
def store(tmp_path: Path, master_key: str) -> Iterator[tuple[CaseService, PaymentService]]:
    """A case service and a payments service on one SQLite file."""
    yield from _store(f"sqlite:///{tmp_path / 'store.db'}", master_key)


def _run(payments: PaymentService) -> RunSummary:
    return payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=_month()))


def _change_budget(cases: CaseService, case_id: UUID, income: str, housing: str, why: str) -> None:
    """The case's budget from this month on (health insurance 350 as before)."""
    cases.execute(
        command(
            "change_budget",
            case_id=str(case_id),
            effective_date=_month().isoformat(),
            income=income,
            housing=housing,
            health_insurance="350",
            reason=why,
        )
    )


def _held_reason(what: str, code_and_label: str, order: PaymentOrdered) -> str:
    return (
        f"payout account refused by the bank: {what} {code_and_label} (order "
        f"{order.order_id.hex} for {_month():%Y-%m}); record a new payout account"
    )


def _rejected_order_is_held_then_paid(
    cases: CaseService, payments: PaymentService, folder: Path
) -> None:
    run_id, (executed, closed, silent) = _paid_run(cases, payments, 3)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    refused = _order_of(payments, closed)
    report = pain002(pain001, rejected={refused.order_id.hex: ("AC04", "Konto saldiert")})
    _reconcile(settlements, report, "pain002.xml")
    executed_e2e = _order_of(payments, executed).order_id.hex
    _reconcile(settlements, camt054(pain001, executed=[executed_e2e]), "camt054.xml")
    # executed and unanswered count in full; the rejected one no more
    assert payments.counted_by_case_and_month() == {
        (executed, _month()): _owed(),
        (closed, _month()): ZERO,
        (silent, _month()): _owed(),
    }

    # the next run orders the month again, held: the account is the refused one
    _change_budget(cases, executed, "0", str(Decimal("1200") + RAISE), "rent_change")
    held = _run(payments)
    assert held.recorded and held.run_id is not None
    assert [(o.case_id, o.kind, o.amount) for o in held.paid_out] == [
        (executed, "back_payment", RAISE)
    ]
    (again,) = held.held
    assert (again.case_id, again.for_month, again.kind, again.amount) == (
        closed,
        _month(),
        "back_payment",
        _owed(),
    )
    assert (again.previously_ordered, again.creditor) == (ZERO, None)
    reason = _held_reason("rejected", "AC04 closed account number", refused)
    assert again.held_reason == reason
    stored = next(o for o in payments.orders(closed) if o.held)
    assert (stored.held_reason, stored.amount, stored.signed_amount) == (reason, _owed(), ZERO)
    completed = next(
        e for e in payments.run_events(held.run_id) if isinstance(e, PaymentRunCompleted)
    )
    assert (completed.paid_out_count, completed.control_sum) == (1, RAISE)
    assert (completed.held_count, completed.held_sum) == (1, _owed())
    _sink_agrees(payments, held.run_id, folder / "held", RAISE, {stored.order_id: reason})

    # the same bank file again changes nothing: the next run holds the same again
    assert _reconcile(settlements, report, "renamed.xml").already_read
    same = _run(payments)
    assert not same.recorded and same.held == held.held and same.paid_out == []

    # a new payout account: the next run pays the month to it, and then nothing is owed
    _record_account(payments, closed, NEW_IBAN)
    paid = _run(payments)
    assert paid.recorded and paid.run_id is not None and paid.held == []
    (order,) = paid.paid_out
    assert (order.case_id, order.kind, order.amount, order.previously_ordered) == (
        closed,
        "back_payment",
        _owed(),
        ZERO,
    )
    assert paid.control_sum == _owed()
    _, transfers = transfers_of(pain001_of_run(payments, paid.run_id))
    assert [t.amount for t in transfers] == [_owed()]
    recorded = next(o for o in payments.orders(closed) if o.originator_id == paid.run_id)
    assert recorded.creditor is not None
    account = payments.sealer.open(recorded.creditor)
    assert account is not None and account.iban == NEW_IBAN
    _sink_agrees(payments, paid.run_id, folder / "paid", _owed(), {})
    assert payments.counted_by_case_and_month()[(closed, _month())] == _owed()
    assert not _run(payments).recorded


def _sink_agrees(
    payments: PaymentService,
    run_id: UUID,
    folder: Path,
    control_sum: Decimal,
    held: dict[UUID, str],
) -> None:
    """The pain.001 sink, fed the run as recorded and approved, writes its file with the run's
    control sum and lists the held orders with their reason in its report."""
    payments.approve(ApprovePaymentRun(actor=APPROVER, correlation_id=uuid.uuid4(), run_id=run_id))
    sink = make_sink(payments.cases, folder)
    effects = SQLiteEffectStore(folder / "sink.db")
    try:
        written = consume(sink, effects, payments.run_events(run_id))
    finally:
        effects.close()
    assert len(written) == 2  # the pain.001 file and its report
    _, transfers = transfers_of(pain001_path(sink.outbox, str(run_id)).read_bytes())
    assert sum((t.amount for t in transfers), ZERO) == control_sum
    report = json.loads(report_path(sink.outbox, str(run_id)).read_text())
    assert report["paid_out"]["sum"] == str(control_sum)
    assert {UUID(o["order_id"]): o["reason"] for o in report["not_paid"]} == {
        order_id: f"held: {reason}" for order_id, reason in held.items()
    }


def test_a_rejected_order_is_held_naming_the_reason_until_a_new_account_is_recorded(
    store: tuple[CaseService, PaymentService], tmp_path: Path
) -> None:
    _rejected_order_is_held_then_paid(*store, tmp_path)


@pytest.mark.postgres
def test_a_rejected_order_is_ordered_again_on_postgresql(
    postgres_dsn: str, master_key: str, tmp_path: Path
) -> None:
    for cases, payments in _store(postgres_dsn, master_key):
        _rejected_order_is_held_then_paid(cases, payments, tmp_path)


def test_a_returned_order_is_held_naming_the_return_reason_then_paid_to_the_new_account(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (case_id,) = _paid_run(cases, payments, 1)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    order = _order_of(payments, case_id)
    notification = camt054(pain001, returned={order.order_id.hex: ("AC06", "Konto gesperrt")})
    result = _reconcile(settlements, notification, "camt054.xml")
    assert [s.outcome for s in result.recorded] == ["executed", "returned"]
    assert payments.counted_by_case_and_month() == {(case_id, _month()): ZERO}

    held = _run(payments)
    assert not held.recorded  # nothing but a held order: nothing recorded
    (again,) = held.held
    assert (again.amount, again.kind) == (_owed(), "back_payment")
    assert again.held_reason == _held_reason("returned", "AC06 blocked account", order)
    assert "held (no usable payout account, or one the bank refused)" in held.message

    _record_account(payments, case_id, NEW_IBAN)
    paid = _run(payments)
    assert [(o.case_id, o.amount) for o in paid.paid_out] == [(case_id, _owed())]
    assert paid.control_sum == _owed() and paid.held == []
    assert payments.counted_by_case_and_month() == {(case_id, _month()): _owed()}


def test_what_came_back_of_a_partly_returned_order_is_ordered_again(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (case_id,) = _paid_run(cases, payments, 1)
    order = _order_of(payments, case_id)
    back = Decimal("400.00")
    notification = camt054(
        pain001_of_run(payments, run_id),
        returned={order.order_id.hex: ("AC04", "Konto saldiert")},
        returned_amounts={order.order_id.hex: back},
    )
    assert_valid(notification, CAMT054)
    _reconcile(Settlements(payments), notification, "camt054.xml")
    assert payments.counted_by_case_and_month() == {(case_id, _month()): _owed() - back}

    (held,) = _run(payments).held
    assert (held.amount, held.previously_ordered) == (back, _owed() - back)
    assert held.held_reason == _held_reason("returned", "AC04 closed account number", order)
    _record_account(payments, case_id, NEW_IBAN)
    paid = _run(payments)
    assert [(o.kind, o.amount) for o in paid.paid_out] == [("back_payment", back)]
    assert payments.counted_by_case_and_month() == {(case_id, _month()): _owed()}


def test_executed_and_unanswered_orders_are_not_ordered_again(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (executed, silent) = _paid_run(cases, payments, 2)
    pain001 = pain001_of_run(payments, run_id)
    executed_e2e = _order_of(payments, executed).order_id.hex
    _reconcile(Settlements(payments), camt054(pain001, executed=[executed_e2e]), "c.xml")
    nothing = _run(payments)
    assert not nothing.recorded and nothing.orders == []
    assert payments.counted_by_case_and_month() == {
        (executed, _month()): _owed(), (silent, _month()): _owed()}


def test_a_rejected_message_is_ordered_again_to_the_same_accounts(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, case_ids = _paid_run(cases, payments, 2)
    report = pain002(pain001_of_run(payments, run_id), group_rejected=("DU01", "MsgId doppelt"))
    _reconcile(Settlements(payments), report, "p.xml")
    # a duplicate message id says nothing about the payees' accounts: paid again, not held
    again = _run(payments)
    assert again.held == []
    assert sorted((o.case_id, o.amount) for o in again.paid_out) == sorted(
        (case_id, _owed()) for case_id in case_ids
    )
    first = {o.case_id: o.creditor for o in payments.orders() if o.originator_id == run_id}
    assert all(o.creditor == first[o.case_id] for o in again.paid_out)


def test_a_claim_back_cannot_be_rejected_or_returned(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (case_id,) = _paid_run(cases, payments, 1)
    _change_budget(cases, case_id, "300.00", "1200", "income_change")
    claims = _run(payments)
    (claim,) = claims.claims
    claim_order = next(o for o in payments.orders(case_id) if o.kind == "claim_back")
    ours = _order_of(payments, case_id).order_id.hex
    pain001 = pain001_of_run(payments, run_id)
    for bank_file in (
        pain002(pain001, rejected={ours: ("AC04", "")}),
        camt054(pain001, returned={ours: ("AC04", "")}),
    ):
        with pytest.raises(RuleViolationError, match="is no transfer \\(claim_back\\)"):
            _reconcile(
                Settlements(payments),
                bank_file.replace(ours.encode(), claim_order.order_id.hex.encode()).replace(
                    run_id.hex.encode(), claim_order.originator_id.hex.encode()
                ),
                "claim.xml",
            )
    assert list(payments.refusals()) == []
    assert payments.counted_by_case_and_month() == {(case_id, _month()): _owed() - claim.amount}


def test_an_order_stored_before_held_reasons_reads_as_held_for_want_of_an_account() -> None:
    held: dict[str, Any] = {"held": True}
    PaymentOrdered.upcast_v1_v2(held)
    paid: dict[str, Any] = {"held": False}
    PaymentOrdered.upcast_v1_v2(paid)
    assert (held["held_reason"], paid["held_reason"]) == (NO_USABLE_ACCOUNT, None)

"""Payments hold what they must, a second person approves every run, and run ids never repeat
(issue 19, part 3; in-memory stores, fake clock).

Amounts are worked out here by calendar days from the desk's default budget, independently of
`domain.entitlement`: a closure proposal holds a case from the day after its date (the date
itself is the last supported day, as the closing date of a case is), a dismissed proposal is
back-paid, an accepted one owes nothing after its date.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest

from domain import commands
from domain.application.payments import PaymentService, RunSummary
from domain.errors import RuleViolationError
from domain.payments import (
    ApprovePaymentRun,
    HoldDraft,
    LargeBackPayment,
    PaymentHeld,
    PaymentOrdered,
    PaymentRunApproved,
    PaymentRunCompleted,
    PaymentRunStarted,
    RunPayments,
)

from .case_desk import OLTEN, POPO_ENV, Desk, build_desk, move_to
from .test_payments import ADMIN, cents, monthly_total, orders_of, record_account, run

REGISTER = commands.Actor("population-register", "system", "so-canton")
CONTROL = commands.Actor("pay.control", "administrator", "so-canton")
NOVEMBER = monthly_total(date(2025, 11, 1))


@pytest.fixture
def payments(desk: Desk) -> Iterator[PaymentService]:
    service = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock,
                             approval_threshold=Decimal("2000.00"))
    yield service
    service.close()


def propose(desk: Desk, case_id: UUID, reason: str, on: str, ref: str = "m-7/0") -> None:
    desk.run("propose_closure", case_id=case_id, actor=REGISTER, external_reference=ref,
             reason=reason, effective_date=on)


def approve(payments: PaymentService, run_id: UUID | None, actor: commands.Actor = CONTROL,
            acknowledged: list[UUID] | None = None) -> None:
    assert run_id is not None
    payments.approve(ApprovePaymentRun(actor=actor, correlation_id=uuid.uuid4(), run_id=run_id,
                                       acknowledged=acknowledged or []))


def supported_with_account(desk: Desk, payments: PaymentService) -> UUID:
    case_id = desk.supported()
    record_account(payments, case_id)
    return case_id


# --- holds ---------------------------------------------------------------------------------


def held_from_the_11th(desk: Desk, payments: PaymentService) -> UUID:
    """A case reported dead on 10 November (recorded on the 20th), and November's run."""
    case_id = supported_with_account(desk, payments)
    move_to(desk, date(2025, 11, 20))
    propose(desk, case_id, "death", "2025-11-10")
    run(payments, "2025-11")
    return case_id


@pytest.mark.parametrize("reason", ["death", "moved_away"])
def test_a_closure_proposal_holds_the_payment_from_the_day_after_its_date(
    desk: Desk, payments: PaymentService, reason: str
) -> None:
    case_id = supported_with_account(desk, payments)
    other = supported_with_account(desk, payments)
    move_to(desk, date(2025, 11, 20))
    propose(desk, case_id, reason, "2025-11-10")

    summary = run(payments, "2025-11")

    paid = cents(NOVEMBER * 10 / 30)  # 1–10 November: the proposal's date is still paid
    assert orders_of(payments, case_id) == [("2025-11", "regular", paid, False)]
    assert orders_of(payments, other) == [("2025-11", "regular", NOVEMBER, False)]
    assert summary.holds == [HoldDraft(
        case_id=case_id, reason=reason, proposal="m-7/0",  # type: ignore[arg-type]
        proposal_effective_date=date(2025, 11, 10), held_from=date(2025, 11, 11),
        held_amount=NOVEMBER - paid, social_region="so-solothurn",
    )]
    assert "1 cases held for an open closure proposal" in summary.message
    assert summary.run_id is not None
    events = payments.run_events(summary.run_id)
    assert [type(e) for e in events] == [
        PaymentRunStarted, PaymentOrdered, PaymentOrdered, PaymentHeld, PaymentRunCompleted
    ]
    held = events[3]
    assert (held.case_id, held.reason, held.proposal, held.held_from, held.held_amount) == (
        case_id, reason, "m-7/0", date(2025, 11, 11), NOVEMBER - paid)


def test_a_dismissed_proposal_is_back_paid_by_the_next_run(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = held_from_the_11th(desk, payments)
    desk.run("dismiss_proposal", case_id=case_id, external_reference="m-7/0",
             reason="register_error")

    again = run(payments, "2025-11")

    paid = cents(NOVEMBER * 10 / 30)
    assert again.recorded and again.holds == []
    assert orders_of(payments, case_id)[1:] == [
        ("2025-11", "back_payment", NOVEMBER - paid, False)
    ]
    assert sum(o.signed_amount for o in payments.orders(case_id)) == NOVEMBER


def test_an_accepted_proposal_owes_nothing_after_its_date(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = held_from_the_11th(desk, payments)
    desk.run("close_case", case_id=case_id, reason="death", closing_date="2025-11-10")
    move_to(desk, date(2025, 12, 2))

    december = run(payments, "2025-12")

    assert not december.recorded and december.orders == [] and december.holds == []
    assert sum(o.signed_amount for o in payments.orders(case_id)) == cents(NOVEMBER * 10 / 30)


def test_an_open_proposal_claims_nothing_back_but_the_closure_does(
    desk: Desk, payments: PaymentService
) -> None:
    """The issue's case: the month was ordered in full, then a death on the 10th is reported.
    While the proposal is open the run orders nothing more and recovers nothing; once the
    case is closed on that day, the next run claims back the days after it."""
    case_id = supported_with_account(desk, payments)
    run(payments, "2025-11")
    move_to(desk, date(2025, 11, 20))
    propose(desk, case_id, "death", "2025-11-10")

    held = run(payments, "2025-11")
    assert not held.recorded and held.orders == []
    assert [(h.case_id, h.held_amount) for h in held.holds] == [(case_id, Decimal("0.00"))]

    desk.run("close_case", case_id=case_id, reason="death", closing_date="2025-11-10")
    run(payments, "2025-11")
    paid = cents(NOVEMBER * 10 / 30)
    assert orders_of(payments, case_id)[1:] == [
        ("2025-11", "claim_back", NOVEMBER - paid, False)
    ]


def test_a_handover_proposal_or_a_proposal_after_the_month_holds_nothing(
    desk: Desk, payments: PaymentService
) -> None:
    moving = supported_with_account(desk, payments)
    dying = supported_with_account(desk, payments)
    move_to(desk, date(2025, 12, 5))
    desk.run("propose_handover", case_id=moving, actor=REGISTER, external_reference="m-8/0",
             to_municipality_bfs=OLTEN, effective_date="2025-11-15")
    propose(desk, dying, "death", "2025-11-30")  # the last day of November: nothing after it

    summary = run(payments, "2025-11")

    assert summary.holds == []
    assert orders_of(payments, moving) == [("2025-11", "regular", NOVEMBER, False)]
    assert orders_of(payments, dying) == [("2025-11", "regular", NOVEMBER, False)]


def test_the_earliest_of_two_open_proposals_holds(desk: Desk, payments: PaymentService) -> None:
    case_id = supported_with_account(desk, payments)
    move_to(desk, date(2025, 11, 20))
    propose(desk, case_id, "moved_away", "2025-11-15", ref="m-9/0")
    propose(desk, case_id, "death", "2025-11-05", ref="m-9/1")

    summary = run(payments, "2025-11")

    assert [(h.reason, h.proposal, h.held_from) for h in summary.holds] == [
        ("death", "m-9/1", date(2025, 11, 6))
    ]
    assert orders_of(payments, case_id) == [
        ("2025-11", "regular", cents(NOVEMBER * 5 / 30), False)
    ]


def test_a_closed_case_is_owed_nothing_after_its_last_supported_day(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = supported_with_account(desk, payments)
    move_to(desk, date(2025, 11, 12))
    desk.run("close_case", case_id=case_id, reason="moved_away", closing_date="2025-11-10")
    move_to(desk, date(2025, 12, 2))

    run(payments, "2025-11")
    december = run(payments, "2025-12")

    assert orders_of(payments, case_id) == [
        ("2025-11", "regular", cents(NOVEMBER * 10 / 30), False)
    ]
    assert not december.recorded


# --- four-eyes ---------------------------------------------------------------------------


def prepared(desk: Desk, payments: PaymentService) -> RunSummary:
    supported_with_account(desk, payments)
    summary = run(payments, "2025-11")
    assert summary.recorded and summary.run_id is not None
    assert "awaits a second person's approval" in summary.message
    return summary


@pytest.mark.parametrize(
    ("approver", "rule"),
    [
        (ADMIN, "four-eyes"),  # the one who prepared it
        (commands.Actor("pay.office", "administrator", "so-olten"), "four-eyes"),
        (commands.Actor("anna.keller", "caseworker", "so-solothurn"),
         "payment-approval-by-administrator"),
        (commands.Actor("scheduler", "system", "so-canton"), "payment-approval-by-administrator"),
    ],
)
def test_a_run_is_approved_only_by_a_second_administrator(
    desk: Desk, payments: PaymentService, approver: commands.Actor, rule: str
) -> None:
    summary = prepared(desk, payments)
    with pytest.raises(RuleViolationError) as info:
        approve(payments, summary.run_id, approver)
    assert info.value.rule == rule
    assert summary.run_id is not None and payments.approval_of(summary.run_id) is None


def test_preparation_and_approval_are_recorded_with_who_and_when(
    desk: Desk, payments: PaymentService
) -> None:
    summary = prepared(desk, payments)
    assert summary.run_id is not None
    move_to(desk, date(2025, 11, 4))
    approve(payments, summary.run_id)

    events = payments.run_events(summary.run_id)
    started, approved = events[0], events[-1]
    assert isinstance(started, PaymentRunStarted) and isinstance(approved, PaymentRunApproved)
    assert started.actor == ADMIN and approved.actor == CONTROL
    assert approved.timestamp == desk.clock() and approved.timestamp > started.timestamp
    assert (approved.threshold, approved.large_back_payments) == (Decimal("2000.00"), [])
    with pytest.raises(RuleViolationError) as info:
        approve(payments, summary.run_id, commands.Actor("third", "administrator", "so-canton"))
    assert info.value.rule == "run-approved-once"
    with pytest.raises(RuleViolationError) as unknown:
        approve(payments, uuid.uuid4())
    assert unknown.value.rule == "known-run"


def test_back_payments_above_the_threshold_are_acknowledged_case_by_case(
    desk: Desk, payments: PaymentService
) -> None:
    small = supported_with_account(desk, payments)  # paid more than 2000, but regularly
    case_id = desk.assessed(application_date="2025-09-01")
    desk.run("grant_support", case_id=case_id, support_from="2025-09-01", housing="400.00",
             health_insurance="0.00")
    record_account(payments, case_id)
    summary = run(payments, "2025-11")
    back_paid = sum((o.amount for o in summary.orders
                     if o.case_id == case_id and o.kind == "back_payment"), Decimal(0))
    # two months of a budget of basic needs + 400 each: each below 2000, together above
    assert all(o.amount < Decimal("2000.00") for o in summary.orders if o.case_id == case_id)
    assert back_paid > Decimal("2000.00")
    assert summary.large_back_payments == [
        LargeBackPayment(case_id, back_paid, (date(2025, 9, 1), date(2025, 10, 1)))
    ]

    with pytest.raises(RuleViolationError) as missing:
        approve(payments, summary.run_id)
    assert missing.value.rule == "large-back-payments-acknowledged"
    assert f"{case_id} (CHF {back_paid}, 2 months)" in str(missing.value)
    with pytest.raises(RuleViolationError) as extra:
        approve(payments, summary.run_id, acknowledged=[case_id, small])
    assert str(small) in str(extra.value)

    approve(payments, summary.run_id, acknowledged=[case_id])
    assert summary.run_id is not None
    approval = payments.approval_of(summary.run_id)
    assert approval is not None
    assert approval.large_back_payments == [case_id]
    assert approval.large_back_payment_sum == back_paid


# --- ids -----------------------------------------------------------------------------------


def test_two_installations_with_the_same_history_never_share_run_or_order_ids() -> None:
    ids: list[tuple[UUID, set[UUID]]] = []
    for _ in range(2):
        desk = build_desk(commands.Actor("anna.keller", "caseworker", "so-solothurn"))
        payments = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock)
        try:
            supported_with_account(desk, payments)
            summary = payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(),
                                               month="2025-11"))
            assert summary.run_id is not None and summary.sequence == 1
            ids.append((summary.run_id, {o.order_id for o in payments.orders()}))
        finally:
            payments.close()
            desk.service.close()
    (first_run, first_orders), (second_run, second_orders) = ids
    assert first_run != second_run
    assert first_orders.isdisjoint(second_orders)

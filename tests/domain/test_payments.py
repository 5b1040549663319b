"""Payment runs, hand-computed: regular payments, back-payments, claims back, held orders,
payout accounts and the refusals (in-memory stores, fake clock).

Expected amounts are worked out here from the budget lines by calendar days, independently of
`domain.entitlement`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import get_args
from uuid import UUID

import pytest

from domain import commands
from domain.application.payments import PaymentService, RunSummary
from domain.case import acts_canton_wide, may_act_on
from domain.errors import CaseNotFoundError, InvalidCommandError, RuleViolationError
from domain.payments import (
    PaymentOrdered,
    PaymentRunCompleted,
    PaymentRunStarted,
    PayoutAccountDetails,
    RecordPayoutAccount,
    RunPayments,
)

from .case_desk import POPO_ENV, TODAY, Desk, expected_basic_needs, move_to

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
IBAN = "CH93 0076 2011 6238 5295 7"  # the SIX example IBAN, valid check digits
QR_IBAN = "CH44 3199 9123 0008 8901 2"  # the SIX example QR-IBAN (QR-IID 31999)
FULL_BUDGET = Decimal("1200.00") + Decimal("350.00")  # housing + health insurance of the desk


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture
def payments(desk: Desk) -> Iterator[PaymentService]:
    service = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock)
    yield service
    service.close()


def monthly_total(on: date = TODAY) -> Decimal:
    """The desk's default budget: SKOS basic needs (one person) + housing + health insurance."""
    return expected_basic_needs(on, 1) + FULL_BUDGET


def record_account(payments: PaymentService, case_id: UUID, iban: str = IBAN) -> None:
    payments.record_account(RecordPayoutAccount(
        actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id, iban=iban, holder="P. Muster"
    ))


def run(payments: PaymentService, month: str, **fields: object) -> RunSummary:
    return payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=month,
                                    **fields))


def orders_of(payments: PaymentService, case_id: UUID) -> list[tuple[str, str, Decimal, bool]]:
    return [(f"{o.for_month:%Y-%m}", o.kind, o.amount, o.held) for o in payments.orders(case_id)]


def test_first_run_pays_the_month_and_a_second_run_pays_nothing(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    record_account(payments, case_id)
    first = run(payments, "2025-11")
    assert first.recorded and first.sequence == 1
    assert first.run_id is not None and first.run_id.version == 4  # random: see test_payment_holds
    assert orders_of(payments, case_id) == [("2025-11", "regular", monthly_total(), False)]
    assert first.control_sum == monthly_total()

    again = run(payments, "2025-11")
    assert not again.recorded and again.orders == []
    assert "nothing to pay" in again.message
    assert len(list(payments.orders())) == 1


def test_run_events_are_started_orders_completed_with_control_sums(
    desk: Desk, payments: PaymentService
) -> None:
    first, second = desk.supported(), desk.supported(housing="900.00")
    record_account(payments, first)
    record_account(payments, second)
    summary = run(payments, "2025-11", execution_date="2025-11-25")
    assert summary.run_id is not None
    events = payments.run_events(summary.run_id)
    assert [type(e) for e in events] == [
        PaymentRunStarted, PaymentOrdered, PaymentOrdered, PaymentRunCompleted
    ]
    started, completed = events[0], events[-1]
    assert (started.month, started.sequence, started.execution_date) == (
        date(2025, 11, 1), 1, date(2025, 11, 25))
    expected = monthly_total() + monthly_total() - Decimal("300.00")
    assert (completed.order_count, completed.paid_out_count, completed.control_sum) == (
        2, 2, expected)
    assert (completed.claim_count, completed.held_count) == (0, 0)
    assert len({e.order_id for e in events[1:3]}) == 2


def test_retroactive_income_gives_a_claim_back_for_the_month_already_paid(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    record_account(payments, case_id)
    run(payments, "2025-11")
    move_to(desk, date(2025, 12, 3))
    desk.run("change_budget", case_id=case_id, effective_date="2025-11-16", income="300.00",
             reason="income_change")
    summary = run(payments, "2025-12")
    # November: 15 days at the full total, 15 days at total − 300 → 300 × 15/30 less.
    assert orders_of(payments, case_id)[1:] == [
        ("2025-11", "claim_back", Decimal("150.00"), False),
        ("2025-12", "regular", monthly_total() - Decimal("300.00"), False),
    ]
    assert [o.kind for o in summary.claims] == ["claim_back"]
    claim = next(o for o in payments.orders(case_id) if o.kind == "claim_back")
    assert claim.entitlement == monthly_total() - Decimal("150.00")
    assert claim.previously_ordered == monthly_total()
    assert claim.budget_effective_date == date(2025, 11, 16)
    assert claim.signed_amount == Decimal("-150.00") and not claim.paid_out


def test_support_granted_from_an_earlier_month_is_back_paid(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.assessed(application_date="2025-10-01")
    desk.run("grant_support", case_id=case_id, support_from="2025-10-11")
    record_account(payments, case_id)
    run(payments, "2025-11")
    october_total = monthly_total(date(2025, 10, 11))
    assert orders_of(payments, case_id) == [
        ("2025-10", "back_payment", cents(october_total * 21 / 31), False),  # 11–31 October
        ("2025-11", "regular", monthly_total(), False),
    ]


def test_closing_mid_month_claims_back_the_days_after_closure(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    record_account(payments, case_id)
    run(payments, "2025-11")
    move_to(desk, date(2025, 11, 12))
    desk.run("close_case", case_id=case_id, closing_date="2025-11-10")
    move_to(desk, date(2025, 12, 2))
    run(payments, "2025-12")
    owed = cents(monthly_total() * 10 / 30)  # 1–10 November
    assert orders_of(payments, case_id)[1:] == [
        ("2025-11", "claim_back", monthly_total() - owed, False)
    ]
    assert run(payments, "2025-12").recorded is False


def test_without_payout_account_orders_are_held_then_paid_once_an_account_exists(
    desk: Desk, payments: PaymentService
) -> None:
    case_id, other = desk.supported(), desk.supported()
    record_account(payments, other)
    first = run(payments, "2025-11")
    assert [(o.case_id, o.held, o.creditor) for o in first.held] == [(case_id, True, None)]
    assert "1 held" in first.message
    assert orders_of(payments, case_id) == [("2025-11", "regular", monthly_total(), True)]

    record_account(payments, case_id)
    second = run(payments, "2025-11")
    assert second.recorded and second.sequence == 2
    assert orders_of(payments, case_id)[1:] == [
        ("2025-11", "regular", monthly_total(), False)
    ]
    assert sum(o.signed_amount for o in payments.orders(case_id)) == monthly_total()


def test_a_run_with_only_held_orders_records_nothing(
    desk: Desk, payments: PaymentService
) -> None:
    desk.supported()
    summary = run(payments, "2025-11")
    assert not summary.recorded and len(summary.held) == 1
    assert list(payments.orders()) == [] and payments.runs() == []


def test_payout_account_is_sealed_and_shredded_with_the_applicant(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    record_account(payments, case_id)
    assert payments.payout_account(case_id) == PayoutAccountDetails(
        "CH9300762011623852957", "P. Muster")
    stored = payments.recorder.select_notifications(start=None, limit=10)
    assert all(b"CH93" not in n.state and b"Muster" not in n.state for n in stored)

    desk.service.erase_person(desk.case(case_id).applicant.person_id)
    assert payments.payout_account(case_id) is None
    summary = run(payments, "2025-11")
    assert [o.held for o in summary.orders] == [True]
    with pytest.raises(RuleViolationError, match="erased"):
        record_account(payments, case_id)


def test_replacing_the_account_pays_later_runs_to_the_new_one(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    record_account(payments, case_id)
    record_account(payments, case_id, iban="LI21 0881 0000 2324 013A A")
    assert payments.payout_account(case_id) == PayoutAccountDetails(
        "LI21088100002324013AA", "P. Muster")
    order = next(iter(run(payments, "2025-11").paid_out))
    assert order.creditor is not None
    assert payments.sealer.open(order.creditor) == PayoutAccountDetails(
        "LI21088100002324013AA", "P. Muster")


@pytest.mark.parametrize(
    ("iban", "reason"),
    [
        ("CH93 0076 2011 6238 5295 8", "not a valid IBAN"),
        ("DE89 3704 0044 0532 0130 00", "Swiss or Liechtenstein"),
        (QR_IBAN, "QR-IBAN"),
        ("", "not a valid IBAN"),
    ],
)
def test_a_bad_iban_is_refused_naming_the_field(iban: str, reason: str) -> None:
    with pytest.raises(InvalidCommandError) as info:
        RecordPayoutAccount(actor=ADMIN, correlation_id=uuid.uuid4(), case_id=uuid.uuid4(),
                            iban=iban, holder="P. Muster")
    assert info.value.problems[0][0] == "iban"
    assert reason in str(info.value)


def test_an_empty_holder_and_a_malformed_month_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidCommandError, match="holder: the account holder"):
        RecordPayoutAccount(actor=ADMIN, correlation_id=uuid.uuid4(), case_id=uuid.uuid4(),
                            iban=IBAN, holder="  ")
    with pytest.raises(InvalidCommandError, match=r"month: .*YYYY-MM"):
        RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month="2025-13")


@pytest.mark.parametrize(("holder", "reason"), [
    ("P. Muster\x1b[8m", "contains control or invisible"),
    ("\u202eretsuM .P", "contains control or invisible"),
    ("\u200b", "contains control or invisible"),
    ("\u3164", "contains control or invisible"),
    ("P. \uffa0Muster", "contains control or invisible"),
    ("\u115f\u1160", "contains control or invisible"),
    ("P\u0301\u0300\u0302\u0303\u0304. Muster", "combining marks"),
    ("1234 / 5678", "at least one letter"),
])
def test_a_holder_with_control_or_invisible_characters_is_refused(
    holder: str, reason: str
) -> None:
    with pytest.raises(InvalidCommandError, match=f"holder: [^;]*{reason}"):
        RecordPayoutAccount(actor=ADMIN, correlation_id=uuid.uuid4(), case_id=uuid.uuid4(),
                            iban=IBAN, holder=holder)


def test_runs_for_a_future_month_or_by_a_caseworker_are_refused(
    desk: Desk, payments: PaymentService, actor: commands.Actor
) -> None:
    desk.supported()
    with pytest.raises(RuleViolationError, match="month: 2025-12 lies after the current month"):
        run(payments, "2025-12")
    with pytest.raises(RuleViolationError) as info:
        payments.run(RunPayments(actor=actor, correlation_id=uuid.uuid4(), month="2025-11"))
    assert info.value.rule == "payment-run-by-administrator"
    with pytest.raises(RuleViolationError, match="execution_date"):
        run(payments, "2025-11", execution_date="2025-11-01")
    assert payments.recorder.max_notification_id() in (None, 0)


@pytest.mark.parametrize("role", get_args(commands.Role))
def test_a_payment_run_is_started_by_exactly_the_roles_that_act_on_every_region(
    desk: Desk, payments: PaymentService, role: commands.Role
) -> None:
    # One rule (`domain.case.acts_canton_wide`) for both: acting on another region's case
    # and starting a payment run, which pays the cases of all regions.
    desk.supported()
    actor = commands.Actor("someone", role, "so-olten")
    canton_wide = may_act_on(actor, "so-solothurn")
    assert canton_wide == acts_canton_wide(actor)
    command = RunPayments(actor=actor, correlation_id=uuid.uuid4(), month="2025-11")
    if canton_wide:
        assert payments.run(command).cases_checked == 1  # held: the case has no account
    else:
        with pytest.raises(RuleViolationError) as info:
            payments.run(command)
        assert info.value.rule == "payment-run-by-administrator"
        assert payments.recorder.max_notification_id() in (None, 0)


def test_a_caseworker_of_another_region_gets_the_answer_of_a_missing_case_for_an_account(
    desk: Desk, payments: PaymentService
) -> None:
    case_id = desk.supported()
    stranger = commands.Actor("marc.huber", "caseworker", "so-olten")
    answers = []
    for target in (case_id, uuid.uuid4()):
        with pytest.raises(CaseNotFoundError) as info:
            payments.record_account(RecordPayoutAccount(
                actor=stranger, correlation_id=uuid.uuid4(), case_id=target, iban=IBAN,
                holder="X"))
        answers.append(str(info.value).replace(str(target), "ID"))
    assert answers[0] == answers[1]  # the same answer as for a case that does not exist
    assert payments.payout_account(case_id) is None

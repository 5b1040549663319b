"""Property: whatever happens to the cases between payment runs — retroactive budget changes,
closures, reopenings, runs of earlier months, missing payout accounts — after a run of the
latest month the orders of every case add up, month by month, to what the case is owed for
that month as known now (`month_entitlement` on the case's current state), and a second run
of the same month orders nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import commands
from domain.application.payments import PaymentService
from domain.entitlement import month_entitlement, month_of, months_between
from domain.errors import DomainError
from domain.money import ZERO
from domain.payments import RecordPayoutAccount, RunPayments

from .case_desk import POPO_ENV, Desk, build_desk, move_to

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
CASEWORKER = commands.Actor("anna.keller", "caseworker", "so-solothurn")
IBAN = "CH9300762011623852957"

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

budget_step = st.tuples(st.just("budget"), st.integers(0, 2), st.integers(0, 30),
                        st.sampled_from(["0.00", "250.00", "800.50", "3000.00"]))
run_step = st.tuples(st.just("run"), st.integers(0, 2))
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 45)),
    budget_step,
    run_step,
    budget_step,
    run_step,
    st.tuples(st.just("close"), st.integers(0, 2), st.integers(0, 20)),
    st.tuples(st.just("reopen"), st.integers(0, 2), st.integers(0, 20)),
    st.tuples(st.just("account"), st.integers(0, 2)),
)


def _run(payments: PaymentService, month: date) -> bool:
    summary = payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=month))
    return summary.recorded


def _try(desk: Desk, name: str, **fields: object) -> None:
    # A command refused by a rule of the case process records nothing; the test goes on.
    with contextlib.suppress(DomainError):
        desk.run(name, **fields)


def _apply(desk: Desk, payments: PaymentService, cases: list[UUID], action: tuple) -> None:
    kind, *args = action
    today = desk.today
    if kind == "advance":
        move_to(desk, today + timedelta(days=args[0]))
    elif kind == "budget":
        _try(desk, "change_budget", case_id=cases[args[0]], reason="income_change",
             effective_date=today - timedelta(days=args[1]), income=args[2])
    elif kind == "close":
        _try(desk, "close_case", case_id=cases[args[0]],
             closing_date=today - timedelta(days=args[1]))
    elif kind == "reopen":
        case_id = cases[args[0]]
        _try(desk, "reopen_case", case_id=case_id)
        _try(desk, "complete_assessment", case_id=case_id)
        _try(desk, "grant_support", case_id=case_id, support_from=today - timedelta(days=args[1]))
    elif kind == "account":
        payments.record_account(RecordPayoutAccount(
            actor=CASEWORKER, correlation_id=uuid.uuid4(), case_id=cases[args[0]], iban=IBAN,
            holder="P. Muster"))
    elif kind == "run":  # the current month, or one or two before it
        month = month_of(today)
        for _ in range(args[0]):
            month = month_of(month - timedelta(days=1))
        _run(payments, month)


@PROPERTY_SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=20), with_accounts=st.integers(1, 3))
def test_orders_add_up_to_what_is_owed_as_known_now(
    steps: list[tuple], with_accounts: int
) -> None:
    desk = build_desk(CASEWORKER)
    payments = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock)
    try:
        cases = [desk.supported() for _ in range(3)]
        for case_id in cases[:with_accounts]:
            _apply(desk, payments, cases, ("account", cases.index(case_id)))
        _run(payments, month_of(desk.today))
        for action in steps:
            _apply(desk, payments, cases, action)
        for case_id in cases:  # held orders are paid once every case has an account
            _apply(desk, payments, cases, ("account", cases.index(case_id)))
        latest = month_of(desk.today)
        _run(payments, latest)

        ordered: dict[tuple[UUID, date], Decimal] = {}
        for order in payments.orders():
            event(f"orders include {order.kind}{' (held)' if order.held else ''}")
            key = (order.case_id, order.for_month)
            ordered[key] = ordered.get(key, ZERO) + order.signed_amount
        for case_id in cases:
            case = desk.case(case_id)
            months = months_between(case.support_periods[0].start, latest)
            for month in months:
                owed = month_entitlement(case.budgets, case.support_periods, month).amount
                assert ordered.get((case_id, month), ZERO) == owed, (case_id, month)
            assert {m for (cid, m) in ordered if cid == case_id} <= set(months)
        assert _run(payments, latest) is False  # never twice
    finally:
        payments.close()
        desk.service.close()

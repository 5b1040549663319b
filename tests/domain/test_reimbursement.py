"""The reimbursement claim of an advance in view of EL, month by month (domain.reimbursement).

A hand-computed example (the one docs/benefits.md works through), the rules one by one, the
helpers that read payment orders and a benefit application, and a property test over
generated histories of payments, retroactive budget changes and EL decisions/amendments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.benefits import MonthlyAmount
from domain.case import SWISS_TIME
from domain.commands import Actor
from domain.entitlement import month_entitlement
from domain.events import BudgetVersion, SupportPeriod
from domain.money import ZERO
from domain.payments import (
    OrderKind,
    PaymentOrdered,
    RecordPayoutAccount,
    RunPayments,
    parse_month,
    payment_order_id,
)
from domain.reimbursement import (
    AdvancePeriod,
    MonthClaim,
    Reimbursement,
    claimed_so_far,
    compute_reimbursement,
    owed_by_month,
    paid_by_month,
)
from domain.settlement import PaymentRejected, PaymentReturned

from .benefit_desk import BenefitDesk, build_benefit_desk
from .case_desk import POPO_ENV, Desk, build_desk, expected_basic_needs, move_to, person_input

CASE = UUID("6f1c0a52-6c5e-4c59-9a43-2f5f3d1e0b11")
RUN_ACTOR = Actor("pay.office", "administrator", "so-canton")


def _m(month: int, year: int = 2026) -> date:
    return date(year, month, 1)


def _chf(text: str) -> Decimal:
    return Decimal(text)


def _by_month(reimbursement: Reimbursement) -> dict[date, tuple[str, ...]]:
    return {c.month: (str(c.claim), str(c.ipv_offset), str(c.surplus))
            for c in reimbursement.months}


def _corrections(reimbursement: Reimbursement) -> dict[date, tuple[str, ...]]:
    return {c.month: (str(c.claim), str(c.ipv_offset), str(c.surplus))
            for c in reimbursement.corrections}


# --- the worked example (docs/benefits.md, "Advances and reimbursement") ------------------------
#
# A one-person case is supported from January 2026 with CHF 2,400.00 a month, advanced in view
# of EL from January (the person signed the commitment in January). The EL application was
# filed in February, so EL is owed from February (ELG Art. 12). The payment runs of January to
# May pay 2,400.00 for each month.
#
# 20 May: the fund grants EL from February: CHF 1,900.00 a month, from April CHF 2,600.00 (rent
# rose). The advance ends with the decision (May). Back-payment months: February to May.
#
#   month  paid     EL       claim = min(paid, EL)   surplus = EL - claim
#   Feb    2400.00  1900.00  1900.00                 0.00
#   Mar    2400.00  1900.00  1900.00                 0.00
#   Apr    2400.00  2600.00  2400.00               200.00
#   May    2400.00  2600.00  2400.00               200.00
#   sum             9000.00  8600.00               400.00   (8600 + 400 = 9000)
#
# January: advanced but no EL (filed in February): the social service keeps that month's cost.
#
# 10 June: a budget change effective 1 March is recorded (income from a small job: the budget
# falls to CHF 2,000.00). June's payment run claims back 400.00 for each of March, April, May;
# paid as known in June: Feb 2400, Mar 2000, Apr 2000, May 2000.
#
#   month  paid     EL       claim    surplus   correction: claim   surplus
#   Feb    2400.00  1900.00  1900.00    0.00                 0.00      0.00  (unchanged)
#   Mar    2000.00  1900.00  1900.00    0.00                 0.00      0.00  (2000 > 1900 still)
#   Apr    2000.00  2600.00  2000.00  600.00              -400.00   +400.00
#   May    2000.00  2600.00  2000.00  600.00              -400.00   +400.00
#   sum             9000.00  7800.00 1200.00              -800.00   +800.00
#
# The social service returns CHF 800.00 of its claim; the person gets CHF 800.00 more.

ADVANCE = AdvancePeriod(first_month=_m(1), last_month=_m(5))
EL_MAY = {_m(2): _chf("1900.00"), _m(3): _chf("1900.00"),
          _m(4): _chf("2600.00"), _m(5): _chf("2600.00")}
PAID_MAY = {_m(1): _chf("2400.00"), _m(2): _chf("2400.00"), _m(3): _chf("2400.00"),
            _m(4): _chf("2400.00"), _m(5): _chf("2400.00")}
PAID_JUNE = {**PAID_MAY, _m(3): _chf("2000.00"), _m(4): _chf("2000.00"),
             _m(5): _chf("2000.00"), _m(6): _chf("2000.00")}


def test_worked_example_first_claim_in_may() -> None:
    first = compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)

    assert _by_month(first) == {
        _m(2): ("1900.00", "0.00", "0.00"),
        _m(3): ("1900.00", "0.00", "0.00"),
        _m(4): ("2400.00", "0.00", "200.00"),
        _m(5): ("2400.00", "0.00", "200.00"),
    }
    assert first.corrections == first.months  # nothing claimed before: all of it is new
    assert (first.claim_total, first.surplus_total) == (_chf("8600.00"), _chf("400.00"))


def test_worked_example_budget_change_recorded_in_june_corrects_april_and_may() -> None:
    first = compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)

    june = compute_reimbursement(ADVANCE, EL_MAY, PAID_JUNE, before=claimed_so_far([first]))

    assert _by_month(june) == {
        _m(2): ("1900.00", "0.00", "0.00"),
        _m(3): ("1900.00", "0.00", "0.00"),
        _m(4): ("2000.00", "0.00", "600.00"),
        _m(5): ("2000.00", "0.00", "600.00"),
    }
    assert _corrections(june) == {
        _m(4): ("-400.00", "0.00", "400.00"),
        _m(5): ("-400.00", "0.00", "400.00"),
    }
    assert (june.claim_total, june.surplus_total) == (_chf("-800.00"), _chf("800.00"))
    # Claimed in all: 8600 - 800 = 7800, the claim computed once from June's facts.
    once = compute_reimbursement(ADVANCE, EL_MAY, PAID_JUNE)
    assert sum(c.claim for c in once.months) == first.claim_total + june.claim_total


def test_worked_example_computed_again_claims_nothing() -> None:
    first = compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY)

    again = compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY, before=claimed_so_far([first]))

    assert again.corrections == () and not again.claims_something
    assert again.months == first.months


# --- the rules one by one --------------------------------------------------------------------


def test_month_outside_the_advance_goes_to_the_person_whole() -> None:
    advance = AdvancePeriod(first_month=_m(3), last_month=_m(4))
    el = {_m(2): _chf("1000.00"), _m(3): _chf("1000.00"), _m(5): _chf("1000.00")}
    paid = {_m(2): _chf("900.00"), _m(3): _chf("900.00"), _m(5): _chf("900.00")}

    result = compute_reimbursement(advance, el, paid)

    assert _by_month(result) == {
        _m(2): ("0.00", "0.00", "1000.00"),  # before the advance
        _m(3): ("900.00", "0.00", "100.00"),
        _m(5): ("0.00", "0.00", "1000.00"),  # after the advance ended
    }


def test_month_without_el_is_not_claimed_though_advanced() -> None:
    result = compute_reimbursement(AdvancePeriod(_m(1)), {_m(1): ZERO, _m(2): _chf("50.00")},
                                   {_m(1): _chf("2000.00"), _m(2): _chf("2000.00")})

    assert _by_month(result) == {_m(2): ("50.00", "0.00", "0.00")}


def test_premium_reduction_is_offset_first_and_at_most_the_month_el() -> None:
    el = {_m(2): _chf("1000.00"), _m(3): _chf("200.00")}
    paid = {_m(2): _chf("2000.00"), _m(3): _chf("2000.00")}
    ipv = {_m(2): _chf("300.00"), _m(3): _chf("300.00")}

    result = compute_reimbursement(AdvancePeriod(_m(1)), el, paid, ipv=ipv)

    assert _by_month(result) == {
        _m(2): ("700.00", "300.00", "0.00"),
        _m(3): ("0.00", "200.00", "0.00"),  # offset capped at the month's EL
    }
    assert result.ipv_offset_total == _chf("500.00")


def test_claim_backs_beyond_payments_claim_nothing_rather_than_a_negative_amount() -> None:
    result = compute_reimbursement(AdvancePeriod(_m(1)), {_m(2): _chf("800.00")},
                                   {_m(2): _chf("-120.00")})

    assert _by_month(result) == {_m(2): ("0.00", "0.00", "800.00")}


def test_amendment_to_nothing_corrects_the_month_back_to_zero() -> None:
    first = compute_reimbursement(AdvancePeriod(_m(1)), {_m(2): _chf("800.00")},
                                  {_m(2): _chf("1000.00")})

    amended = compute_reimbursement(AdvancePeriod(_m(1)), {_m(2): ZERO}, {_m(2): _chf("1000.00")},
                                    before=claimed_so_far([first]))

    assert amended.months == ()
    assert _corrections(amended) == {_m(2): ("-800.00", "0.00", "0.00")}


@pytest.mark.parametrize(("el", "paid", "ipv", "message"), [
    ({date(2026, 2, 3): Decimal("1")}, {}, {}, "el: 2026-02-03 is not the first day of a month"),
    ({_m(2): Decimal("-1")}, {}, {}, "el: -1.00 for 2026-02 is negative"),
    ({}, {}, {_m(2): Decimal("-0.01")}, "ipv: -0.01 for 2026-02 is negative"),
    ({}, {date(2026, 2, 28): Decimal("1")}, {}, "paid: 2026-02-28 is not the first day"),
])
def test_bad_facts_are_refused_naming_the_mapping(
    el: Mapping[date, Decimal], paid: Mapping[date, Decimal], ipv: Mapping[date, Decimal],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_reimbursement(AdvancePeriod(_m(1)), el, paid, ipv=ipv)


def test_advance_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="last_month: 2026-01 lies before first_month 2026-02"):
        AdvancePeriod(_m(2), _m(1))


def test_amounts_are_taken_to_the_centime_half_up() -> None:
    result = compute_reimbursement(AdvancePeriod(_m(1)), {_m(2): Decimal("100.005")},
                                   {_m(2): Decimal("40.004")})

    assert _by_month(result) == {_m(2): ("40.00", "0.00", "60.01")}


# --- reading the facts ------------------------------------------------------------------------


def _order(month: date, kind: OrderKind, amount: str, at: datetime, *, held: bool = False,
           case_id: UUID = CASE, sequence: int = 1) -> PaymentOrdered:
    run_id = uuid5(NAMESPACE_URL, f"test-run/{month:%Y-%m}/{sequence}")
    return PaymentOrdered(  # type: ignore[call-arg]
        originator_id=run_id, originator_version=2, timestamp=at,
        order_id=payment_order_id(run_id, case_id, month), case_id=case_id, for_month=month,
        kind=kind, amount=Decimal(amount), held=held, held_reason=None, creditor=None,
        social_region="so-solothurn", entitlement=Decimal(amount), previously_ordered=ZERO,
        budget_effective_date=None, budget_recorded_at=None)


def test_paid_by_month_nets_back_payments_and_claim_backs_as_known() -> None:
    may, june = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    orders = [
        _order(_m(3), "regular", "2400.00", datetime(2026, 3, 1, tzinfo=UTC)),
        _order(_m(4), "regular", "2400.00", datetime(2026, 4, 1, tzinfo=UTC), held=True),
        _order(_m(4), "back_payment", "2400.00", may),
        _order(_m(3), "claim_back", "400.00", june),
        _order(_m(3), "regular", "999.00", may, case_id=uuid4()),  # another case
    ]

    assert paid_by_month(orders, CASE, may) == {_m(3): _chf("2400.00"), _m(4): _chf("2400.00")}
    assert paid_by_month(orders, CASE, june) == {_m(3): _chf("2000.00"),
                                                 _m(4): _chf("2400.00")}
    with pytest.raises(ValueError, match="known_at: needs a time zone offset"):
        paid_by_month(orders, CASE, datetime(2026, 6, 1))


def test_paid_by_month_leaves_out_what_the_bank_rejected_or_returned_as_known() -> None:
    march, april = _order(_m(3), "regular", "2400.00", datetime(2026, 3, 1, tzinfo=UTC)), \
        _order(_m(4), "regular", "2400.00", datetime(2026, 4, 1, tzinfo=UTC))
    settled: dict[str, Any] = {"case_id": CASE, "file_sha256": "0" * 64, "recorded_by": "test",
               "actor": Actor("bank", "system", "so-canton"), "correlation_id": uuid4(),
               "originator_id": uuid4(), "originator_version": 2}
    rejected = PaymentRejected(  # type: ignore[call-arg]
        timestamp=datetime(2026, 3, 3, tzinfo=UTC), order_id=march.order_id, for_month=_m(3),
        amount=Decimal("2400.00"), scope="transaction", reason_code="AC04", reason_text=None,
        **settled)
    returned = PaymentReturned(  # type: ignore[call-arg]
        timestamp=datetime(2026, 4, 20, tzinfo=UTC), order_id=april.order_id,
        for_month=_m(4), amount=Decimal("400.00"), booking_date=date(2026, 4, 20),
        bank_reference=None, reason_code="MD07", reason_text=None, **settled)
    refusals: list[PaymentRejected | PaymentReturned] = [rejected, returned]

    may = datetime(2026, 5, 1, tzinfo=UTC)
    assert paid_by_month([march, april], CASE, may, refusals) == {
        _m(3): _chf("0.00"), _m(4): _chf("2000.00")}
    # as known before the bank answered, both were paid in full
    assert paid_by_month([march, april], CASE, datetime(2026, 4, 2, tzinfo=UTC), refusals) == {
        _m(3): _chf("0.00"), _m(4): _chf("2400.00")}
    assert paid_by_month([march, april], CASE, datetime(2026, 3, 2, tzinfo=UTC), refusals) == {
        _m(3): _chf("2400.00")}


def test_owed_by_month_reads_the_application_as_granted_and_amended() -> None:
    desk = build_benefit_desk()
    application_id = desk.forwarded()  # received on 3 November 2025
    desk.run("grant_benefit", application_id=application_id, from_month="2025-11",
             amounts=[{"from_month": "2025-11", "monthly_chf": "1900.00"}])
    desk.run("amend_decision", application_id=application_id, reason="correction",
             amounts=[{"from_month": "2026-01", "monthly_chf": "2600.00"}])

    owed = owed_by_month(desk.service.application(application_id), date(2026, 2, 14))

    assert owed == {date(2025, 11, 1): _chf("1900.00"), date(2025, 12, 1): _chf("1900.00"),
                    _m(1): _chf("2600.00"), _m(2): _chf("2600.00")}
    refused = desk.forwarded(serial=2)
    assert owed_by_month(desk.service.application(refused), _m(2)) == {}


# --- property: generated histories ----------------------------------------------------------

YEAR_MONTHS = [_m(month) for month in range(1, 13)]
AMOUNTS = st.sampled_from(["0.00", "480.35", "1200.00", "1900.00", "2600.00", "3105.55"])


@dataclass
class History:
    """A generated history: budgets recorded at steps (months), payment runs each month,
    an EL grant and amendments, premium reductions."""

    budgets: list[tuple[int, int, str]]
    """(recorded at step, effective month index, monthly total)."""
    held_runs: set[int]
    advance_from: int
    filed: int
    decided: int
    grant: list[tuple[int, str]]
    amendments: list[tuple[int, int, str]]
    """(recorded at step, from month index, amount)."""
    ipv: dict[int, str]
    recomputations: list[int] = field(default_factory=list)


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Generated histories within one year (month index 0 = January)."""
    advance_from = draw(st.integers(0, 5))
    filed = draw(st.integers(advance_from, 6))
    decided = draw(st.integers(filed, 8))
    changes = st.integers(1, 11).flatmap(
        lambda r: st.tuples(st.just(r), st.integers(0, r), AMOUNTS))
    budgets = [(0, 0, draw(AMOUNTS)), *draw(st.lists(changes, max_size=5))]
    periods = st.tuples(st.integers(filed, 11), AMOUNTS)
    grant = [(filed, draw(AMOUNTS)), *draw(st.lists(periods, max_size=2))]
    amendments = draw(st.lists(
        st.integers(decided, 11).flatmap(
            lambda r: st.tuples(st.just(r), st.integers(filed, 11), AMOUNTS)),
        max_size=3))
    ipv = draw(st.dictionaries(st.integers(0, 11), st.sampled_from(["0.00", "95.50", "400.00"]),
                               max_size=6))
    return History(budgets=budgets, held_runs=draw(st.sets(st.integers(0, 11), max_size=3)),
                   advance_from=advance_from, filed=filed, decided=decided,
                   grant=sorted(grant), amendments=amendments, ipv=ipv,
                   recomputations=sorted(draw(st.lists(st.integers(decided, 11), max_size=4))))


def _at(step: int, hour: int) -> datetime:
    return datetime(2026, step + 1, 1, hour, tzinfo=UTC)


def _payment_orders(history: History) -> list[PaymentOrdered]:
    """Each month's payment run as domain.payments orders it: for every month up to the run's,
    what is owed as known at the run minus what was counted so far (held runs count nothing)."""
    orders: list[PaymentOrdered] = []
    counted: dict[date, Decimal] = {}
    for step, run_month in enumerate(YEAR_MONTHS):
        known = [BudgetVersion(YEAR_MONTHS[effective], [], Decimal(total), "t", _at(recorded, 6))
                 for recorded, effective, total in history.budgets if recorded <= step]
        for month in YEAR_MONTHS[: step + 1]:
            owed = month_entitlement(known, [SupportPeriod(YEAR_MONTHS[0])], month).amount
            difference = owed - counted.get(month, ZERO)
            if difference == ZERO:
                continue
            kind: OrderKind = ("claim_back" if difference < 0 else
                               "regular" if month == run_month else "back_payment")
            held = step in history.held_runs and kind != "claim_back"
            orders.append(_order(month, kind, str(abs(difference)), _at(step, 8), held=held,
                                 sequence=step + 1))
            if not held:
                counted[month] = counted.get(month, ZERO) + difference
    return orders


def _el_as_known(history: History, step: int) -> dict[date, Decimal]:
    """The EL owed per back-payment month (from the filing to the decision) as known at the
    end of `step`: the grant (recorded at the decision) and the amendments recorded by then,
    each replacing the amounts from its month on (as `DecisionAmended` does)."""
    if step < history.decided:
        return {}
    schedule = [MonthlyAmount(YEAR_MONTHS[m], Decimal(a)) for m, a in history.grant]
    for recorded, first, amount in history.amendments:
        if recorded <= step:
            kept = [p for p in schedule if p.from_month < YEAR_MONTHS[first]]
            schedule = [*kept, MonthlyAmount(YEAR_MONTHS[first], Decimal(amount))]
    owed = {}
    for month in YEAR_MONTHS[history.filed: history.decided + 1]:
        in_force = [p for p in schedule if p.from_month <= month]
        owed[month] = in_force[-1].monthly_chf if in_force else ZERO
    return owed


def _compute(history: History, orders: list[PaymentOrdered], step: int,
             before: Mapping[date, MonthClaim] | None) -> Reimbursement:
    advance = AdvancePeriod(YEAR_MONTHS[history.advance_from], YEAR_MONTHS[history.decided])
    ipv = {YEAR_MONTHS[m]: Decimal(a) for m, a in history.ipv.items()}
    paid = paid_by_month(orders, CASE, _at(step, 23))
    return compute_reimbursement(advance, _el_as_known(history, step), paid, ipv=ipv,
                                 before=before)


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(histories())
def test_claims_over_a_history_add_up_to_the_claim_from_the_final_facts(
    history: History,
) -> None:
    orders = _payment_orders(history)
    done: list[Reimbursement] = []
    for step in [history.decided, *history.recomputations, 11]:
        result = _compute(history, orders, step, claimed_so_far(done))
        paid = paid_by_month(orders, CASE, _at(step, 23))
        el = _el_as_known(history, step)
        for line in result.months:
            assert ZERO <= line.claim <= paid.get(line.month, ZERO)
            assert line.claim <= line.el - line.ipv_offset <= line.el
            assert line.surplus >= ZERO
            assert line.claim + line.ipv_offset + line.surplus == el[line.month]
        back_payment = sum(el.values(), ZERO)
        assert sum((line.claim + line.ipv_offset + line.surplus for line in result.months),
                   ZERO) == back_payment
        done.append(result)
        # The same facts again: nothing new.
        assert not _compute(history, orders, step, claimed_so_far(done)).claims_something

    once = _compute(history, orders, 11, None)
    claimed = claimed_so_far(done)
    for line in once.months:
        total = claimed[line.month]
        assert (total.claim, total.ipv_offset, total.surplus) == (
            line.claim, line.ipv_offset, line.surplus)
    assert all(claimed[m].is_zero for m in claimed.keys() - {line.month for line in once.months})


# --- the worked example from recorded facts ---------------------------------------------------

PAY_OFFICE = Actor("pay.office", "administrator", "so-canton")


def _on(desks: tuple[Desk, BenefitDesk], day: date) -> None:
    for each in desks:
        move_to(each, day)  # type: ignore[arg-type]


@dataclass
class WorkedExample:
    """The worked example's facts as the services recorded them until the payment run of
    May (before the fund's decision): the desks, the payments service, the case and the
    application advanced for, the case's housing line and a payment run by month."""

    desk: Desk
    benefits: BenefitDesk
    payments: PaymentService
    case_id: UUID
    application_id: UUID
    housing: Decimal

    def run(self, month: str) -> None:
        """The payment run of `month` (YYYY-MM)."""
        self.payments.run(RunPayments(actor=PAY_OFFICE, correlation_id=uuid4(),
                                      month=parse_month(month)))

    def on(self, day: date) -> None:
        """Move both desks' clocks to `day`."""
        _on((self.desk, self.benefits), day)


def record_worked_example_to_may(actor: Actor) -> WorkedExample:
    """Record the worked example's facts until May's payment run (see `WorkedExample`)."""
    benefits = build_benefit_desk()
    desk = build_desk(actor, start=datetime(2026, 1, 5, 9, tzinfo=SWISS_TIME))
    desk.service = CaseService(POPO_ENV, vault=desk.service.vault, reference=desk.reference,
                               clock=desk.clock, benefits=benefits.service.on_record)
    payments = PaymentService(POPO_ENV, cases=desk.service, clock=desk.clock)
    desks = (desk, benefits)

    def run(month: str) -> None:
        payments.run(RunPayments(actor=PAY_OFFICE, correlation_id=uuid4(),
                                 month=parse_month(month)))

    # January: support of CHF 2,400.00 a month from 1 January (housing makes up the rest).
    _on(desks, date(2026, 1, 5))
    housing = _chf("2400.00") - expected_basic_needs(date(2026, 1, 1), 1) - _chf("350.00")
    case_id = desk.assessed(application_date="2026-01-05")
    desk.run("grant_support", case_id=case_id, support_from="2026-01-01", housing=str(housing))
    assert desk.case(case_id).budgets[-1].total == _chf("2400.00")
    payments.record_account(RecordPayoutAccount(actor=PAY_OFFICE, correlation_id=uuid4(),
                                                case_id=case_id, iban="CH9300762011623852957",
                                                holder="P. Muster"))
    application_id = advance_from_january_to_may(desk, benefits, case_id, run)
    return WorkedExample(desk, benefits, payments, case_id, application_id, housing)


def advance_from_january_to_may(desk: Desk, benefits: BenefitDesk, case_id: UUID,
                                run: Callable[[str], None]) -> UUID:
    """The worked example's months on a case supported from 1 January with a payout account,
    from 5 January: the payment runs of January to May (`run`), the EL application of the
    case's applicant on 10 February (ELG Art. 12: EL from February) and the advance from
    January (commitment of 5 January). The application's id; the clocks on 4 May."""
    desks = (desk, benefits)
    run("2026-01")
    _on(desks, date(2026, 2, 2))
    run("2026-02")
    _on(desks, date(2026, 2, 10))
    person = desk.case(case_id).applicant.person_id
    application_id = benefits.forwarded(applicant=person_input(1, person_id=str(person)))
    desk.run("start_advance", case_id=case_id, application_id=application_id,
             advance_from="2026-01-01", commitment_date="2026-01-05")
    for day, month in ((date(2026, 3, 2), "2026-03"), (date(2026, 4, 1), "2026-04"),
                       (date(2026, 5, 4), "2026-05")):
        _on(desks, day)
        run(month)
    return application_id


def test_worked_example_from_the_recorded_cases_payments_and_decision(
    actor: Actor,
) -> None:
    """The worked example again, with every fact recorded by the services: the case and its
    budget change (CaseService), the payment runs (PaymentService), the application, the
    advance and the decision (BenefitService); the figures read back as known at each time."""
    example = record_worked_example_to_may(actor)
    desk, benefits, payments = example.desk, example.benefits, example.payments
    case_id, application_id, housing = example.case_id, example.application_id, example.housing
    desks, run = (desk, benefits), example.run
    # 20 May: EL granted from February, another amount from April; the advance ends.
    _on(desks, date(2026, 5, 20))
    benefits.run("grant_benefit", application_id=application_id, from_month="2026-02",
                 amounts=[{"from_month": "2026-02", "monthly_chf": "1900.00"},
                          {"from_month": "2026-04", "monthly_chf": "2600.00"}])
    desk.run("end_advance", case_id=case_id, application_id=application_id)
    (advance,) = desk.case(case_id).advances
    period = AdvancePeriod(advance.started_on, advance.ended_on)

    def as_known(before: Mapping[date, MonthClaim] | None = None) -> Reimbursement:
        now = desk.clock()
        application = benefits.service.application_as_known(application_id, now)
        assert application is not None
        return compute_reimbursement(period, owed_by_month(application, date(2026, 5, 1)),
                                     paid_by_month(payments.orders(case_id), case_id, now),
                                     before=before)

    first = as_known()
    assert _by_month(first) == _by_month(compute_reimbursement(ADVANCE, EL_MAY, PAID_MAY))
    # 10 June: a budget change effective 1 March (CHF 2,000.00), then June's payment run.
    _on(desks, date(2026, 6, 10))
    desk.run("change_budget", case_id=case_id, effective_date="2026-03-01",
             reason="income_change", housing=str(housing), income="400.00")
    run("2026-06")
    june = as_known(claimed_so_far([first]))

    assert _corrections(june) == {
        _m(4): ("-400.00", "0.00", "400.00"),
        _m(5): ("-400.00", "0.00", "400.00"),
    }
    assert not as_known(claimed_so_far([first, june])).claims_something
    payments.close()

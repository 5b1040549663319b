"""The payments store on SQLite and PostgreSQL: its own events table beside the case store's,
runs recorded all at once, two runs computed from the same state never both recorded; a death
proposal holds a case, a run is approved by a second person, and a restored store never
repeats a run id."""

from __future__ import annotations

import calendar
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from domain import commands
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.commands import swiss_today
from domain.errors import RuleViolationError
from domain.payments import (
    ApprovePaymentRun,
    PaymentHeld,
    PaymentRunApproved,
    RecordPayoutAccount,
    RunPayments,
)
from nervenbahn.config import load_settings
from nervenbahn.container import build_payment_service, build_service, close_service
from tests.bus.pipeline import open_supported_case
from tests.domain.case_desk import expected_basic_needs

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
CONTROL = commands.Actor("pay.control", "administrator", "so-canton")
REGISTER = commands.Actor("population-register", "system", "so-canton")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, master_key: str
) -> Iterator[tuple[CaseService, PaymentService, Any]]:
    """A case service and a payments service on one database, and a second payments service
    on the same database (another process)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    settings = load_settings({"NERVENBAHN_STORE": url, "NERVENBAHN_MASTER_KEY": master_key})
    cases = build_service(settings)
    payments = build_payment_service(settings, cases)
    other = build_payment_service(settings, cases)
    yield cases, payments, other
    other.close()
    payments.close()
    close_service(cases)


def _run(payments: PaymentService) -> Any:
    month = swiss_today().replace(day=1)
    return payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=month))


def test_payment_events_stay_out_of_the_case_store_log(
    stores: tuple[CaseService, PaymentService, Any],
) -> None:
    cases, payments, _ = stores
    case_ids = [open_supported_case(cases, n) for n in range(2)]
    for case_id in case_ids:
        payments.record_account(RecordPayoutAccount(
            actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id,
            iban="CH9300762011623852957", holder="N. Beispiel"))
    summary = _run(payments)
    assert summary.recorded and len(summary.paid_out) == 2

    case_log = cases.recorder.select_notifications(start=None, limit=1000)
    payment_log = payments.recorder.select_notifications(start=None, limit=1000)
    assert {n.originator_id for n in case_log} == set(case_ids)  # three events per case
    assert len(case_log) == 6
    topics = [n.topic.split(":")[-1] for n in payment_log]
    # 2 accounts, the run (started, 2 orders, completed), the run book (opened, booked)
    assert sorted(topics) == sorted([
        "PayoutAccountRecorded", "PayoutAccountRecorded", "PaymentRunStarted",
        "PaymentOrdered", "PaymentOrdered", "PaymentRunCompleted", "PaymentRunBookOpened",
        "PaymentRunBooked",
    ])
    assert payments.recorder.max_notification_id() == 8


def test_a_run_computed_beside_another_is_refused_and_nothing_is_paid_twice(
    stores: tuple[CaseService, PaymentService, Any],
) -> None:
    cases, payments, other = stores
    case_id = open_supported_case(cases)
    payments.record_account(RecordPayoutAccount(
        actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id,
        iban="CH9300762011623852957", holder="N. Beispiel"))
    # `other` read the run book before `payments` recorded its run (two processes at once).
    stale_book = other._book()
    assert stale_book is None
    first = _run(payments)
    assert first.recorded
    other._book = lambda: stale_book  # type: ignore[method-assign]
    other.orders = lambda case_id=None: iter(())  # type: ignore[method-assign]
    with pytest.raises(RuleViolationError) as info:
        _run(other)
    assert info.value.rule == "one-run-at-a-time"
    assert [o.kind for o in payments.orders(case_id)] == ["regular"]
    assert len(payments.runs()) == 1


def _account(payments: PaymentService, case_id: uuid.UUID) -> None:
    payments.record_account(RecordPayoutAccount(
        actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id,
        iban="CH9300762011623852957", holder="N. Beispiel"))


def test_a_death_proposal_holds_the_payment_and_a_second_person_approves_the_run(
    stores: tuple[CaseService, PaymentService, Any],
) -> None:
    cases, payments, other = stores
    dying, living = open_supported_case(cases, 0), open_supported_case(cases, 1)
    for case_id in (dying, living):
        _account(payments, case_id)
    first = swiss_today().replace(day=1)
    cases.execute(commands.ProposeClosure(
        actor=REGISTER, correlation_id=uuid.uuid4(), case_id=dying, external_reference="d-1/0",
        source="population_register", reason="death", effective_date=first))

    summary = _run(payments)

    # the first of the month is the last day still ordered (pro rata by calendar days)
    monthly = expected_basic_needs(first, 1) + Decimal("1550.00")
    one_day = (monthly / calendar.monthrange(first.year, first.month)[1]).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert {o.case_id: o.amount for o in summary.orders} == {dying: one_day, living: monthly}
    assert [(h.case_id, h.reason, h.held_from, h.held_amount) for h in summary.holds] == [
        (dying, "death", date(first.year, first.month, 2), monthly - one_day)]
    assert summary.run_id is not None
    [held] = [e for e in other.run_events(summary.run_id) if isinstance(e, PaymentHeld)]
    assert (held.case_id, held.proposal) == (dying, "d-1/0")

    with pytest.raises(RuleViolationError) as same:
        payments.approve(ApprovePaymentRun(actor=ADMIN, correlation_id=uuid.uuid4(),
                                           run_id=summary.run_id))
    assert same.value.rule == "four-eyes"
    assert other.approval_of(summary.run_id) is None
    other.approve(ApprovePaymentRun(actor=CONTROL, correlation_id=uuid.uuid4(),
                                    run_id=summary.run_id))
    approval = payments.approval_of(summary.run_id)
    assert isinstance(approval, PaymentRunApproved) and approval.actor == CONTROL
    assert payments.run_events(summary.run_id)[0].actor == ADMIN


def _backup(source: Path, target: Path) -> None:
    """An online backup of a SQLite store (sqlite3's backup API: the WAL included)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def test_a_store_restored_from_a_backup_never_repeats_a_run_id(
    tmp_path: Path, master_key: str
) -> None:
    """The same run recorded in a store and in a copy restored from before it: the deterministic
    ids of before (month and sequence) would have given both the same run id, hence the same
    pain.001 message id."""
    store = tmp_path / "store.db"
    settings = load_settings({"NERVENBAHN_STORE": f"sqlite:///{store}",
                              "NERVENBAHN_MASTER_KEY": master_key})
    cases = build_service(settings)
    payments = build_payment_service(settings, cases)
    try:
        _account(payments, open_supported_case(cases))
        (tmp_path / "restored").mkdir(mode=0o700)
        _backup(store, tmp_path / "restored" / "store.db")
        original = _run(payments)
    finally:
        payments.close()
        close_service(cases)
    restored_settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'restored' / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": master_key})
    cases = build_service(restored_settings)
    payments = build_payment_service(restored_settings, cases)
    try:
        restored = _run(payments)
        restored_orders = {o.order_id for o in payments.orders()}
    finally:
        payments.close()
        close_service(cases)
    assert (original.sequence, restored.sequence) == (1, 1)
    assert original.control_sum == restored.control_sum
    assert original.run_id != restored.run_id
    assert original.run_id is not None and restored.run_id is not None
    settings_again = load_settings({"NERVENBAHN_STORE": f"sqlite:///{store}",
                                    "NERVENBAHN_MASTER_KEY": master_key})
    cases = build_service(settings_again)
    payments = build_payment_service(settings_again, cases)
    try:
        assert restored_orders.isdisjoint({o.order_id for o in payments.orders()})
    finally:
        payments.close()
        close_service(cases)

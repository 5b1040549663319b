"""The payments store on SQLite and PostgreSQL: its own events table beside the case store's,
runs recorded all at once, two runs computed from the same state never both recorded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from domain import commands
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.errors import RuleViolationError
from domain.payments import RecordPayoutAccount, RunPayments
from nervenbahn.config import load_settings
from nervenbahn.container import build_payment_service, build_service, close_service
from tests.bus.pipeline import open_supported_case

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")


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
    month = date.today().replace(day=1)
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
    other.counted_by_case_and_month = lambda: {}  # type: ignore[method-assign]
    with pytest.raises(RuleViolationError) as info:
        _run(other)
    assert info.value.rule == "one-run-at-a-time"
    assert [o.kind for o in payments.orders(case_id)] == ["regular"]
    assert len(payments.runs()) == 1

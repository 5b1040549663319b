"""The audit report sets what the bank did beside what was ordered (issue 19, parts 6 and 7):
per month, the payments the bank executed (pain.002 and camt.054 read into settlement events),
and a payment it rejected or returned counts as not ordered, so the month is marked as still
owed. Real runs on a real SQLite file, the test bank's files for the run's own pain.001, each
answer as known at the report's time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.application.settlement import Settlements
from nervenbahn.audit.report import build_case_report, render_case_report
from nervenbahn.audit.report_payments import PaymentMonth
from tests.payments.bank_files import camt054, pain001_of_run, pain002
from tests.payments.test_reconciliation import _month as this_month
from tests.payments.test_reconciliation import (
    _order_of,
    _owed,
    _paid_run,
    _reconcile,
    _store,
)

PART = Decimal("400.00")
"""What the bank returns of one payment (the rest stays paid)."""


@pytest.fixture
def store(tmp_path: Path, master_key: str) -> Iterator[tuple[CaseService, PaymentService]]:
    yield from _store(f"sqlite:///{tmp_path / 'store.db'}", master_key)


def _month(cases: CaseService, payments: PaymentService, case_id: object,
           as_of: datetime) -> tuple[PaymentMonth, str]:
    report = build_case_report(
        cases, case_id, as_of, now=datetime.now(UTC),  # type: ignore[arg-type]
        orders=payments.orders(case_id),  # type: ignore[arg-type]
        settled=Settlements(payments).answers_for(case_id),  # type: ignore[arg-type]
    )
    assert report.payments is not None
    (month,) = [m for m in report.payments if m.month == this_month()]
    return month, render_case_report(report, "de")


def test_executed_rejected_and_returned_payments_beside_the_entitlement(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (executed, rejected, returned) = _paid_run(cases, payments, 3)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    before_the_bank = datetime.now(UTC)
    rejected_e2e = _order_of(payments, rejected).order_id.hex
    returned_e2e = _order_of(payments, returned).order_id.hex
    _reconcile(settlements, pain002(pain001, rejected={rejected_e2e: ("AC04", "saldiert")}),
               "pain002.xml")
    _reconcile(settlements, camt054(
        pain001, executed=[_order_of(payments, executed).order_id.hex, returned_e2e],
        returned={returned_e2e: ("MD07", "verstorben")}, returned_amounts={returned_e2e: PART},
    ), "camt054.xml")
    now = datetime.now(UTC)

    month, html = _month(cases, payments, executed, now)
    assert (month.entitlement, month.ordered, month.executed, month.difference) == (
        _owed(), _owed(), _owed(), Decimal("0.00"))
    assert not month.differs and "Von der Bank ausgeführt" in html and "ausgeführt" in html

    month, html = _month(cases, payments, rejected, now)
    assert (month.ordered, month.executed, month.refused, month.difference) == (
        Decimal("0.00"), Decimal("0.00"), _owed(), _owed())
    assert month.differs
    assert "von der Bank zurückgewiesen (AC04)" in html and "erneut an" in html

    month, html = _month(cases, payments, returned, now)
    assert (month.ordered, month.executed, month.refused, month.difference) == (
        _owed() - PART, _owed() - PART, PART, PART)
    assert "von der Bank zurückgebucht CHF 400.00 (MD07)" in html

    # as known before the bank answered: every payment ordered in full, none executed
    for case_id in (executed, rejected, returned):
        month, html = _month(cases, payments, case_id, before_the_bank)
        assert (month.ordered, month.executed, month.difference) == (
            _owed(), Decimal("0.00"), Decimal("0.00")), case_id
        assert "zurückgewiesen" not in html and "zurückgebucht" not in html

"""Bank reconciliation on a real store: pain.002 and camt.054 files made by a test bank for a
run's own pain.001 file (so every id matches) move its orders to executed, rejected and
returned; the figures per month are the hand-computed ones; a file read again records
nothing; contradictions, unknown ids and invalid files are refused with nothing recorded;
claim-backs are recovered in parts and written off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.payments.pain001 import (
    CreditTransfer,
    Debtor,
    PaymentFile,
    build_pain001,
)
from connectors.payments.reconciliation import InvalidBankFileError, read_bank_file
from domain import commands
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.application.settlement import Settlements
from domain.commands import swiss_today
from domain.errors import InvalidCommandError, RuleViolationError
from domain.payments import PaymentOrdered, RecordPayoutAccount, RunPayments
from domain.settlement import (
    SETTLEMENT_RULE,
    BankFileRead,
    PaymentExecuted,
    PaymentRejected,
    PaymentReturned,
    ReconcileBankFile,
    RecoverClaimBack,
    WriteOffClaimBack,
)
from nervenbahn.config import load_settings
from nervenbahn.container import build_payment_service, build_service, close_service
from tests.bus.pipeline import command, open_supported_case
from tests.domain.case_desk import expected_basic_needs
from tests.payments.bank_files import (
    CAMT054,
    PAIN002,
    assert_valid,
    camt054,
    pain001_of_run,
    pain002,
)

ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
SYSTEM = commands.Actor("bank-connector", "system", "so-canton")
CASEWORKER = commands.Actor("c.worker", "caseworker", "so-olten")
IBAN = "CH9300762011623852957"


def _month() -> date:
    """This month (asked when a test runs, not at collection: a run crossing the end of a
    month would otherwise pay a month its cases were not yet supported in)."""
    return swiss_today().replace(day=1)


def _owed() -> Decimal:
    """One case's month: SKOS basic needs (one person) + housing 1200 + health insurance 350."""
    return expected_basic_needs(_month(), 1) + Decimal("1550.00")


@pytest.fixture
def store(tmp_path: Path, master_key: str) -> Iterator[tuple[CaseService, PaymentService]]:
    """A case service and a payments service on one SQLite file."""
    yield from _store(f"sqlite:///{tmp_path / 'store.db'}", master_key)


def _store(url: str, master_key: str) -> Iterator[tuple[CaseService, PaymentService]]:
    settings = load_settings({"NERVENBAHN_STORE": url, "NERVENBAHN_MASTER_KEY": master_key})
    cases = build_service(settings)
    payments = build_payment_service(settings, cases)
    yield cases, payments
    payments.close()
    close_service(cases)


def _paid_run(cases: CaseService, payments: PaymentService, n: int) -> tuple[UUID, list[UUID]]:
    """`n` supported cases with a payout account, and this month's run: its id and cases."""
    case_ids = [open_supported_case(cases, i) for i in range(n)]
    for case_id in case_ids:
        _record_account(payments, case_id, IBAN)
    summary = payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=_month()))
    assert summary.run_id is not None and len(summary.paid_out) == n
    return summary.run_id, case_ids


def _record_account(payments: PaymentService, case_id: UUID, iban: str) -> None:
    payments.record_account(
        RecordPayoutAccount(
            actor=ADMIN,
            correlation_id=uuid.uuid4(),
            case_id=case_id,
            iban=iban,
            holder="N. Beispiel",
        )
    )


def _orders(payments: PaymentService, run_id: UUID) -> list[PaymentOrdered]:
    return [e for e in payments.run_events(run_id) if isinstance(e, PaymentOrdered) and e.paid_out]


def _order_of(payments: PaymentService, case_id: UUID) -> PaymentOrdered:
    return next(o for o in payments.orders(case_id) if o.paid_out)


def _reconcile(settlements: Settlements, xml: bytes, name: str, actor: Any = ADMIN) -> Any:
    bank_file = read_bank_file(xml, name)
    return settlements.reconcile(
        ReconcileBankFile(
            actor=actor,
            correlation_id=uuid.uuid4(),
            file_name=name,
            file_sha256=bank_file.sha256,
            kind=bank_file.kind,
            message_id=bank_file.message_id,
            statuses=list(bank_file.statuses),
        )
    )


def _stored(payments: PaymentService) -> int:
    return len(payments.recorder.select_notifications(start=None, limit=10_000))


def _figures(settlements: Settlements) -> dict[str, tuple[int, Decimal]]:
    (month,) = settlements.by_month()
    assert month.month == _month()
    return {name: (month.counts[name], month.amounts[name]) for name in month.counts}


def _reconciled_month(cases: CaseService, payments: PaymentService) -> None:
    run_id, (paid, closed, returned) = _paid_run(cases, payments, 3)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    closed_e2e = _order_of(payments, closed).order_id.hex
    returned_e2e = _order_of(payments, returned).order_id.hex
    report = pain002(pain001, rejected={closed_e2e: ("AC04", "Konto saldiert")})
    notification = camt054(
        pain001,
        executed=[_order_of(payments, paid).order_id.hex, returned_e2e],
        returned={returned_e2e: ("MD07", "Empfaenger verstorben")},
    )
    assert_valid(report, PAIN002)
    assert_valid(notification, CAMT054)

    first = _reconcile(settlements, report, "pain002.xml")
    assert [(s.case_id, s.outcome, s.reason_code) for s in first.recorded] == [
        (closed, "rejected", "AC04")
    ]
    assert _figures(settlements)["open"] == (2, 2 * _owed())
    second = _reconcile(settlements, notification, "camt054.xml")
    assert [(s.case_id, s.outcome) for s in second.recorded] == [
        (paid, "executed"),
        (returned, "executed"),
        (returned, "returned"),
    ]

    # hand-computed: three orders of _owed(); one rejected, two executed, one of them returned
    assert _figures(settlements) == {
        "ordered": (3, 3 * _owed()),
        "executed": (2, 2 * _owed()),
        "rejected": (1, _owed()),
        "returned": (1, _owed()),
        "open": (0, Decimal("0.00")),
    }
    (month,) = settlements.by_month()
    assert month.paid == _owed()
    per_case = settlements.by_case_and_month()
    assert per_case[(closed, _month())].counts["rejected"] == 1
    assert per_case[(paid, _month())].amounts["executed"] == _owed()
    events = list(settlements.events())
    rejected = next(e for e in events if isinstance(e, PaymentRejected))
    assert (rejected.case_id, rejected.reason_code, rejected.reason_text, rejected.scope) == (
        closed,
        "AC04",
        None,  # the bank's free text is not recorded (it may name the payee)
        "transaction",
    )
    executed = next(e for e in events if isinstance(e, PaymentExecuted))
    assert (executed.booking_date, executed.bank_reference) == (
        date(2026, 12, 3),
        "CAMT054-TEST-1-D1",
    )
    back = next(e for e in events if isinstance(e, PaymentReturned))
    assert (back.case_id, back.reason_code, back.amount) == (returned, "MD07", _owed())
    assert executed.actor == ADMIN and executed.file_sha256 == second.file_sha256


def test_bank_files_move_orders_to_executed_rejected_and_returned(
    store: tuple[CaseService, PaymentService],
) -> None:
    _reconciled_month(*store)


@pytest.mark.postgres
def test_bank_files_move_orders_on_postgresql(postgres_dsn: str, master_key: str) -> None:
    for cases, payments in _store(postgres_dsn, master_key):
        _reconciled_month(cases, payments)


def test_a_file_read_again_records_nothing(store: tuple[CaseService, PaymentService]) -> None:
    cases, payments = store
    run_id, _ = _paid_run(cases, payments, 2)
    settlements = Settlements(payments)
    notification = camt054(pain001_of_run(payments, run_id))
    assert len(_reconcile(settlements, notification, "camt054.xml").recorded) == 2
    stored = _stored(payments)

    again = _reconcile(settlements, notification, "renamed.xml")
    assert again.already_read and again.recorded == []
    assert _stored(payments) == stored
    # another file saying the same: nothing new about the orders, only that it was read
    other = camt054(pain001_of_run(payments, run_id), message_id="CAMT054-TEST-2")
    repeated = _reconcile(settlements, other, "camt054-2.xml")
    assert (repeated.recorded, repeated.unchanged) == ([], 2)
    assert _stored(payments) == stored + 1
    assert _figures(settlements)["executed"] == (2, 2 * _owed())


def test_a_status_contradicting_the_recorded_one_is_refused_and_nothing_recorded(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (first, second) = _paid_run(cases, payments, 2)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    rejected = _order_of(payments, first).order_id.hex
    _reconcile(settlements, pain002(pain001, rejected={rejected: ("AC01", "")}), "p.xml")
    stored = _stored(payments)

    with pytest.raises(RuleViolationError) as refused:
        _reconcile(settlements, camt054(pain001), "c.xml")  # executes both
    assert refused.value.rule == SETTLEMENT_RULE
    assert "rejected already; executed cannot follow" in str(refused.value)
    assert "TxDtls[1]/Refs/EndToEndId" in str(refused.value)
    assert _stored(payments) == stored  # not even the second order's execution
    assert _figures(settlements)["open"] == (1, _owed())

    returned = _order_of(payments, second).order_id.hex
    with pytest.raises(RuleViolationError, match="still open; returned cannot follow"):
        _reconcile(
            settlements, camt054(pain001, executed=[], returned={returned: ("AC06", "")}), "r.xml"
        )
    assert _stored(payments) == stored


def test_a_rejected_message_rejects_every_order_of_the_run(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, _ = _paid_run(cases, payments, 2)
    settlements = Settlements(payments)
    report = pain002(pain001_of_run(payments, run_id), group_rejected=("DU01", "MsgId doppelt"))
    assert_valid(report, PAIN002)
    result = _reconcile(settlements, report, "p.xml")
    assert [(s.outcome, s.reason_code) for s in result.recorded] == [("rejected", "DU01")] * 2
    assert _figures(settlements)["rejected"] == (2, 2 * _owed())
    scopes = {e.scope for e in settlements.events() if isinstance(e, PaymentRejected)}
    assert scopes == {"group"}


def test_unknown_ids_are_refused_naming_the_field(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    run_id, (case_id,) = _paid_run(cases, payments, 1)
    settlements = Settlements(payments)
    pain001 = pain001_of_run(payments, run_id)
    ours = _order_of(payments, case_id).order_id.hex
    stored = _stored(payments)

    unknown_order = pain002(pain001, rejected={ours: ("AC04", "")}).replace(
        ours.encode(), uuid.uuid4().hex.encode()
    )
    with pytest.raises(RuleViolationError) as refused:
        _reconcile(settlements, unknown_order, "p.xml")
    assert refused.value.rule == "known-end-to-end-id"
    assert "TxInfAndSts[1]/OrgnlEndToEndId" in str(refused.value)
    unknown_message = pain002(pain001, group_rejected=("DU01", "")).replace(
        run_id.hex.encode(), b"0" * 32
    )
    with pytest.raises(RuleViolationError, match="OrgnlGrpInfAndSts/OrgnlMsgId: message id"):
        _reconcile(settlements, unknown_message, "p.xml")
    assert _stored(payments) == stored


def test_a_file_not_valid_against_its_schema_is_refused_naming_the_element() -> None:
    report = pain002(
        build_pain001(
            PaymentFile(
                "a" * 32,
                datetime(2026, 12, 1, tzinfo=UTC),
                date(2026, 12, 2),
                Debtor("Sozialregion Olten", IBAN),
                (CreditTransfer("b" * 32, Decimal("10.00"), "N. Beispiel", IBAN, "x"),),
            )
        )
    )
    broken = report.replace(b"<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>", b"")
    with pytest.raises(InvalidBankFileError) as refused:
        read_bank_file(broken, "broken.xml")
    assert "pain.002.001.12.xsd" in str(refused.value)
    assert "OrgnlGrpInfAndSts" in str(refused.value)
    with pytest.raises(InvalidBankFileError, match="not well-formed"):
        read_bank_file(b"<Document>", "cut.xml")
    entity = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.12">&e;</Document>'
    )
    with pytest.raises(InvalidBankFileError):
        read_bank_file(entity, "entity.xml")


def test_claim_backs_are_recovered_in_parts_or_written_off(
    store: tuple[CaseService, PaymentService],
) -> None:
    cases, payments = store
    _, (recovered_case, written_case) = _paid_run(cases, payments, 2)
    for case_id in (recovered_case, written_case):
        cases.execute(
            command(
                "change_budget",
                case_id=str(case_id),
                effective_date=_month().isoformat(),
                income="300.00",
                housing="1200",
                health_insurance="350",
                reason="income_change",
            )
        )
    payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=_month()))
    settlements = Settlements(payments)
    claims = {c.case_id: c for c in settlements.claim_backs()}
    assert {c.amount for c in claims.values()} == {Decimal("300.00")}
    assert {c.status for c in claims.values()} == {"outstanding"}
    first = claims[recovered_case].order_id

    def recover(amount: str, actor: Any = ADMIN) -> Any:
        return settlements.recover(
            RecoverClaimBack(
                actor=actor,
                correlation_id=uuid.uuid4(),
                order_id=first,
                amount=Decimal(amount),
                recovered_on=date(2026, 12, 4),
            )
        )

    with pytest.raises(RuleViolationError, match=r"more than the CHF 300\.00 outstanding"):
        recover("300.05")
    assert recover("100.00", SYSTEM).outstanding == Decimal("200.00")
    with pytest.raises(RuleViolationError, match="claim-back-by-administrator"):
        recover("1.00", CASEWORKER)
    done = recover("200.00")
    assert (done.status, done.recovered, done.outstanding) == (
        "recovered",
        Decimal("300.00"),
        Decimal("0.00"),
    )
    with pytest.raises(RuleViolationError, match="recovered in full already"):
        recover("0.01")
    with pytest.raises(InvalidCommandError, match="amount"):
        recover("0")

    second = claims[written_case].order_id
    settlements.recover(
        RecoverClaimBack(
            actor=ADMIN,
            correlation_id=uuid.uuid4(),
            order_id=second,
            amount=Decimal("50.00"),
            recovered_on=date(2026, 12, 4),
        )
    )

    def write_off(actor: Any, reason: str = "Haushalt mittellos, Verfuegung 12/2026") -> Any:
        return settlements.write_off(
            WriteOffClaimBack(
                actor=actor, correlation_id=uuid.uuid4(), order_id=second, reason=reason
            )
        )

    with pytest.raises(RuleViolationError, match="write-off-by-administrator"):
        write_off(SYSTEM)
    with pytest.raises(InvalidCommandError, match="reason"):
        write_off(ADMIN, "  ")
    off = write_off(ADMIN)
    assert (off.status, off.recovered, off.written_off, off.outstanding) == (
        "written_off",
        Decimal("50.00"),
        Decimal("250.00"),
        Decimal("0.00"),
    )
    assert off.written_off_reason == "Haushalt mittellos, Verfuegung 12/2026"
    with pytest.raises(RuleViolationError, match="written off already"):
        write_off(ADMIN)
    with pytest.raises(RuleViolationError, match="known-claim-back"):
        settlements.write_off(
            WriteOffClaimBack(
                actor=ADMIN,
                correlation_id=uuid.uuid4(),
                order_id=_order_of(payments, written_case).order_id,
                reason="no",
            )
        )


def test_two_files_recorded_at_once_on_one_run_are_serialised(
    store: tuple[CaseService, PaymentService], tmp_path: Path, master_key: str
) -> None:
    cases, payments = store
    run_id, (first, second) = _paid_run(cases, payments, 2)
    pain001 = pain001_of_run(payments, run_id)
    other = build_payment_service(
        load_settings(
            {
                "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
                "NERVENBAHN_MASTER_KEY": master_key,
            }
        ),
        cases,
    )
    try:
        here, there = Settlements(payments), Settlements(other)
        _reconcile(
            here, camt054(pain001, executed=[_order_of(payments, first).order_id.hex]), "one.xml"
        )
        # another process loaded the run's settlement before the first file was saved ...
        stale = there._settlement(run_id)
        assert stale is not None
        _reconcile(
            here,
            camt054(
                pain001,
                executed=[_order_of(payments, second).order_id.hex],
                message_id="CAMT054-TEST-2",
            ),
            "two.xml",
        )
        stale.record(
            BankFileRead,
            payments.now(),
            file_name="three.xml",
            file_sha256="0" * 64,
            kind="camt.054",
            message_id="X",
            actor=ADMIN,
            recorded_by="test",
            correlation_id=uuid.uuid4(),
        )
        # ... and saves after it: refused, nothing recorded
        with pytest.raises(RuleViolationError, match="recorded meanwhile") as refused:
            there._save([stale], "file_sha256", "bank file three.xml")
        assert refused.value.rule == "one-change-at-a-time"
    finally:
        other.close()
    assert _figures(here)["executed"] == (2, 2 * _owed())


def test_the_banks_free_text_naming_the_payee_is_never_stored(
    store: tuple[CaseService, PaymentService], tmp_path: Path
) -> None:
    """A bank's additional information may name the payee ("Konto von … saldiert"); settlement
    events are not sealed with the person's key, so the text is not recorded at all: no byte
    of the store's files holds the name after the rejection and the return are read."""
    cases, payments = store
    run_id, (closed, returned) = _paid_run(cases, payments, 2)
    pain001 = pain001_of_run(payments, run_id)
    closed_e2e = _order_of(payments, closed).order_id.hex
    returned_e2e = _order_of(payments, returned).order_id.hex
    settlements = Settlements(payments)
    _reconcile(settlements, pain002(pain001, rejected={
        closed_e2e: ("AC04", "Konto von Zora Quellmatt saldiert")}), "pain002.xml")
    _reconcile(settlements, camt054(pain001, executed=[returned_e2e], returned={
        returned_e2e: ("MD07", "Empfaengerin Quellmatt verstorben")}), "camt054.xml")

    reasons = [(e.reason_code, e.reason_text) for e in settlements.events()
               if getattr(e, "outcome", "") in ("rejected", "returned")]
    assert sorted(reasons) == [("AC04", None), ("MD07", None)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"Quellmatt" not in path.read_bytes(), path

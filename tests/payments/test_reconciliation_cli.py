"""`nervenbahn payments reconcile | status | claim-backs | recover | write-off` in-process on a
SQLite store of the test's own, and the checked-in example bank files (docs/payments.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

from connectors.payments.reconciliation import read_bank_file
from domain.commands import swiss_today
from nervenbahn.cli import main
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

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "payments"


def _month() -> date:
    """This month (asked when a test runs, not at collection: a run crossing the end of a
    month would otherwise pay a month its cases were not yet supported in)."""
    return swiss_today().replace(day=1)


def _owed() -> Decimal:
    """One case's month: SKOS basic needs (one person) + housing 1200 + health insurance 350."""
    return expected_basic_needs(_month(), 1) + Decimal("1550.00")


def test_the_checked_in_examples_are_valid_and_read_as_documented() -> None:
    pain002_example = (EXAMPLES / "pain002-example.xml").read_bytes()
    camt054_example = (EXAMPLES / "camt054-example.xml").read_bytes()
    assert_valid(pain002_example, PAIN002)
    assert_valid(camt054_example, CAMT054)
    run = "7d3f0c52e1a94b6b9a51c0de2f6a4b11"
    assert run.encode() in (EXAMPLES / "pain001-example.xml").read_bytes()

    report = read_bank_file(pain002_example, "pain002-example.xml")
    assert (report.kind, report.message, report.message_id, report.ignored) == (
        "pain.002",
        "pain.002.001.12",
        "STS-20261202-0001",
        2,
    )
    assert [
        (s.outcome, s.message_id, s.end_to_end_id, s.reason_code, s.reason_text, s.amount)
        for s in report.statuses
    ] == [
        (
            "rejected",
            run,
            "1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d",
            "AC04",
            "Konto saldiert",
            Decimal("2611.00"),
        )
    ]
    notification = read_bank_file(camt054_example, "camt054-example.xml")
    assert [
        (s.outcome, s.end_to_end_id, s.booking_date, s.bank_reference, s.reason_code, s.amount)
        for s in notification.statuses
    ] == [
        (
            "executed",
            "0f1e2d3c4b5a49688776655443322110",
            date(2026, 12, 3),
            "NTF-20261203-0001-D1",
            None,
            Decimal("2611.00"),
        ),
        (
            "executed",
            "a0b1c2d3e4f5461789abcdef01234567",
            date(2026, 12, 3),
            "NTF-20261203-0001-D2",
            None,
            Decimal("480.50"),
        ),
        (
            "returned",
            "a0b1c2d3e4f5461789abcdef01234567",
            date(2026, 12, 3),
            "NTF-20261203-0001-R1",
            "MD07",
            Decimal("480.50"),
        ),
    ]


def test_reconcile_status_and_claim_backs_on_the_command_line(
    tmp_path: Path,
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("NERVENBAHN_STORE", store)
    monkeypatch.setenv("NERVENBAHN_MASTER_KEY", master_key)
    monkeypatch.setenv("NERVENBAHN_ACTOR", "pay.office:administrator:so-canton")
    monkeypatch.setenv("NERVENBAHN_LOG_FORMAT", "json")
    cases = build_service(load_settings())
    case_ids = [str(open_supported_case(cases, n)) for n in range(2)]
    close_service(cases)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    for case_id in case_ids:
        assert (
            run(
                "payments",
                "account",
                case_id,
                "--iban",
                "CH9300762011623852957",
                "--holder",
                "N. Beispiel",
            )[0]
            == 0
        )
    code, out, _ = run("--json", "payments", "run", f"{_month():%Y-%m}")
    run_id = json.loads(out)["run_id"]

    settings = load_settings()
    cases = build_service(settings)
    payments = build_payment_service(settings, cases)
    pain001 = pain001_of_run(payments, UUID(run_id))
    e2e = {str(o.case_id): o.order_id.hex for o in payments.orders()}
    payments.close()
    close_service(cases)
    report, notification = tmp_path / "pain002.xml", tmp_path / "camt054.xml"
    report.write_bytes(pain002(pain001, rejected={e2e[case_ids[1]]: ("AC04", "saldiert")}))
    notification.write_bytes(camt054(pain001, executed=[e2e[case_ids[0]]]))

    code, out, _ = run("--json", "payments", "reconcile", str(report), str(notification))
    first, second = json.loads(out)
    assert code == 0 and not first["refused"] and not second["refused"]
    assert [(r["case_id"], r["outcome"], r["reason"]) for r in first["recorded"]] == [
        (case_ids[1], "rejected", "AC04 closed account number")
    ]
    assert [(r["case_id"], r["outcome"]) for r in second["recorded"]] == [(case_ids[0], "executed")]
    code, out, _ = run("payments", "reconcile", str(notification))
    assert code == 0 and "read before (same SHA-256); nothing recorded" in out

    # the documented example names a run this store never made: refused, nothing recorded
    code, out, _ = run("payments", "reconcile", str(EXAMPLES / "pain002-example.xml"))
    assert code == 1
    assert "refused, nothing recorded" in out and "OrgnlGrpInfAndSts/OrgnlMsgId" in out

    code, out, _ = run("--json", "payments", "status", "--month", f"{_month():%Y-%m}")
    (month,) = json.loads(out)
    owed = str(_owed())
    assert (month["ordered"], month["executed"], month["rejected"], month["open"]) == (
        {"count": 2, "amount": str(2 * _owed())},
        {"count": 1, "amount": owed},
        {"count": 1, "amount": owed},
        {"count": 0, "amount": "0.00"},
    )
    code, _, err = run("payments", "status", "--month", "12-2026")
    assert code == 1 and "month" in err

    # a claim-back: income from the first of the month, recovered in part, then written off
    cases = build_service(settings)
    cases.execute(
        command(
            "change_budget",
            case_id=case_ids[0],
            effective_date=f"{_month()}",
            income="100.00",
            housing="1200",
            health_insurance="350",
            reason="income_change",
        )
    )
    close_service(cases)
    assert run("payments", "run", f"{_month():%Y-%m}")[0] == 0
    code, out, _ = run("--json", "payments", "claim-backs")
    (claim,) = json.loads(out)
    assert (claim["amount"], claim["status"]) == ("100.00", "outstanding")
    code, _, err = run(
        "payments", "recover", claim["order_id"], "--amount", "100.01", "--on", f"{swiss_today()}"
    )
    assert code == 1 and "outstanding" in err
    code, out, _ = run(
        "--json",
        "payments",
        "recover",
        claim["order_id"],
        "--amount",
        "40",
        "--on",
        f"{swiss_today()}",
    )
    assert json.loads(out)["outstanding"] == "60.00"
    code, out, _ = run("payments", "write-off", claim["order_id"], "--reason", "uneinbringlich")
    assert code == 0 and "CHF 60.00 written off" in out

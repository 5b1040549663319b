"""The reference fund application's payments (`examples/fund_payments.py`, a simulation) without
a broker: one pain.001.001.09 file per claim, valid against the SIX schema the payments sink
uses, the claim's total to the social region and the surplus to the person (a zero total pays
nothing, a negative one is reported to be returned), every account a valid Swiss IBAN, and the
same claim twice writes one file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from schwifty import IBAN

from connectors.payments.pain001 import NAMESPACE, checked_iban, validate_pain001
from tests.bus.fund_runs import fund_payments_example

SWISS = ZoneInfo("Europe/Zurich")
NOW = datetime(2026, 6, 12, 9, 30, tzinfo=SWISS)
NS = {"p": NAMESPACE}
GRENCHEN = {"so-grenchen": {"name": "Sozialregion Grenchen", "iban": "CH93 0076 2011 6238 5295 7"}}


def _claim(claim_total: str, surplus_total: str, **fields: Any) -> dict[str, Any]:
    """A claim as the AvroDeserializer gives it (Decimals, UUID text); its one month's
    correction adds up to its totals (claim + surplus = EL) unless `fields` say otherwise."""
    claim, surplus = Decimal(claim_total), Decimal(surplus_total)
    month = {"month": date(2026, 5, 1), "paid": max(claim, Decimal("0.00")),
             "el": claim + surplus, "ipv_offset": Decimal("0.00"), "claim": claim,
             "surplus": surplus}
    return {"claim_id": str(uuid4()), "application_id": str(uuid4()), "case_id": str(uuid4()),
            "case_version": 12, "region": "so-grenchen", "sequence": 1,
            "recorded_on": date(2026, 6, 10), "months": [], "corrections": [month],
            "claim_total": claim, "surplus_total": surplus,
            "ipv_offset_total": Decimal("0.00"), **fields}


def _payments(folder: Path, accounts: dict[str, Any] | None = None) -> Any:
    module = fund_payments_example()
    fund = module.Account(module.FUND_NAME, module.simulated_iban("fund"), simulated=True)
    return module.Payments(folder, fund, accounts or {})


def _transfers(path: Path) -> list[tuple[str, str, str, str]]:
    """(EndToEndId, amount, creditor, IBAN) of each credit transfer of a file."""
    root = ET.parse(path).getroot()
    return [(t.findtext("p:PmtId/p:EndToEndId", namespaces=NS) or "",
             t.findtext("p:Amt/p:InstdAmt", namespaces=NS) or "",
             t.findtext("p:Cdtr/p:Nm", namespaces=NS) or "",
             t.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) or "")
            for t in root.iterfind(".//p:CdtTrfTxInf", NS)]


def test_a_claim_and_surplus_are_paid_in_one_valid_file_to_region_and_person(
    tmp_path: Path,
) -> None:
    claim = _claim("8600.00", "400.00")

    payment = _payments(tmp_path, GRENCHEN).pay(claim, NOW)

    hex_id = UUID(claim["claim_id"]).hex
    assert payment.file == tmp_path / f"claim-{hex_id}.xml"
    xml = payment.file.read_bytes()
    validate_pain001(xml)  # the SIX schema of the payments sink
    person = f"EL-Bezüger/in {claim['application_id'][:8]}"
    assert [t[:3] for t in _transfers(payment.file)] == [
        (f"{hex_id}-R", "8600.00", "Sozialregion Grenchen"), (f"{hex_id}-P", "400.00", person)]
    root = ET.fromstring(xml)
    assert root.findtext(".//p:GrpHdr/p:MsgId", namespaces=NS) == hex_id == payment.message_id
    assert root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == "9000.00"
    assert root.findtext(".//p:ReqdExctnDt/p:Dt", namespaces=NS) == "2026-06-12"
    assert _transfers(payment.file)[0][3] == "CH9300762011623852957"
    assert (payment.to_region, payment.to_person, payment.to_return, payment.paid_on) == (
        Decimal("8600.00"), Decimal("400.00"), {}, date(2026, 6, 12))
    assert payment.record() == {
        "claim_id": claim["claim_id"], "application_id": claim["application_id"],
        "case_id": claim["case_id"], "case_version": 12, "paid_on": date(2026, 6, 12),
        "to_region": Decimal("8600.00"), "to_person": Decimal("400.00"), "message_id": hex_id}


@pytest.mark.parametrize(("claim_total", "surplus_total", "paid", "to_return"), [
    ("1900.00", "0.00", [("R", "1900.00")], {}),
    ("0.00", "250.00", [("P", "250.00")], {}),
    ("-400.00", "120.00", [("P", "120.00")], {"region": "400.00"}),
    ("300.00", "-100.00", [("R", "300.00")], {"person": "100.00"}),
])
def test_a_zero_total_pays_nothing_and_a_negative_one_is_to_be_returned(
    tmp_path: Path, claim_total: str, surplus_total: str, paid: list[tuple[str, str]],
    to_return: dict[str, str],
) -> None:
    payment = _payments(tmp_path).pay(_claim(claim_total, surplus_total), NOW)

    validate_pain001(payment.file.read_bytes())
    assert [(t[0][-1], t[1]) for t in _transfers(payment.file)] == paid
    assert payment.line()["to_return"] == to_return
    assert (payment.to_region, payment.to_person) == (
        max(Decimal(claim_total), Decimal(0)), max(Decimal(surplus_total), Decimal(0)))


def test_a_claim_that_pays_nothing_is_settled_once_without_a_payment_file(
    tmp_path: Path,
) -> None:
    payments = _payments(tmp_path)
    claim = _claim("-400.00", "-100.00")

    first = payments.pay(claim, NOW)
    again = payments.pay(claim, datetime(2026, 7, 1, tzinfo=SWISS))

    assert list(tmp_path.glob("*.xml")) == []
    assert first.file.name.endswith(".none.json") and first.file.exists()
    assert json.loads(first.file.read_text())["to_return"] == {
        "region": "400.00", "person": "100.00"}
    assert (first.to_region, first.to_person) == (Decimal("0.00"), Decimal("0.00"))
    assert (again.paid_already, again.paid_on) == (True, date(2026, 6, 12))


def test_the_same_claim_twice_writes_one_file_and_reports_the_same_payment(
    tmp_path: Path,
) -> None:
    claim = _claim("8600.00", "400.00")
    first = _payments(tmp_path).pay(claim, NOW)
    written = first.file.read_bytes()

    again = _payments(tmp_path).pay(claim, datetime(2026, 7, 1, tzinfo=SWISS))  # a restart

    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock") == [first.file.name]
    assert first.file.read_bytes() == written
    assert (first.paid_already, again.paid_already) == (False, True)
    assert again.record() == first.record()  # paid_on from the file, not the later day


def test_every_simulated_account_is_a_valid_swiss_iban_of_its_seed() -> None:
    module = fund_payments_example()
    seeds = ["fund", "region:so-olten", *(f"person:{UUID(int=n)}" for n in range(50))]
    ibans = [module.simulated_iban(seed) for seed in seeds]

    assert all(checked_iban(iban, whose="test") == iban for iban in ibans)  # not a QR-IBAN
    assert all(IBAN(iban).country_code == "CH" and len(iban) == 21 for iban in ibans)
    assert len(set(ibans)) == len(seeds)
    assert module.simulated_iban("fund") == ibans[0]  # the same seed, the same account
    account = module.account_of_region("so-olten", {})
    assert account.simulated and "simulated" in account.name


@pytest.mark.parametrize(("accounts", "named"), [
    ({"so-olten": {"name": "Sozialregion Olten", "iban": "CH93 0076 2011 6238 5295 8"}},
     "so-olten.iban"),
    ({"so-olten": {"iban": "CH93 0076 2011 6238 5295 7"}}, "so-olten.name"),
])
def test_a_region_account_that_is_not_right_is_refused_naming_region_and_field(
    tmp_path: Path, accounts: dict[str, Any], named: str,
) -> None:
    module = fund_payments_example()
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(accounts))

    with pytest.raises(SystemExit, match=named):
        module.load_region_accounts(path)


def test_one_run_at_a_time_pays_into_a_folder(tmp_path: Path) -> None:
    """A second run on the same folder (a cron overlap) is refused naming the folder, instead
    of deleting the first run's payment file in flight; once the first is closed (or dies:
    the kernel frees its lock) the next may pay."""
    first = _payments(tmp_path / "out")
    with pytest.raises(SystemExit, match=r"--payments-dir: another run .* pays into"):
        _payments(tmp_path / "out")
    first.close()
    _payments(tmp_path / "out").close()


def test_a_claim_whose_figures_do_not_add_up_is_refused_and_nothing_is_paid(
    tmp_path: Path,
) -> None:
    """A fund checks what it is asked to pay: a claim_total that is not the sum of its
    corrections' claims (raised on the way) is refused naming both, and no file is written."""
    month = {"month": date(2026, 5, 1), "paid": Decimal("2400.00"), "el": Decimal("1900.00"),
             "ipv_offset": Decimal("0.00"), "claim": Decimal("1900.00"),
             "surplus": Decimal("0.00")}
    claim = _claim("9900.00", "0.00", months=[month], corrections=[month])
    payments = _payments(tmp_path / "out")
    with pytest.raises(ValueError,  # ClaimRefusedError (each load of the example: a new class)
                       match=r"claim_total 9900.00 is not the sum of the corrections' claim "
                             r"1900.00; not paid") as refused:
        payments.pay(claim, datetime(2026, 6, 1, tzinfo=UTC))
    assert type(refused.value).__name__ == "ClaimRefusedError"
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock"] == []
    payments.close()

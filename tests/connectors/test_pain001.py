"""The pain.001 builder: valid against the SPS schema, every field as expected, bad input refused
with an error naming the order and the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
import xmlschema

from connectors.payments.pain001 import (
    NAMESPACE,
    SCHEMA_FILE,
    CreditTransfer,
    Debtor,
    InvalidAccountError,
    InvalidPaymentFileError,
    PaymentFile,
    build_pain001,
    erase_transfers,
    identifier,
    validate_pain001,
)

NS = {"p": NAMESPACE}

# Public test IBANs (checksums verified by hand with mod 97 = 1), written with spaces on input;
# the file must carry them compact.
DEBTOR_IBAN = "CH93 0076 2011 6238 5295 7"
ANNA_IBAN = "CH56 0483 5012 3456 7800 9"
BRUNO_IBAN = "CH36 0838 7000 0010 8017 3"
QR_IBAN = "CH44 3199 9123 0008 8901 2"

ORDER_A = UUID("5f8e7b1c-0000-4000-8000-000000000001")
ORDER_B = UUID("5f8e7b1c-0000-4000-8000-000000000002")


def payment_file(**changes: object) -> PaymentFile:
    base = PaymentFile(
        message_id="run-2026-03",
        created_at=datetime(2026, 3, 25, 9, 30, 5, tzinfo=UTC),
        execution_date=date(2026, 3, 27),
        debtor=Debtor(name="Sozialregion Olten", iban=DEBTOR_IBAN),
        transfers=(
            CreditTransfer(
                end_to_end_id=identifier(ORDER_A),
                amount=Decimal("1234.50"),
                creditor_name="Anna Müller",
                creditor_iban=ANNA_IBAN,
                remittance="Sozialhilfe 2026-03",
                reference=str(ORDER_A),
            ),
            CreditTransfer(
                end_to_end_id=identifier(ORDER_B),
                amount=Decimal("987.65"),
                creditor_name="Bruno Gerber-Łukasz",
                creditor_iban=BRUNO_IBAN,
                remittance="Sozialhilfe Nachzahlung 2026-01",
                reference=str(ORDER_B),
            ),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def one_text(root: ET.Element, path: str) -> str:
    found = root.findall(path, NS)
    assert len(found) == 1, path
    assert found[0].text is not None
    return found[0].text


def test_file_is_valid_against_the_sps_schema() -> None:
    xml = build_pain001(payment_file())

    # validated independently of the builder's own check
    assert xmlschema.XMLSchema(str(SCHEMA_FILE)).is_valid(xml.decode())
    assert xml.startswith(b"<?xml")


def test_group_header_and_payment_instruction_carry_run_count_and_sum() -> None:
    root = ET.fromstring(build_pain001(payment_file()))

    assert root.tag == f"{{{NAMESPACE}}}Document"
    header = "p:CstmrCdtTrfInitn/p:GrpHdr"
    assert one_text(root, f"{header}/p:MsgId") == "run-2026-03"
    # 09:30:05 UTC on 25 March 2026 is 10:30:05 in Zurich (CET, summer time starts 29 March)
    assert one_text(root, f"{header}/p:CreDtTm") == "2026-03-25T10:30:05"
    assert one_text(root, f"{header}/p:NbOfTxs") == "2"
    assert one_text(root, f"{header}/p:CtrlSum") == "2222.15"  # 1234.50 + 987.65
    assert one_text(root, f"{header}/p:InitgPty/p:Nm") == "Sozialregion Olten"
    instruction = "p:CstmrCdtTrfInitn/p:PmtInf"
    assert one_text(root, f"{instruction}/p:PmtMtd") == "TRF"
    assert one_text(root, f"{instruction}/p:NbOfTxs") == "2"
    assert one_text(root, f"{instruction}/p:CtrlSum") == "2222.15"
    assert one_text(root, f"{instruction}/p:ReqdExctnDt/p:Dt") == "2026-03-27"
    assert one_text(root, f"{instruction}/p:Dbtr/p:Nm") == "Sozialregion Olten"
    assert one_text(root, f"{instruction}/p:DbtrAcct/p:Id/p:IBAN") == "CH9300762011623852957"
    # no BIC given: the institution id is the bank part of the Swiss IBAN (digits 5-9)
    agent = f"{instruction}/p:DbtrAgt/p:FinInstnId/p:ClrSysMmbId"
    assert one_text(root, f"{agent}/p:ClrSysId/p:Cd") == "CHBCC"
    assert one_text(root, f"{agent}/p:MmbId") == "00762"


def test_each_payout_is_one_credit_transfer_with_its_fields() -> None:
    root = ET.fromstring(build_pain001(payment_file()))
    transactions = root.findall("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf", NS)

    expected = [
        ("5f8e7b1c000040008000000000000001", "1234.50", "Anna Müller",
         "CH5604835012345678009", "Sozialhilfe 2026-03"),
        ("5f8e7b1c000040008000000000000002", "987.65", "Bruno Gerber-Łukasz",
         "CH3608387000001080173", "Sozialhilfe Nachzahlung 2026-01"),
    ]
    assert len(transactions) == len(expected)
    for tx, (end_to_end, amount, name, iban, remittance) in zip(
        transactions, expected, strict=True
    ):
        assert one_text(tx, "p:PmtId/p:EndToEndId") == end_to_end
        instructed = tx.find("p:Amt/p:InstdAmt", NS)
        assert instructed is not None
        assert (instructed.text, instructed.get("Ccy")) == (amount, "CHF")
        assert one_text(tx, "p:Cdtr/p:Nm") == name
        assert one_text(tx, "p:CdtrAcct/p:Id/p:IBAN") == iban
        assert one_text(tx, "p:RmtInf/p:Ustrd") == remittance


def test_same_run_gives_the_same_bytes() -> None:
    assert build_pain001(payment_file()) == build_pain001(payment_file())


def test_summer_time_is_shown_in_swiss_local_time() -> None:
    moment = datetime(2026, 7, 1, 22, 15, tzinfo=UTC)  # CEST = UTC+2: next day 00:15
    root = ET.fromstring(build_pain001(payment_file(created_at=moment)))
    assert one_text(root, "p:CstmrCdtTrfInitn/p:GrpHdr/p:CreDtTm") == "2026-07-02T00:15:00"


def test_bic_given_for_the_debtor_bank_is_used() -> None:
    debtor = Debtor(name="Sozialregion Olten", iban=DEBTOR_IBAN, bic="ubswchzh80a")
    root = ET.fromstring(build_pain001(payment_file(debtor=debtor)))
    agent = "p:CstmrCdtTrfInitn/p:PmtInf/p:DbtrAgt/p:FinInstnId"
    assert one_text(root, f"{agent}/p:BICFI") == "UBSWCHZH80A"
    assert root.find(f"{agent}/p:ClrSysMmbId", NS) is None


def _with_second(**changes: object) -> PaymentFile:
    base = payment_file()
    second = replace(base.transfers[1], **changes)  # type: ignore[arg-type]
    return replace(base, transfers=(base.transfers[0], second))


def test_invalid_creditor_iban_is_refused_naming_the_order() -> None:
    bad = "CH36 0838 7000 0010 8017 4"  # last digit changed: checksum fails
    with pytest.raises(InvalidAccountError) as caught:
        build_pain001(_with_second(creditor_iban=bad))
    message = str(caught.value)
    assert str(ORDER_B) in message
    assert "invalid IBAN" in message
    assert "checksum" in message.lower()


def test_qr_iban_is_refused_for_a_payout_without_qr_reference() -> None:
    with pytest.raises(InvalidAccountError, match=f"{ORDER_B}.*QR-IBAN"):
        build_pain001(_with_second(creditor_iban=QR_IBAN))


def test_invalid_debtor_account_and_bic_are_refused_naming_the_option() -> None:
    with pytest.raises(InvalidAccountError, match="debtor_iban"):
        build_pain001(payment_file(debtor=Debtor(name="SR", iban="CH00 1234")))
    with pytest.raises(InvalidAccountError, match="debtor_bic"):
        build_pain001(payment_file(debtor=Debtor(name="SR", iban=DEBTOR_IBAN, bic="UBSWXXZH")))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": Decimal("0.00")}, "positive CHF amount"),
        ({"amount": Decimal("-12.00")}, "positive CHF amount"),
        ({"amount": Decimal("10.005")}, "two decimals"),
        ({"creditor_name": "  "}, "Cdtr/Nm: must not be empty"),
        ({"creditor_name": "Иван Петров"}, "Cdtr/Nm: characters outside the SPS set: U+0418"),
        ({"remittance": "x" * 141}, "RmtInf/Ustrd: longer than 140"),
        ({"end_to_end_id": "order#7"}, "EndToEndId"),
        ({"end_to_end_id": "a" * 36}, "EndToEndId"),
    ],
)
def test_bad_payout_fields_are_refused_naming_order_and_field(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidPaymentFileError) as caught:
        build_pain001(_with_second(**changes))
    assert str(ORDER_B) in str(caught.value)
    assert reason in str(caught.value)


def test_run_without_payouts_is_refused() -> None:
    with pytest.raises(InvalidPaymentFileError, match="at least one payout"):
        build_pain001(payment_file(transfers=()))


def test_naive_run_time_is_refused() -> None:
    with pytest.raises(InvalidPaymentFileError, match="CreDtTm"):
        build_pain001(payment_file(created_at=datetime(2026, 3, 25, 9, 30)))


def test_schema_check_names_the_element_of_a_broken_document() -> None:
    xml = build_pain001(payment_file()).replace(b'Ccy="CHF"', b'Ccy="chf"', 1)
    with pytest.raises(InvalidPaymentFileError) as caught:
        validate_pain001(xml)
    assert "pain.001.001.09.ch.03.xsd" in str(caught.value)
    assert "InstdAmt" in str(caught.value)


def test_identifier_is_a_uuid_in_hex_or_an_allowed_text() -> None:
    assert identifier(ORDER_A) == "5f8e7b1c000040008000000000000001"
    assert identifier(str(ORDER_A)) == "5f8e7b1c000040008000000000000001"
    assert identifier("run-2026-03") == "run-2026-03"
    with pytest.raises(ValueError, match="not an SPS identifier"):
        identifier("run_2026_03")


def test_erasing_a_creditor_keeps_the_file_valid_and_the_other_transfers_as_they_were() -> None:
    original = build_pain001(payment_file())

    rewritten, erased = erase_transfers(original, {identifier(ORDER_A)})

    assert erased == 1
    validate_pain001(rewritten)
    for text in ("Anna Müller", ANNA_IBAN.replace(" ", ""), "Sozialhilfe 2026-03"):
        assert text.encode() not in rewritten and text.encode() in original
    root = ET.fromstring(rewritten)
    transfers = root.findall(".//p:CdtTrfTxInf", NS)
    anna, bruno = transfers
    assert anna.findtext("p:Cdtr/p:Nm", namespaces=NS) == "ERASED"
    assert anna.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", namespaces=NS) == "ERASED"
    assert anna.findtext("p:Amt/p:InstdAmt", namespaces=NS) == "1234.50"
    assert ET.tostring(bruno) == ET.tostring(
        ET.fromstring(original).findall(".//p:CdtTrfTxInf", NS)[1]
    )
    assert root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == "2222.15"
    assert erase_transfers(rewritten, {identifier(ORDER_A)}) == (rewritten, 1)
    assert erase_transfers(original, {"unknown"}) == (original, 0)

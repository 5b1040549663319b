"""ISO 20022 pain.001 credit-transfer files per the Swiss Payment Standards (SPS 2022+).

One file is one payment run: a group header (`MsgId` = the run, `CreDtTm`, `NbOfTxs`,
`CtrlSum`), one payment instruction (the social service's account, the requested execution
date) and one credit transfer per payout (`EndToEndId` per order, the amount in CHF, the
creditor's name and IBAN, an unstructured remittance line).

Everything is checked before a byte is written: every IBAN with `schwifty` (a refusal names the
order), every text against the SPS character set, every amount positive with two decimals, and
the finished document against the SIX schema `pain.001.001.09.ch.03.xsd` (kept in `xsd/`, see
`xsd/SOURCES.md`). The builder is a pure function of its input: the same run gives the same
bytes, which is what lets the sink deliver a run exactly once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import xmlschema
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from connectors.errors import ConnectorError

__all__ = [
    "NAMESPACE",
    "SCHEMA_FILE",
    "CreditTransfer",
    "Debtor",
    "InvalidAccountError",
    "InvalidPaymentFileError",
    "PaymentFile",
    "PaymentFileError",
    "build_pain001",
    "checked_bic",
    "checked_iban",
    "erase_transfers",
    "identifier",
    "validate_pain001",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
SCHEMA_FILE = Path(__file__).parent / "xsd" / "pain.001.001.09.ch.03.xsd"
_SWISS_TIME = ZoneInfo("Europe/Zurich")
_CENT = Decimal("0.01")
_QR_IID = range(30000, 32000)
"""Institution ids reserved for QR-IBANs (SPS): payable only with a QR reference."""

_ID_PATTERN = re.compile(r"[A-Za-z0-9+?/\-:().,' ]{1,35}")
"""SPS `Max35Text_pain001_ch`: the characters allowed in MsgId, PmtInfId and EndToEndId."""


class PaymentFileError(ConnectorError):
    """A payment file could not be built; nothing was written."""


class InvalidAccountError(PaymentFileError):
    """An account (IBAN or BIC) is not valid; the message names whose it is."""


class InvalidPaymentFileError(PaymentFileError):
    """The built document is not valid (schema, character set, amount); the message says
    which element and why."""


@dataclass(frozen=True)
class Debtor:
    """The paying social service: its name, account and (optionally) its bank's BIC."""

    name: str
    iban: str
    bic: str | None = None


@dataclass(frozen=True)
class CreditTransfer:
    """One payout: to whom, how much (CHF), and what for."""

    end_to_end_id: str
    """Deterministic per payment order (see `identifier`)."""
    amount: Decimal
    creditor_name: str
    creditor_iban: str
    remittance: str
    reference: str = ""
    """Whose order this is (for error messages), e.g. the order id."""


@dataclass(frozen=True)
class PaymentFile:
    """What one pain.001 file holds: a payment run's payouts from one debtor account."""

    message_id: str
    created_at: datetime
    """When the run was completed (not when the file is written: the file is reproducible)."""
    execution_date: date
    debtor: Debtor
    transfers: tuple[CreditTransfer, ...]

    @property
    def control_sum(self) -> Decimal:
        """The sum of all amounts, two decimals."""
        return sum((t.amount for t in self.transfers), Decimal("0.00")).quantize(_CENT)


def identifier(value: str | UUID) -> str:
    """An id in the form SPS allows (≤ 35 characters of a restricted set): a UUID as its 32
    hex digits, anything else unchanged if allowed; ValueError otherwise."""
    if isinstance(value, UUID):
        return value.hex
    try:
        return UUID(value).hex
    except ValueError:
        pass
    if not _ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an SPS identifier (1-35 of A-Z a-z 0-9 + ? / - : ( ) . , ' space)"
        )
    return value


def checked_iban(value: str, *, whose: str) -> str:
    """The IBAN in compact form, or InvalidAccountError naming `whose` and why."""
    try:
        iban = IBAN(value)
    except SchwiftyException as exc:
        raise InvalidAccountError(f"{whose}: invalid IBAN: {exc}") from exc
    if iban.country_code in ("CH", "LI") and int(iban.bank_code) in _QR_IID:
        raise InvalidAccountError(
            f"{whose}: {iban.compact} is a QR-IBAN, payable only with a QR reference"
        )
    return str(iban.compact)


def checked_bic(value: str | None, *, whose: str) -> str | None:
    """The BIC in compact form (None if not given), or InvalidAccountError naming `whose`."""
    if value is None or not str(value).strip():
        return None
    try:
        return str(BIC(str(value)).compact)
    except SchwiftyException as exc:
        raise InvalidAccountError(f"{whose}: invalid BIC: {exc}") from exc


def build_pain001(payment_file: PaymentFile) -> bytes:
    """The pain.001.001.09 (SPS) document of a run as UTF-8 bytes, validated against the
    schema; PaymentFileError (naming the order or element) if anything is not right."""
    if not payment_file.transfers:
        raise InvalidPaymentFileError(
            f"run {payment_file.message_id}: a payment file needs at least one payout"
        )
    document = _document(payment_file)
    ET.indent(document)
    xml = ET.tostring(document, encoding="UTF-8", xml_declaration=True) + b"\n"
    validate_pain001(xml)
    return xml


def validate_pain001(xml: bytes) -> None:
    """Raise InvalidPaymentFileError, naming the element and the reason, unless `xml` is valid
    against `pain.001.001.09.ch.03.xsd`."""
    error = next(_schema().iter_errors(xml.decode("utf-8")), None)
    if error is not None:
        where = error.path or "document"
        raise InvalidPaymentFileError(
            f"pain.001 not valid against {SCHEMA_FILE.name} at {where}: {error.reason}"
        )


ERASED_TEXT = "ERASED"
"""What an erased person's name, account and remittance read as in a rewritten file."""


def erase_transfers(xml: bytes, end_to_end_ids: Collection[str]) -> tuple[bytes, int]:
    """The document with the credit transfers of `end_to_end_ids` stripped of the creditor's
    name, IBAN (an `Othr` account id "ERASED" instead) and remittance text, and how many were;
    amounts, ids and totals stay. The result is validated against the schema again."""
    ns = {"p": NAMESPACE}
    # the sink's own file; expat (>= 2.4.1) bounds entity expansion
    root = ET.fromstring(xml)  # noqa: S314
    erased = 0
    for transfer in root.iterfind(".//p:CdtTrfTxInf", ns):
        if transfer.findtext("p:PmtId/p:EndToEndId", namespaces=ns) not in end_to_end_ids:
            continue
        for name in transfer.iterfind("p:Cdtr/p:Nm", ns):
            name.text = ERASED_TEXT
        for account in transfer.iterfind("p:CdtrAcct/p:Id", ns):
            account.clear()
            ET.SubElement(ET.SubElement(account, f"{{{NAMESPACE}}}Othr"), f"{{{NAMESPACE}}}Id"
                          ).text = ERASED_TEXT
        for line in transfer.iterfind("p:RmtInf/p:Ustrd", ns):
            line.text = ERASED_TEXT
        erased += 1
    if not erased:
        return xml, 0
    ET.register_namespace("", NAMESPACE)
    ET.indent(root)
    rewritten = ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
    validate_pain001(rewritten)
    return rewritten, erased


@cache
def _schema() -> xmlschema.XMLSchema:
    """The SPS schema, parsed once on first use."""
    return xmlschema.XMLSchema(str(SCHEMA_FILE))


# --- building ---------------------------------------------------------------------------------


def _document(payment_file: PaymentFile) -> ET.Element:
    message_id = _checked_id(payment_file.message_id, "GrpHdr/MsgId")
    debtor = payment_file.debtor
    debtor_iban = checked_iban(debtor.iban, whose="debtor account (option debtor_iban)")
    transfers = [_checked_transfer(t) for t in payment_file.transfers]
    count = str(len(transfers))
    control_sum = _amount(payment_file.control_sum)

    root = ET.Element("Document", xmlns=NAMESPACE)
    initiation = _sub(root, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", _timestamp(payment_file.created_at))
    _sub(header, "NbOfTxs", count)
    _sub(header, "CtrlSum", control_sum)
    _sub(_sub(header, "InitgPty"), "Nm", _text(debtor.name, "GrpHdr/InitgPty/Nm", 70))

    instruction = _sub(initiation, "PmtInf")
    _sub(instruction, "PmtInfId", message_id)
    _sub(instruction, "PmtMtd", "TRF")
    _sub(instruction, "NbOfTxs", count)
    _sub(instruction, "CtrlSum", control_sum)
    _sub(_sub(instruction, "ReqdExctnDt"), "Dt", payment_file.execution_date.isoformat())
    _sub(_sub(instruction, "Dbtr"), "Nm", _text(debtor.name, "PmtInf/Dbtr/Nm", 70))
    _account(_sub(instruction, "DbtrAcct"), debtor_iban)
    _debtor_agent(_sub(instruction, "DbtrAgt"), debtor_iban, debtor.bic)
    for transfer in transfers:
        _transaction(_sub(instruction, "CdtTrfTxInf"), transfer)
    return root


def _transaction(parent: ET.Element, transfer: CreditTransfer) -> None:
    _sub(_sub(parent, "PmtId"), "EndToEndId", transfer.end_to_end_id)
    amount = _sub(_sub(parent, "Amt"), "InstdAmt", _amount(transfer.amount))
    amount.set("Ccy", "CHF")
    _sub(_sub(parent, "Cdtr"), "Nm", transfer.creditor_name)
    _account(_sub(parent, "CdtrAcct"), transfer.creditor_iban)
    _sub(_sub(parent, "RmtInf"), "Ustrd", transfer.remittance)


def _checked_transfer(transfer: CreditTransfer) -> CreditTransfer:
    """The transfer with its IBAN compact and every field checked; errors name the order."""
    whose = f"payment order {transfer.reference or transfer.end_to_end_id}"
    if transfer.amount.quantize(_CENT) != transfer.amount or transfer.amount <= 0:
        raise InvalidPaymentFileError(
            f"{whose}: InstdAmt must be a positive CHF amount with at most two decimals, "
            f"not {transfer.amount}"
        )
    return CreditTransfer(
        end_to_end_id=_checked_id(transfer.end_to_end_id, f"{whose}: EndToEndId"),
        amount=transfer.amount,
        creditor_name=_text(transfer.creditor_name, f"{whose}: Cdtr/Nm", 70),
        creditor_iban=checked_iban(transfer.creditor_iban, whose=f"{whose} (creditor account)"),
        remittance=_text(transfer.remittance, f"{whose}: RmtInf/Ustrd", 140),
        reference=transfer.reference,
    )


def _account(parent: ET.Element, iban: str) -> None:
    _sub(_sub(parent, "Id"), "IBAN", iban)


def _debtor_agent(parent: ET.Element, iban: str, bic: str | None) -> None:
    """The debtor's bank: its BIC if given, else (SPS) the institution id from a Swiss IBAN."""
    institution = _sub(parent, "FinInstnId")
    checked = checked_bic(bic, whose="debtor bank (option debtor_bic)")
    if checked is not None:
        _sub(institution, "BICFI", checked)
        return
    parsed = IBAN(iban)
    if parsed.country_code not in ("CH", "LI"):
        raise InvalidAccountError(
            "debtor bank (option debtor_bic): a BIC is needed for a debtor account outside CH/LI"
        )
    member = _sub(institution, "ClrSysMmbId")
    _sub(_sub(member, "ClrSysId"), "Cd", "CHBCC")
    _sub(member, "MmbId", str(parsed.bank_code))


def _checked_id(value: str, where: str) -> str:
    try:
        return identifier(value)
    except ValueError as exc:
        raise InvalidPaymentFileError(f"{where}: {exc}") from exc


def _text(value: str, where: str, max_length: int) -> str:
    """Text as SPS allows it: not empty, at most `max_length`, only the SPS character set."""
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidPaymentFileError(f"{where}: must not be empty")
    if len(cleaned) > max_length:
        raise InvalidPaymentFileError(f"{where}: longer than {max_length} characters")
    bad = sorted({char for char in cleaned if not _sps_character(char)})
    if bad:
        shown = ", ".join(f"U+{ord(char):04X}" for char in bad)
        raise InvalidPaymentFileError(f"{where}: characters outside the SPS set: {shown}")
    return cleaned


def _sps_character(char: str) -> bool:
    """SPS 2022 character set: Basic Latin, Latin-1 Supplement, Latin Extended-A, €, Ș ș Ț ț
    — no control characters."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return code <= 0x017F or char in "€ȘșȚț"


def _amount(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _timestamp(moment: datetime) -> str:
    """ISODateTime as SPS recommends it (local Swiss time, seconds, no offset)."""
    if moment.tzinfo is None:
        raise InvalidPaymentFileError("GrpHdr/CreDtTm: the run's time must carry a time zone")
    return moment.astimezone(_SWISS_TIME).strftime("%Y-%m-%dT%H:%M:%S")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element

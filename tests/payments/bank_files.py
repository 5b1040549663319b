"""A test bank: pain.002 status reports and camt.054 notifications for a real pain.001 file
(its message id, end-to-end ids and amounts), so that the ids match what was ordered.

The builders only write what the bank would; whether a file is valid is for the schema to
say (`assert_valid`), as the reader does."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import xmlschema

from connectors.payments.pain001 import (
    CreditTransfer,
    Debtor,
    PaymentFile,
    build_pain001,
    identifier,
)
from connectors.payments.reconciliation import ISO_NAMESPACE, schema_for
from domain.application.payments import PaymentService
from domain.commands import swiss_today
from domain.payments import PaymentOrdered

__all__ = [
    "CAMT054",
    "PAIN002",
    "Transfer",
    "assert_valid",
    "camt054",
    "pain001_of_run",
    "pain002",
    "transfers_of",
]

PAIN001 = ISO_NAMESPACE + "pain.001.001.09"
PAIN002 = "pain.002.001.12"
CAMT054 = "camt.054.001.08"
BANK_IBAN = "CH5604835012345678009"


@dataclass(frozen=True)
class Transfer:
    """One credit transfer of a pain.001 file."""

    end_to_end_id: str
    amount: Decimal


def transfers_of(pain001: bytes) -> tuple[str, list[Transfer]]:
    """The message id and the transfers of a pain.001 file."""
    ns = {"p": PAIN001}
    root = ET.fromstring(pain001)
    message_id = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns) or ""
    transfers = [
        Transfer(
            tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) or "",
            Decimal(tx.findtext("p:Amt/p:InstdAmt", namespaces=ns) or "0"),
        )
        for tx in root.iterfind(".//p:CdtTrfTxInf", ns)
    ]
    return message_id, transfers


def pain002(
    pain001: bytes,
    *,
    rejected: Mapping[str, tuple[str, str]] | None = None,
    group_rejected: tuple[str, str] | None = None,
    message_id: str = "PAIN002-TEST-1",
    created: datetime = datetime(2026, 12, 2, 9, 30),
) -> bytes:
    """The status report on `pain001`: the transfers in `rejected` (end-to-end id → reason
    code, text) rejected, the others accepted; or the whole message rejected."""
    original, transfers = transfers_of(pain001)
    rejected = rejected or {}
    doc, ns = _document(PAIN002)
    report = _sub(doc, ns, "CstmrPmtStsRpt")
    header = _sub(report, ns, "GrpHdr")
    _sub(header, ns, "MsgId", message_id)
    _sub(header, ns, "CreDtTm", created.isoformat(timespec="seconds"))
    group = _sub(report, ns, "OrgnlGrpInfAndSts")
    _sub(group, ns, "OrgnlMsgId", original)
    _sub(group, ns, "OrgnlMsgNmId", "pain.001.001.09")
    _sub(group, ns, "OrgnlNbOfTxs", str(len(transfers)))
    if group_rejected:
        _sub(group, ns, "GrpSts", "RJCT")
        _reason(group, ns, "StsRsnInf", *group_rejected)
        return _bytes(doc)
    _sub(group, ns, "GrpSts", "PART" if rejected else "ACCP")
    info = _sub(report, ns, "OrgnlPmtInfAndSts")
    _sub(info, ns, "OrgnlPmtInfId", original)
    for transfer in transfers:
        tx = _sub(info, ns, "TxInfAndSts")
        _sub(tx, ns, "OrgnlEndToEndId", transfer.end_to_end_id)
        if transfer.end_to_end_id in rejected:
            _sub(tx, ns, "TxSts", "RJCT")
            _reason(tx, ns, "StsRsnInf", *rejected[transfer.end_to_end_id])
        else:
            _sub(tx, ns, "TxSts", "ACCP")
        ref = _sub(tx, ns, "OrgnlTxRef")
        _sub(_sub(ref, ns, "Amt"), ns, "InstdAmt", f"{transfer.amount:.2f}", Ccy="CHF")
    return _bytes(doc)


def camt054(
    pain001: bytes,
    *,
    executed: list[str] | None = None,
    returned: Mapping[str, tuple[str, str]] | None = None,
    returned_amounts: Mapping[str, Decimal] | None = None,
    booked: date = date(2026, 12, 3),
    message_id: str = "CAMT054-TEST-1",
) -> bytes:
    """The notification of `pain001`'s transfers: one collective debit of those `executed`
    (default: all), and one credit per transfer in `returned` (end-to-end id → reason code,
    text) of the transfer's amount or, if given, of `returned_amounts` (a part of it), booked
    on `booked`."""
    original, transfers = transfers_of(pain001)
    executed_ids = set(executed) if executed is not None else {t.end_to_end_id for t in transfers}
    doc, ns = _document(CAMT054)
    body = _sub(doc, ns, "BkToCstmrDbtCdtNtfctn")
    header = _sub(body, ns, "GrpHdr")
    _sub(header, ns, "MsgId", message_id)
    _sub(header, ns, "CreDtTm", f"{booked.isoformat()}T18:00:00")
    notification = _sub(body, ns, "Ntfctn")
    _sub(notification, ns, "Id", f"{message_id}-1")
    _sub(notification, ns, "CreDtTm", f"{booked.isoformat()}T18:00:00")
    _sub(_sub(_sub(notification, ns, "Acct"), ns, "Id"), ns, "IBAN", BANK_IBAN)
    debits = [t for t in transfers if t.end_to_end_id in executed_ids]
    if debits:
        entry = _entry(
            notification,
            ns,
            sum((t.amount for t in debits), Decimal("0")),
            "DBIT",
            booked,
            f"{message_id}-D",
            "AUTT",
        )
        details = _sub(entry, ns, "NtryDtls")
        for n, transfer in enumerate(debits, 1):
            _transaction(details, ns, transfer, "DBIT", original, f"{message_id}-D{n}")
    for n, (end_to_end, reason) in enumerate((returned or {}).items(), 1):
        transfer = next(t for t in transfers if t.end_to_end_id == end_to_end)
        if returned_amounts and end_to_end in returned_amounts:
            transfer = Transfer(end_to_end, returned_amounts[end_to_end])
        entry = _entry(
            notification, ns, transfer.amount, "CRDT", booked, f"{message_id}-R{n}", "RRTN"
        )
        tx = _transaction(
            _sub(entry, ns, "NtryDtls"), ns, transfer, "CRDT", None, f"{message_id}-R{n}"
        )
        _reason(tx, ns, "RtrInf", *reason)
    return _bytes(doc)


def pain001_of_run(payments: PaymentService, run_id: UUID) -> bytes:
    """The run's pain.001 file, as the sink builds it (message id = run, end-to-end = order)."""
    transfers = []
    for order in payments.run_events(run_id):
        if not isinstance(order, PaymentOrdered) or not order.paid_out:
            continue
        assert order.creditor is not None
        account = payments.sealer.open(order.creditor)
        assert account is not None
        transfers.append(
            CreditTransfer(
                identifier(order.order_id),
                order.amount,
                account.holder,
                account.iban,
                "Unterstuetzung",
            )
        )
    return build_pain001(
        PaymentFile(
            identifier(run_id),
            datetime.now(UTC),
            swiss_today(),
            Debtor("Sozialregion Olten", "CH5604835012345678009"),
            tuple(transfers),
        )
    )


def assert_valid(xml: bytes, message: str) -> None:
    """Fail unless `xml` is valid against the schema kept for `message`."""
    xmlschema.XMLSchema(str(schema_for(message))).validate(xml.decode("utf-8"))


def _entry(
    parent: ET.Element,
    ns: str,
    amount: Decimal,
    direction: str,
    booked: date,
    reference: str,
    subfamily: str,
) -> ET.Element:
    entry = _sub(parent, ns, "Ntry")
    _sub(entry, ns, "Amt", f"{amount:.2f}", Ccy="CHF")
    _sub(entry, ns, "CdtDbtInd", direction)
    _sub(_sub(entry, ns, "Sts"), ns, "Cd", "BOOK")
    _sub(_sub(entry, ns, "BookgDt"), ns, "Dt", booked.isoformat())
    _sub(_sub(entry, ns, "ValDt"), ns, "Dt", booked.isoformat())
    _sub(entry, ns, "AcctSvcrRef", reference)
    domain = _sub(_sub(entry, ns, "BkTxCd"), ns, "Domn")
    _sub(domain, ns, "Cd", "PMNT")
    family = _sub(domain, ns, "Fmly")
    _sub(family, ns, "Cd", "ICDT" if direction == "DBIT" else "RCDT")
    _sub(family, ns, "SubFmlyCd", subfamily)
    return entry


def _transaction(
    parent: ET.Element,
    ns: str,
    transfer: Transfer,
    direction: str,
    message_id: str | None,
    reference: str,
) -> ET.Element:
    tx = _sub(parent, ns, "TxDtls")
    refs = _sub(tx, ns, "Refs")
    if message_id:
        _sub(refs, ns, "MsgId", message_id)
    _sub(refs, ns, "AcctSvcrRef", reference)
    if message_id:
        _sub(refs, ns, "PmtInfId", message_id)
    _sub(refs, ns, "EndToEndId", transfer.end_to_end_id)
    _sub(tx, ns, "Amt", f"{transfer.amount:.2f}", Ccy="CHF")
    _sub(tx, ns, "CdtDbtInd", direction)
    return tx


def _reason(parent: ET.Element, ns: str, tag: str, code: str, text: str) -> None:
    info = _sub(parent, ns, tag)
    _sub(_sub(info, ns, "Rsn"), ns, "Cd", code)
    if text:
        _sub(info, ns, "AddtlInf", text)


def _document(message: str) -> tuple[ET.Element, str]:
    ns = ISO_NAMESPACE + message
    return ET.Element(f"{{{ns}}}Document"), ns


def _sub(
    parent: ET.Element, ns: str, tag: str, text: str | None = None, **attributes: str
) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _bytes(doc: ET.Element) -> bytes:
    ET.register_namespace("", doc.tag[1:].partition("}")[0])
    ET.indent(doc)
    return ET.tostring(doc, encoding="UTF-8", xml_declaration=True) + b"\n"

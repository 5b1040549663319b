"""Bank files that report on our payment orders: pain.002 status reports and camt.054
debit/credit notifications (ISO 20022), read into the statuses `domain.settlement` records.

A file is identified by the namespace of its `Document` (`urn:iso:std:iso:20022:tech:xsd:
<message>`) and validated against the schema kept for that message in `xsd/` (`<message>.xsd`
or a Swiss version `<message>.ch.NN.xsd`, see `xsd/SOURCES.md`) before anything in it is
read; a file for which no schema is kept is refused. Parsing refuses DTDs and entities
(`xmlschema`'s defused parser): these files come from outside.

What is read (everything else is counted, not recorded):

- pain.002: a rejection (`RJCT`) of the whole message (`OrgnlGrpInfAndSts/GrpSts`), of the
  payment instruction (`PmtInfSts`) — both reject every order of the message — or of one
  transaction (`TxInfAndSts/TxSts`, by `OrgnlEndToEndId`), with the reason code
  (`StsRsnInf/Rsn/Cd`) and its additional text. Accepting statuses (`ACCP`, `ACTC`, `ACSP`,
  `ACWC`, `PDNG`, …) record nothing: a transfer counts as executed when it is booked.
- camt.054: booked (`BOOK`) entries in CHF. A debit transaction (`TxDtls`) with our
  end-to-end id is an execution (booking date, the bank's reference); a credit transaction
  with return information (`RtrInf`) is a return of the order it names, with the return reason.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from hashlib import sha256
from pathlib import Path

import xmlschema

from connectors.errors import ConnectorError
from domain.settlement import BankFileKind, BankStatus, RejectionScope

__all__ = [
    "ISO_NAMESPACE",
    "SCHEMA_DIR",
    "BankFile",
    "BankFileError",
    "InvalidBankFileError",
    "UnknownBankFileError",
    "read_bank_file",
    "schema_for",
]

ISO_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:"
SCHEMA_DIR = Path(__file__).parent / "xsd"
_KINDS: dict[str, BankFileKind] = {"pain.002": "pain.002", "camt.054": "camt.054"}
_REJECTED = "RJCT"


class BankFileError(ConnectorError):
    """A bank file could not be read; nothing in it was recorded."""


class UnknownBankFileError(BankFileError):
    """The file is not a pain.002 or camt.054 message for which a schema is kept."""


class InvalidBankFileError(BankFileError):
    """The file is not valid against its schema, or holds what we cannot book (the message
    names the element and why)."""


@dataclass(frozen=True)
class BankFile:
    """What one bank file says about our orders."""

    file_name: str
    sha256: str
    kind: BankFileKind
    message: str
    """The message and version, e.g. `pain.002.001.12`."""
    message_id: str
    """The file's own GrpHdr/MsgId."""
    statuses: tuple[BankStatus, ...]
    ignored: int
    """Statuses and entries that record nothing (accepted, pending, other bookings)."""


def schema_for(message: str) -> Path:
    """The schema kept for `message` (e.g. `camt.054.001.08`): `<message>.xsd` or a Swiss
    version `<message>.ch.NN.xsd` (the highest); UnknownBankFileError if none is kept."""
    found = sorted(SCHEMA_DIR.glob(f"{message}.ch.*.xsd")) or sorted(
        SCHEMA_DIR.glob(f"{message}.xsd")
    )
    if not found:
        kept = ", ".join(sorted(p.stem for p in SCHEMA_DIR.glob("*.xsd")))
        raise UnknownBankFileError(
            f"Document: no schema is kept for {message} (kept: {kept}); see xsd/SOURCES.md"
        )
    return found[-1]


def read_bank_file(content: bytes, file_name: str) -> BankFile:
    """The statuses of a pain.002 or camt.054 file, validated against its schema first;
    BankFileError naming the element otherwise."""
    resource = _resource(content, file_name)
    message = _message_of(resource.root)
    kind = _KINDS.get(message[:8])
    if kind is None:
        raise UnknownBankFileError(
            f"{file_name}: Document: {message} is neither a pain.002 status report nor a "
            "camt.054 notification"
        )
    schema_file = schema_for(message)
    error = next(_schema(schema_file).iter_errors(resource), None)
    if error is not None:
        raise InvalidBankFileError(
            f"{file_name}: not valid against {schema_file.name} at {error.path or 'Document'}: "
            f"{error.reason}"
        )
    reader = _Pain002 if kind == "pain.002" else _Camt054
    parsed = reader(resource.root, ISO_NAMESPACE + message)
    return BankFile(
        file_name,
        sha256(content).hexdigest(),
        kind,
        message,
        parsed.message_id,
        tuple(parsed.statuses),
        parsed.ignored,
    )


def _resource(content: bytes, file_name: str) -> xmlschema.XMLResource:
    try:
        return xmlschema.XMLResource(io.BytesIO(content), defuse="always")
    except (ET.ParseError, xmlschema.XMLResourceError, ValueError) as exc:
        raise InvalidBankFileError(f"{file_name}: not well-formed XML: {exc}") from exc


def _message_of(root: ET.Element) -> str:
    namespace, _, local = (
        root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    )
    if local != "Document" or not namespace.startswith(ISO_NAMESPACE):
        raise UnknownBankFileError(
            f"Document: {root.tag} is not an ISO 20022 Document ({ISO_NAMESPACE}…)"
        )
    return namespace[len(ISO_NAMESPACE) :]


@cache
def _schema(path: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(path))


class _Reader:
    """Walks one validated document, collecting statuses (paths name elements 1-based)."""

    def __init__(self, root: ET.Element, namespace: str) -> None:
        self.ns = {"d": namespace}
        self.statuses: list[BankStatus] = []
        self.ignored = 0
        self.message_id = ""
        self.read(root)

    def read(self, root: ET.Element) -> None:
        raise NotImplementedError

    def text(self, element: ET.Element, path: str) -> str | None:
        found = element.findtext(path, namespaces=self.ns)
        return found.strip() if found is not None else None

    def reason(self, element: ET.Element) -> tuple[str | None, str | None]:
        """The first status/return reason's code (or proprietary) and additional text."""
        info = element.find("d:StsRsnInf", self.ns)
        if info is None:
            info = element.find("d:RtrInf", self.ns)
        if info is None:
            return None, None
        code = self.text(info, "d:Rsn/d:Cd") or self.text(info, "d:Rsn/d:Prtry")
        lines = [t.text.strip() for t in info.findall("d:AddtlInf", self.ns) if t.text]
        return code, " ".join(lines) or None


class _Pain002(_Reader):
    original_where = ""

    def read(self, root: ET.Element) -> None:
        report = root.find("d:CstmrPmtStsRpt", self.ns)
        assert report is not None  # the schema requires it
        self.message_id = self.text(report, "d:GrpHdr/d:MsgId") or ""
        group = report.find("d:OrgnlGrpInfAndSts", self.ns)
        assert group is not None
        where = "CstmrPmtStsRpt/OrgnlGrpInfAndSts"
        original = self.text(group, "d:OrgnlMsgId")
        name = self.text(group, "d:OrgnlMsgNmId") or ""
        if not name.startswith("pain.001"):
            raise InvalidBankFileError(
                f"{where}/OrgnlMsgNmId: {name!r} is not a pain.001 message of ours"
            )
        self.original_where = f"{where}/OrgnlMsgId"
        if self.text(group, "d:GrpSts") == _REJECTED:
            self.reject(group, f"{where}/GrpSts", original, None, "group")
        for i, info in enumerate(report.findall("d:OrgnlPmtInfAndSts", self.ns), 1):
            here = f"CstmrPmtStsRpt/OrgnlPmtInfAndSts[{i}]"
            if self.text(info, "d:PmtInfSts") == _REJECTED:
                self.reject(info, f"{here}/PmtInfSts", original, None, "payment_information")
            for j, tx in enumerate(info.findall("d:TxInfAndSts", self.ns), 1):
                self.transaction(tx, f"{here}/TxInfAndSts[{j}]", original)

    def transaction(self, tx: ET.Element, where: str, original: str | None) -> None:
        if self.text(tx, "d:TxSts") != _REJECTED:
            self.ignored += 1
            return
        end_to_end = self.text(tx, "d:OrgnlEndToEndId")
        if not end_to_end:
            raise InvalidBankFileError(
                f"{where}/OrgnlEndToEndId: a rejected transaction must name its order"
            )
        self.reject(
            tx,
            f"{where}/OrgnlEndToEndId",
            original,
            end_to_end,
            "transaction",
            _amount(
                tx.find("d:OrgnlTxRef/d:Amt/d:InstdAmt", self.ns),
                f"{where}/OrgnlTxRef/Amt/InstdAmt",
            ),
        )

    def reject(
        self,
        element: ET.Element,
        where: str,
        message_id: str | None,
        end_to_end: str | None,
        scope: RejectionScope,
        amount: Decimal | None = None,
    ) -> None:
        code, text = self.reason(element)
        self.statuses.append(
            BankStatus(
                outcome="rejected",
                where=where,
                message_id=message_id,
                message_where=self.original_where,
                end_to_end_id=end_to_end,
                scope=scope,
                amount=amount,
                reason_code=code,
                reason_text=text,
            )
        )


class _Camt054(_Reader):
    def read(self, root: ET.Element) -> None:
        body = root.find("d:BkToCstmrDbtCdtNtfctn", self.ns)
        assert body is not None  # the schema requires it
        self.message_id = self.text(body, "d:GrpHdr/d:MsgId") or ""
        for i, notification in enumerate(body.findall("d:Ntfctn", self.ns), 1):
            for j, entry in enumerate(notification.findall("d:Ntry", self.ns), 1):
                self.entry(entry, f"BkToCstmrDbtCdtNtfctn/Ntfctn[{i}]/Ntry[{j}]")

    def entry(self, entry: ET.Element, where: str) -> None:
        status = self.text(entry, "d:Sts/d:Cd") or self.text(entry, "d:Sts/d:Prtry")
        details = [
            tx
            for d in entry.findall("d:NtryDtls", self.ns)
            for tx in d.findall("d:TxDtls", self.ns)
        ]
        if status != "BOOK" or self.text(entry, "d:RvslInd") == "true" or not details:
            self.ignored += max(len(details), 1)
            return
        booked = _day(
            self.text(entry, "d:BookgDt/d:Dt") or (self.text(entry, "d:BookgDt/d:DtTm") or "")[:10],
            f"{where}/BookgDt",
        )
        direction = self.text(entry, "d:CdtDbtInd")
        entry_amount = entry.find("d:Amt", self.ns)
        for k, tx in enumerate(details, 1):
            here = f"{where}/NtryDtls/TxDtls[{k}]"
            own = tx.find("d:Amt", self.ns)
            amount = (
                _amount(own, f"{here}/Amt")
                if own is not None
                else _amount(entry_amount, f"{where}/Amt")
                if len(details) == 1
                else None
            )
            self.transaction(
                tx,
                here,
                self.text(tx, "d:CdtDbtInd") or direction,
                booked,
                amount,
                self.text(tx, "d:Refs/d:AcctSvcrRef") or self.text(entry, "d:AcctSvcrRef"),
            )

    def transaction(
        self,
        tx: ET.Element,
        where: str,
        direction: str | None,
        booked: date,
        amount: Decimal | None,
        reference: str | None,
    ) -> None:
        end_to_end = self.text(tx, "d:Refs/d:EndToEndId")
        returned = tx.find("d:RtrInf", self.ns) is not None
        if not end_to_end or end_to_end == "NOTPROVIDED" or (direction == "CRDT") != returned:
            self.ignored += 1  # not about one of our transfers (fees, incoming credits)
            return
        code, text = self.reason(tx) if returned else (None, None)
        self.statuses.append(
            BankStatus(
                outcome="returned" if returned else "executed",
                where=f"{where}/Refs/EndToEndId",
                message_id=None if returned else self.text(tx, "d:Refs/d:MsgId"),
                message_where=f"{where}/Refs/MsgId",
                end_to_end_id=end_to_end,
                amount=amount,
                booking_date=booked,
                bank_reference=reference,
                reason_code=code,
                reason_text=text,
            )
        )


def _amount(element: ET.Element | None, where: str) -> Decimal | None:
    if element is None:
        return None
    if element.get("Ccy") != "CHF":
        raise InvalidBankFileError(f"{where}: Ccy {element.get('Ccy')!r}: only CHF is paid out")
    try:
        return Decimal((element.text or "").strip())
    except InvalidOperation as exc:
        raise InvalidBankFileError(f"{where}: {element.text!r} is not an amount") from exc


def _day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidBankFileError(f"{where}: a booked entry needs its booking date") from exc

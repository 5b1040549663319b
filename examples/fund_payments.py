"""The reference fund application's payments (a SIMULATION; standard library only): one ISO
20022 pain.001.001.09 file per reimbursement claim of the claims topic, never two.

A claim (`ch.nervenbahn.benefits.ReimbursementClaim`) says what the fund owes from an EL
back-payment: `claim_total` to the social region that advanced (ELV Art. 22 para. 4) and
`surplus_total` to the person. The fund pays both in one payment file, in the shape of
nervenbahn's own payments sink (`connectors/payments/pain001.py`, Swiss Payment Standards
2022: group header, one payment instruction from the fund's account, one credit transfer per
payee), so the same bank tooling reads both:

- to the social region: `claim_total`, to the account of `--region-accounts FILE` (JSON
  `{"<region id>": {"name": ..., "iban": ...}}`); a region not in it (or no file) is paid to a
  SIMULATED account: a valid Swiss IBAN made from the region id, named "Sozialregion <id>
  (simulated account)";
- to the person: `surplus_total`, to the account the fund keeps for the beneficiary — here
  SIMULATED from the application id (a valid Swiss IBAN, named "EL-Bezüger/in <first 8
  characters of the application id>"; the bus carries no names and no accounts);
- a total of 0 pays nothing; a negative total (a correction: the region or the person got too
  much) pays nothing either and is reported as `to_return` — collecting it is not a credit
  transfer;
- the debtor is the fund (`--fund-iban`, default a simulated valid IBAN), its bank named by the
  institution id of its Swiss IBAN (SPS: no BIC needed).

**Never twice.** The file's name comes from the claim id (`claim-<32 hex digits>.xml`) and so do
its `MsgId` (the claim id's hex digits) and the `EndToEndId`s (`…-R` region, `…-P` person). It is
written atomically (a temporary file in the same folder, fsync, `os.replace`; a temporary
file a killed run left behind is deleted at the next start: only the rename pays), and a file that
exists means the claim is paid: the files are the fund's memory, as the applications topic is
for its decisions (no committed offsets). A claim that pays nothing still leaves its mark,
`claim-<hex>.none.json` (a pain.001 needs at least one transfer), so that it too is settled
once. A crash after the rename and before the fund's `ClaimPaid` was delivered is finished by
the next run: it finds the file and reports the same payment again (`paid_on` = the file's
execution date), which nervenbahn records once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

__all__ = ["NAMESPACE", "Account", "Payment", "Payments", "account_of_region", "iban_is_valid",
           "load_region_accounts", "person_account", "simulated_iban"]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
SWISS = ZoneInfo("Europe/Zurich")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
SIMULATED_BANK = "09000"
"""The institution id of the simulated accounts (a Swiss clearing number outside the QR-IID
range 30000-31999, which SPS reserves for QR-IBANs)."""
FUND_NAME = "Ausgleichskasse (SIMULATION)"


@dataclass(frozen=True)
class Account:
    """A payee's or the fund's account: the holder's name and a Swiss IBAN (compact)."""

    name: str
    iban: str
    simulated: bool = False


@dataclass(frozen=True)
class Payment:
    """What the fund paid (or found paid) for one claim: the ClaimPaid record's fields and
    where it is written."""

    claim_id: str
    application_id: str
    case_id: str
    case_version: int
    paid_on: date
    to_region: Decimal
    to_person: Decimal
    message_id: str
    file: Path
    to_return: dict[str, Decimal]
    """A negative total, to be returned (by `region` or `person`); not paid."""
    paid_already: bool = False
    """True if the file was there before this run (the payment is reported again)."""

    def record(self) -> dict[str, Any]:
        """The ClaimPaid record (Avro field names)."""
        return {"claim_id": self.claim_id, "application_id": self.application_id,
                "case_id": self.case_id, "case_version": self.case_version,
                "paid_on": self.paid_on, "to_region": self.to_region,
                "to_person": self.to_person, "message_id": self.message_id}

    def line(self) -> dict[str, Any]:
        """The JSON output line of the payment."""
        return {"claim_paid": self.claim_id, "application_id": self.application_id,
                "message_id": self.message_id, "file": self.file.name,
                "paid_on": str(self.paid_on), "to_region": str(self.to_region),
                "to_person": str(self.to_person),
                "to_return": {k: str(v) for k, v in self.to_return.items()},
                "paid_already": self.paid_already, "simulated": True}


def simulated_iban(seed: str) -> str:
    """A valid Swiss IBAN (ISO 13616 check digits) whose account number is taken from SHA-256
    of `seed`: the same seed, the same account. SIMULATED: no such account exists."""
    account = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % 10**12
    bban = f"{SIMULATED_BANK}{account:012d}"
    check = 98 - int(f"{bban}{_digits('CH')}00") % 97
    return f"CH{check:02d}{bban}"


def _digits(letters: str) -> str:
    return "".join(str(ord(c) - ord("A") + 10) for c in letters)


def account_of_region(region: str, accounts: dict[str, Any]) -> Account:
    """The social region's account from `--region-accounts`, or a simulated one."""
    known = accounts.get(region)
    if known is not None:
        return Account(str(known["name"]), str(known["iban"]).replace(" ", "").upper())
    return Account(f"Sozialregion {region} (simulated account)",
                   simulated_iban(f"region:{region}"), simulated=True)


def person_account(application_id: str) -> Account:
    """The beneficiary's account as the fund's own records would give it: SIMULATED."""
    return Account(f"EL-Bezüger/in {application_id[:8]}",
                   simulated_iban(f"person:{application_id}"), simulated=True)


class Payments:
    """Pays each claim once into `folder` (module docstring)."""

    def __init__(self, folder: Path, fund: Account, region_accounts: dict[str, Any]) -> None:
        self.folder = folder
        self.fund = fund
        self.region_accounts = region_accounts
        folder.mkdir(parents=True, exist_ok=True)
        # One run pays into a folder at a time (a cron overlap would otherwise delete the
        # other run's file in flight below); the kernel frees the lock when a run dies.
        self._lock = (folder / ".lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SystemExit(f"error: --payments-dir: another run of the fund application pays "
                             f"into {folder} now; not started") from None
        for left in folder.glob(".claim-*.tmp"):  # a file half written when a run was killed:
            left.unlink(missing_ok=True)  # never a payment (only a rename makes one)

    def close(self) -> None:
        """Let another run pay into the folder."""
        self._lock.close()

    def file_of(self, claim_id: str) -> Path:
        """The payment file of a claim (it may not exist)."""
        return self.folder / f"claim-{UUID(claim_id).hex}.xml"

    def pay(self, claim: dict[str, Any], now: datetime) -> Payment:
        """The claim's payment: its file written now, or, if it (or its none-mark) exists,
        what it paid then (`paid_already`)."""
        claim_id = str(claim["claim_id"])
        hex_id = UUID(claim_id).hex
        inconsistent = _inconsistency(claim)
        if inconsistent is not None:
            raise ClaimRefusedError(claim_id, inconsistent)
        to_region, to_person, to_return = _split(claim)
        xml, none = self.file_of(claim_id), self.folder / f"claim-{hex_id}.none.json"
        found = _paid_on(xml, none)
        target = xml if to_region or to_person else none
        if found is None:
            found = now.astimezone(SWISS).date()
            if target is xml:
                content = pain001(hex_id, claim, self, to_region, to_person, now)
            else:
                content = (json.dumps({"claim_id": claim_id, "paid_on": str(found),
                                       "to_return": {k: str(v) for k, v in to_return.items()}})
                           + "\n").encode()
            _write_atomically(target, content)
            paid_already = False
        else:
            paid_already = True
        return Payment(claim_id, str(claim["application_id"]), str(claim["case_id"]),
                       int(claim["case_version"]), found, to_region, to_person, hex_id,
                       target, to_return, paid_already=paid_already)


def iban_is_valid(iban: str) -> bool:
    """Whether `iban` (compact) has the ISO 13616 form and check digits."""
    if len(iban) < 15 or not iban[:2].isalpha() or not iban[2:].isalnum():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(c if c.isdigit() else _digits(c) for c in moved.upper())) % 97 == 1


def load_region_accounts(path: Path | None) -> dict[str, Any]:
    """The `--region-accounts` file, every entry checked; SystemExit naming the region and
    field otherwise (no account: {} — every region is paid to a simulated one)."""
    if path is None:
        return {}
    try:
        accounts = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: --region-accounts {path}: {exc}") from exc
    if not isinstance(accounts, dict):
        raise SystemExit(f"error: --region-accounts {path}: a JSON object by region id")
    for region, entry in accounts.items():
        name = entry.get("name") if isinstance(entry, dict) else None
        iban = str(entry.get("iban", "")).replace(" ", "") if isinstance(entry, dict) else ""
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 70:
            raise SystemExit(f"error: --region-accounts: {region}.name: 1 to 70 characters")
        if not iban_is_valid(iban):
            raise SystemExit(f"error: --region-accounts: {region}.iban: {iban!r} is no IBAN "
                             "(form or check digits)")
    return accounts


class ClaimRefusedError(ValueError):
    """A claim whose figures do not add up: the fund pays none of it (and says why)."""

    def __init__(self, claim_id: str, reason: str) -> None:
        self.claim_id, self.reason = claim_id, reason
        super().__init__(f"claim {claim_id}: {reason}; not paid")


def _inconsistency(claim: dict[str, Any]) -> str | None:
    """Why a claim's totals do not follow from its months, if they do not: each total is the
    sum of the corrections' figures, and each month's claim + offset + surplus is its EL (a
    fund checks what it is asked to pay, whoever sends it)."""
    for total, figure in (("claim_total", "claim"), ("surplus_total", "surplus"),
                          ("ipv_offset_total", "ipv_offset")):
        summed = sum((Decimal(m[figure]) for m in claim["corrections"]), ZERO)
        if Decimal(claim[total]) != summed:
            return f"{total} {claim[total]} is not the sum of the corrections' {figure} {summed}"
    for month in (*claim["months"], *claim["corrections"]):
        parts = Decimal(month["claim"]) + Decimal(month["ipv_offset"]) + Decimal(month["surplus"])
        if parts != Decimal(month["el"]):
            return (f"month {month['month']}: claim + offset + surplus {parts} is not its EL "
                    f"{month['el']}")
    return None


def _split(claim: dict[str, Any]) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
    """To the region, to the person (never negative), and what is to be returned."""
    totals = {"region": Decimal(claim["claim_total"]).quantize(CENT),
              "person": Decimal(claim["surplus_total"]).quantize(CENT)}
    to_return = {who: -total for who, total in totals.items() if total < 0}
    return max(totals["region"], ZERO), max(totals["person"], ZERO), to_return


def _paid_on(xml: Path, none: Path) -> date | None:
    """The day a claim was paid, from the file this fund wrote for it; None if none exists."""
    if xml.exists():
        # the fund's own file; expat (>= 2.4.1) bounds entity expansion
        root = ET.parse(xml).getroot()  # noqa: S314
        text = root.findtext(".//p:PmtInf/p:ReqdExctnDt/p:Dt", namespaces={"p": NAMESPACE})
        return date.fromisoformat(str(text))
    if none.exists():
        return date.fromisoformat(json.loads(none.read_text())["paid_on"])
    return None


def pain001(hex_id: str, claim: dict[str, Any], payments: Payments, to_region: Decimal,
            to_person: Decimal, now: datetime) -> bytes:
    """The claim's pain.001.001.09 document (the payments sink's shape, SPS 2022)."""
    region = account_of_region(str(claim["region"]), payments.region_accounts)
    person = person_account(str(claim["application_id"]))
    remittance = f"EL-Nachzahlung {claim['application_id']} Forderung {claim['sequence']}"
    transfers = [(f"{hex_id}-{suffix}", amount, account, remittance)
                 for suffix, amount, account in (("R", to_region, region),
                                                 ("P", to_person, person)) if amount > 0]
    total = str(sum((t[1] for t in transfers), ZERO).quantize(CENT))
    root = ET.Element("Document", xmlns=NAMESPACE)
    initiation = _sub(root, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    for tag, text in (("MsgId", hex_id), ("CreDtTm", now.astimezone(SWISS).strftime(
            "%Y-%m-%dT%H:%M:%S")), ("NbOfTxs", str(len(transfers))), ("CtrlSum", total)):
        _sub(header, tag, text)
    _sub(_sub(header, "InitgPty"), "Nm", payments.fund.name)
    instruction = _sub(initiation, "PmtInf")
    for tag, text in (("PmtInfId", hex_id), ("PmtMtd", "TRF"),
                      ("NbOfTxs", str(len(transfers))), ("CtrlSum", total)):
        _sub(instruction, tag, text)
    _sub(_sub(instruction, "ReqdExctnDt"), "Dt", now.astimezone(SWISS).date().isoformat())
    _sub(_sub(instruction, "Dbtr"), "Nm", payments.fund.name)
    _sub(_sub(_sub(instruction, "DbtrAcct"), "Id"), "IBAN", payments.fund.iban)
    member = _sub(_sub(_sub(instruction, "DbtrAgt"), "FinInstnId"), "ClrSysMmbId")
    _sub(_sub(member, "ClrSysId"), "Cd", "CHBCC")
    _sub(member, "MmbId", payments.fund.iban[4:9])
    for end_to_end, amount, account, text in transfers:
        transfer = _sub(instruction, "CdtTrfTxInf")
        _sub(_sub(transfer, "PmtId"), "EndToEndId", end_to_end)
        _sub(_sub(transfer, "Amt"), "InstdAmt", str(amount)).set("Ccy", "CHF")
        _sub(_sub(transfer, "Cdtr"), "Nm", account.name)
        _sub(_sub(_sub(transfer, "CdtrAcct"), "Id"), "IBAN", account.iban)
        _sub(_sub(transfer, "RmtInf"), "Ustrd", text)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _write_atomically(path: Path, content: bytes) -> None:
    """`content` at `path`, all or nothing: a temporary file in the same folder, fsync, rename
    (and the folder synced, so that the rename survives a power cut)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)

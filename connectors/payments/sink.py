"""The payments sink: one ISO 20022 pain.001 file per payment run, exactly once.

It consumes the payments topic (`nervenbahn.payments.payment-orders.v1`). `handle` keeps every
run and order in the consumer's own database, in the consumer's transaction (so a redelivered
event changes nothing). `deliver`, after each committed batch, looks at every completed run not
yet delivered and **approved** (four-eyes: a run's `PaymentRunApproved`, recorded when a
second person approved it, must have arrived; until then the run waits, nothing is written):

- it checks the run against its `PaymentRunCompleted`: all orders present, paid-out count and
  control sum, claim and held counts and sums agree; every payout account opens (the creditor
  arrives sealed with the applicant's key and is opened with the vault, in memory only);
- if anything is off, the run is **held**: nothing is written, the reason is kept and shown by
  `nervenbahn connectors status` (`problems`); it is checked again after each batch (an order
  that arrives late, e.g. replayed from the dead-letter topic, releases it);
- otherwise it writes `<outbox>/pain001-<run id>.report.json` (what is not paid: claims back
  and held orders; ids and amounts, no personal data) and then `<outbox>/pain001-<run id>.xml`,
  each atomically (temporary file of mode 0600, fsync, rename), and marks the run delivered in
  the same transaction.

Erasure (`nervenbahn person erase`, through `erase`): a delivered file that pays the person is
rewritten — their credit transfers keep id and amount, their name, IBAN and remittance text
read "ERASED" — checked against the schema again, and its new digest recorded.

Exactly once: the file's bytes are a pure function of the run's events and the sink's options
(`CreDtTm` is the run's recorded time, not the time of writing). If a crash falls between the
rename and the commit, the next `deliver` builds the same bytes, finds them in place and only
marks the run; a file of the same name with other content is never replaced (the run is held).

Options (`[connectors.NAME.options]`, declared by `Pain001Options`; `nervenbahn connectors
describe NAME` lists them): `debtor_name`, `debtor_iban`, `debtor_bic` (optional; without it the
institution id is taken from the Swiss IBAN), `outbox` (a folder; default `outbox` in the
connector's working folder) and `remittance` (default `"Sozialhilfe"`).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from uuid import UUID

import structlog
from pydantic import Field, StringConstraints, field_validator

from bus.consumer import Received, Rejected
from connectors.payments.pain001 import (
    CreditTransfer,
    Debtor,
    InvalidAccountError,
    PaymentFile,
    PaymentFileError,
    build_pain001,
    checked_bic,
    checked_iban,
    erase_transfers,
    identifier,
)
from connectors.sdk import ConnectorOptions, PrivateFiles, Sink
from domain.payments import NO_USABLE_ACCOUNT, AccountSealer, SealedPayoutAccount
from domain.personal_data import ErasedFile, ErasureSubject, PersonalDataVault
from schemas.sql import Component, Migration, migrate, placeholder

__all__ = ["Pain001Options", "Pain001Sink", "RunCheck", "pain001_path", "report_path"]

log = structlog.get_logger("nervenbahn.connectors.payments")

_CENT = Decimal("0.01")
_RUN_EVENTS = frozenset({"PaymentRunStarted", "PaymentOrdered", "PaymentRunCompleted",
                         "PaymentRunApproved"})

_TABLES = (
    "CREATE TABLE IF NOT EXISTS pain001_runs (run_id TEXT PRIMARY KEY, month TEXT, "
    "sequence INTEGER, execution_date TEXT, started_at TEXT, completed_at TEXT, "
    "order_count INTEGER, paid_out_count INTEGER, control_sum TEXT, claim_count INTEGER, "
    "claim_sum TEXT, held_count INTEGER, held_sum TEXT, state TEXT NOT NULL, problem TEXT, "
    "file TEXT, file_sha256 TEXT, delivered_at TEXT)",
    "CREATE TABLE IF NOT EXISTS pain001_orders (run_id TEXT NOT NULL, order_id TEXT NOT NULL, "
    "case_id TEXT NOT NULL, for_month TEXT NOT NULL, kind TEXT NOT NULL, amount TEXT NOT NULL, "
    "held INTEGER NOT NULL, creditor_person_id TEXT, creditor_sealed TEXT, "
    "social_region TEXT NOT NULL, PRIMARY KEY (run_id, order_id))",
)
"""Portable SQL (SQLite and PostgreSQL; statements carry the backend's placeholder)."""
_APPROVAL = (
    "ALTER TABLE pain001_runs ADD COLUMN approved_at TEXT",
    "ALTER TABLE pain001_runs ADD COLUMN approved_by TEXT",
)
_HELD_REASON = ("ALTER TABLE pain001_orders ADD COLUMN held_reason TEXT",)
MIGRATIONS = Component(
    "payments_sink",
    [Migration(1, "payment runs and their orders", sqlite=_TABLES, postgres=_TABLES),
     Migration(2, "four-eyes: who approved a run, and when", sqlite=_APPROVAL,
               postgres=_APPROVAL),
     Migration(3, "why a held order is held (PaymentOrdered v2)", sqlite=_HELD_REASON,
               postgres=_HELD_REASON)],
    tables=["pain001_runs"],
)
"""The sink's tables: the same portable DDL on both backends (on PostgreSQL it runs in the
connection's current schema)."""


def pain001_path(outbox: Path, run_id: str) -> Path:
    """Where the pain.001 file of a run is written."""
    return outbox / f"pain001-{run_id}.xml"


def report_path(outbox: Path, run_id: str) -> Path:
    """Where the companion report of a run (what is not paid) is written."""
    return outbox / f"pain001-{run_id}.report.json"


@dataclass(frozen=True)
class _Order:
    order_id: str
    case_id: str
    for_month: str
    kind: str
    amount: Decimal
    held: bool
    creditor: SealedPayoutAccount | None
    social_region: str
    held_reason: str | None = None

    @property
    def paid_out(self) -> bool:
        return not self.held and self.kind != "claim_back"


@dataclass(frozen=True)
class RunCheck:
    """A completed run checked against its totals: the orders, or why it is held."""

    run_id: str
    month: str
    orders: tuple[_Order, ...]
    problem: str | None


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Pain001Options(ConnectorOptions):
    """The options of the payments sink."""

    debtor_name: _Text = Field(description="The paying social service, as the bank knows it.")
    debtor_iban: _Text = Field(
        description="The account the payments are made from (IBAN; not a QR-IBAN)."
    )
    debtor_bic: str | None = Field(
        None, description="The debtor's bank (BIC); without it, taken from the Swiss IBAN."
    )
    outbox: str | None = Field(
        None,
        description="The folder the pain.001 files go to (relative: to the configuration "
        "file); default `outbox` in the connector's working folder.",
    )
    remittance: str = Field(
        "Sozialhilfe", description="The remittance text, followed by the month paid."
    )

    @field_validator("debtor_iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        return _account(checked_iban, value)

    @field_validator("debtor_bic")
    @classmethod
    def _bic(cls, value: str | None) -> str | None:
        return _account(checked_bic, value)


class Pain001Sink(Sink):
    """Payment orders → one pain.001.001.09 (SPS) file per payment run."""

    dataset: ClassVar[str] = "payment-orders"
    Options = Pain001Options
    options: Pain001Options

    def __init__(self, name: str, options: Mapping[str, Any] | ConnectorOptions) -> None:
        super().__init__(name, options)
        self.debtor = Debtor(name=self.options.debtor_name, iban=self.options.debtor_iban,
                             bic=self.options.debtor_bic)
        self.remittance = self.options.remittance
        self._outbox_option = self.options.outbox

    # --- SDK ------------------------------------------------------------------------------------

    def setup(self, tx: Any) -> None:
        migrate(getattr(tx, "raw", tx), MIGRATIONS)

    def handle(self, received: Received, tx: Any) -> None:
        """Keep a run's start, orders and completion; other payments events are not ours."""
        p = placeholder(tx)
        kind = received.event_type
        if kind not in _RUN_EVENTS:
            return
        event = received.event
        run_id = _run_id(event)
        if kind == "PaymentRunStarted":
            tx.execute(
                "INSERT INTO pain001_runs (run_id, month, sequence, execution_date, started_at, "  # noqa: S608
                f"state) VALUES ({p}, {p}, {p}, {p}, {p}, 'open') "
                "ON CONFLICT (run_id) DO UPDATE SET "
                "month = excluded.month, sequence = excluded.sequence, "
                "execution_date = excluded.execution_date, started_at = excluded.started_at",
                (run_id, _day(event.month), event.sequence, _day(event.execution_date),
                 _moment(event.timestamp)),
            )
        elif kind == "PaymentOrdered":
            self._keep_order(tx, run_id, event)
        elif kind == "PaymentRunApproved":
            self._keep_approval(tx, run_id, event)
        else:
            self._keep_completion(tx, run_id, event)

    def deliver(self, tx: Any) -> list[str]:
        """Write every completed and approved run's files that are not written yet; the names
        of the files written now (a file found in place from before a crash is not written
        again). A run without its approval writes nothing."""
        written: list[str] = []
        pending = tx.execute(
            "SELECT run_id FROM pain001_runs WHERE completed_at IS NOT NULL "
            "AND approved_at IS NOT NULL "
            "AND state IN ('open', 'held') ORDER BY month, sequence, run_id"
        ).fetchall()
        for (run_id,) in pending:
            check = self.check_run(tx, run_id)
            if check.problem is None:
                written += self._deliver_run(tx, check)
            else:
                self._hold(tx, run_id, check.problem)
        return written

    def problems(self, tx: Any) -> list[str]:
        """Every held run and why."""
        rows = tx.execute(
            "SELECT run_id, month, sequence, problem FROM pain001_runs WHERE state = 'held' "
            "ORDER BY month, sequence"
        ).fetchall()
        return [f"run {run} ({(month or '?')[:7]} #{seq}) held: {why}" for run, month, seq, why
                in rows]

    def erase(self, subject: ErasureSubject, tx: Any) -> list[ErasedFile]:
        """Rewrite every delivered pain.001 file that pays the person: their credit transfers
        keep id and amount but lose name, IBAN and remittance text (`erase_transfers`); the
        file is checked against the schema again and its new digest recorded. A run not
        delivered yet is held by `deliver` (the payout account no longer opens)."""
        p = placeholder(tx)
        rows = tx.execute(
            "SELECT o.run_id, o.order_id FROM pain001_orders o JOIN pain001_runs r "  # noqa: S608
            f"ON r.run_id = o.run_id WHERE o.creditor_person_id = {p} AND r.state = 'delivered' "
            "AND r.file IS NOT NULL ORDER BY o.run_id",
            (str(subject.person_id),),
        ).fetchall()
        by_run: dict[str, set[str]] = {}
        for run_id, order_id in rows:
            by_run.setdefault(run_id, set()).add(identifier(order_id))
        return [self._erase_in_file(tx, run_id, ids) for run_id, ids in by_run.items()
                if pain001_path(self.outbox, run_id).exists()]

    def _erase_in_file(self, db: Any, run_id: str, end_to_end_ids: set[str]) -> ErasedFile:
        p = placeholder(db)
        path = pain001_path(self.outbox, run_id)
        try:
            before = path.read_bytes()
            xml, erased = erase_transfers(before, end_to_end_ids)
        except (OSError, ET.ParseError, PaymentFileError) as exc:
            return ErasedFile(str(path), "not reached", f"cannot be rewritten: {exc}")
        if xml == before:
            return ErasedFile(str(path), "checked", "its credit transfers were erased before")
        self._files.write(path, xml)
        db.execute(f"UPDATE pain001_runs SET file_sha256 = {p} WHERE run_id = {p}",  # noqa: S608
                   (sha256(xml).hexdigest(), run_id))
        log.info("pain.001 file rewritten for an erasure", connector=self.name, run_id=run_id,
                 transfers=erased)
        return ErasedFile(str(path), "rewritten",
                          f"{erased} credit transfers: name, IBAN and remittance replaced")

    # --- checks -------------------------------------------------------------------------------

    def check_run(self, db: Any, run_id: str) -> RunCheck:
        """The run's orders checked against its completion totals."""
        p = placeholder(db)
        run = db.execute(
            "SELECT month, order_count, paid_out_count, control_sum, claim_count, claim_sum, "  # noqa: S608
            f"held_count, held_sum, started_at FROM pain001_runs WHERE run_id = {p}",
            (run_id,),
        ).fetchone()
        month, count, paid_count, control, claim_count, claims, held_count, held, started = run
        orders = self._orders(db, run_id)
        paid = [o for o in orders if o.paid_out]
        claimed = [o for o in orders if o.kind == "claim_back" and not o.held]
        on_hold = [o for o in orders if o.held]
        expected = [
            ("orders", count, len(orders)),
            ("paid-out orders", paid_count, len(paid)),
            ("control sum", _amount(control), _total(paid)),
            ("claims back", claim_count, len(claimed)),
            ("claim sum", _amount(claims), _total(claimed)),
            ("held orders", held_count, len(on_hold)),
            ("held sum", _amount(held), _total(on_hold)),
        ]
        problem = None
        if started is None:
            problem = "the run's start (PaymentRunStarted) has not arrived"
        for what, announced, present in expected:
            if problem is None and announced != present:
                problem = (
                    f"{what} differ: the run's completion says {announced}, "
                    f"the orders received give {present}"
                )
        return RunCheck(run_id, month or "", tuple(orders), problem)

    # --- delivery -----------------------------------------------------------------------------

    def _deliver_run(self, db: Any, check: RunCheck) -> list[str]:
        run_id = check.run_id
        outbox = self.outbox
        paid = [o for o in check.orders if o.paid_out]
        try:
            xml = build_pain001(self._payment_file(db, run_id, paid)) if paid else None
        except PaymentFileError as exc:
            self._hold(db, run_id, str(exc))
            return []
        files = [(report_path(outbox, run_id), _report(db, check))]
        if xml is not None:
            files.append((pain001_path(outbox, run_id), xml))
        for target, content in files:
            if target.exists() and target.read_bytes() != content:
                self._hold(
                    db,
                    run_id,
                    f"{target} exists with other content; it is never replaced (remove it "
                    "only if it was not sent to the bank)",
                )
                return []
        # the report first: a pain.001 file never lacks its report
        written = [target.name for target, content in files
                   if _write_once(self._files, target, content)]
        self._mark(db, run_id, files[-1][0].name if xml else None,
                   sha256(xml).hexdigest() if xml else None)
        log.info("payment run delivered", connector=self.name, run_id=run_id,
                 files=[target.name for target, _ in files], written_now=written,
                 transactions=len(paid))
        return written

    def _payment_file(self, db: Any, run_id: str, paid: list[_Order]) -> PaymentFile:
        p = placeholder(db)
        execution_date, completed_at = db.execute(
            f"SELECT execution_date, completed_at FROM pain001_runs WHERE run_id = {p}", (run_id,)  # noqa: S608
        ).fetchone()
        sealer = AccountSealer(self.vault)
        transfers = []
        for order in paid:
            whose = f"payment order {order.order_id} (case {order.case_id})"
            if order.creditor is None:
                raise PaymentFileError(f"{whose}: a payout without a payout account")
            account = sealer.open(order.creditor)
            if account is None:
                raise PaymentFileError(f"{whose}: the payout account was erased")
            transfers.append(
                CreditTransfer(
                    end_to_end_id=identifier(order.order_id),
                    amount=order.amount,
                    creditor_name=account.holder,
                    creditor_iban=account.iban,
                    remittance=self._remittance(order),
                    reference=f"{order.order_id} (case {order.case_id})",
                )
            )
        return PaymentFile(
            message_id=identifier(run_id),
            created_at=datetime.fromisoformat(completed_at),
            execution_date=date.fromisoformat(execution_date),
            debtor=self.debtor,
            transfers=tuple(transfers),
        )

    def _remittance(self, order: _Order) -> str:
        month = order.for_month[:7]
        if order.kind == "back_payment":
            return f"{self.remittance} Nachzahlung {month}"
        return f"{self.remittance} {month}"

    def _hold(self, db: Any, run_id: str, problem: str) -> None:
        p = placeholder(db)
        before = db.execute(
            f"SELECT problem FROM pain001_runs WHERE run_id = {p}", (run_id,)  # noqa: S608
        ).fetchone()
        if before is None or before[0] != problem:
            log.warning("payment run held", connector=self.name, run_id=run_id, problem=problem)
        db.execute(
            f"UPDATE pain001_runs SET state = 'held', problem = {p} WHERE run_id = {p}",  # noqa: S608
            (problem, run_id),
        )

    def _mark(self, db: Any, run_id: str, file: str | None, digest: str | None) -> None:
        p = placeholder(db)
        db.execute(
            f"UPDATE pain001_runs SET state = 'delivered', problem = NULL, file = {p}, "  # noqa: S608
            f"file_sha256 = {p}, delivered_at = {p} WHERE run_id = {p}",
            (file, digest, datetime.now(UTC).isoformat(timespec="seconds"), run_id),
        )

    # --- storage ------------------------------------------------------------------------------

    def _keep_order(self, db: Any, run_id: str, event: Any) -> None:
        p = placeholder(db)
        creditor = _sealed_account(event.creditor)
        db.execute(
            "INSERT INTO pain001_orders (run_id, order_id, case_id, for_month, kind, amount, "  # noqa: S608
            "held, creditor_person_id, creditor_sealed, social_region, held_reason) "
            f"VALUES ({', '.join([p] * 11)}) ON CONFLICT (run_id, order_id) DO NOTHING",
            (
                run_id,
                str(event.order_id),
                str(event.case_id),
                _day(event.for_month),
                str(event.kind),
                str(_positive(event.amount, event.order_id)),
                1 if event.held else 0,
                str(creditor.person_id) if creditor else None,
                creditor.sealed if creditor else None,
                str(event.social_region),
                getattr(event, "held_reason", None),  # None in PaymentOrdered v1
            ),
        )
        _ensure_run(db, run_id)

    def _keep_approval(self, db: Any, run_id: str, event: Any) -> None:
        p = placeholder(db)
        _ensure_run(db, run_id)
        actor = event.actor
        approver = actor.get("user_id") if isinstance(actor, Mapping) else actor.user_id
        db.execute(
            f"UPDATE pain001_runs SET approved_at = {p}, approved_by = {p} "  # noqa: S608
            f"WHERE run_id = {p}",
            (_moment(event.timestamp), str(approver), run_id),
        )

    def awaiting_approval(self, tx: Any) -> list[str]:
        """The runs complete but not approved yet (their files wait for a second person)."""
        rows = tx.execute(
            "SELECT run_id FROM pain001_runs WHERE completed_at IS NOT NULL "
            "AND approved_at IS NULL AND state IN ('open', 'held') ORDER BY month, sequence"
        ).fetchall()
        return [run_id for (run_id,) in rows]

    def _keep_completion(self, db: Any, run_id: str, event: Any) -> None:
        p = placeholder(db)
        _ensure_run(db, run_id)
        db.execute(
            f"UPDATE pain001_runs SET completed_at = {p}, order_count = {p}, "  # noqa: S608
            f"paid_out_count = {p}, control_sum = {p}, claim_count = {p}, claim_sum = {p}, "
            f"held_count = {p}, held_sum = {p} "
            f"WHERE run_id = {p}",
            (
                _moment(event.timestamp),
                int(event.order_count),
                int(event.paid_out_count),
                str(Decimal(event.control_sum).quantize(_CENT)),
                int(event.claim_count),
                str(Decimal(event.claim_sum).quantize(_CENT)),
                int(event.held_count),
                str(Decimal(event.held_sum).quantize(_CENT)),
                run_id,
            ),
        )

    @staticmethod
    def _orders(db: Any, run_id: str) -> list[_Order]:
        p = placeholder(db)
        rows = db.execute(
            "SELECT order_id, case_id, for_month, kind, amount, held, creditor_person_id, "  # noqa: S608
            f"creditor_sealed, social_region, held_reason FROM pain001_orders WHERE run_id = {p} "
            "ORDER BY case_id, for_month, order_id",
            (run_id,),
        ).fetchall()
        return [
            _Order(
                order_id=order_id,
                case_id=case_id,
                for_month=for_month,
                kind=kind,
                amount=Decimal(amount),
                held=bool(held),
                creditor=SealedPayoutAccount(UUID(person), sealed) if person else None,
                social_region=region,
                held_reason=reason,
            )
            for order_id, case_id, for_month, kind, amount, held, person, sealed, region, reason
            in rows
        ]

    # --- context ------------------------------------------------------------------------------

    @property
    def outbox(self) -> Path:
        """The folder the files are written to (created)."""
        if self._outbox_option is not None:
            folder = (
                self.context.path(self._outbox_option)
                if self.context is not None
                else Path(self._outbox_option)
            )
        elif self.context is not None:
            folder = self.context.folder / "outbox"
        else:
            raise ValueError("option outbox: needed when the sink runs without the host")
        return self._files.folder(folder)

    @property
    def _files(self) -> PrivateFiles:
        """The host's writer of private files (every file here names persons or accounts)."""
        if self.context is None:
            raise RuntimeError(f"connector {self.name}: not bound to the host (no file writer)")
        return self.context.files

    @property
    def vault(self) -> PersonalDataVault:
        """The personal-data vault of the core (payout accounts are sealed with its keys)."""
        if self.context is None:
            raise RuntimeError(f"connector {self.name}: not bound to the host (no vault)")
        return self.context.service.vault


# --- helpers ------------------------------------------------------------------------------------


_WHOSE = "option"
_T = TypeVar("_T", str, str | None)


def _account(check: Callable[..., _T], value: str | None) -> _T:
    """`value` checked by `check` (`checked_iban`, `checked_bic`); the reason as a ValueError,
    which the options' model reports under the option's name."""
    try:
        return check(value, whose=_WHOSE)
    except InvalidAccountError as exc:
        raise ValueError(str(exc).removeprefix(f"{_WHOSE}: ")) from exc




def _ensure_run(db: Any, run_id: str) -> None:
    """A row for the run (its events may arrive in any order after a replay)."""
    p = placeholder(db)
    db.execute(
        f"INSERT INTO pain001_runs (run_id, state) VALUES ({p}, 'open') "  # noqa: S608
        "ON CONFLICT (run_id) DO NOTHING",
        (run_id,),
    )


def _run_id(event: Any) -> str:
    run_id = getattr(event, "run_id", None) or getattr(event, "originator_id", None)
    if run_id is None:
        raise Rejected(f"{type(event).__name__} without a run id")
    return str(run_id)


def _sealed_account(value: Any) -> SealedPayoutAccount | None:
    if value is None or isinstance(value, SealedPayoutAccount):
        return value
    if isinstance(value, Mapping) and {"person_id", "sealed"} <= set(value):
        return SealedPayoutAccount(UUID(str(value["person_id"])), str(value["sealed"]))
    raise Rejected(f"creditor account is not sealed ({type(value).__name__}); refused")


def _positive(amount: Any, order_id: Any) -> Decimal:
    value = Decimal(amount)
    if value <= 0 or value.quantize(_CENT) != value:
        raise Rejected(f"payment order {order_id}: amount {amount} is not a positive CHF amount")
    return value


def _amount(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _total(orders: Iterable[_Order]) -> Decimal:
    return sum((o.amount for o in orders), Decimal("0.00")).quantize(_CENT)


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _moment(value: datetime) -> str:
    if value.tzinfo is None:
        raise Rejected("an event time without time zone")
    return value.astimezone(UTC).isoformat()


def _report(db: Any, check: RunCheck) -> bytes:
    """What the run does not pay: claims back (to recover) and held orders (ordered again
    later). Ids and amounts only, no personal data."""
    p = placeholder(db)
    row = db.execute(
        "SELECT sequence, execution_date, control_sum, paid_out_count FROM pain001_runs "  # noqa: S608
        f"WHERE run_id = {p}",
        (check.run_id,),
    ).fetchone()
    sequence, execution_date, control_sum, paid_out_count = row
    not_paid = [
        {
            "order_id": o.order_id,
            "case_id": o.case_id,
            "for_month": o.for_month[:7],
            "kind": o.kind,
            "amount": str(o.amount),
            "reason": f"held: {o.held_reason or NO_USABLE_ACCOUNT}" if o.held
            else "claim back: to recover",
        }
        for o in check.orders
        if not o.paid_out
    ]
    report = {
        "run_id": check.run_id,
        "month": check.month[:7],
        "sequence": sequence,
        "execution_date": execution_date,
        "paid_out": {
            "count": paid_out_count,
            "sum": control_sum,
            "file": pain001_path(Path("."), check.run_id).name if paid_out_count else None,
        },
        "not_paid": not_paid,
    }
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_once(files: PrivateFiles, target: Path, content: bytes) -> bool:
    """Write `content` to `target` atomically (temporary file of mode 0600, fsync, rename)
    unless a file of that name is there already; True if it was written now."""
    if target.exists():
        return False
    files.write(target, content)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True

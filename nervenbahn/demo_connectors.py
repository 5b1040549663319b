"""The connector and audit parts of `nervenbahn demo`.

- one register delivery (eCH-0020): a move to another social region and a death, which become
  a handover and a closure proposal on the caseworkers' work lists;
- payout accounts for the supported households and a payment run for the current month,
  prepared by one demo administrator (`pay.office`) and approved by a second (`pay.control`,
  four-eyes: the run's file is released only then; the back-payments above the approval
  threshold are acknowledged case by case), and the same run again, which orders nothing; the
  case with the death proposal is held from the day after the death;
- with the bus up: the payments relay and the pain.001 sink (one file for the run);
- at the end: a signed checkpoint (with the head of the installation's access log, which the
  demo API wrote to), verification of the hash chains and snapshots, and an audit report.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schwifty import IBAN

from connectors.population_register.demo import demo_register_delivery
from domain.application.payments import PaymentService
from domain.application.settlement import Settlements
from domain.case import SWISS_TIME, Case
from domain.commands import Actor
from domain.payments import ApprovePaymentRun, RecordPayoutAccount, RunPayments
from domain.personal_data import PersonalData, SealedPersonalData
from nervenbahn.audit.access import access_log_check, access_log_to_sign
from nervenbahn.audit.checkpoints import SigningKey, export_checkpoints, write_checkpoint
from nervenbahn.audit.database import open_audit_database
from nervenbahn.audit.report import Verdict, build_case_report, write_case_report
from nervenbahn.audit.snapshots import verify_snapshots
from nervenbahn.audit.verify import verify_store
from nervenbahn.container import connectors_file
from nervenbahn.datasets import PAYMENT_ORDERS
from nervenbahn.demo_session import DemoSession
from nervenbahn.paths import store_folder

__all__ = [
    "DEMO_CONNECTORS",
    "DemoPayments",
    "audit_and_report",
    "deliver_payments",
    "pay_and_register",
    "write_demo_config",
]

SYSTEM = Actor("demo", "system", "so-canton")
PAY_OFFICE = Actor("pay.office", "administrator", "so-canton")
"""Who prepares the demo's payment run."""
PAY_CONTROL = Actor("pay.control", "administrator", "so-canton")
"""The second person who approves it (four-eyes)."""

DEMO_CONNECTORS = """\
# Written by `nervenbahn demo` (see connectors.example.toml and docs/connectors.md).
[connectors.population_register]
kind = "source"
class = "connectors.population_register:RegisterSource"
description = "eCH-0020 deliveries of the cantonal population register"
[connectors.population_register.options]
inbox = "inbox/register"
organisation = "so-canton"

[connectors.payments]
kind = "sink"
class = "connectors.payments.sink:Pain001Sink"
description = "ISO 20022 pain.001 file per monthly payment run"
[connectors.payments.options]
debtor_name = "Kanton Solothurn, Sozialhilfe"
debtor_iban = "CH9300762011623852957"
outbox = "outbox/payments"
"""


def write_demo_config(rt: DemoSession) -> Path:
    """The demo's connectors file in the store folder (kept if the user wrote one)."""
    path = connectors_file(rt.settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEMO_CONNECTORS, encoding="utf-8")
    return path


@dataclass
class DemoPayments:
    """What the payments part did, for the bus part and the summary."""

    payments: PaymentService
    run_id: uuid.UUID | None


def pay_and_register(rt: DemoSession, cases: Mapping[uuid.UUID, Case]) -> DemoPayments:
    """A register delivery, payout accounts, a payment run (twice); print what happened."""
    write_demo_config(rt)
    supported = [case for case in cases.values() if case.phase == "supported"]
    connectors = rt.container.connector_host(bus=False)
    try:
        by_region: dict[str, Case] = {}
        for case in supported:
            by_region.setdefault(case.social_region, case)
        moving, dying = list(by_region.values())[:2]
        report = demo_register_delivery(connectors, moving.id, dying.id)
    finally:
        connectors.close()
    rt.console.print(
        f"Population register: {report.summary()} — handover proposal on {moving.id} "
        f"({moving.social_region}), closure proposal (death) on {dying.id}."
    )
    payments = rt.container.payments
    with_budget = [case for case in cases.values() if case.budgets]
    for n, case in enumerate(with_budget):
        payments.record_account(
            RecordPayoutAccount(
                case_id=case.id,
                iban=str(IBAN.generate("CH", bank_code="00762", account_code=f"{n + 1:012d}")),
                holder=_holder(case),
                actor=SYSTEM,
                correlation_id=uuid.uuid4(),
            )
        )
    month = datetime.now(SWISS_TIME).date().replace(day=1)
    first = payments.run(RunPayments(month=month, actor=PAY_OFFICE,
                                     correlation_id=uuid.uuid4()))
    approval = _approve(payments, first.run_id)
    again = payments.run(RunPayments(month=month, actor=PAY_OFFICE,
                                     correlation_id=uuid.uuid4()))
    rt.console.print(
        f"Payout accounts for {len(with_budget)} households. {first.message} "
        f"({first.seconds:.1f} s; back-payments for earlier months included: no payment was "
        f"recorded before).\n{approval}\nThe same month again: {again.message}."
    )
    return DemoPayments(payments, first.run_id)


def _approve(payments: PaymentService, run_id: uuid.UUID | None) -> str:
    """The second demo administrator approves the run, acknowledging every back-payment
    above the threshold (a real approver checks each one first)."""
    if run_id is None:
        return "Nothing to approve."
    large = payments.pending_approval(run_id)
    result = payments.approve(ApprovePaymentRun(
        run_id=run_id, acknowledged=[b.case_id for b in large], actor=PAY_CONTROL,
        correlation_id=uuid.uuid4()))
    return (f"Run {run_id} prepared by {PAY_OFFICE.user_id}, approved by "
            f"{result.approved_by} (four-eyes), {len(large)} back-payments above CHF "
            f"{result.threshold} acknowledged one by one.")


def deliver_payments(rt: DemoSession, demo: DemoPayments) -> str:
    """Publish the payment run, let the pain.001 sink write its file; describe the result."""
    with rt.container.relay(PAYMENT_ORDERS) as relay:
        while relay.publish_next():
            pass
    connectors = rt.container.connector_host()
    try:
        report = connectors.run("payments", until_idle=True)
    finally:
        connectors.close()
    outbox = store_folder(rt.settings.store) / "outbox" / "payments"
    files = sorted(outbox.glob("*.xml"))
    written = ", ".join(str(path) for path in files) or "none"
    return f"Payments sink: {report.summary()}; pain.001 files: {written}"


def audit_and_report(rt: DemoSession, case_id: uuid.UUID, folder: Path) -> None:
    """Sign a checkpoint, export the auditor's copy, verify the hash chains against it, and
    write one audit report."""
    key = SigningKey.from_seed(rt.settings.signing_key.get_secret_value())
    path = rt.settings.api.access_log  # the demo API wrote to it
    access = access_log_to_sign(path)
    db = open_audit_database(rt.settings.store)
    try:
        checkpoint = write_checkpoint(db, key, **access)
        assert checkpoint is not None
        copy = folder / "auditor-checkpoints.jsonl"
        export_checkpoints(db, copy)
        result = verify_store(db, key.public, access_log=access_log_check(path))
        snapshots, mismatched = verify_snapshots(db, [rt.service])
    finally:
        db.close()
    chains = list(result.chains) + ([result.access_log] if result.access_log else [])
    records = sum(chain.records for chain in chains)
    as_of = datetime.now(SWISS_TIME)
    report = build_case_report(rt.service, case_id, as_of, now=datetime.now(UTC),
                               verifications=chains,
                               verdict=Verdict.of(result, "the system's own checkpoints"),
                               orders=rt.container.payments.orders(case_id),
                               settled=Settlements(rt.container.payments).answers_for(case_id))
    path = write_case_report(report, folder / f"audit-{case_id}.html")
    rt.console.print(
        f"Audit: checkpoint #{checkpoint.sequence} signed and exported to {copy}; "
        f"hash chains {'intact' if result.ok else 'BROKEN'} ({records} records in "
        f"{len(chains)} chains); {snapshots} snapshots recomputed from their events, "
        f"{len(mismatched)} differ.\nAudit report of case {case_id} as of now: {path}"
    )


def _holder(case: Case) -> str:
    applicant = case.applicant
    if isinstance(applicant, SealedPersonalData):
        applicant = applicant.open()
    if isinstance(applicant, PersonalData):
        return f"{applicant.given_name} {applicant.family_name}"
    return "Unknown holder"


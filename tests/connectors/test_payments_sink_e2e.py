"""The payments sink end to end on the real broker: payment run → payments relay → topic →
connector runtime → one pain.001 file; delivered again → still that one file; a crash in the
middle of a batch → resumed, one file, no transaction twice."""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest

from bus.consumer import Received
from bus.kafka_settings import KafkaSettings
from connectors.host import ConnectorHost, ConnectorSpec
from connectors.payments.pain001 import NAMESPACE, validate_pain001
from connectors.payments.sink import Pain001Sink, pain001_path
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from domain.commands import swiss_today
from domain.payments import ApprovePaymentRun, RecordPayoutAccount, RunPayments
from nervenbahn.container import (
    Container,
    build_payment_service,
    build_service,
    close_service,
    private_files,
)
from tests.bus.pipeline import open_supported_case, store_settings

NS = {"p": NAMESPACE}
DEBTOR = {"debtor_name": "Sozialregion Olten", "debtor_iban": "CH93 0076 2011 6238 5295 7"}
ADMIN = {"user_id": "fin-so-01", "role": "administrator", "organisation": "so-finance"}
APPROVER = {"user_id": "fin-so-02", "role": "administrator", "organisation": "so-finance"}
PAYEES = [  # (holder, IBAN): valid Swiss IBANs
    ("Nora Beispiel0", "CH5604835012345678009"),
    ("Nora Beispiel1", "CH3608387000001080173"),
    ("Nora Beispiel2", "CH9300762011623852957"),
]


@dataclass
class World:
    """A store with cases and payout accounts, its payments service and its bus."""

    tmp_path: Path
    service: CaseService
    payments: PaymentService
    container: Container
    cases: list[UUID]
    name: str
    """The connector's name, the test's own: consumer groups are shared across topic
    prefixes on one broker, so the group (`connector-<name>`) must be too."""

    def run_payments(self) -> UUID:
        data: dict[str, Any] = {
            "actor": ADMIN,
            "correlation_id": uuid.uuid4(),
            "month": swiss_today().strftime("%Y-%m"),
        }
        summary = self.payments.run(RunPayments(**data))
        assert summary.recorded
        assert summary.run_id is not None
        self.payments.approve(ApprovePaymentRun(actor=APPROVER, correlation_id=uuid.uuid4(),
                                                run_id=summary.run_id))
        relay = self.container.relay("payment-orders")
        try:
            relay.run(threading.Event(), until_caught_up=True)
        finally:
            relay.close()
        return summary.run_id

    def runtime(self, class_path: str = "connectors.payments.sink:Pain001Sink") -> ConnectorHost:
        spec = ConnectorSpec(
            name=self.name,
            kind="sink",
            class_path=class_path,
            options={**DEBTOR, "outbox": "outbox"},
            base=self.tmp_path,
        )
        return ConnectorHost(
            {self.name: spec}, self.service, self.tmp_path / "connectors", lambda: self.container,
            files=private_files(),
        )

    @property
    def outbox(self) -> Path:
        return self.tmp_path / "outbox"

    def expected_amounts(self) -> dict[str, Decimal]:
        """Per payee: the full month under the case's one budget (support from the 1st)."""
        return {
            holder: self.service.get_case(case_id).budgets[-1].total.quantize(Decimal("0.01"))
            for case_id, (holder, _) in zip(self.cases, PAYEES, strict=False)
        }


@pytest.fixture
def world(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings) -> Iterator[World]:
    settings = store_settings(tmp_path, master_key)
    service = build_service(settings)
    payments = build_payment_service(settings, service)
    bus = Container(settings, kafka=kafka_settings, service=service)
    cases = [open_supported_case(service, n) for n in range(4)]
    for case_id, (holder, iban) in zip(cases, PAYEES, strict=False):  # the 4th has none: held
        data: dict[str, Any] = {"actor": ADMIN, "correlation_id": uuid.uuid4(),
                                "case_id": case_id, "iban": iban, "holder": holder}
        payments.record_account(RecordPayoutAccount(**data))
    try:
        yield World(tmp_path, service, payments, bus, cases, f"payments_{uuid.uuid4().hex[:8]}")
    finally:
        bus.close()
        close_service(service)


def transfers(path: Path) -> list[tuple[str, str, str, str]]:
    """(end-to-end id, holder, IBAN, amount) of every transaction in a file."""
    root = ET.fromstring(path.read_bytes())
    return [
        (
            tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS) or "",
            tx.findtext("p:Cdtr/p:Nm", namespaces=NS) or "",
            tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) or "",
            tx.findtext("p:Amt/p:InstdAmt", namespaces=NS) or "",
        )
        for tx in root.iterfind(".//p:CdtTrfTxInf", NS)
    ]


def assert_one_correct_file(world: World, run_id: UUID) -> bytes:
    files = sorted(p.name for p in world.outbox.iterdir())
    assert files == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    path = pain001_path(world.outbox, str(run_id))
    content = path.read_bytes()
    validate_pain001(content)
    rows = transfers(path)
    expected = world.expected_amounts()
    assert {(holder, amount) for _, holder, _, amount in rows} == {
        (holder, str(amount)) for holder, amount in expected.items()
    }
    assert {iban for _, _, iban, _ in rows} == {iban for _, iban in PAYEES}
    assert len({end_to_end for end_to_end, *_ in rows}) == len(rows) == 3  # none twice
    root = ET.fromstring(content)
    assert root.findtext(".//p:GrpHdr/p:MsgId", namespaces=NS) == run_id.hex
    assert root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == str(sum(expected.values()))
    return content


@pytest.mark.slow
def test_payment_run_reaches_the_bank_file_once(world: World) -> None:
    run_id = world.run_payments()

    runtime = world.runtime()
    try:
        report = runtime.run(world.name, until_idle=True)
    finally:
        runtime.close()
    assert report.ok, report.stopped_by
    assert report.delivered == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    first = assert_one_correct_file(world, run_id)

    # The same run delivered a second time: the consumer's database is lost, every event
    # comes again; the file in the outbox is found identical and nothing else is written.
    (world.tmp_path / "connectors" / f"{world.name}.db").unlink()
    replay = world.runtime()
    try:
        report = replay.run(world.name, until_idle=True)
        assert report.ok, report.stopped_by
        assert report.handled > 0
        assert report.delivered == []  # found in place, only marked
        assert assert_one_correct_file(world, run_id) == first

        again = replay.run(world.name, until_idle=True)  # nothing new on the topic
        assert again.delivered == []
        status = replay.status_of(world.name)
        assert status.lag == 0
        assert status.errors == []
    finally:
        replay.close()
    assert assert_one_correct_file(world, run_id) == first


class SimulatedCrash(BaseException):
    """The process dies (not an error a handler reports)."""


class CrashingSink(Pain001Sink):
    """Dies once, on the third payment order, in the middle of the batch."""

    orders_seen: ClassVar[int] = 0
    crashed: ClassVar[bool] = False

    def handle(self, received: Received, tx: Any) -> None:
        if received.event_type == "PaymentOrdered" and not CrashingSink.crashed:
            CrashingSink.orders_seen += 1
            if CrashingSink.orders_seen == 3:
                CrashingSink.crashed = True
                raise SimulatedCrash
        super().handle(received, tx)


@pytest.mark.slow
def test_crash_mid_batch_resumes_without_loss_or_duplicate(world: World) -> None:
    run_id = world.run_payments()
    CrashingSink.orders_seen, CrashingSink.crashed = 0, False

    crashing = world.runtime(f"{__name__}:CrashingSink")
    try:
        with pytest.raises(SimulatedCrash):
            crashing.run(world.name, until_idle=True)
    finally:
        crashing.close()
    assert CrashingSink.crashed
    assert not pain001_path(world.outbox, str(run_id)).exists()

    resumed = world.runtime(f"{__name__}:CrashingSink")
    try:
        report = resumed.run(world.name, until_idle=True)
    finally:
        resumed.close()
    assert report.ok, report.stopped_by
    assert report.rejected == 0
    assert_one_correct_file(world, run_id)

"""The payments sink on its own: real payment-run events (as the domain records them), the real
vault and a real SQLite consumer database; one pain.001 file per run, exactly once, and a run
whose orders do not add up is held with its reason."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from bus.consumer import Received, Rejected
from bus.effects import EffectStore
from bus.effects_sqlite import SQLiteEffectStore
from connectors.options import OptionsError
from connectors.payments.pain001 import NAMESPACE, SCHEMA_FILE, validate_pain001
from connectors.payments.sink import Pain001Sink, pain001_path, report_path
from connectors.sdk import ConnectorContext
from domain.application.cases import CaseService
from domain.payments import (
    AccountSealer,
    ApprovePaymentRun,
    OrderDraft,
    PaymentRun,
    PayoutAccountDetails,
    RunPayments,
    SealedPayoutAccount,
)
from domain.personal_data import ErasureSubject
from nervenbahn.container import build_service, close_service, private_files
from schemas.sql import placeholder
from tests.bus.pipeline import store_settings
from tests.connectors.sink_stores import BACKENDS, open_sink_store

NS = {"p": NAMESPACE}
MONTH = date(2026, 3, 1)
RUN_AT = datetime(2026, 3, 24, 8, 0, tzinfo=UTC)
DEBTOR_IBAN = "CH9300762011623852957"
ACTOR = {"user_id": "fin-olten-01", "role": "caseworker", "organisation": "so-olten"}
APPROVER = {"user_id": "fin-control-01", "role": "administrator", "organisation": "so-canton"}
OPTIONS = {"debtor_name": "Sozialregion Olten", "debtor_iban": DEBTOR_IBAN}

# Payees: (holder, IBAN) — valid Swiss IBANs (mod 97 checked by hand).
ANNA = ("Anna Müller", "CH5604835012345678009")
BRUNO = ("Bruno Gerber", "CH3608387000001080173")
CLARA = ("Clara Rossi", "CH9300762011623852957")


@pytest.fixture
def service(tmp_path: Path, master_key: str) -> Iterator[CaseService]:
    built = build_service(store_settings(tmp_path, master_key))
    yield built
    close_service(built)


@pytest.fixture(params=BACKENDS)
def consumer_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EffectStore]:
    store = open_sink_store(request, tmp_path / "sink.db")
    yield store
    store.close()


class Payees:
    """Seals payout accounts as the domain does: with the applicant's own data key."""

    def __init__(self, service: CaseService) -> None:
        self.vault = service.vault
        self.sealer = AccountSealer(service.vault)
        self.persons: dict[str, UUID] = {}

    def account(self, holder: str, iban: str) -> SealedPayoutAccount:
        person = self.persons.setdefault(holder, uuid4())
        self.vault.ensure_keys([person])
        return self.sealer.seal(person, PayoutAccountDetails(iban=iban, holder=holder))


def draft(
    case_id: UUID,
    kind: str,
    amount: str,
    creditor: SealedPayoutAccount | None,
    *,
    for_month: date = MONTH,
    held: bool = False,
) -> OrderDraft:
    return OrderDraft(
        case_id=case_id,
        for_month=for_month,
        kind=kind,  # type: ignore[arg-type]
        amount=Decimal(amount),
        held=held,
        creditor=creditor,
        social_region="olten",
        entitlement=Decimal(amount),
        previously_ordered=Decimal("0.00"),
        budget_effective_date=for_month,
        budget_recorded_at=RUN_AT,
    )


def run_events(
    drafts: list[OrderDraft], *, sequence: int = 1, approved: bool = True
) -> list[Any]:
    """The events the domain records for one run: started, one per order, completed, and
    (unless `approved` is False) a second person's approval."""
    data: dict[str, Any] = {"actor": ACTOR, "correlation_id": uuid4(), "month": "2026-03"}
    cmd = RunPayments(**data)
    run = PaymentRun.record(cmd, sequence, date(2026, 3, 26), drafts, RUN_AT)
    if approved:
        run.approve(ApprovePaymentRun(actor=APPROVER, correlation_id=uuid4(), run_id=run.id),
                    Decimal("5000.00"), [], RUN_AT)
    return list(run.collect_events())


def received(events: Sequence[Any]) -> list[Received]:
    return [
        Received(
            event=event,
            event_id=uuid5(event.originator_id, str(event.originator_version)),
            event_type=type(event).__name__,
            topic="test.payments.payment-orders.v1",
            partition=0,
            offset=offset,
            headers={},
        )
        for offset, event in enumerate(events)
    ]


def make_sink(service: CaseService, tmp_path: Path, **options: Any) -> Pain001Sink:
    sink = Pain001Sink("payments", {**OPTIONS, **options})
    sink.bind(ConnectorContext(service=service, folder=tmp_path / "connector", base=tmp_path,
                                files=private_files()))
    return sink


def consume(sink: Pain001Sink, store: EffectStore, events: Sequence[Any]) -> list[str]:
    """What the runtime does: handle a batch in one transaction, then deliver."""
    with store.transaction() as tx:
        sink.setup(tx)
        for item in received(events):
            sink.handle(item, tx)
    with store.transaction() as tx:
        return sink.deliver(tx)


def problems(sink: Pain001Sink, store: EffectStore) -> list[str]:
    with store.transaction() as tx:
        return sink.problems(tx)


def outbox_files(sink: Pain001Sink) -> list[str]:
    return sorted(path.name for path in sink.outbox.iterdir())


@pytest.fixture
def payees(service: CaseService) -> Payees:
    return Payees(service)


CASES = [UUID(int=n) for n in range(1, 6)]


def mixed_run(payees: Payees) -> list[Any]:
    """Two regular payouts, a back-payment, a claim back and a held order."""
    return run_events(
        [
            draft(CASES[0], "regular", "1520.35", payees.account(*ANNA)),
            draft(CASES[1], "regular", "980.00", payees.account(*BRUNO)),
            draft(CASES[1], "back_payment", "45.50", payees.account(*BRUNO),
                  for_month=date(2026, 1, 1)),
            draft(CASES[2], "claim_back", "120.00", payees.account(*CLARA),
                  for_month=date(2026, 2, 1)),
            draft(CASES[3], "regular", "700.00", None, held=True),
        ]
    )


def test_run_becomes_one_pain001_file_with_only_the_payouts(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    run_id = str(events[0].originator_id)

    written = consume(sink, consumer_db, events)

    assert written == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    assert outbox_files(sink) == sorted(written)
    root = ET.fromstring(pain001_path(sink.outbox, run_id).read_bytes())
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert header is not None
    assert header.findtext("p:MsgId", namespaces=NS) == UUID(run_id).hex
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "3"
    assert header.findtext("p:CtrlSum", namespaces=NS) == "2545.85"  # 1520.35 + 980.00 + 45.50
    # 08:00 UTC on 24 March 2026 = 09:00 in Zurich (CET)
    assert header.findtext("p:CreDtTm", namespaces=NS) == "2026-03-24T09:00:00"
    transfers = {
        (
            tx.findtext("p:Cdtr/p:Nm", namespaces=NS),
            tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS),
            tx.findtext("p:Amt/p:InstdAmt", namespaces=NS),
            tx.findtext("p:RmtInf/p:Ustrd", namespaces=NS),
        )
        for tx in root.iterfind(".//p:CdtTrfTxInf", NS)
    }
    assert transfers == {
        (*ANNA, "1520.35", "Sozialhilfe 2026-03"),
        (*BRUNO, "980.00", "Sozialhilfe 2026-03"),
        (*BRUNO, "45.50", "Sozialhilfe Nachzahlung 2026-01"),
    }
    end_to_end = {tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS)
                  for tx in root.iterfind(".//p:CdtTrfTxInf", NS)}
    ordered = {e.order_id.hex for e in events if type(e).__name__ == "PaymentOrdered"
               and e.kind != "claim_back" and not e.held}
    assert end_to_end == ordered
    assert root.findtext(".//p:ReqdExctnDt/p:Dt", namespaces=NS) == "2026-03-26"

    report = json.loads(report_path(sink.outbox, run_id).read_text())
    assert report["paid_out"] == {"count": 3, "sum": "2545.85",
                                  "file": f"pain001-{run_id}.xml"}
    assert sorted((r["case_id"], r["kind"], r["amount"]) for r in report["not_paid"]) == [
        (str(CASES[2]), "claim_back", "120.00"),
        (str(CASES[3]), "regular", "700.00"),
    ]
    assert "Clara" not in report_path(sink.outbox, run_id).read_text()  # no personal data
    assert problems(sink, consumer_db) == []


def test_a_run_without_a_second_approval_releases_no_file(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    approval = events.pop()
    assert type(approval).__name__ == "PaymentRunApproved"
    run_id = str(events[0].originator_id)

    assert consume(sink, consumer_db, events) == []
    assert outbox_files(sink) == []
    assert problems(sink, consumer_db) == []  # waiting is no problem
    with consumer_db.transaction() as tx:
        assert sink.awaiting_approval(tx) == [run_id]
        assert sink.deliver(tx) == []  # however often it looks

    written = consume(sink, consumer_db, [approval])
    assert written == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    with consumer_db.transaction() as tx:
        assert sink.awaiting_approval(tx) == []
        p = placeholder(tx)
        row = tx.execute(f"SELECT approved_by, state FROM pain001_runs WHERE run_id = {p}",
                         (run_id,)).fetchone()
    assert tuple(row) == (APPROVER["user_id"], "delivered")


def test_delivering_again_writes_nothing_more(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    consume(sink, consumer_db, events)
    run_id = str(events[0].originator_id)
    first = pain001_path(sink.outbox, run_id).read_bytes()

    with consumer_db.transaction() as tx:
        assert sink.deliver(tx) == []
    assert outbox_files(sink) == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    assert pain001_path(sink.outbox, run_id).read_bytes() == first


def test_crash_after_the_file_before_the_commit_gives_the_same_single_file(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    run_id = str(events[0].originator_id)
    with consumer_db.transaction() as tx:
        sink.setup(tx)
        for item in received(events):
            sink.handle(item, tx)

    class Crash(BaseException):
        pass

    def deliver_then_crash() -> None:
        with consumer_db.transaction() as tx:
            sink.deliver(tx)
            raise Crash  # the files are renamed into place, the mark is rolled back

    with pytest.raises(Crash):
        deliver_then_crash()
    first = pain001_path(sink.outbox, run_id).read_bytes()

    with consumer_db.transaction() as tx:
        assert tx.execute("SELECT state FROM pain001_runs").fetchall() == [("open",)]
        assert sink.deliver(tx) == []  # found in place: not written again, only marked
        assert tx.execute("SELECT state, file FROM pain001_runs").fetchall() == [
            ("delivered", f"pain001-{run_id}.xml")
        ]
    assert pain001_path(sink.outbox, run_id).read_bytes() == first
    assert outbox_files(sink) == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]


def test_same_events_in_a_new_consumer_database_reproduce_the_same_file(
    service: CaseService, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    run_id = str(events[0].originator_id)
    first_db = SQLiteEffectStore(tmp_path / "first.db")
    consume(sink, first_db, events)
    first = pain001_path(sink.outbox, run_id).read_bytes()
    first_db.close()

    replay_db = SQLiteEffectStore(tmp_path / "replay.db")  # e.g. the consumer's state was lost
    consume(sink, replay_db, events)
    assert problems(sink, replay_db) == []
    replay_db.close()

    assert pain001_path(sink.outbox, run_id).read_bytes() == first
    assert outbox_files(sink) == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]


def test_missing_order_holds_the_run_until_it_arrives(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    run_id = str(events[0].originator_id)
    missing = events[2]  # the second order

    assert consume(sink, consumer_db, [e for e in events if e is not missing]) == []
    assert outbox_files(sink) == []
    [held] = problems(sink, consumer_db)
    assert held.startswith(f"run {run_id} (2026-03 #1) held: orders differ")
    assert "says 5" in held
    assert "give 4" in held

    written = consume(sink, consumer_db, [missing])  # e.g. replayed from the dead-letter topic
    assert written == [f"pain001-{run_id}.report.json", f"pain001-{run_id}.xml"]
    assert problems(sink, consumer_db) == []


def test_control_sum_that_differs_holds_the_run(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = mixed_run(payees)
    completed = events[-2]
    events[-2] = dataclasses.replace(completed, control_sum=Decimal("2545.86"))

    assert consume(sink, consumer_db, events) == []
    assert outbox_files(sink) == []
    [held] = problems(sink, consumer_db)
    assert "control sum differ" in held
    assert "2545.86" in held
    assert "2545.85" in held


def test_invalid_payout_iban_holds_the_run_naming_the_order(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    broken = payees.account("Dora Keller", "CH5604835012345678000")  # check digits wrong
    events = run_events(
        [
            draft(CASES[0], "regular", "1520.35", payees.account(*ANNA)),
            draft(CASES[4], "regular", "800.00", broken),
        ]
    )
    order = next(e.order_id for e in events
                 if type(e).__name__ == "PaymentOrdered" and e.case_id == CASES[4])

    assert consume(sink, consumer_db, events) == []
    assert outbox_files(sink) == []
    [held] = problems(sink, consumer_db)
    assert str(order) in held
    assert f"case {CASES[4]}" in held
    assert "invalid IBAN" in held


def test_erased_payee_holds_the_run(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = run_events([draft(CASES[0], "regular", "1520.35", payees.account(*ANNA))])
    service.vault.erase(payees.persons[ANNA[0]])

    assert consume(sink, consumer_db, events) == []
    [held] = problems(sink, consumer_db)
    assert "payout account was erased" in held


def test_erasure_rewrites_the_delivered_file_and_records_its_new_digest(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = run_events([draft(CASES[0], "regular", "1520.35", payees.account(*ANNA)),
                         draft(CASES[1], "regular", "980.00", payees.account(*BRUNO))])
    run_id = str(events[0].originator_id)
    consume(sink, consumer_db, events)
    path = pain001_path(sink.outbox, run_id)
    subject = ErasureSubject(payees.persons[ANNA[0]])

    with consumer_db.transaction() as tx:
        [erased] = sink.erase(subject, tx)
    with consumer_db.transaction() as tx:
        [again] = sink.erase(subject, tx)
        (digest,) = tx.execute(
            f"SELECT file_sha256 FROM pain001_runs WHERE run_id = {placeholder(tx)}", (run_id,)
        ).fetchone()

    content = path.read_bytes()
    assert (erased.path, erased.outcome) == (str(path), "rewritten")
    assert again.outcome == "checked"
    assert ANNA[0].encode() not in content and ANNA[1].encode() not in content
    assert BRUNO[0].encode() in content and BRUNO[1].encode() in content
    assert digest == sha256(content).hexdigest()
    validate_pain001(content)
    with consumer_db.transaction() as tx:
        assert sink.erase(ErasureSubject(uuid4()), tx) == []


def test_other_file_under_the_run_name_is_never_replaced(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = run_events([draft(CASES[0], "regular", "1520.35", payees.account(*ANNA))])
    run_id = str(events[0].originator_id)
    foreign = pain001_path(sink.outbox, run_id)
    foreign.write_bytes(b"<sent earlier/>")

    assert consume(sink, consumer_db, events) == []
    assert foreign.read_bytes() == b"<sent earlier/>"
    [held] = problems(sink, consumer_db)
    assert "exists with other content" in held


def test_run_without_payouts_writes_only_the_report(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = run_events(
        [draft(CASES[2], "claim_back", "120.00", None, for_month=date(2026, 2, 1))]
    )
    run_id = str(events[0].originator_id)

    assert consume(sink, consumer_db, events) == [f"pain001-{run_id}.report.json"]
    report = json.loads(report_path(sink.outbox, run_id).read_text())
    assert report["paid_out"] == {"count": 0, "sum": "0.00", "file": None}
    assert [r["amount"] for r in report["not_paid"]] == ["120.00"]


def test_clear_creditor_account_is_rejected(
    service: CaseService, consumer_db: EffectStore, payees: Payees, tmp_path: Path
) -> None:
    sink = make_sink(service, tmp_path)
    events = run_events([draft(CASES[0], "regular", "1520.35", payees.account(*ANNA))])
    order = dataclasses.replace(events[1], creditor=PayoutAccountDetails(*reversed(ANNA)))
    with consumer_db.transaction() as tx:
        sink.setup(tx)
        with pytest.raises(Rejected, match="not sealed"):
            sink.handle(received([order])[0], tx)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"debtor_name": "SR Olten"}, "debtor_iban: required"),
        ({"debtor_iban": DEBTOR_IBAN}, "debtor_name: required"),
        ({"debtor_name": " ", "debtor_iban": DEBTOR_IBAN}, "debtor_name: String should have"),
        ({"debtor_name": "SR Olten", "debtor_iban": "CH00"}, "debtor_iban: invalid IBAN"),
        ({**OPTIONS, "debtor_bic": "UBSWXXZH"}, "debtor_bic: invalid BIC"),
        ({**OPTIONS, "outbox": 7}, "outbox: Input should be a valid string, not an integer"),
        ({**OPTIONS, "remitance": "Sozialhilfe"}, "remitance: unknown option (declared: "),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, str], reason: str) -> None:
    with pytest.raises(OptionsError) as refused:
        Pain001Sink("payments", options)
    assert str(refused.value).startswith("connectors.payments.options." + reason)


def test_schema_file_is_the_sps_version() -> None:
    assert SCHEMA_FILE.name == "pain.001.001.09.ch.03.xsd"
    assert "Based on ISO pain.001.001.09" in SCHEMA_FILE.read_text(encoding="utf-8")[:600]

"""The reference fund application pays claims, end to end on the embedded broker through
`serve`: two cases advanced in view of their applicants' EL applications, paid a month,
the EL granted, the claims process records each case's claim; each claim goes on the claims
topic (written here with confluent-kafka's AvroSerializer against the served registry, until
nervenbahn's claims relay writes it); the fund application writes one pain.001 file per claim
(valid against the SIX schema, the claim to the social region, the surplus to the person),
reports `ClaimPaid` on the decisions topic, and the fund-decisions connector records
`ReimbursementPaid` on each case.

CRASH: the fund application is killed (SIGKILL) right after it says it wrote its first payment
file, and started again: the file is not written again (same bytes, one file per claim), the
second claim is paid, and each case records its payment once, although the first claim's
report may have been sent twice (or once, by the second run only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.topics import TopicSpec, catalogue, ensure_topics
from connectors.payments.pain001 import validate_pain001
from domain import benefit_commands as bc
from domain.application.claims import AdvanceClaims
from domain.commands import Actor, parse_command
from domain.events import Claim, ReimbursementPaid
from domain.payments import RecordPayoutAccount, RunPayments
from domain.reference import load_benefit_checklists
from nervenbahn.container import Container
from schemas import load_schema
from tests.bus.fund_runs import run_fund, run_fund_until_it_paid_then_kill
from tests.bus.pipeline import CASEWORKER, Pipeline, open_supported_case, store_settings
from tests.bus.test_registry_served import serving_bus_readers
from tests.bus.waiting import wait_until
from tests.domain.case_desk import person_input

GRENCHEN = 2546
OFFICE = Actor("eva.frei", "branch_office", "akso-grenchen")
FUND = Actor("fund.officer", "fund_officer", "akso")
ADMIN = Actor("pay.office", "administrator", "so-canton")
SWISS = ZoneInfo("Europe/Zurich")
MONTHLY_EL = Decimal("5000.00")
"""Above any one-person budget: the claim is what the case was paid, the rest the person's."""


def test_the_fund_pays_each_claim_once_and_the_case_records_it_even_after_a_crash(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    outbox = tmp_path / "fund-outbox"
    with _store_with_bus(tmp_path, master_key, kafka_settings) as line:
        cases = [_advanced_and_granted(line, n) for n in (1, 2)]
        outcomes = AdvanceClaims(line.service, line.container.benefits,
                                 line.container.payments).run()
        assert sorted(o.events for o in outcomes) == [("AdvanceEnded", "ReimbursementRecorded",
                                                      "ClosureProposed")] * 2
        claims = {case_id: _claim_of(line, case_id) for case_id in cases}
        decisions = line.container.topic("decisions").name
        topic = decisions.replace(".decisions.", ".claims.")
        ensure_topics(line.container.kafka, [TopicSpec(topic, kafka_settings.partitions)])
        with serving_bus_readers(line, tmp_path) as (server, key):
            _publish_claims(server.url, key, kafka_settings, topic, line, claims)
            options = ("--claims", topic, "--payments-dir", str(outbox))
            killed = run_fund_until_it_paid_then_kill(server.url, key, *options)
            (first,) = [x for x in killed if "claim_paid" in x]
            written = (outbox / first["file"]).read_bytes()
            # Killed as soon as it said it paid the first: it may have written the second
            # file too by then (the kill races it), never half of one.
            at_kill = len(list(outbox.glob("claim-*.xml")))
            rerun = run_fund(server.url, key, *options)
            wait_until(lambda: all(_claim_of(line, c).is_paid for c in cases), within=60,
                       what="both claims recorded paid")
            paid_events = {c: [e for e in line.service.events.get(c)
                               if isinstance(e, ReimbursementPaid)] for c in cases}
            recorded = {c: _claim_of(line, c) for c in cases}
            again = run_fund(server.url, key, *options)  # a third run: nothing new

    files = sorted(outbox.glob("claim-*.xml"))
    assert [f.name for f in files] == sorted(
        f"claim-{event_id(c, claims[c].case_version or 0).hex}.xml" for c in cases)
    assert list(outbox.glob(".*.tmp")) == []  # no temporary file left by the crash
    assert (outbox / first["file"]).read_bytes() == written  # not written again
    for path in files:
        validate_pain001(path.read_bytes())
    lines = [x for x in rerun if "claim_paid" in x]
    assert at_kill in (1, 2)
    # what the killed run wrote is only re-sent; what it did not reach is paid now, once
    assert sorted(x["paid_already"] for x in lines) == [False] * (2 - at_kill) + [True] * at_kill
    assert {x["file"] for x in lines} == {f.name for f in files}
    assert rerun[-1]["payments"] == {"written": 2 - at_kill, "paid_already": at_kill}
    assert again[-1]["payments"] == {"written": 0, "paid_already": 2}
    for case_id in cases:
        claim = claims[case_id]
        assert claim.claim_total > 0 and claim.surplus_total > 0  # both payees
        (event,) = paid_events[case_id]  # recorded once, whatever was sent
        assert (event.to_region, event.to_person, event.claim_version) == (
            claim.claim_total, claim.surplus_total, claim.case_version)
        assert recorded[case_id].payment_message_id == event_id(
            case_id, claim.case_version or 0).hex
        assert recorded[case_id].paid_on == datetime.now(SWISS).date()
        line_of = next(x for x in lines if x["claim_paid"] == str(
            event_id(case_id, claim.case_version or 0)))
        assert (Decimal(line_of["to_region"]), Decimal(line_of["to_person"])) == (
            claim.claim_total, claim.surplus_total)
        assert claim.claim_total + claim.surplus_total == MONTHLY_EL


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def _store_with_bus(tmp_path: Path, master_key: str, kafka: KafkaSettings) -> Iterator[Pipeline]:
    """Like `tests.bus.pipeline.pipeline`, but the container builds the case service, so that
    it looks benefit applications up (advances)."""
    settings = store_settings(tmp_path, master_key)
    container = Container(settings, kafka=kafka)
    ensure_topics(kafka, catalogue(kafka))
    try:
        yield Pipeline(settings, container.service, container)
    finally:
        container.close()


def _advanced_and_granted(line: Pipeline, n: int) -> UUID:
    """A supported case (Olten) advanced this month in view of its applicant's EL
    application, paid this month, and the EL granted from this month."""
    service, benefits = line.service, line.container.benefits
    case_id: UUID = open_supported_case(service, n)
    person = service.get_case(case_id).applicant.person_id
    today = datetime.now(SWISS).date()
    month = today.replace(day=1)

    def benefit(name: str, actor: Actor, **fields: Any) -> Any:
        return benefits.execute(bc.BENEFIT_COMMANDS[name](
            actor=actor, correlation_id=uuid.uuid4(), **fields))

    application_id: UUID = benefit(
        "receive_application", OFFICE, kind="el_ahv", municipality_bfs=GRENCHEN,
        applicant=person_input(n, person_id=str(person)), received_on=today).id
    benefit("check_completeness", OFFICE, application_id=application_id,
            documents_present=sorted(d.code for d in load_benefit_checklists()["el_ahv"]))
    benefit("forward_application", OFFICE, application_id=application_id)
    service.execute(parse_command("start_advance", {
        "actor": CASEWORKER, "correlation_id": str(uuid.uuid4()), "case_id": str(case_id),
        "application_id": str(application_id), "advance_from": month.isoformat(),
        "commitment_kind": "commitment", "commitment_date": today.isoformat()}))
    payments = line.container.payments
    payments.record_account(RecordPayoutAccount(
        actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id,
        iban="CH93 0076 2011 6238 5295 7", holder=f"N. Beispiel{n}"))
    payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(), month=f"{month:%Y-%m}"))
    benefit("grant_benefit", FUND, application_id=application_id, from_month=f"{month:%Y-%m}",
            amounts=[{"from_month": f"{month:%Y-%m}", "monthly_chf": str(MONTHLY_EL)}])
    return case_id


def _claim_of(line: Pipeline, case_id: UUID) -> Claim:
    (claim,) = line.service.get_case(case_id).claims
    return claim


def _publish_claims(url: str, key: str, kafka: KafkaSettings, topic: str, line: Pipeline,
                    claims: dict[UUID, Claim]) -> None:
    """Each claim as the claims relay will write it: the schema registered in the served
    registry, the records written with confluent-kafka's AvroSerializer (latest version)."""
    record = "ch.nervenbahn.benefits.ReimbursementClaim"
    line.container.registry.register(f"{topic}-{record}",
                                     load_schema("benefits", "ReimbursementClaim"))
    registry = SchemaRegistryClient({"url": f"{url}/registry",
                                     "basic.auth.user.info": f"vendor-app:{key}"})
    latest = registry.get_latest_version(f"{topic}-{record}").schema.schema_str
    serialize = AvroSerializer(registry, latest, conf={
        "auto.register.schemas": False, "use.latest.version": True,
        "subject.name.strategy": topic_record_subject_name_strategy})
    producer = Producer({"bootstrap.servers": ",".join(kafka.bootstrap_servers)})
    for case_id, claim in claims.items():
        value = serialize(_claim_record(line, case_id, claim),
                          SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=str(claim.application_id).encode(), value=value)
    assert producer.flush(30) == 0


def _claim_record(line: Pipeline, case_id: UUID, claim: Claim) -> dict[str, Any]:
    assert claim.case_version is not None
    months = [vars(m) for m in claim.months]
    return {"claim_id": str(event_id(case_id, claim.case_version)),
            "application_id": str(claim.application_id), "case_id": str(case_id),
            "case_version": claim.case_version,
            "region": line.service.get_case(case_id).social_region, "sequence": 1,
            "recorded_on": claim.recorded_on, "months": months,
            "corrections": [vars(m) for m in claim.corrections],
            "claim_total": claim.claim_total, "surplus_total": claim.surplus_total,
            "ipv_offset_total": claim.ipv_offset_total}

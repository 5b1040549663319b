"""The claims process inside `serve` (worker `advance-claims`), on the real store and the
embedded broker: the fund's grant of an advanced application, written to the decisions topic,
becomes a recorded claim on the case and a message on the claims topic with no CLI call, and
a claims worker that fails is restarted by the supervisor and does its work."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bus.benefits_codec import FundDecision, FundDecisionCodec
from bus.broker import free_port
from bus.claims_codec import ReimbursementClaimCodec
from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from domain.benefits import MonthlyAmount
from domain.events import claims_of
from nervenbahn.api import create_app
from nervenbahn.api.settings import ApiSettings
from nervenbahn.claims_worker import ADVANCE_CLAIMS, ClaimsWorker
from nervenbahn.container import Container
from nervenbahn.datasets import FUND_DECISIONS, REIMBURSEMENT_CLAIMS
from nervenbahn.serve import Server
from tests.bus.advances import advanced_case, advancing_pipeline, this_month, today
from tests.bus.fund_runs import read_topic
from tests.bus.waiting import wait_until

QUICK = {
    "NERVENBAHN_ADVANCE_CLAIMS_SECONDS": "0.2",
    "NERVENBAHN_WORKER_BACKOFF_SECONDS": "0.1",
    "NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS": "0.2",
}


class ClaimsWorkerFailingFirst(Container):
    """The real container, whose first claims worker fails at its first look (as one does
    when the store is gone for a moment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers = 0

    def claims_worker(self) -> ClaimsWorker:
        self.workers += 1
        worker = super().claims_worker()
        if self.workers == 1:
            worker.tick = _store_gone  # type: ignore[method-assign]
        return worker


def _store_gone() -> None:
    raise ConnectionError("the event store went away")


def test_a_funds_grant_becomes_a_claim_on_the_bus_within_serve_after_a_worker_failure(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with advancing_pipeline(tmp_path, master_key, kafka_settings, QUICK,
                            ClaimsWorkerFailingFirst) as line:
        container = line.container
        case_id, application_id = advanced_case(container)
        claims_topic = container.topic(REIMBURSEMENT_CLAIMS).name
        context = container.api_context(ApiSettings(api_keys=tmp_path / "keys.json",
                                                    access_log=tmp_path / "access.db"))
        server = Server(container, create_app(context), port=free_port(), projections=(),
                        payments=False)
        try:
            server.start()
            assert server.wait_until_serving()
            _fund_grants(container, application_id, Decimal("1900.00"))
            wait_until(lambda: topic_message_counts(kafka_settings, [claims_topic])
                       [claims_topic] == 1, within=60, what="the claim on the claims topic")
            restarts, alive = server.worker_restarts(), server.workers_alive()
            failure = server.failure
        finally:
            server.stop()
            context.close()
        recorded = claims_of(container.service.get_case(case_id))
        codec = container.codec(REIMBURSEMENT_CLAIMS)
        assert isinstance(codec, ReimbursementClaimCodec)
        published: list[Any] = []
        read_topic(kafka_settings, claims_topic,
                   lambda record: published.append(codec.decode(record.value)), until=None)

    assert container.workers >= 2  # a fresh worker after the failure
    assert restarts[ADVANCE_CLAIMS] >= 1 and alive[ADVANCE_CLAIMS] is True
    assert alive["claims-relay"] is True and failure is None
    assert [(c.application_id, c.claim_total) for c in recorded] == [
        (application_id, Decimal("1900.00"))]
    (claim,) = published
    assert (claim.application_id, claim.case_id, claim.sequence) == (application_id, case_id, 1)
    assert claim.claim_total == recorded[0].claim_total


def _fund_grants(container: Container, application_id: uuid.UUID, monthly: Decimal) -> None:
    """The fund's application writes its grant to the decisions topic (from this month)."""
    month = this_month()
    decision = FundDecision(uuid.uuid4(), application_id, "granted", today(), month,
                            [MonthlyAmount(month, monthly)])
    codec = container.codec(FUND_DECISIONS)
    assert isinstance(codec, FundDecisionCodec)
    producer = KafkaProducer(**container.kafka.producer_kwargs("fund"))
    try:
        producer.send(container.topic(FUND_DECISIONS).name, key=str(application_id).encode(),
                      value=codec.encode(decision).value).get(timeout=30)
    finally:
        producer.close()

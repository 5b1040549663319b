"""The claims relay on the real store and the embedded broker: each recorded
`ReimbursementRecorded` reaches the claims topic once, as the `ReimbursementClaim` the fund
reads, with the recorded figures; a correction is sequence 2; no other case event reaches the
topic; a relay started again after a claim was published publishes nothing twice (its
position is kept in the store)."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from bus.claims_codec import ReimbursementClaim, ReimbursementClaimCodec
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from domain.application.claims import AdvanceClaims
from domain.events import ReimbursementRecorded
from nervenbahn.container import Container
from nervenbahn.datasets import REIMBURSEMENT_CLAIMS
from tests.bus.advances import advanced_case, advancing_pipeline, amend, grant
from tests.bus.fund_runs import read_topic


def test_each_recorded_claim_goes_out_once_with_its_figures_and_its_place(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with advancing_pipeline(tmp_path, master_key, kafka_settings) as line:
        container = line.container
        case_id, application_id = advanced_case(container)
        claims = AdvanceClaims(container.service, container.benefits, container.payments)
        grant(container.benefits, application_id, "1900.00")
        (first,) = claims.run()
        first_published = _relay_until_caught_up(container)
        amend(container.benefits, application_id, "2000.00")  # EL up by 100.00: a correction
        (second,) = claims.run()
        again_published = _relay_until_caught_up(container)  # a new relay: the restart
        status = container.relay_status(REIMBURSEMENT_CLAIMS)
        topic = container.topic(REIMBURSEMENT_CLAIMS).name
        codec = container.codec(REIMBURSEMENT_CLAIMS)
        assert isinstance(codec, ReimbursementClaimCodec)
        messages = _messages(kafka_settings, topic, codec)
        held = topic_message_counts(kafka_settings, [topic])[topic]
        history = list(container.service.case_events(case_id, lte=10**6))
        recorded = [(e.originator_version, e) for e in history
                    if isinstance(e, ReimbursementRecorded)]
        case = container.service.get_case(case_id)

    assert "ReimbursementRecorded" in first.events and second.events[0] == "ReimbursementRecorded"
    assert (first_published, again_published) == (1, 1)
    assert (status.position, status.published) == (status.head, 2)  # every event read, 2 sent
    # The 7 other case events (opened, assessed, granted, advance started and ended, two
    # budget proposals) were read and sent nothing.
    assert [type(e).__name__ for e in history].count("ReimbursementRecorded") == 2
    assert status.head == len(history) == 9
    assert len(messages) == len(recorded) == held == 2
    for (key, headers, claim), (version, event), sequence in zip(
            messages, recorded, (1, 2), strict=True):
        claim_id = event_id(case_id, version)  # the case event's own id
        assert claim == ReimbursementClaim(
            claim_id=claim_id, application_id=application_id, case_id=case_id,
            case_version=version, region=case.social_region, sequence=sequence,
            recorded_on=event.effective_date, months=event.months,
            corrections=event.corrections, claim_total=event.claim_total,
            surplus_total=event.surplus_total, ipv_offset_total=event.ipv_offset_total)
        assert key == str(application_id)
        assert (headers["event_type"], headers["event_id"]) == ("ReimbursementClaim",
                                                                str(claim_id))
        assert headers["effective_date"] == event.effective_date.isoformat()
    assert case.social_region == "so-olten"
    # Paid for the month (basic needs, housing 1,200.00, insurance 350.00) is above the EL:
    # the claim is the EL, 1,900.00, then the correction claims the 100.00 more.
    (_, _, claim), (_, _, correction) = messages
    assert (claim.claim_total, claim.surplus_total) == (Decimal("1900.00"), Decimal("0.00"))
    assert [m.claim for m in claim.months] == [Decimal("1900.00")]
    assert (correction.claim_total, correction.surplus_total) == (Decimal("100.00"),
                                                                  Decimal("0.00"))
    assert [(m.el, m.claim) for m in correction.corrections] == [(Decimal("100.00"),
                                                                  Decimal("100.00"))]


def _relay_until_caught_up(container: Container) -> int:
    """Run a new claims relay (as after a restart) until it has published what was recorded;
    the messages it published."""
    with container.relay(REIMBURSEMENT_CLAIMS) as relay:
        before = relay.status().published
        after = relay.run(threading.Event(), until_caught_up=True).published
    return after - before


def _messages(kafka: KafkaSettings, topic: str,
              codec: ReimbursementClaimCodec) -> list[tuple[str, dict[str, str], Any]]:
    """Every message on `topic`, in order: key, headers and the claim decoded."""
    found: list[tuple[str, dict[str, str], Any]] = []
    read_topic(kafka, topic, lambda record: found.append((
        record.key.decode(), {k: v.decode() for k, v in record.headers or []},
        codec.decode(record.value))), until=None)
    return found


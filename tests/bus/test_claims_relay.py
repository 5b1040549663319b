"""The claims relay on the real store and the embedded broker: each recorded
`ReimbursementRecorded` reaches the claims topic once, as the `ReimbursementClaim` the fund
reads, with the recorded figures; a correction is sequence 2; no other case event reaches the
topic; a relay started again after a claim was published publishes nothing twice (its
position is kept in the store)."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bus.claims_codec import ReimbursementClaim, ReimbursementClaimCodec
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from bus.relay import RelayStoppedError
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



def test_a_claim_altered_in_the_database_is_not_published_and_the_relay_says_where(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    """A claim is a payment instruction: a `ReimbursementRecorded` whose stored bytes were
    changed after recording (its total raised from 1,900.00 to 9,900.00 with sqlite3) fails its
    hash-chain link, and the relay publishes nothing of it: it stops at that position, naming
    it; once the bytes are restored it publishes the true claim, once."""
    with advancing_pipeline(tmp_path, master_key, kafka_settings) as line:
        container = line.container
        case_id, application_id = advanced_case(container)
        grant(container.benefits, application_id, "1900.00")
        AdvanceClaims(container.service, container.benefits, container.payments).run()
        position = _position_of_claim(line.settings.store.sqlite_path, case_id)
        original = _alter(line.settings.store.sqlite_path, position, b"1900.00", b"9900.00")
        with pytest.raises(RelayStoppedError) as stopped:
            _relay_until_caught_up(container)
        topic = container.topic(REIMBURSEMENT_CLAIMS).name
        held_when_altered = topic_message_counts(kafka_settings, [topic])[topic]
        _restore(line.settings.store.sqlite_path, position, original)
        published = _relay_until_caught_up(container)
        codec = container.codec(REIMBURSEMENT_CLAIMS)
        assert isinstance(codec, ReimbursementClaimCodec)
        messages = _messages(kafka_settings, topic, codec)

    assert f"event at position {position} (ReimbursementRecorded" in str(stopped.value)
    assert "do not match its hash-chain link" in str(stopped.value)
    assert held_when_altered in (0, None)  # nothing of the altered claim went out
    assert published == 1
    ((_, _, claim),) = messages
    assert claim.claim_total == Decimal("1900.00")


def _position_of_claim(db: Path, case_id: Any) -> int:
    connection = sqlite3.connect(db)
    try:
        (position,) = connection.execute(
            "SELECT rowid FROM stored_events WHERE originator_id = ? AND topic LIKE "
            "'%ReimbursementRecorded'", (case_id.hex,)).fetchone()
    finally:
        connection.close()
    return int(position)


def _alter(db: Path, position: int, old: bytes, new: bytes) -> bytes:
    """Replace `old` by `new` in the stored state of the event at `position`; the state
    before."""
    connection = sqlite3.connect(db)
    try:
        (state,) = connection.execute("SELECT state FROM stored_events WHERE rowid = ?",
                                      (position,)).fetchone()
        assert old in bytes(state)
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                           (bytes(state).replace(old, new), position))
        connection.commit()
    finally:
        connection.close()
    return bytes(state)


def _restore(db: Path, position: int, state: bytes) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                           (state, position))
        connection.commit()
    finally:
        connection.close()

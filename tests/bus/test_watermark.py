"""The completeness watermark: a day is complete for a group only when every partition of the
topic has passed it — computed from the group's marks (a real SQLite effect store) and the
partitions on the real embedded broker, and, for its rules alone, from progress tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from bus.effects import PartitionMark
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import TopicSpec, ensure_topics
from bus.watermark import SWISS_DAY, PartitionProgress, Watermark, delivered_watermark, watermark_of

DAY1, DAY2 = date(2026, 3, 2), date(2026, 3, 3)
GROUP = "connector-probe"


def _at(day: date, hour: int) -> datetime:
    """A Swiss time of `day`, as the relay's header gives it (UTC)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=SWISS_DAY).astimezone(UTC)


# --- the rules, from progress tables ------------------------------------------------------


def _progress(partition: int, end: int, next_offset: int, pending: datetime | None,
              last: datetime | None, met: bool = True) -> PartitionProgress:
    return PartitionProgress(partition, end, next_offset, pending, last, met)


def test_the_watermark_is_the_partition_furthest_behind() -> None:
    mark = watermark_of([
        _progress(0, 2, 1, _at(DAY2, 9), _at(DAY2, 9)),  # behind: next unprocessed at DAY2 09:00
        _progress(1, 1, 1, None, _at(DAY1, 12)),  # at its end
    ])
    assert mark.until == _at(DAY2, 9)
    assert mark.complete_until(DAY1) and not mark.complete_until(DAY2)


def test_a_partition_at_its_end_counts_up_to_what_the_relay_published_anywhere() -> None:
    mark = watermark_of([
        _progress(0, 3, 3, None, _at(DAY1, 10)),
        _progress(1, 1, 1, None, _at(DAY2, 8)),
        _progress(2, 0, 0, None, None),  # empty
    ])
    assert mark.until == _at(DAY2, 8)


def test_nothing_published_or_an_epoch_not_met_gives_no_watermark() -> None:
    assert watermark_of([_progress(0, 0, 0, None, None)]) == Watermark(
        None, (_progress(0, 0, 0, None, None),)
    )
    refilled = watermark_of([
        _progress(0, 1, 1, None, _at(DAY2, 8), met=False),  # the relay refilled it
        _progress(1, 1, 1, None, _at(DAY2, 9)),
    ])
    assert refilled.until is None and not refilled.complete_until(DAY1)


def test_a_day_needs_the_margin_past_its_swiss_end() -> None:
    midnight = datetime(2026, 3, 3, tzinfo=SWISS_DAY)
    assert not Watermark(midnight + timedelta(seconds=59)).complete_until(DAY1)
    assert Watermark(midnight + timedelta(minutes=1)).complete_until(DAY1)
    assert Watermark(midnight).complete_until(DAY1, margin=timedelta(0))


# --- on the embedded broker ---------------------------------------------------------------


@pytest.fixture
def day_topic(kafka_settings: KafkaSettings) -> str:
    """A topic of three partitions holding events of two days, as the relay writes them:
    p0 DAY1 10:00, DAY2 09:00 · p1 DAY1 12:00 · p2 DAY1 23:00, DAY2 08:00 (epoch e1)."""
    spec = TopicSpec(f"{kafka_settings.topic_prefix}.casework.marks.v1", partitions=3)
    ensure_topics(kafka_settings, [spec])
    producer = KafkaProducer(**kafka_settings.producer_kwargs(client_id="marks"))
    layout = {0: [_at(DAY1, 10), _at(DAY2, 9)], 1: [_at(DAY1, 12)],
              2: [_at(DAY1, 23), _at(DAY2, 8)]}
    try:
        for partition, times in layout.items():
            for moment in times:
                headers = [("recorded_at", moment.isoformat().encode()),
                           ("relay_epoch", b"e1")]
                producer.send(spec.name, key=b"k", value=b"v", partition=partition,
                              headers=headers)
        producer.flush(timeout=30)
    finally:
        producer.close()
    return spec.name


def _marked(store: SQLiteEffectStore, topic: str, offsets: dict[int, int],
            epoch: str = "e1") -> dict[tuple[str, int], PartitionMark]:
    with store.transaction() as tx:
        for partition, offset in offsets.items():
            store.advance(tx, GROUP, topic, partition, PartitionMark(offset, epoch))
    return store.offsets(GROUP)


def test_a_day_is_complete_only_when_every_partition_passed_it(
    tmp_path: Path, kafka_settings: KafkaSettings, day_topic: str
) -> None:
    store = SQLiteEffectStore(tmp_path / "probe.db")
    try:
        nothing = delivered_watermark(kafka_settings, day_topic, store.offsets(GROUP))
        assert nothing.until is None and not nothing.complete_until(DAY1)

        # p0 and p2 read DAY1, p1 nothing yet: DAY1 12:00 (p1) is still to come.
        behind = delivered_watermark(kafka_settings, day_topic,
                                     _marked(store, day_topic, {0: 1, 1: 0, 2: 1}))
        assert behind.until == _at(DAY1, 12)
        assert not behind.complete_until(DAY1)
        assert [(p.end, p.next_offset) for p in behind.partitions] == [(2, 1), (1, 0), (2, 1)]

        # p1 done: every partition is past DAY1; the first event not delivered is DAY2 08:00.
        passed = delivered_watermark(kafka_settings, day_topic,
                                     _marked(store, day_topic, {1: 1}))
        assert passed.until == _at(DAY2, 8)
        assert passed.complete_until(DAY1) and not passed.complete_until(DAY2)

        # Everything delivered: up to the newest event published, DAY2 09:00; DAY2 stays open.
        done = delivered_watermark(kafka_settings, day_topic,
                                   _marked(store, day_topic, {0: 2, 2: 2}))
        assert done.until == _at(DAY2, 9)
        assert not done.complete_until(DAY2)

        # Marks of another relay epoch than the partition's: not known to be delivered.
        other = delivered_watermark(kafka_settings, day_topic,
                                    _marked(store, day_topic, {1: 1}, epoch="e0"))
        assert other.until is None
    finally:
        store.close()

"""The completeness watermark of a consumer group: up to which recorded time every event of a
topic has been delivered to it, across all partitions.

A sink that writes one file per day (or month) must know when that day is *complete*: events
of one day lie in every partition of the topic (a case's events stay in order in one partition,
the cases are spread by key), and each partition is consumed at its own pace. Being caught up
with one partition says nothing about the others, and being at the end of every partition says
nothing about what the relay has not published yet.

**How it is computed.** The relay publishes the store's events in the store's order, each with
its `recorded_at` header (the time the core recorded it, UTC). So on each partition, and across
the topic as the relay writes it, recorded times increase. For partition *p* of the topic:

- *published*: the latest `recorded_at` the relay has written anywhere on the topic (the last
  message of every partition, the maximum of them). Every event recorded before it has been
  published (the relay passed it), in whichever partition its case lives.
- if the group has processed everything in *p* (its next offset is at the partition's end),
  *p* holds nothing undelivered that was recorded before *published*: its mark is *published*;
- otherwise its mark is the `recorded_at` of the first message the group has **not** processed
  in *p*: everything before it in *p* was processed, and everything recorded earlier lies before
  it;
- a partition whose last message is of a relay epoch the group has not met there (the broker
  came back empty and the relay refilled it, `bus.consumer`) is not known to be delivered: the
  group will read it again from its start. Its mark is unknown, and so is the watermark.

The watermark is the smallest mark: **every event recorded before it has been delivered** (its
effect committed in the group's database: the offsets come from there, `EffectStore.offsets`).
A day is complete when the watermark has passed its end (`Watermark.complete_until`).

**Limits** (documented in docs/connectors.md, "Is a day complete?"):

- It advances only when the relay publishes: on a quiet system the last day stays open until
  the next event is recorded (the watermark is a lower bound, never a guess).
- Recorded times increase in the relay's order only up to commit order: a command recorded at
  *t* whose transaction commits after another's recorded at *t' > t* reaches the topic after
  it. `complete_until` therefore waits a margin (one minute by default) past the day's end.
- Imported history keeps the legacy system's recorded times: an import may add events to a
  day already complete. They are flagged `imported` and are outside this guarantee.
- It costs a few broker reads (end offsets, one message per partition): ask in `deliver`, not
  for every event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bus.effects import PartitionMark
from bus.kafka_settings import KafkaSettings
from bus.topics import headers_at, list_topics, partition_end_offsets

__all__ = [
    "SETTLE_MARGIN",
    "SWISS_DAY",
    "PartitionProgress",
    "Watermark",
    "delivered_watermark",
    "watermark_of",
]

SETTLE_MARGIN = timedelta(minutes=1)
"""How long past a day's end the watermark must be before the day counts as complete: room
for a transaction that committed after one recorded later (see the module docstring)."""

SWISS_DAY = ZoneInfo("Europe/Zurich")
"""Days are Swiss days (as the core's recording day, `domain.case.Recording.today`)."""


@dataclass(frozen=True)
class PartitionProgress:
    """Where a group stands in one partition, and what the partition holds."""

    partition: int
    end: int
    """The offset after the partition's last message."""
    next_offset: int
    """The group's next offset to process there (0: nothing processed)."""
    pending_at: datetime | None
    """The recorded time of the first message the group has not processed (None: none)."""
    last_at: datetime | None
    """The recorded time of the partition's last message (None: the partition is empty)."""
    epoch_met: bool
    """Whether the group has met the relay epoch of the partition's last message there."""

    def mark(self, published: datetime) -> datetime | None:
        """Before which recorded time everything of this partition was delivered; None if
        unknown."""
        if not self.epoch_met:
            return None
        if self.next_offset >= self.end:
            return published
        return self.pending_at


@dataclass(frozen=True)
class Watermark:
    """Every event recorded before `until` has been delivered to the group (None: not known
    for any time yet: nothing published, or a partition of a relay epoch not met)."""

    until: datetime | None
    partitions: tuple[PartitionProgress, ...] = ()

    def complete_until(self, day: date, margin: timedelta = SETTLE_MARGIN) -> bool:
        """Whether every event recorded on the Swiss day `day` (or before) has been delivered:
        the watermark is past the day's end by `margin`."""
        if self.until is None:
            return False
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=SWISS_DAY)
        return self.until >= end + margin


def watermark_of(partitions: Sequence[PartitionProgress]) -> Watermark:
    """The watermark of a topic from its partitions' progress (see the module docstring)."""
    published = max((p.last_at for p in partitions if p.last_at is not None), default=None)
    if published is None:
        return Watermark(None, tuple(partitions))
    marks = [p.mark(published) for p in partitions]
    until = None if any(m is None for m in marks) else min(m for m in marks if m is not None)
    return Watermark(until, tuple(partitions))


def delivered_watermark(
    settings: KafkaSettings, topic: str, marks: Mapping[tuple[str, int], PartitionMark]
) -> Watermark:
    """The watermark of `topic` for a group whose marks (`EffectStore.offsets`) are `marks`:
    reads the partitions' end offsets and two messages' headers per partition."""
    from kafka import TopicPartition

    count = list_topics(settings).get(topic, 0)
    tps = [TopicPartition(topic, p) for p in range(count)]
    ends = partition_end_offsets(settings, tps)
    mark_of = {tp: marks.get((topic, tp.partition), PartitionMark(0)) for tp in tps}
    pending = headers_at(settings, {tp: m.next_offset for tp, m in mark_of.items()
                                    if m.next_offset < ends[tp]})
    last = headers_at(settings, {tp: ends[tp] - 1 for tp in tps if ends[tp] > 0})
    return watermark_of([
        PartitionProgress(
            partition=tp.partition,
            end=ends[tp],
            next_offset=mark_of[tp].next_offset,
            pending_at=_recorded(pending.get(tp)),
            last_at=_recorded(last.get(tp)),
            epoch_met=ends[tp] == 0 or _met(mark_of[tp], last.get(tp)),
        )
        for tp in tps
    ])


def _recorded(headers: Mapping[str, str] | None) -> datetime | None:
    text = (headers or {}).get("recorded_at")
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _met(mark: PartitionMark, last: Mapping[str, str] | None) -> bool:
    """Whether the group met the epoch of a partition's last message (a message without one:
    yes; a message the broker did not give back in time: not known, no)."""
    if last is None:
        return False
    epoch = last.get("relay_epoch")
    return not epoch or mark.knows(epoch)

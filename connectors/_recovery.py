"""Recovering a sink: what its dead letters hold, and where a reset moves it (issue 20).

**Replay.** A dead letter is the original message (key, value, headers) with the reason in
`dlq_*` headers (`bus.consumer`). Only one the sink rejected (`dlq_reason` "rejected") is
replayed: its content passed every check of the consumer, and the sink failed on it. One that
was dead-lettered because it could not be decoded, or because its headers disagree with its
content, is not trusted and never handed to a sink. A replayed event is handled in the sink's
consumer database exactly as the consumer would (the event id recorded in the same transaction,
`bus.effects`), under the sink's own group: an event that has taken effect already — replayed
before a crash, or read again after a reset — is skipped, so a replay takes effect once.

**Reset.** A sink's offsets live in its consumer database, not on the broker, so a reset moves
them there (`SQLiteEffectStore.rewind`); the consumer seeks to them when it is next assigned
its partitions. To "earliest" or to a time, the events the group processed are forgotten too:
otherwise the events read again would be skipped as duplicates and the reset would change
nothing. To "latest" nothing is read again and nothing is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kafka import TopicPartition

from bus.consumer import Decoder, Received, content_event_id
from bus.errors import DecodeError
from bus.kafka_settings import KafkaSettings
from bus.topics import offsets_at, partition_end_offsets
from connectors.errors import ConnectorError
from connectors.sdk import ResetTarget

__all__ = ["NotReplayableError", "ReplayReport", "ResetReport", "replayable", "reset_marks",
           "reset_target"]

SWISS_ZONE = ZoneInfo("Europe/Zurich")
"""The zone of a `--to` without one (the domain's days are Swiss days)."""

REPLAYABLE = "rejected"
"""The `dlq_reason` of a dead letter a sink may be given again."""


class NotReplayableError(ConnectorError):
    """A dead letter that is never handed to a sink (its content is not trusted)."""


@dataclass
class ReplayReport:
    """What `nervenbahn connectors replay NAME` did."""

    name: str
    replayed: int = 0
    """Dead letters the sink handled this time."""
    already: int = 0
    """Dead letters whose event had taken effect already (skipped by its event id)."""
    unreplayable: list[str] = field(default_factory=list)
    """Dead letters never replayed (not decodable, not trusted): each where and why."""
    failed: list[str] = field(default_factory=list)
    """Dead letters the sink failed on again (left for the next replay): each where and why."""
    delivered: list[str] = field(default_factory=list)
    """What `deliver` wrote afterwards."""
    pending: int = 0
    """Dead letters of the sink not replayed after this replay."""

    @property
    def ok(self) -> bool:
        """True if no dead letter is left to replay."""
        return self.pending == 0

    def summary(self) -> str:
        """One line: the figures of the replay."""
        return (
            f"{self.replayed} replayed, {self.already} already applied, "
            f"{len(self.unreplayable)} not replayable, {len(self.failed)} failed again, "
            f"{len(self.delivered)} delivered; {self.pending} dead letters left"
        )


@dataclass(frozen=True)
class ResetReport:
    """What `nervenbahn connectors reset NAME --to ...` did."""

    name: str
    to: str
    before: str
    """The offsets before ("p0=12 p1=3"; "" if the sink never committed any)."""
    after: str
    """The offsets after ("" : every partition from its beginning)."""
    forgot_processed: bool
    """Whether the events the sink processed were forgotten (they take effect again)."""
    idempotent: bool
    """Whether the sink defines `on_reset` (it says how it avoids writing twice)."""


def replayable(record: Any, codec: Decoder) -> Received:
    """The event a dead letter holds, as the consumer handed it to the sink (its original
    topic, partition and offset; its original headers); NotReplayableError if it is not one."""
    headers = {k: v.decode(errors="replace") for k, v in record.headers or []}
    reason = headers.get("dlq_reason", "")
    if reason != REPLAYABLE:
        raise NotReplayableError(f"dead-lettered as {reason or 'unknown'!r}: never replayed")
    try:
        event = codec.decode(record.value)
    except DecodeError as exc:
        raise NotReplayableError(f"cannot be decoded now: {exc}") from exc
    topic, _, at = headers.get("dlq_original", f"{record.topic}/0@0").rpartition("/")
    partition, _, offset = at.partition("@")
    identify = getattr(codec, "event_id", content_event_id)
    return Received(
        event=event,
        event_id=identify(event),
        event_type=type(event).__name__,
        topic=topic,
        partition=int(partition),
        offset=int(offset),
        headers={k: v for k, v in headers.items() if not k.startswith("dlq_")},
    )


def reset_target(text: str) -> ResetTarget:
    """`--to` of `connectors reset`: "earliest", "latest", or an ISO date or date-time (without
    a zone: Swiss time, Europe/Zurich, as every day of the domain and `complete_until` — not the
    server's zone, which is often UTC; a date: its midnight)."""
    if text in ("earliest", "latest"):
        return "earliest" if text == "earliest" else "latest"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConnectorError(
            f"--to: {text!r} is neither 'earliest', 'latest' nor a date (2026-03-02) or "
            "date-time (2026-03-02T08:00:00+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=SWISS_ZONE)


def reset_marks(
    kafka: KafkaSettings, topic: str, partitions: int, to: ResetTarget
) -> dict[tuple[str, int], int]:
    """The next offset of every partition of `topic` after a reset to `to` (none named:
    each is read from its beginning)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    if isinstance(to, datetime):
        found = offsets_at(kafka, tps, to)
    elif to == "latest":
        found = partition_end_offsets(kafka, tps)
    else:
        return {}
    return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

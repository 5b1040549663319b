"""Consumers: subscribe in a group, decode by schema id, hand typed events to a handler.

Exactly-once effect: the consumer's offsets live in its own database, not in Kafka, and the
handler's effects, the event id and the next offset commit in one transaction (see
`bus.effects`): one transaction per polled batch of a partition, with a savepoint per message,
so that a failing message undoes only its own effects. On (re)assignment the consumer seeks to
the offsets in its database, so after a crash it resumes exactly where its last commit left
it; an event delivered twice (relay crash, broker republish) has an id it has seen and is
skipped. That id comes from the decoded content, never from a header alone: the id of the
event at (case, version) (`bus.envelope.event_id`), or what the codec's `event_id(value)` says
(the reporting facts' keyed fact id). A message whose `event_id` header disagrees with its
content is not trusted: it is dead-lettered (`mismatched-event-id`); so is one that decodes as
another type than its `event_type` header announces (`mismatched-event-type`).

Offsets are kept with the relay epoch they belong to, and every epoch the group has met in a
partition is remembered (`consumer_epochs`, with the offset where it was first met). When a
partition shows an epoch the group has not met (the broker came back empty and the relay
republished), the consumer rewinds that partition to its beginning once and lets dedup do the
rest; a message of an epoch already met never rewinds it. So a partition that holds messages
of several epochs interleaved (two relays that both started fresh, before relays were fenced)
costs at most one rewind per epoch, ever, also across restarts: it used to rewind at every
change of epoch, for ever (2,304 rewinds in 38 s, 188 of 199 events never applied). The first
epoch a group meets in a partition is taken without a rewind. On every assignment the
consumer also checks the message just before its mark: a partition that holds less than the
mark, or whose message there is of an epoch the mark never met, is another history (a broker
that came back empty and got as many messages again, re-partitioned, say), read from its
beginning; otherwise a consumer waiting at its old offset would never meet the new epoch.
`rewinds` counts the rewinds of this consumer.

Events and commands get different policies: a handler that raises `TransientError` (or one of
the exception types given as transient) is retried with exponential backoff and the partition
waits; if it keeps failing the consumer stops with `ConsumerStalledError`, nothing lost. A
message that cannot be decoded, or that the handler rejects (any other exception), goes to the
group's dead-letter topic with the error in its headers, and consumption goes on — unless it
is of a type given as `stop_on`: then nothing of its batch is committed and the error reaches the
caller (a connector whose error policy is "stop", `connectors.host`). The group id
and its dead-letter topic are checked when the consumer is created (`TopicError` naming the
group), so a bad one fails at start and not at the first poison message. A batch whose
transaction fails because the store lost its database connection (`EffectStore.lost`) is not
poison: none of its messages is dead-lettered, the error reaches the caller of `poll_once`, and
the partitions of that poll are sought back so that the next poll reads them again. Nor is
a batch whose transaction the database rolled back for a conflict with another writer
(`EffectStore.conflict`: a deadlock between instances updating the same rows of shared read
models, a serialization failure): the whole batch runs again after the retry policy's waits,
and the consumer stops with `ConsumerStalledError` if the conflicts outlast them.

A consumer never leaves its group half-joined. `joined` is true while it holds an assignment
(from the rebalance listener's `on_partitions_assigned` to the next `on_partitions_revoked`);
`close` lets a join in flight complete first, for at most `KafkaSettings.join_wait_ms`, and only
then leaves with a LeaveGroup that names a generation. kafka-python alone sends LeaveGroup mid-join,
and the embedded broker (Tansu) then keeps the departed member as the group's leader for ever:
every later member waited for partitions silently (a sink run until idle that closed 1 s into its
join wedged its group; see `bus.kafka_settings`). A join that takes longer than `join_wait_ms` is
logged once as a warning (`joining_for` says how long), so that a wedged group no longer waits in
silence.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from bus.effects import EffectStore, PartitionMark
from bus.envelope import event_id
from bus.errors import BusError, DecodeError
from bus.kafka_errors import translate_kafka_error
from bus.kafka_settings import KafkaSettings
from bus.topics import (
    dead_letter_spec,
    dead_letter_topic,
    ensure_topics,
    epochs_at,
    partition_end_offsets,
)

__all__ = [
    "Consumer",
    "ConsumerStalledError",
    "Decoder",
    "Handler",
    "MismatchedEventIdError",
    "MismatchedEventTypeError",
    "Received",
    "Rejected",
    "RetryPolicy",
    "TransientError",
    "content_event_id",
    "group_lag",
]

log = structlog.get_logger("nervenbahn.consumer")


class TransientError(BusError):
    """A handler could not do its work now (a resource is busy or down); try again later."""


class Rejected(BusError):
    """A handler refuses this message for good; it goes to the dead-letter topic."""


class ConsumerStalledError(BusError):
    """A transient error outlasted every retry; the consumer stopped without losing anything."""


class MismatchedEventIdError(DecodeError):
    """A message's `event_id` header names another event than the one it carries (forged or
    corrupt); it is dead-lettered, never applied."""


class MismatchedEventTypeError(DecodeError):
    """A message decoded as another type than its `event_type` header announces (a schema id
    that names another type's schema in this registry: a registry switched under messages
    already published, say); it is dead-lettered, never applied as the wrong type."""


@dataclass(frozen=True)
class Received:
    """A decoded event as the handler sees it."""

    event: Any
    event_id: UUID
    event_type: str
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]


class Decoder(Protocol):
    """What a consumer needs of a codec (`bus.codec.EventCodec`, the reporting facts' codec).

    A codec whose values are not events of a case (an `originator_id` and
    `originator_version`) also has `event_id(value) -> UUID`: the id its relay puts in the
    `event_id` header (the reporting facts' codec: the keyed fact id)."""

    def decode(self, value: bytes) -> Any:
        """The typed value of a message; DecodeError if it is not one this codec reads."""


Handler = Callable[[Received, Any], None]
"""handler(received, tx): apply the event's effects through `tx`, the consumer's transaction."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a transient error is retried: attempts, first wait and longest wait (seconds)."""

    attempts: int = 5
    first_wait: float = 0.1
    max_wait: float = 5.0

    def waits(self) -> list[float]:
        """The waits between attempts."""
        return [min(self.first_wait * 2**n, self.max_wait) for n in range(self.attempts - 1)]


@dataclass
class Consumer:
    """One member of a consumer group with exactly-once effects in its own database."""

    settings: KafkaSettings
    group_id: str
    topics: list[str]
    codec: Decoder
    handler: Handler
    store: EffectStore
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transient: tuple[type[BaseException], ...] = (TransientError,)
    stop_on: tuple[type[BaseException], ...] = ()
    """Exception types with which a handler stops consumption at the message (a sink whose
    error policy is "stop"): not dead-lettered; the batch's transaction rolls back, the
    partition is read again from the batch's first message, the error reaches the caller of
    `poll_once`."""
    wait: Callable[[float], object] = field(default_factory=lambda: threading.Event().wait)
    _identify: Callable[[Any], UUID] = field(init=False, repr=False)
    _consumer: KafkaConsumer | None = field(default=None, init=False, repr=False)
    _marks: dict[tuple[str, int], PartitionMark] = field(default_factory=dict, init=False)
    _producer: KafkaProducer | None = field(default=None, init=False, repr=False)
    rewinds: int = field(default=0, init=False)
    """Partitions rewound for a new relay epoch since this consumer was made."""
    caught_up: bool = field(default=False, init=False)
    """True once a poll, with this member joined, found nothing left on its partitions: it
    has read what was there when it joined (`serve`'s readiness waits for it)."""
    _joined: bool = field(default=False, init=False, repr=False)
    _join_began: float | None = field(default=None, init=False, repr=False)
    _join_warned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        # A group that cannot name its dead-letter topic fails now, not at the first poison.
        dead_letter_topic(self.settings, self.group_id)
        self._identify = getattr(self.codec, "event_id", content_event_id)

    def run(self, stop: threading.Event, *, poll_ms: int = 500) -> None:
        """Consume until `stop` is set."""
        while not stop.is_set():
            self.poll_once(poll_ms)

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Fetch and process what is there; the number of messages handled."""
        consumer = self._consumer_or_new()
        if not self._joined and self._join_began is None:
            self._join_began = time.monotonic()  # this poll starts (or drives) the join
        try:
            batches = consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise translate_kafka_error(exc) from exc
        self._warn_if_join_overdue()
        if self._joined and not batches:
            self.caught_up = True
        pending = list(batches.values())
        handled = 0
        try:
            while pending:
                handled += self._process_batch(pending[0])
                pending.pop(0)
        except BaseException:
            self._read_again(consumer, pending)  # nothing of these batches was committed
            raise
        return handled

    def lag(self) -> int:
        """Messages on the assigned partitions not yet processed."""
        consumer = self._consumer_or_new()
        assigned = list(consumer.assignment())
        if not assigned:
            return 0
        done = self.store.offsets(self.group_id)
        ends = partition_end_offsets(self.settings, assigned)
        return group_lag({key: mark.next_offset for key, mark in done.items()}, ends)

    @property
    def joined(self) -> bool:
        """True while this member holds its assignment: its join completed (SyncGroup answered,
        partitions sought to the stored offsets) and no rebalance has begun since."""
        return self._joined

    def joining_for(self) -> float:
        """Seconds the join in flight has taken so far; 0 when joined or never polled."""
        if self._joined or self._join_began is None:
            return 0.0
        return time.monotonic() - self._join_began

    def close(self) -> None:
        """Leave the group and close the clients; a join in flight is let complete first, so
        that the LeaveGroup names a generation (see the module docstring)."""
        if self._consumer is not None:
            self._complete_join(self._consumer)
            self._consumer.close()
            self._consumer = None
            self._joined, self._join_began, self._join_warned = False, None, False
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _complete_join(self, consumer: KafkaConsumer) -> None:
        """Drive a join in flight to its end, for at most `join_wait_ms`. What these polls fetch
        is dropped unprocessed: nothing of it is committed, and the next member of the group
        seeks to the offsets in the store."""
        if self._joined or self._join_began is None:
            return
        deadline = time.monotonic() + self.settings.join_wait_ms / 1000
        while not self._joined and time.monotonic() < deadline:
            try:
                consumer.poll(timeout_ms=100, max_records=1)
            except KafkaError as exc:
                log.warning("closing mid-join: the join failed", group=self.group_id,
                            error=str(exc))
                return
        if not self._joined:
            log.warning("closing mid-join: the join did not complete", group=self.group_id,
                        waited_s=round(self.joining_for(), 1),
                        join_wait_ms=self.settings.join_wait_ms)

    def _warn_if_join_overdue(self) -> None:
        """Say once per join that it takes longer than `join_wait_ms` (instead of waiting in
        silence for partitions that may never come)."""
        waited = self.joining_for()
        if self._join_warned or waited * 1000 <= self.settings.join_wait_ms:
            return
        self._join_warned = True
        log.warning(
            "no partitions assigned yet",
            group=self.group_id,
            waited_s=round(waited, 1),
            hint="another member is slow to rejoin, or the broker holds a member that left "
            "half-joined (see bus.kafka_settings, join_wait_ms)",
        )

    # --- processing -------------------------------------------------------------------------

    def _process_batch(self, messages: list[Any]) -> int:
        """`_apply_batch`, run again (after the retry policy's waits) while the database rolls
        its transaction back for a conflict with another writer (`EffectStore.conflict`);
        ConsumerStalledError, nothing of the batch committed, once the waits are spent."""
        waits = iter(self.retry.waits())
        while True:
            try:
                return self._apply_batch(messages)
            except Exception as exc:
                if not self.store.conflict(exc):
                    raise
                wait = next(waits, None)
                first = messages[0]
                where = f"{first.topic}/{first.partition}@{first.offset}"
                if wait is None:
                    raise ConsumerStalledError(
                        f"{self.group_id}: the batch from {where} kept conflicting with other "
                        f"writers: {exc}"
                    ) from exc
                log.warning(
                    "transaction conflict: batch rolled back, running it again",
                    group=self.group_id,
                    batch=where,
                    messages=len(messages),
                    error_type=type(exc).__name__,
                    wait_s=wait,
                )
                self.wait(wait)

    def _apply_batch(self, messages: list[Any]) -> int:
        """One transaction for a partition's batch, a savepoint for each message in it."""
        handled = 0
        marks: dict[tuple[str, int], PartitionMark] = {}
        rewound: tuple[Any, str | None] | None = None
        with self.store.transaction() as tx:
            for message in messages:
                headers = {k: v.decode(errors="replace") for k, v in message.headers or []}
                epoch = headers.get("relay_epoch")
                key = (message.topic, message.partition)
                known = marks.get(key) or self._marks.get(key) or PartitionMark(0)
                marks[key], rewind = self._met(tx, message, epoch, known)
                if rewind:
                    rewound = (message, epoch)
                    break  # the rest of this batch comes again after the rewind
                marks[key] = self._process(message, headers, marks[key], tx)
                handled += 1
        self._marks.update(marks)
        if rewound is not None:
            self._rewind(*rewound)
        return handled

    def _met(
        self, tx: Any, message: Any, epoch: str | None, mark: PartitionMark
    ) -> tuple[PartitionMark, bool]:
        """The partition's mark once the message's epoch is met, and whether to rewind: for an
        epoch not met there before, unless it is the first the group meets there."""
        if not epoch or mark.knows(epoch):
            return replace(mark, epoch=epoch or mark.epoch), False
        topic, partition = message.topic, message.partition
        self.store.remember_epoch(tx, self.group_id, topic, partition, epoch, message.offset)
        met = mark.meeting(epoch)
        if not (mark.epoch or mark.epochs):
            return replace(met, epoch=epoch), False
        rewound = PartitionMark(0, epoch, met.epochs)
        self.store.advance(tx, self.group_id, topic, partition, rewound)
        return rewound, True

    def _process(self, message: Any, headers: dict[str, str], mark: PartitionMark,
                 tx: Any) -> PartitionMark:
        """Handle one message inside the batch's transaction; the partition's next mark."""
        mark = replace(mark, next_offset=message.offset + 1)
        try:
            received = self._received(message, headers, self.codec.decode(message.value))
        except MismatchedEventIdError as exc:
            self._dead_letter(message, exc, "mismatched-event-id")
        except MismatchedEventTypeError as exc:
            self._dead_letter(message, exc, "mismatched-event-type")
        except DecodeError as exc:
            self._dead_letter(message, exc, "undecodable")
        else:
            # A duplicate (or applied by a rebuild) is skipped by its content's id in `_handle`.
            self._handle(message, received, tx)
        self.store.advance(tx, self.group_id, message.topic, message.partition, mark)
        return mark

    def _handle(self, message: Any, received: Received, tx: Any) -> None:
        """Apply the handler once, retrying transient failures; dead-letter a rejection."""
        waits = iter(self.retry.waits())
        while True:
            try:
                with self.store.savepoint(tx):
                    if not self.store.seen(tx, self.group_id, received.event_id):
                        self.handler(received, tx)
                        self.store.mark(tx, self.group_id, received.event_id)
                return
            except self.transient as exc:
                wait = next(waits, None)
                if wait is None:
                    raise ConsumerStalledError(
                        f"{self.group_id}: {received.event_type} {received.event_id} at "
                        f"{message.topic}/{message.partition}@{message.offset} kept failing: {exc}"
                    ) from exc
                log.warning(
                    "transient failure; retrying",
                    group=self.group_id,
                    event_id=str(received.event_id),
                    error=str(exc),
                    wait_s=wait,
                )
                self.wait(wait)
            except self.stop_on:
                raise
            except Exception as exc:
                if self.store.lost(exc) or self.store.conflict(exc):
                    raise  # the database went away or rolled back: the message is not poison
                self._dead_letter(message, exc, "rejected")
                return

    def _received(self, message: Any, headers: dict[str, str], event: Any) -> Received:
        """The decoded event with the id its content gives; MismatchedEventIdError if an
        `event_id` header names another, MismatchedEventTypeError if an `event_type` header
        names another type."""
        decoded_type = type(event).__name__
        announced = headers.get("event_type")
        if announced is not None and announced != decoded_type:
            raise MismatchedEventTypeError(
                f"the message announces {announced[:60]!r} but its schema id names "
                f"{decoded_type}: never applied as the wrong type"
            )
        return Received(
            event=event,
            event_id=self._content_id(headers, event),
            event_type=decoded_type,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            headers=headers,
        )

    def _content_id(self, headers: dict[str, str], event: Any) -> UUID:
        content = self._identify(event)
        claimed = headers.get("event_id")
        if claimed is not None and _uuid_or_none(claimed) != content:
            raise MismatchedEventIdError(
                f"the event_id header {claimed[:40]!r} does not name the event the message "
                f"carries ({content})"
            )
        return content


    def _read_again(self, consumer: KafkaConsumer, batches: list[list[Any]]) -> None:
        """Seek each batch's partition back to its first message: the batch's transaction
        failed (its database went away, say), so its messages are read again by the next poll
        instead of being skipped until the next assignment."""
        for messages in batches:
            if messages:
                first = messages[0]
                consumer.seek(TopicPartition(first.topic, first.partition), first.offset)

    def _rewind(self, message: Any, epoch: str | None) -> None:
        """A relay epoch not met before (the relay republished into an empty broker): read the
        partition again from the start."""
        assert self._consumer is not None
        self._consumer.seek_to_beginning(TopicPartition(message.topic, message.partition))
        self.rewinds += 1
        log.warning(
            "new relay epoch: partition rewound",
            group=self.group_id,
            partition=f"{message.topic}/{message.partition}",
            epoch=epoch,
        )

    def _dead_letter(self, message: Any, exc: BaseException, reason: str) -> None:
        """Park the message with its error (the caller then moves past it)."""
        topic = dead_letter_topic(self.settings, self.group_id)
        headers = [
            *(message.headers or []),
            ("dlq_reason", reason.encode()),
            ("dlq_error_type", type(exc).__name__.encode()),
            ("dlq_error", str(exc)[:2000].encode(errors="replace")),
            ("dlq_trace", "".join(traceback.format_exception_only(exc))[:2000].encode()),
            ("dlq_original", f"{message.topic}/{message.partition}@{message.offset}".encode()),
            ("dlq_group", self.group_id.encode()),
            ("dlq_at", datetime.now(UTC).isoformat().encode()),
        ]
        producer = self._producer_or_new()
        try:
            producer.send(topic, key=message.key, value=message.value, headers=headers).get(
                timeout=30
            )
        except KafkaError as err:
            raise translate_kafka_error(err) from err
        log.warning(
            "message dead-lettered",
            group=self.group_id,
            reason=reason,
            error_type=type(exc).__name__,
            original=f"{message.topic}/{message.partition}@{message.offset}",
            dead_letter_topic=topic,
        )

    # --- clients ---------------------------------------------------------------------------

    def _consumer_or_new(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = KafkaConsumer(**self.settings.consumer_kwargs(group_id=self.group_id))
            consumer.subscribe(self.topics, listener=_SeekToStoredOffsets(self, consumer))
            self._consumer = consumer
        return self._consumer

    def _producer_or_new(self) -> KafkaProducer:
        if self._producer is None:
            ensure_topics(self.settings, [dead_letter_spec(self.settings, self.group_id)])
            self._producer = KafkaProducer(
                **self.settings.producer_kwargs(client_id=f"{self.group_id}-dlq")
            )
        return self._producer


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, continue each partition where the consumer's database says."""

    def __init__(self, owner: Consumer, consumer: KafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    def on_partitions_revoked(self, revoked: Any) -> None:
        """A rebalance begins (or the consumer closes): no longer joined. Offsets need no
        saving, they were committed with the effects."""
        self._owner._joined = False
        self._owner._join_began = time.monotonic()
        self._owner._join_warned = False

    def on_partitions_assigned(self, assigned: Any) -> None:
        done = self._owner.store.offsets(self._owner.group_id)
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        ends = partition_end_offsets(self._owner.settings, partitions)
        # The message just before each mark must be of an epoch the mark knows: a broker that
        # came back empty may hold as many messages again, of another history (re-partitioned
        # by a new partition count, say), and a consumer waiting at its old offset would never
        # meet the new epoch that rewinds it.
        resuming = {tp: mark.next_offset - 1 for tp in partitions
                    if (mark := done.get((tp.topic, tp.partition))) is not None
                    and 0 < mark.next_offset <= ends.get(tp, 0)}
        before = epochs_at(self._owner.settings, resuming)
        for tp in partitions:
            mark = done.get((tp.topic, tp.partition))
            last = before.get(tp)
            if (mark is None or mark.next_offset > ends.get(tp, 0)
                    or (tp in resuming and not (last is not None and mark.knows(last))
                        and (mark.epoch or mark.epochs))):
                # Never read, the partition holds less than was read, or what it holds before
                # the mark is of an epoch the mark never met: a new history, read from the start.
                self._consumer.seek_to_beginning(tp)
                if mark is not None and mark.next_offset > 0:
                    self._owner.rewinds += 1
                    log.warning("partition rewound on assignment: another history",
                                group=self._owner.group_id, mark=mark.next_offset,
                                partition=f"{tp.topic}/{tp.partition}", end=ends.get(tp, 0),
                                epoch_before=last)
                mark = PartitionMark(0)
            else:
                self._consumer.seek(tp, mark.next_offset)
            self._owner._marks[(tp.topic, tp.partition)] = mark
        self._owner._joined = True
        self._owner._join_began = None
        log.info(
            "partitions assigned",
            group=self._owner.group_id,
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


def content_event_id(event: Any) -> UUID:
    """The id of a decoded case (or payment-run) event: that of its aggregate and version, as
    every relay computes it (`bus.envelope.event_id`); DecodeError for a value without them."""
    try:
        return event_id(event.originator_id, event.originator_version)
    except AttributeError as exc:
        raise DecodeError(f"a {type(event).__name__} names no aggregate and version") from exc


def group_lag(done: Mapping[tuple[str, int], int], ends: Mapping[TopicPartition, int]) -> int:
    """Messages a group has not processed: over the partitions whose `ends` are given, the
    end offset minus the group's next offset (`done` by topic and partition; 0 if never read)."""
    return sum(max(end - done.get((tp.topic, tp.partition), 0), 0) for tp, end in ends.items())


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None

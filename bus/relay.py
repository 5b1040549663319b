"""The relay (transactional outbox): every recorded event reaches the bus, in order, never lost.

It reads the event store's notification log in global order, publishes each event to the
case-events topic (key: case id, so order per case holds) with an idempotent producer
(`acks=all`), and only then advances its durable position in the store's database. After a
crash it resumes from that position: a message published just before the crash may be
published again, with the same event id, and consumers drop it. If the broker comes back
empty (the embedded broker keeps topics in memory), the relay notices that the topic holds
fewer messages than it published and republishes from the store, the source of truth.

What it publishes for an event is its `encoder`'s business (by default the event itself on the
case-events topic, `case_event_encoder`); the reporting relay, a second instance with a
position of its own, publishes a pseudonymised fact per event to the reporting topic.

**One active instance per relay name.** Two relays on one store (two `serve`, or `relay run`
twice) used to publish the same events side by side: 46–76 % duplicates, versions going
backwards in the raw stream, and two epochs stamped into every partition. Now an instance
publishes only while it holds the relay's lease in the store's database (`bus.positions`):
it acquires it before its first batch, renews it every `renew_seconds` (the lease runs for
`lease_seconds`, NERVENBAHN_RELAY_LEASE_SECONDS / NERVENBAHN_RELAY_RENEW_SECONDS), and releases
it on a clean stop. Another instance waits as a hot standby: it logs once that it is standby,
tries the lease again every `min(renew_seconds, 1)` s (a wait on the stop event) and takes over
once the lease is released, or has run out after a crash: within `lease_seconds` + 1 s.
Fencing: the position is saved only if this instance's lease (holder and token) is still held
and unexpired, checked in the same transaction as the write; an instance that finds its lease
lost publishes no further batch and goes back to standby. It also stops sending within a
batch once its own (monotonic) view of the lease's expiry has passed.

**No duplicate from the one that takes over.** An instance killed after the broker took a
batch but before its position was saved (SIGKILL, the OOM killer, a lost host) leaves that
batch on the topic beyond the saved position. Whoever acquires the lease next (a standby or the
same instance restarted) first reads the last `batch_size` messages of each partition in the
current epoch and does not send again a message already there (the same key and value bytes:
encoders are deterministic), while counting it as published. Within a partition the idempotent
producer keeps order, so what reached a partition is a prefix of what was sent to it, and the
tail holds all of it. Measured in tests/scale/test_relay_handover.py: the active instance
killed with messages of an unsaved batch on the topic, the new holder published none of them
again.

**Catch-up speed** (benchmarks/bus_throughput.py, issue 17). The producer's partitioner is
kafka-python's default one remembering each key's murmur2 hash (`KeyHashCachingPartitioner`:
the same partitions, without ~10 µs of pure-Python hashing per message), the Avro writer is
compiled per schema (`bus.avro_writer`), the event id header is computed without UUID objects
and a message's digest only when a takeover found messages at the topic's tail; kafka-python
checksums each batch in C (`bus.checksums`: in pure Python it cost about 75 µs a message,
half of the raw producer's time, in the sender thread under the same GIL). What is left
is CPU in one interpreter, per case event: decoding it through eventsourcing's mapper (~30 µs),
its Avro record (~40 µs) and headers (~10 µs), beside kafka-python's own `send` (~90 µs on the
main thread, plus its sender thread), all under one GIL. Reading the next batch ahead while
the producer flushed was tried and left out: 0.47× and 0.54× with it, 0.53× and 0.96× without
(2 runs each of 5,000 events on 2 busy cores; the sender thread needs the GIL to take the
acknowledgements while the relay would be encoding). So a relay far behind has its batches
prepared by a process of its own, on the other core (`bus.relay_batches`, `preparing`;
NERVENBAHN_RELAY_PREPARE_FROM_LAG): what is left here is kafka-python's own work.

What remains possible: an instance paused (GC, SIGSTOP, a slow disk) between its lease check
and its sends can, after the standby has taken over, publish at most the one batch it had
begun — the same events with the same event ids the new holder publishes too. Its position
save then fails, so it never moves the position. Consumers drop such duplicates by content
(case, version). The epoch belongs to the position: an instance that finds a position without
one (never ran) stamps it with the lease held, before anything is published, and a takeover
publishes in the epoch it finds; only a broker that came back empty starts a new epoch.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import DefaultPartitioner, murmur2

from bus.codec import EventCodec
from bus.envelope import PRODUCER_NAME, EncodedEvent, event_id_text, message_headers
from bus.errors import LeaseLostError, RelayStoppedError
from bus.kafka_errors import translate_kafka_error
from bus.kafka_settings import KafkaSettings
from bus.positions import Lease, RelayPosition, RelayPositionStore, new_epoch
from bus.relay_batches import Batch, PreparingProcess, RelayPreparerError, prepare_batch
from bus.topics import TopicSpec, ensure_topics, read_topic, topic_message_counts
from domain.application.ports import NotificationLog

__all__ = [
    "PRODUCER_NAME",
    "Encoder",
    "KeyHashCachingPartitioner",
    "OutgoingMessage",
    "Relay",
    "RelayStatus",
    "case_event_encoder",
]

log = structlog.get_logger("nervenbahn.relay")

PREPARE_RETRY_SECONDS = 60.0
"""After its preparing process failed, how long a relay prepares its batches itself before it
starts another one."""

OutgoingMessage = (
    tuple[bytes, bytes, list[tuple[str, bytes]]]
    | tuple[bytes, bytes, list[tuple[str, bytes]], int]
)
"""One message to publish: key, value and headers (the relay adds `relay_epoch`), and
optionally the record's timestamp in milliseconds (by default the producer's clock at sending;
the reporting relay gives a coarse one so that publishing times do not pair its facts with
the case-events topic's messages)."""

Encoder = Callable[[Any], Sequence[OutgoingMessage]]
"""The messages to publish for one recorded event (the domain event), in order."""


def case_event_encoder(codec: EventCodec) -> Encoder:
    """The event itself, key = case id (order per case), with the standard headers."""

    def encode(event: Any) -> list[OutgoingMessage]:
        encoded = codec.encode(event)
        case = str(event.originator_id)
        return [(case.encode(), encoded.value, _headers(event, encoded, case))]

    return encode


@dataclass(frozen=True)
class RelayStatus:
    """How far the relay is behind the store, and whether this instance is the active one
    (it holds the lease) or a standby."""

    position: int
    head: int
    published: int
    active: bool = False
    holder: str | None = None
    """Who holds the lease now (None: nobody; the position is then not moving)."""

    @property
    def role(self) -> str:
        """`active` or `standby` (this instance)."""
        return "active" if self.active else "standby"

    @property
    def lag(self) -> int:
        """Recorded events not yet published."""
        return max(self.head - self.position, 0)


class Relay:
    """Publishes the store's events to one topic, resuming from a durable position.

    Give it the case-events `codec`, or an `encoder` deciding what to publish per event.
    `service` is the notification log it reads (`domain.application.ports.NotificationLog`):
    the case service's, or another store's such as the payments service (`payments` relay).
    """

    def __init__(
        self,
        *,
        service: NotificationLog,
        codec: EventCodec | None = None,
        encoder: Encoder | None = None,
        positions: RelayPositionStore,
        settings: KafkaSettings,
        topic: TopicSpec,
        name: str = "case-events",
        batch_size: int = 500,
        broker_check_seconds: float = 5.0,
        lease_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        preparing: PreparingProcess | None = None,
    ) -> None:
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError("a relay renews its lease more often than it runs out")
        if encoder is None:
            if codec is None:
                raise ValueError("a relay needs a codec or an encoder")
            encoder = case_event_encoder(codec)
        self._service = service
        self._encode = encoder
        self._positions = positions
        self._settings = settings
        self._topic = topic
        self.name = name
        self._batch_size = batch_size
        self._broker_check_seconds = broker_check_seconds
        self._monotonic = monotonic
        self._producer: KafkaProducer | None = None
        self._last_broker_check = float("-inf")
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self.holder_id = holder or _holder_id()
        self._lease: Lease | None = None
        self._renew_at = float("-inf")
        self._lease_until = float("-inf")  # by this process's clock, with a margin
        self._said_standby = False
        self._tail: tuple[str, set[bytes]] | None = None
        """(epoch, digests of its messages at the topic's tail), read after acquiring."""
        self._preparing = preparing
        if preparing is not None:  # a batch waited for must not outlast the lease
            preparing.timeout_s = min(preparing.timeout_s, (lease_seconds - renew_seconds) / 2)
        self._prepare_again_at = float("-inf")
        self._behind = True
        """The last batch was full: the relay may be far behind (checked before a batch)."""
        self._unsaved: int | None = None
        """Messages the topic holds beyond the saved count (the broker check's finding);
        0: the tail need not be read; None: not known, read it."""

    # --- public ----------------------------------------------------------------------------

    def status(self) -> RelayStatus:
        """Position, head of the store and lag; whether this instance is active or standby."""
        position = self._positions.load(self.name)
        head = self._service.max_position()
        holder = self._positions.holder(self.name)
        return RelayStatus(
            position.position, head, position.published, active=self.active,
            holder=holder.holder if holder else None,
        )

    @property
    def role(self) -> str:
        """`active` or `standby` (this instance), without reading the store."""
        return "active" if self.active else "standby"

    @property
    def preparing(self) -> PreparingProcess | None:
        """The process that prepares this relay's batches while it is far behind (None: it
        prepares them itself, always)."""
        return self._preparing

    @property
    def active(self) -> bool:
        """This instance holds the lease (as far as it last knew)."""
        return self._lease is not None

    def publish_next(self) -> int:
        """Publish the next batch of recorded events; the number of events (0 when caught up,
        or when another instance holds the lease: this one is standby)."""
        if not self.hold_lease():
            return 0
        lease = self._lease
        assert lease is not None
        state = self._positions.load(self.name)
        batch = self._next_batch(state.position)
        if not batch.items and batch.stopped is None:
            return 0
        on_topic = self._already_on_topic(state.epoch) if batch.items else set()
        producer = self._producer_or_new()
        futures: list[Any] = []
        sent: list[int] = []
        try:
            for position, messages in batch.items:
                if self._monotonic() >= self._lease_until:
                    break  # the lease may have run out: send no more, save what was sent
                futures += self._send(producer, messages, state.epoch, on_topic)
                sent.append(position)
            producer.flush(timeout=self._settings_timeout())
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            self._drop_producer()
            raise translate_kafka_error(exc) from exc
        if sent:
            # `published` counts messages: it is compared with what the topic holds.
            saved = RelayPosition(sent[-1], state.published + len(futures), state.epoch)
            if not self._save(saved, lease):
                return 0
        if batch.stopped is not None and len(sent) == len(batch.items):
            # publish what came before it, then stop
            stopped = RelayStoppedError(self.name, *batch.stopped)
            raise stopped from batch.cause
        return len(sent)

    def hold_lease(self) -> bool:
        """Acquire or renew the lease as due; True while this instance holds it (active)."""
        now = self._monotonic()
        if self._lease is not None and now < self._renew_at:
            return True
        if self._lease is not None:
            if self._positions.renew(self._lease, self._lease_seconds):
                self._leased_at(now)
                return True
            self._lost(self._lease)
        lease = self._positions.acquire(self.name, self.holder_id, self._lease_seconds)
        if lease is None:
            if self._preparing is not None:
                self._preparing.stop()  # a standby prepares nothing
            if not self._said_standby:
                holder = self._positions.holder(self.name)
                log.info("standby: another instance holds the lease", relay=self.name,
                         holder=holder.holder if holder else None, me=self.holder_id)
                self._said_standby = True
            return False
        return self._took(lease, now)

    def release_lease(self) -> None:
        """Let the lease go (a clean stop), so that a standby takes over at once."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            try:
                self._positions.release(lease)
            except Exception as exc:  # it then runs out by itself
                log.warning("lease not released", relay=self.name, error=str(exc))

    def ensure_broker_has_history(self) -> bool:
        """Republish from the start if the broker holds fewer messages than were published
        (a new epoch). Only the active instance does (LeaseLostError otherwise)."""
        if not self.hold_lease():
            raise LeaseLostError(self.name, self.holder_id, 0)
        state = self._positions.load(self.name)
        ensure_topics(self._settings, [self._topic])
        held = self._end_offset_total()
        if held >= state.published:
            self._unsaved = held - state.published  # sent by a holder that did not save
            return False
        self._unsaved = 0  # republished from the start: a new epoch, nothing of it sent yet
        log.warning(
            "broker lost messages: republishing from the store",
            topic=self._topic.name,
            held=held,
            published=state.published,
            relay=self.name,
        )
        assert self._lease is not None  # held: hold_lease() said so above
        return self._save(RelayPosition(0, 0, new_epoch()), self._lease)

    def run(
        self, stop: threading.Event, *, until_caught_up: bool = False, idle_seconds: float = 0.2
    ) -> RelayStatus:
        """Publish until `stop` is set (or, with `until_caught_up`, until nothing is left),
        while this instance holds the lease; as a standby, wait for it."""
        backoff = 0.2
        while not stop.is_set():
            try:
                if not self.hold_lease():
                    if until_caught_up and self.status().lag == 0:
                        break  # the active instance has published everything
                    stop.wait(min(self._renew_seconds, 1.0))
                    continue
                self._check_broker_now_and_then()
                published = self.publish_next()
                backoff = 0.2
            except RelayStoppedError as exc:  # retrying cannot help: stop and say where
                log.error("relay stopped", relay=self.name, position=exc.position,
                          error=str(exc))
                raise
            except Exception as exc:  # a broker outage must not end the relay
                log.warning("publishing failed; retrying", error=str(exc), wait_s=backoff)
                self._last_broker_check = float("-inf")  # it may have come back empty
                # A batch may have reached the topic without its position being saved (the
                # store lost between the acks and the save): read the topic's tail again
                # before the next batch, as after a takeover, if the check finds more
                # messages there than saved; else that batch went out twice.
                self._tail = None
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published:
                status = self.status()
                log.info(
                    "published",
                    relay=self.name,
                    count=published,
                    position=status.position,
                    lag=status.lag,
                )
            elif until_caught_up and self.active and self.status().lag == 0:
                break
            elif self.active:  # caught up, or nothing sent this time (the lease was due)
                stop.wait(idle_seconds)
        return self.status()

    def close(self) -> None:
        """End the preparing process, flush and close the producer, release the lease."""
        try:
            if self._preparing is not None:
                self._preparing.stop()
            self._drop_producer(flush=True)
        finally:
            self.release_lease()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- helpers ---------------------------------------------------------------------------

    def _next_batch(self, position: int) -> Batch:
        """The next batch after `position`: from the preparing process while this relay is
        far behind (it starts at `from_lag` events and at least two batches behind, looked at
        only after a full batch, and ends once a batch comes back short), else prepared here,
        as while that process starts. If that process fails, the batch is prepared here and
        no process is started for `PREPARE_RETRY_SECONDS`. A standby ends it (`hold_lease`)."""
        preparing = self._preparing
        if preparing is None:
            return prepare_batch(self._service, self._encode, position, self._batch_size)
        try:
            if (
                not preparing.running
                and self._behind
                and self._monotonic() >= self._prepare_again_at
                and self._service.max_position() - position
                >= max(preparing.from_lag, 2 * self._batch_size)
            ):
                preparing.start()
            batch = (
                preparing.batch(position, self._batch_size)
                if preparing.running and preparing.ready
                else None
            )
        except RelayPreparerError as exc:  # it prepares only: the relay goes on without it
            log.warning("relay preparing its batches itself", relay=self.name, error=str(exc),
                        retry_in_s=PREPARE_RETRY_SECONDS)
            self._prepare_again_at = self._monotonic() + PREPARE_RETRY_SECONDS
            batch = None
        if batch is None:
            batch = prepare_batch(self._service, self._encode, position, self._batch_size)
        self._behind = batch.full
        if preparing.running and not batch.full:
            preparing.stop()  # caught up
        return batch

    def _send(
        self, producer: KafkaProducer, messages: Sequence[Any], epoch: str, on_topic: set[bytes]
    ) -> list[Any]:
        """Send an event's messages; one already on the topic (`on_topic`, taken out of it)
        is not sent again and stands for itself as a done future (it counts as published)."""
        futures: list[Any] = []
        stamp_epoch = ("relay_epoch", epoch.encode())
        for key, value, headers, *stamp in messages:
            if on_topic:  # only after a takeover: what the one before sent and did not save
                digest = _digest(key, value)
                if digest in on_topic:
                    on_topic.discard(digest)
                    futures.append(_ALREADY_ON_TOPIC)
                    continue
            futures.append(producer.send(
                self._topic.name,
                key=key,
                value=value,
                headers=[*headers, stamp_epoch],
                timestamp_ms=stamp[0] if stamp else None,
            ))
        return futures

    def _already_on_topic(self, epoch: str) -> set[bytes]:
        """Digests of the messages of epoch `epoch` in the last `batch_size` of each
        partition, read once after the lease was acquired (and again in a new epoch):
        what a holder killed before saving its position may have left there. Not read when
        the broker check found the topic holding exactly the saved count."""
        if self._tail is not None and self._tail[0] == epoch:
            return self._tail[1]
        if self._unsaved == 0:  # the topic holds what the position says: nothing to read
            self._tail = (epoch, set())
            return self._tail[1]
        stamp = ("relay_epoch", epoch.encode())
        found = {
            _digest(record.key, record.value)
            for record in read_topic(self._settings, self._topic.name, last=self._batch_size)
            if stamp in (record.headers or [])
        }
        if found:
            log.info("read the topic's tail before publishing", relay=self.name,
                     messages=len(found))
        self._tail = (epoch, found)
        return found

    def _took(self, lease: Lease, now: float) -> bool:
        """The lease is ours: stamp an epoch on a position that has none (before anything is
        published in it), and check the broker before the first batch. False if the lease
        was lost meanwhile."""
        self._lease = lease
        self._leased_at(now)
        self._tail = None  # read again before the first batch under this lease
        self._unsaved = None  # unknown until the broker is checked
        self._said_standby = False
        self._last_broker_check = float("-inf")
        state = self._positions.load(self.name)
        if not state.epoch and not self._save(
            RelayPosition(state.position, state.published, new_epoch()), lease
        ):
            return False
        log.info("active: lease acquired", relay=self.name, holder=self.holder_id,
                 token=lease.token)
        return True

    def _leased_at(self, now: float) -> None:
        self._renew_at = now + self._renew_seconds
        self._lease_until = now + self._lease_seconds - min(1.0, self._lease_seconds / 10)

    def _lost(self, lease: Lease) -> None:
        self._lease = None
        self._lease_until = float("-inf")
        log.warning("lease lost: publishing stopped, standby", relay=self.name,
                    holder=lease.holder, token=lease.token)

    def _save(self, position: RelayPosition, lease: Lease) -> bool:
        """Save the position under the lease; False (and standby) if the lease was lost."""
        try:
            self._positions.save(self.name, position, lease)
        except LeaseLostError:
            self._lost(lease)
            return False
        return True

    def _check_broker_now_and_then(self) -> None:
        now = self._monotonic()
        if now - self._last_broker_check >= self._broker_check_seconds:
            self.ensure_broker_has_history()
            self._last_broker_check = now

    def _end_offset_total(self) -> int:
        # The case-events topic keeps every message (no retention), so what it holds is what
        # was published into it since the broker last started empty.
        counts = topic_message_counts(self._settings, [self._topic.name])
        return counts.get(self._topic.name) or 0

    def _producer_or_new(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                **self._settings.producer_kwargs(client_id=self.name),
                partitioner=KeyHashCachingPartitioner(),
            )
        return self._producer

    def _drop_producer(self, flush: bool = False) -> None:
        if self._producer is not None:
            if flush:
                self._producer.flush(timeout=self._settings_timeout())
            self._producer.close(timeout=self._settings_timeout())
            self._producer = None

    def _settings_timeout(self) -> float:
        return 30.0


class KeyHashCachingPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key modulo the partitions, so the
    same partition for a key), remembering each key's hash: murmur2 is pure Python (~10 µs
    per 36-byte case id), and a case's events share their key. Holds up to `size` keys, then
    starts over."""

    def __init__(self, size: int = 65_536) -> None:
        self._hashes: dict[bytes, int] = {}
        self._size = size

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
        serialized_value: Any, cluster: Any,
    ) -> int:
        """The key's partition, as DefaultPartitioner picks it; random without a key."""
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value,
                                         cluster))
        if topic not in cluster.topics():
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        partitions = sorted(cluster.partitions_for_topic(topic))
        return int(partitions[hashed % len(partitions)])


class _Done:
    """The future of a message that was already on the topic: nothing to wait for."""

    def get(self, timeout: float | None = None) -> None:
        return None


_ALREADY_ON_TOPIC = _Done()


def _digest(key: bytes | None, value: bytes | None) -> bytes:
    """A message's identity by its bytes (key and value)."""
    return hashlib.blake2b((key or b"") + b"\x00" + (value or b""), digest_size=16).digest()


def _holder_id() -> str:
    """Who this instance is, for the lease and the logs: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _headers(
    event: Any, encoded: EncodedEvent, case: str | None = None
) -> list[tuple[str, bytes]]:
    """Kafka headers of a case event: what a reader needs before (or without) decoding it
    (`case`: the case id as text, if the caller has it already)."""
    state = vars(event)
    return message_headers(
        encoded.event_type, encoded.schema_id,
        event_id=event_id_text(case or event.originator_id, event.originator_version),
        recorded_at=event.timestamp, effective_date=state["effective_date"],
        correlation_id=state["correlation_id"],
    )

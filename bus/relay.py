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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

from bus.codec import EventCodec
from bus.envelope import PRODUCER_NAME, EncodedEvent, event_id, message_headers
from bus.errors import EncodeError, RelayStoppedError, SchemaError
from bus.kafka_errors import translate_kafka_error
from bus.kafka_settings import KafkaSettings
from bus.positions import RelayPosition, RelayPositionStore, new_epoch
from bus.topics import TopicSpec, ensure_topics, topic_message_counts
from domain.application.ports import NotificationLog

__all__ = [
    "PRODUCER_NAME",
    "Encoder",
    "OutgoingMessage",
    "Relay",
    "RelayStatus",
    "case_event_encoder",
]

PERMANENT_ERRORS: tuple[type[Exception], ...] = (EncodeError, SchemaError)
"""Errors no retry can cure: the event does not fit its schema, or the schema is wrong. (An
unreachable broker or registry is retried.)"""

log = structlog.get_logger("nervenbahn.relay")

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
        return [(str(event.originator_id).encode(), encoded.value, _headers(event, encoded))]

    return encode


@dataclass(frozen=True)
class RelayStatus:
    """How far the relay is behind the store."""

    position: int
    head: int
    published: int

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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
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

    # --- public ----------------------------------------------------------------------------

    def status(self) -> RelayStatus:
        """Position, head of the store and lag."""
        position = self._positions.load(self.name)
        head = self._service.max_position()
        return RelayStatus(position.position, head, position.published)

    def publish_next(self) -> int:
        """Publish the next batch of recorded events; the number of events (0 when caught up)."""
        state = self._positions.load(self.name)
        if not state.epoch:
            state = RelayPosition(state.position, state.published, new_epoch())
        notifications = self._service.notifications(gt=state.position, limit=self._batch_size)
        if not notifications:
            return 0
        producer = self._producer_or_new()
        futures: list[Any] = []
        sent: list[Any] = []
        stopped: RelayStoppedError | None = None
        try:
            for n in notifications:
                try:
                    event = self._service.decode(n)
                    futures += self._send(producer, event, state.epoch)
                except PERMANENT_ERRORS as exc:  # publish what came before it, then stop
                    stopped = RelayStoppedError(self.name, n.id, f"{type(exc).__name__}: {exc}")
                    stopped.__cause__ = exc
                    break
                sent.append(n)
            producer.flush(timeout=self._settings_timeout())
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            self._drop_producer()
            raise translate_kafka_error(exc) from exc
        if sent:
            # `published` counts messages: it is compared with what the topic holds.
            self._positions.save(
                self.name,
                RelayPosition(sent[-1].id, state.published + len(futures), state.epoch),
            )
        if stopped is not None:
            raise stopped
        return len(sent)

    def ensure_broker_has_history(self) -> bool:
        """Republish from the start if the broker holds fewer messages than were published."""
        state = self._positions.load(self.name)
        ensure_topics(self._settings, [self._topic])
        held = self._end_offset_total()
        if held >= state.published:
            return False
        log.warning(
            "broker lost messages: republishing from the store",
            topic=self._topic.name,
            held=held,
            published=state.published,
            relay=self.name,
        )
        self._positions.save(self.name, RelayPosition(0, 0, new_epoch()))
        return True

    def run(
        self, stop: threading.Event, *, until_caught_up: bool = False, idle_seconds: float = 0.2
    ) -> RelayStatus:
        """Publish until `stop` is set (or, with `until_caught_up`, until nothing is left)."""
        backoff = 0.2
        while not stop.is_set():
            try:
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
            elif until_caught_up:
                break
            else:
                stop.wait(idle_seconds)
        return self.status()

    def close(self) -> None:
        """Flush and close the producer."""
        self._drop_producer(flush=True)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- helpers ---------------------------------------------------------------------------

    def _send(self, producer: KafkaProducer, event: Any, epoch: str) -> list[Any]:
        return [
            producer.send(
                self._topic.name,
                key=key,
                value=value,
                headers=[*headers, ("relay_epoch", epoch.encode())],
                timestamp_ms=stamp[0] if stamp else None,
            )
            for key, value, headers, *stamp in self._encode(event)
        ]

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
            self._producer = KafkaProducer(**self._settings.producer_kwargs(client_id=self.name))
        return self._producer

    def _drop_producer(self, flush: bool = False) -> None:
        if self._producer is not None:
            if flush:
                self._producer.flush(timeout=self._settings_timeout())
            self._producer.close(timeout=self._settings_timeout())
            self._producer = None

    def _settings_timeout(self) -> float:
        return 30.0


def _headers(event: Any, encoded: EncodedEvent) -> list[tuple[str, bytes]]:
    """Kafka headers of a case event: what a reader needs before (or without) decoding it."""
    state = vars(event)
    return message_headers(
        encoded.event_type, encoded.schema_id,
        event_id=event_id(event.originator_id, event.originator_version),
        recorded_at=event.timestamp, effective_date=state["effective_date"],
        correlation_id=state["correlation_id"],
    )

"""The raw baseline of bus_throughput.py: plain kafka-python, without nervenbahn code.

What the relay put on its topic read back (`read_back`), a plain `KafkaProducer` sending those
very messages again (`raw_produce`: the same keys, value bytes and headers, or without the
headers for context), and a raw round trip: send → received by a plain group consumer polling
in its own thread (`RawPings`, on a `Loop`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer

from bus.kafka_settings import KafkaSettings

CONSUMER_POLL_MS = 100
"""Poll timeout of the raw consumer and of nervenbahn's consumer in bus_throughput.py alike."""
READ_BACK_DEADLINE_S = 60.0


@dataclass
class Sent:
    """What the relay put on its topic, as read back: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def value_size(self) -> int:
        """The value's length in bytes."""
        return len(self.value)


def read_back(kafka: KafkaSettings, topic: str, count: int) -> list[Sent]:
    reader = KafkaConsumer(topic, **kafka.consumer_kwargs(None, "bench-read-back"))
    sent: list[Sent] = []
    deadline = time.monotonic() + READ_BACK_DEADLINE_S
    try:
        while len(sent) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read back {len(sent)} of {count} messages of {topic}")
            for records in reader.poll(timeout_ms=500).values():
                sent += [Sent(r.key, r.value, list(r.headers or [])) for r in records]
    finally:
        reader.close()
    return sent


def raw_produce(
    kafka: KafkaSettings, topic: str, sent: list[Sent], batch: int, *, headers: bool,
) -> float:
    """Plain KafkaProducer sending `sent` in the given order (the relay's: see
    bus_throughput.relay_order): the same keys and value bytes, with the same headers (or
    none), flushed every `batch` messages, every future checked. Seconds, producer start
    included."""
    messages = [(s.key, s.value, s.headers if headers else None) for s in sent]
    started = time.perf_counter()
    producer = KafkaProducer(**kafka.producer_kwargs(client_id="bench-raw"))
    try:
        for first in range(0, len(messages), batch):
            futures = [producer.send(topic, key=key, value=value, headers=hdrs)
                       for key, value, hdrs in messages[first:first + batch]]
            producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=0)
        return time.perf_counter() - started
    finally:
        producer.close(timeout=30)



class Loop(threading.Thread):
    """Calls `step` until stopped; keeps the first exception."""

    def __init__(self, name: str, step: Callable[[], object],
                 close: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self._step, self._close = step, close
        self.halted = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halted.is_set():
                self._step()
        except BaseException as exc:
            self.error = exc
        finally:
            self._close()

    def halt(self) -> None:
        self.halted.set()
        self.join(timeout=30)


class RawPings:
    """Raw Kafka round trip: producer.send → received by a plain group consumer (own thread)."""

    def __init__(self, kafka: KafkaSettings, topic: str, value_size: int) -> None:
        self.topic = topic
        self.value_size = value_size
        self.producer = KafkaProducer(**kafka.producer_kwargs(client_id="bench-raw-pings"))
        self.consumer = KafkaConsumer(**kafka.consumer_kwargs(group_id="bench-raw-latency"))
        self.consumer.subscribe([topic])
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.thread = Loop("raw-consumer", self._poll, self.consumer.close)

    def _poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=CONSUMER_POLL_MS).values():
            now = time.perf_counter()
            for record in records:
                self.received[int.from_bytes(record.value[:8], "big")] = now

    def ping(self, number: int, key: bytes) -> None:
        value = number.to_bytes(8, "big") + bytes(max(self.value_size - 8, 0))
        self.sent[number] = time.perf_counter()
        self.producer.send(self.topic, key=key, value=value)

    def close(self) -> None:
        self.thread.halt()
        self.producer.close(timeout=10)

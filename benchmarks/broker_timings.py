"""Consumer-group join times and produce→consume latency on the embedded broker.

    .venv/bin/python benchmarks/broker_timings.py [--messages 200]

Starts a Tansu broker of its own (embedded profile settings) and prints, in seconds:
the time for a group of one member to own all 4 partitions, for a second member to get its
share (2/2), for a fresh group of two to split 2/2, and for the survivor to own all four again
after the other leaves; then the round trip of single messages (send → received by a group
consumer polling in its own thread), median and 95th percentile.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from bus.broker import EmbeddedBroker
from bus.kafka_settings import KafkaSettings
from bus.topics import TopicSpec, ensure_topics, topic_name


class Member(threading.Thread):
    """A group member polling in its own thread; records what it owns and receives."""

    def __init__(self, settings: KafkaSettings, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(**settings.consumer_kwargs(group_id=group))
        self.consumer.subscribe([topic])
        self.halted = threading.Event()
        self.partitions: set[int] = set()
        self.received: dict[bytes, float] = {}

    def run(self) -> None:
        while not self.halted.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for record in records:
                    self.received[record.value] = now
            self.partitions = {tp.partition for tp in self.consumer.assignment()}
        self.consumer.close()

    def halt(self) -> None:
        self.halted.set()
        self.join(timeout=30)


def seconds_until(condition: Callable[[], bool], within: float = 60.0) -> float:
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > within:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with EmbeddedBroker(Path(tempfile.mkdtemp(prefix="nervenbahn-bench-"))) as broker:
        settings = KafkaSettings(profile="embedded").with_bootstrap(broker.bootstrap)
        topic = topic_name(settings, "bench", f"t{uuid.uuid4().hex[:8]}")
        ensure_topics(settings, [TopicSpec(topic, partitions=4)])
        print(f"settings: session {settings.session_timeout_ms} ms, heartbeat "
              f"{settings.heartbeat_interval_ms} ms, max poll {settings.max_poll_interval_ms} ms")
        joins(settings, topic)
        latency(settings, topic, args.messages)


def joins(settings: KafkaSettings, topic: str) -> None:
    first = Member(settings, topic, "bench-a")
    first.start()
    print(f"group of 1 joins:          {seconds_until(lambda: len(first.partitions) == 4):.2f} s")
    second = Member(settings, topic, "bench-a")
    second.start()
    split = seconds_until(lambda: (len(first.partitions), len(second.partitions)) == (2, 2))
    print(f"2nd member joins (2/2):    {split:.2f} s")
    second.halt()
    print(f"after it leaves (4):       {seconds_until(lambda: len(first.partitions) == 4):.2f} s")
    first.halt()
    pair = [Member(settings, topic, "bench-b"), Member(settings, topic, "bench-b")]
    for member in pair:
        member.start()
    both = seconds_until(lambda: [len(m.partitions) for m in pair] == [2, 2])
    print(f"fresh group of 2 (2/2):    {both:.2f} s")
    for member in pair:
        member.halt()


def latency(settings: KafkaSettings, topic: str, count: int) -> None:
    member = Member(settings, topic, "bench-latency")
    member.start()
    seconds_until(lambda: len(member.partitions) == 4)
    producer = KafkaProducer(**settings.producer_kwargs("bench"))
    trips: list[float] = []
    for n in range(count):
        value = f"m{n}".encode()
        sent = time.perf_counter()
        producer.send(topic, key=str(n % 16).encode(), value=value)
        producer.flush()
        seconds_until(lambda v=value: v in member.received, within=10)  # type: ignore[misc]
        trips.append(member.received[value] - sent)
    producer.close()
    member.halt()
    trips.sort()
    median, p95 = statistics.median(trips) * 1000, trips[int(len(trips) * 0.95)] * 1000
    print(f"round trip ({count} messages, linger {settings.linger_ms} ms): median "
          f"{median:.1f} ms, p95 {p95:.1f} ms, max {trips[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

"""The relay's partitioner puts every key where kafka-python's default partitioner puts it."""

from __future__ import annotations

import random
from uuid import UUID

from kafka.partitioner.default import DefaultPartitioner

from bus.relay import KeyHashCachingPartitioner

TOPIC = "casework.events"


class FakeCluster:
    """The cluster metadata a partitioner reads: one topic with `partitions` partitions."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {TOPIC}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


def test_every_key_goes_to_the_default_partitioners_partition() -> None:
    rng = random.Random(17)
    keys = [str(UUID(int=rng.getrandbits(128))).encode() for _ in range(500)]
    for partitions in (1, 2, 4, 7):
        cluster = FakeCluster(partitions)
        default, cached = DefaultPartitioner(), KeyHashCachingPartitioner(size=100)
        for key in keys + keys:  # again: now from the cache (cleared once it held 100)
            assert cached.partition(TOPIC, key, key, b"", b"", cluster) == \
                default.partition(TOPIC, key, key, b"", b"", cluster)

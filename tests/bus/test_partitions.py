"""NERVENBAHN_KAFKA_PARTITIONS (`KafkaSettings.partitions`) is the partition count of the topics
the bus creates; a topic that exists keeps the count it has, whatever the setting says (Kafka can
only add partitions, and adding them moves case keys to other partitions, breaking the order per
case). `nervenbahn topics create` warns about such a topic (tests/bus/test_bus_cli.py)."""

from __future__ import annotations

from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics, list_topics


def test_new_topics_get_the_configured_partition_count(kafka_settings: KafkaSettings) -> None:
    six = kafka_settings.model_copy(update={"partitions": 6})
    (spec,) = catalogue(six)

    assert ensure_topics(six, [spec]) == [spec.name]
    assert list_topics(six) == {spec.name: 6}


def test_an_existing_topic_keeps_its_partition_count_when_the_setting_changes(
    kafka_settings: KafkaSettings,
) -> None:
    two = kafka_settings.model_copy(update={"partitions": 2})
    eight = kafka_settings.model_copy(update={"partitions": 8})
    (made,) = catalogue(two)
    ensure_topics(two, [made])

    (asked,) = catalogue(eight)

    assert asked.name == made.name and asked.partitions == 8
    assert ensure_topics(eight, [asked]) == []  # neither refused nor altered
    assert list_topics(eight) == {made.name: 2}

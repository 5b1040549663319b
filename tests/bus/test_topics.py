"""Topic names, the catalogue, creating topics and counting their messages on a real broker."""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaProducer, TopicPartition

from bus.broker import free_port
from bus.kafka_errors import BrokerUnavailableError, TopicError
from bus.kafka_settings import KafkaSettings
from bus.topics import (
    TopicSpec,
    catalogue,
    dead_letter_segment,
    dead_letter_spec,
    dead_letter_topic,
    ensure_topics,
    list_topics,
    partition_end_offsets,
    topic_exists,
    topic_message_counts,
    topic_name,
)

NAMING = [
    ("nervenbahn", "casework", "case-events", 1, "nervenbahn.casework.case-events.v1"),
    ("nervenbahn", "audit", "checkpoints", 1, "nervenbahn.audit.checkpoints.v1"),
    ("nervenbahn", "reporting", "case-facts", 1, "nervenbahn.reporting.case-facts.v1"),
    ("staging", "casework", "case-events", 2, "staging.casework.case-events.v2"),
]


@pytest.mark.parametrize(("prefix", "domain", "dataset", "major", "expected"), NAMING)
def test_topic_name_is_prefix_domain_dataset_major(
    prefix: str, domain: str, dataset: str, major: int, expected: str
) -> None:
    settings = KafkaSettings(topic_prefix=prefix)

    assert topic_name(settings, domain, dataset, major) == expected


@pytest.mark.parametrize(
    ("domain", "dataset", "major"),
    [
        ("Casework", "case-events", 1),  # upper case
        ("casework", "case.events", 1),  # a dot would add a segment
        ("casework", "case_events", 1),  # underscore
        ("casework", "", 1),
        ("9casework", "case-events", 1),  # must start with a letter
        ("casework", "x" * 64, 1),  # too long
        ("casework", "case-events", 0),
    ],
)
def test_malformed_topic_name_is_refused(domain: str, dataset: str, major: int) -> None:
    with pytest.raises(TopicError):
        topic_name(KafkaSettings(), domain, dataset, major)


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("reporting-projection", "nervenbahn.dlq.reporting-projection.v1"),
        ("audit", "nervenbahn.dlq.audit.v1"),
    ],
)
def test_dead_letter_topic_is_named_after_the_consumer_group(group: str, expected: str) -> None:
    assert dead_letter_topic(KafkaSettings(), group) == expected


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("projection-branch_office", "nervenbahn.dlq.projection-branch-office-23deb6f7.v1"),
        ("Reporting", "nervenbahn.dlq.reporting-b1fa104b.v1"),
        ("reporting.projection", "nervenbahn.dlq.reporting-projection-3fe98c53.v1"),
        ("reporting_projection", "nervenbahn.dlq.reporting-projection-1eac0fef.v1"),
        ("9-lives", "nervenbahn.dlq.g-9-lives-e6af7a36.v1"),
    ],
)
def test_consumer_group_that_is_no_topic_segment_gets_a_valid_dead_letter_topic(
    group: str, expected: str
) -> None:
    topic = dead_letter_topic(KafkaSettings(), group)

    assert topic == expected
    assert dead_letter_spec(KafkaSettings(), group).dataset == dead_letter_segment(group)


def test_groups_that_differ_only_in_invalid_characters_get_different_dead_letter_topics() -> None:
    groups = ["projection-branch_office", "projection-branch.office", "Projection-Branch-Office"]

    assert len({dead_letter_topic(KafkaSettings(), group) for group in groups}) == 3


def test_a_long_group_gets_a_segment_of_at_most_63_characters() -> None:
    segment = dead_letter_segment("projection_" * 20)

    assert len(segment) <= 63
    assert dead_letter_topic(KafkaSettings(), "projection_" * 20).endswith(f".{segment}.v1")


@pytest.mark.parametrize("group", ["", "a b", "gruppe/1", "zürich", "x" * 250])
def test_consumer_group_that_kafka_cannot_name_is_refused_naming_it(group: str) -> None:
    with pytest.raises(TopicError, match="consumer group"):
        dead_letter_topic(KafkaSettings(), group)


def test_catalogue_has_the_case_events_topic_keyed_by_case() -> None:
    settings = KafkaSettings(topic_prefix="acme", partitions=8)

    (case_events,) = catalogue(settings)

    assert case_events.name == "acme.casework.case-events.v1"
    assert (case_events.domain, case_events.dataset, case_events.major) == (
        "casework", "case-events", 1)
    assert case_events.partitions == 8
    assert case_events.carries_personal_data == "sealed"
    assert case_events.config["retention.ms"] == "-1"
    assert "case id" in case_events.description


def test_catalogue_adds_the_dead_letter_topics_asked_for() -> None:
    settings = KafkaSettings()

    names = [spec.name for spec in catalogue(settings, ["reporting", "audit"])]

    assert names == [
        "nervenbahn.casework.case-events.v1",
        "nervenbahn.dlq.reporting.v1",
        "nervenbahn.dlq.audit.v1",
    ]
    assert dead_letter_spec(settings, "audit").carries_personal_data == "sealed"


def test_spec_name_not_following_the_convention_has_no_dataset() -> None:
    with pytest.raises(TopicError, match="does not follow"):
        _ = TopicSpec("legacy-topic", partitions=1).dataset


@pytest.mark.parametrize(("name", "partitions"), [("bad name!", 1), ("", 1), ("ok.name", 0)])
def test_spec_the_broker_would_refuse_is_refused_up_front(name: str, partitions: int) -> None:
    with pytest.raises(TopicError):
        TopicSpec(name, partitions=partitions)


def test_ensure_topics_creates_what_is_missing_once(kafka_settings: KafkaSettings) -> None:
    specs = catalogue(kafka_settings, ["checker"])

    first = ensure_topics(kafka_settings, specs)
    second = ensure_topics(kafka_settings, specs)

    assert first == [spec.name for spec in specs]
    assert second == []
    assert list_topics(kafka_settings) == {
        f"{kafka_settings.topic_prefix}.casework.case-events.v1": kafka_settings.partitions,
        f"{kafka_settings.topic_prefix}.dlq.checker.v1": 1,
    }
    assert all(topic_exists(kafka_settings, spec.name) for spec in specs)


def test_concurrent_ensure_topics_create_each_topic_once(kafka_settings: KafkaSettings) -> None:
    specs = catalogue(kafka_settings, ["a", "b", "c"])
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def ensure() -> None:
        try:
            results.append(ensure_topics(kafka_settings, specs))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    created = [name for result in results for name in result]
    assert sorted(created) == sorted(spec.name for spec in specs)


def test_list_topics_shows_only_this_prefix(kafka_settings: KafkaSettings) -> None:
    other = kafka_settings.model_copy(update={"topic_prefix": f"{kafka_settings.topic_prefix}x"})
    ensure_topics(other, catalogue(other))

    assert list_topics(kafka_settings) == {}


def test_absent_topic_does_not_exist_and_has_no_count(kafka_settings: KafkaSettings) -> None:
    name = topic_name(kafka_settings, "nowhere", "nothing")

    assert not topic_exists(kafka_settings, name)
    assert topic_message_counts(kafka_settings, [name]) == {name: None}
    assert list_topics(kafka_settings) == {}  # looking did not create it


def test_message_counts_sum_every_partition(kafka_settings: KafkaSettings) -> None:
    full, empty = catalogue(kafka_settings, ["empty"])
    ensure_topics(kafka_settings, [full, empty])
    producer = KafkaProducer(**kafka_settings.producer_kwargs("counting"))
    try:
        # sent without waiting: the producer packs several messages into one record batch
        for n in range(25):
            producer.send(full.name, key=f"case-{n % 7}".encode(), value=b"event")
        producer.flush(timeout=30)
        for _ in range(3):
            producer.send(full.name, key=b"case-x", value=b"one by one").get(timeout=30)
    finally:
        producer.close()

    assert topic_message_counts(kafka_settings, [full.name, empty.name]) == {
        full.name: 28,
        empty.name: 0,
    }


def test_partition_end_offsets_count_whole_record_batches(kafka_settings: KafkaSettings) -> None:
    spec = TopicSpec(topic_name(kafka_settings, "test", "batches"), partitions=1)
    ensure_topics(kafka_settings, [spec])
    producer = KafkaProducer(**kafka_settings.producer_kwargs("batches"))
    try:
        for _ in range(10):
            producer.send(spec.name, value=b"x")
        producer.flush(timeout=30)
    finally:
        producer.close()

    partition = TopicPartition(spec.name, 0)
    assert partition_end_offsets(kafka_settings, [partition]) == {partition: 10}


def test_unreachable_broker_is_reported_as_unavailable() -> None:
    settings = KafkaSettings(
        bootstrap_servers=[f"127.0.0.1:{free_port()}"],
        profile="embedded",
        bootstrap_timeout_ms=500,
    )

    with pytest.raises(BrokerUnavailableError, match="create topics: "):
        ensure_topics(settings, catalogue(settings))

"""The table of published datasets and the container that builds relays and consumers from it:
the same topics and relay positions as before the table, every part opened once and closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from nervenbahn.config import ConfigError
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.datasets import DATASETS
from tests.bus.pipeline import store_settings

KAFKA = KafkaSettings(bootstrap_servers=["127.0.0.1:9"], topic_prefix="nb-test")
"""Settings of a broker that is never contacted (topics are named, not created, here)."""


@pytest.mark.parametrize(
    ("dataset", "topic", "relay"),
    [
        ("case-events", "nb-test.casework.case-events.v1", "case-events"),
        ("case-facts", "nb-test.reporting.case-facts.v1", "reporting"),
        ("payment-orders", "nb-test.payments.payment-orders.v1", "payments"),
        ("checkpoints", "nb-test.audit.checkpoints.v1", None),
    ],
)
def test_each_dataset_keeps_its_topic_and_relay_position(
    tmp_path: Path, master_key: str, dataset: str, topic: str, relay: str | None
) -> None:
    container = Container(store_settings(tmp_path, master_key), kafka=KAFKA)
    assert container.topic(dataset).name == topic
    assert DATASETS[dataset].relay == relay


def test_the_relays_keep_their_position_names_and_batch_size(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key), kafka=KAFKA)
    try:
        relays = {name: container.relay(name) for name in ("case-events", "payment-orders")}
        assert {name: relay.name for name, relay in relays.items()} == {
            "case-events": "case-events", "payment-orders": "payments",
        }
        assert container.relay("case-events", batch_size=7)._batch_size == 7
        assert relays["case-events"]._batch_size == 500
    finally:
        container.close()


def test_an_unknown_dataset_is_a_configuration_error_naming_the_known_ones(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key), kafka=KAFKA)
    with pytest.raises(ConfigError, match=r"'no-such'.*known: applications, case-events, "
                                           r"case-facts"):
        container.topic("no-such")


def test_a_dataset_no_relay_fills_has_no_relay(tmp_path: Path, master_key: str) -> None:
    container = Container(store_settings(tmp_path, master_key), kafka=KAFKA)
    with pytest.raises(ConfigError, match="'checkpoints': no relay fills its topic"):
        container.relay("checkpoints")


def test_the_container_opens_each_part_once_and_again_after_closing(
    tmp_path: Path, master_key: str
) -> None:
    container = Container(store_settings(tmp_path, master_key))
    service = container.service
    assert container.service is service and container.payments is container.payments
    container.close()
    reopened = container.service
    assert reopened is not service
    assert reopened.recorder.max_notification_id() in (None, 0)  # usable: the store is open
    container.close()


def test_a_service_handed_in_stays_open_when_the_container_closes(
    tmp_path: Path, master_key: str
) -> None:
    settings = store_settings(tmp_path, master_key)
    service = build_service(settings)
    try:
        container = Container(settings, kafka=KAFKA, service=service)
        assert container.service is service
        container.close()
        assert container.service is service
        assert service.recorder.max_notification_id() in (None, 0)  # still open
    finally:
        close_service(service)

"""The embedded broker keeps topics in memory: after a restart it is empty, the relay notices
and republishes from the store, and a consumer's effects stay exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

from bus.broker import EmbeddedBroker
from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from tests.bus.pipeline import EffectCounter, open_supported_case, pipeline
from tests.bus.waiting import wait_until


def test_broker_restarted_empty_is_refilled_from_the_store(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with EmbeddedBroker(tmp_path / "broker") as broker:
        kafka = kafka_settings.with_bootstrap(broker.bootstrap)
        with pipeline(tmp_path, master_key, kafka) as line:
            topic = line.container.topic("case-events").name
            for n in range(2):
                open_supported_case(line.service, n)
            counter = EffectCounter(tmp_path / "consumer.db")
            with line.container.relay("case-events") as relay:
                relay.run(threading.Event(), until_caught_up=True)
                with line.consumer("survivor", counter) as consumer:
                    wait_until(lambda: counter.count() >= 6, step=lambda: consumer.poll_once(200))

                broker.restart()
                assert topic_message_counts(kafka, [topic]) == {topic: None}

                assert relay.ensure_broker_has_history() is True
                relay.run(threading.Event(), until_caught_up=True)
                assert topic_message_counts(kafka, [topic]) == {topic: 6}
                assert relay.ensure_broker_has_history() is False

                open_supported_case(line.service, 2)
                relay.run(threading.Event(), until_caught_up=True)

            with line.consumer("survivor", counter) as consumer:
                wait_until(
                    lambda: consumer.lag() == 0 and counter.count() >= 9,
                    step=lambda: consumer.poll_once(200),
                )

            effects = [(case, version) for _, _, case, version in counter.rows()]
            assert len(effects) == 9
            assert set(effects) == line.recorded()

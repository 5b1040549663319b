"""The embedded broker re-creates a topic it lost with its own partition count
(`bus.broker.AUTO_CREATED_PARTITIONS`): starting it for settings with another count warns."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bus.broker import AUTO_CREATED_PARTITIONS
from bus.kafka_settings import KafkaSettings
from nervenbahn.container import kafka_or_embedded


@pytest.mark.parametrize("partitions", [2, AUTO_CREATED_PARTITIONS])
def test_the_embedded_broker_warns_when_the_partitions_differ_from_its_own(
    tmp_path: Path, partitions: int
) -> None:
    settings = KafkaSettings(profile="embedded", partitions=partitions)

    with capture_logs() as logs, kafka_or_embedded(settings, tmp_path) as kafka:
        assert kafka.bootstrap_servers  # the embedded broker runs

    warned = [entry for entry in logs if entry["log_level"] == "warning"
              and "re-creates a lost topic" in entry["event"]]
    assert len(warned) == (partitions != AUTO_CREATED_PARTITIONS)
    if warned:
        assert warned[0]["partitions"] == partitions

"""A consumer leaves its group only as a full member (issue 20, point 1): closed in the middle of
its join (the first poll of a run that ends at once, a SIGTERM during the join), it lets the join
complete and then leaves, so the group's next member is assigned every partition promptly. On the
embedded broker a member that left mid-join stayed the group's leader for ever, and every later
member waited for partitions in silence; `join_wait_ms` bounds how long `close` waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import structlog

from bus.consumer import Consumer
from bus.kafka_settings import KafkaSettings
from tests.bus.pipeline import EffectCounter, Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until


@pytest.fixture
def line(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings) -> Pipeline:
    with pipeline(tmp_path, master_key, kafka_settings) as built:
        yield built  # type: ignore[misc]


def test_a_consumer_closed_mid_join_lets_the_next_member_of_its_group_in(
    line: Pipeline, tmp_path: Path
) -> None:
    counter = EffectCounter(tmp_path / "consumer.db")
    with line.consumer("g", counter) as first:  # a member that joined and left: the group exists
        wait_until(lambda: first.joined, step=lambda: first.poll_once(200), what="first joined")
    hasty = line.consumer("g", counter)
    hasty.poll_once(200)  # the join is in flight: the broker answers after ~half the session
    assert not hasty.joined
    hasty.close()
    assert hasty.joining_for() == 0.0
    open_supported_case(line.service)
    with line.container.relay("case-events") as relay:
        relay.run(threading.Event(), until_caught_up=True)
    with line.consumer("g", counter) as after:
        wait_until(lambda: counter.count() == 3, step=lambda: after.poll_once(200), within=15,
                   what="the next member handles the new case's events")
        assert after.joined


def test_a_join_that_outlasts_join_wait_is_said_once_and_bounds_close(
    line: Pipeline, tmp_path: Path
) -> None:
    counter = EffectCounter(tmp_path / "consumer.db")
    kafka = line.container.kafka.model_copy(update={"join_wait_ms": 0})
    consumer = Consumer(kafka, "impatient", [line.container.topic("case-events").name],
                        line.container.codec("case-events"), counter.handle, counter.store)
    with structlog.testing.capture_logs() as logs:
        consumer.poll_once(200)
        consumer.poll_once(200)
        started = time.monotonic()
        consumer.close()
    assert time.monotonic() - started < 5  # no waiting beyond join_wait_ms (and the close)
    warned = [entry for entry in logs if entry["event"] == "no partitions assigned yet"]
    assert len(warned) == 1 and warned[0]["group"] == "impatient"
    assert any(entry["event"] == "closing mid-join: the join did not complete" for entry in logs)

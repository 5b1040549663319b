"""A relay far behind has its batches prepared in a process of its own (`bus.relay_batches`):
it publishes the very messages it would have prepared itself, in the same order; a preparing
process that dies or cannot start costs no event and sends none twice; an event that cannot be
encoded still stops the relay at that event; the process ends once the relay caught up."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bus.codec import EventCodec
from bus.errors import EncodeError, RelayStoppedError
from bus.kafka_settings import KafkaSettings
from bus.positions_sqlite import SQLitePositionStore
from bus.relay import Relay, case_event_encoder
from bus.relay_batches import PreparingProcess, RelayPreparerError, RelaySource
from bus.topics import TopicSpec, ensure_topics, topic_name
from nervenbahn.config import Settings
from nervenbahn.relay_source import relay_source
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until

CASES = 40
"""Three events each: 120 events, 12 batches of 10."""
BATCH = 10

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@pytest.fixture
def line(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings) -> Iterator[Pipeline]:
    with pipeline(tmp_path, master_key, kafka_settings) as opened:
        for n in range(CASES):
            open_supported_case(opened.service, n)
        yield opened


def test_a_relay_far_behind_publishes_the_messages_it_would_have_prepared_itself(
    line: Pipeline, tmp_path: Path, kafka_settings: KafkaSettings,
) -> None:
    preparing = _preparing(line, from_lag=2 * BATCH)
    with _relay(line, tmp_path, "prepared", preparing) as (relay, prepared_topic):
        _ready(preparing)
        pid = preparing.pid
        status = relay.run(threading.Event(), until_caught_up=True)
        prepared_ending = preparing.running
    with _relay(line, tmp_path, "itself", None) as (itself, own_topic):
        itself.run(threading.Event(), until_caught_up=True)

    events = 3 * CASES
    assert (status.position, status.published, status.lag) == (events, events, 0)
    # every batch but the last (short: the relay caught up) came from the process
    assert (preparing.starts, preparing.batches) == (1, events // BATCH + 1)
    assert not prepared_ending and _gone(pid)
    published = _outside_read(kafka_settings, prepared_topic, events)
    assert published == _outside_read(kafka_settings, own_topic, events)
    assert sum(len(messages) for messages in published.values()) == events


def test_a_killed_preparing_process_costs_no_event_and_sends_none_twice(
    line: Pipeline, tmp_path: Path, kafka_settings: KafkaSettings,
) -> None:
    preparing = _preparing(line, from_lag=BATCH)
    stop = threading.Event()
    with structlog.testing.capture_logs() as logs, \
            _relay(line, tmp_path, "killed", preparing) as (relay, topic):
        _ready(preparing)
        killed = preparing.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)  # before the relay asked for its first batch
        relay.run(stop, until_caught_up=True)
        status = relay.status()

    events = 3 * CASES
    assert (status.position, status.published) == (events, events)
    assert preparing.starts == 1  # not started again within PREPARE_RETRY_SECONDS
    assert any(entry["event"] == "relay preparing its batches itself"
               and "ended" in entry["error"] for entry in logs)
    published = _outside_read(kafka_settings, topic, events)
    ids = [dict(headers)["event_id"] for messages in published.values()
           for _, _, headers in messages]
    assert len(ids) == len(set(ids)) == events


def test_a_preparing_process_that_cannot_start_says_why() -> None:
    preparing = PreparingProcess(_cannot_open, from_lag=BATCH, name="cannot-start")
    preparing.start()
    pid = preparing.pid
    with pytest.raises(RelayPreparerError) as failed:
        wait_until(lambda: preparing.ready, within=60, what="the process to start or fail")

    assert str(failed.value) == (
        "relay cannot-start: the process preparing its batches could not start: "
        "ConnectionError: the store is not reachable")
    assert not preparing.running and _gone(pid)


def test_an_event_the_process_cannot_encode_stops_the_relay_at_that_event(
    line: Pipeline, tmp_path: Path, kafka_settings: KafkaSettings,
) -> None:
    factory = partial(_refusing_position, line.settings, line.container.kafka, 25)
    preparing = PreparingProcess(factory, from_lag=1, name="refusing")
    with _relay(line, tmp_path, "refusing", preparing) as (relay, topic):
        _ready(preparing)
        stop = threading.Event()
        deadline = threading.Timer(60, stop.set)  # a relay that never stops fails, not hangs
        deadline.start()
        try:
            with pytest.raises(RelayStoppedError) as stopped:
                relay.run(stop)  # no `until_caught_up`: it would retry for ever
        finally:
            deadline.cancel()
        status = relay.status()

    assert stopped.value.position == 25
    assert "EncodeError: position 25 does not fit" in str(stopped.value)
    assert (status.position, status.published) == (24, 24)  # everything before it
    assert sum(map(len, _outside_read(kafka_settings, topic, 24).values())) == 24


def test_a_relay_that_cannot_start_a_process_publishes_everything_itself(
    line: Pipeline, tmp_path: Path, kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_process(*_: object, **__: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # EAGAIN: no process

    monkeypatch.setattr("bus.relay_batches.subprocess.Popen", no_process)
    preparing = _preparing(line, from_lag=BATCH)
    with structlog.testing.capture_logs() as logs, \
            _relay(line, tmp_path, "no-process", preparing) as (relay, topic):
        status = relay.run(threading.Event(), until_caught_up=True)

    assert (status.position, status.published, status.lag) == (3 * CASES, 3 * CASES, 0)
    assert [entry["error"] for entry in logs
            if entry["event"] == "relay preparing its batches itself"] == [
        "relay test: the process preparing its batches could not start: BlockingIOError: "
        "[Errno 11] Resource temporarily unavailable"]
    assert sum(map(len, _outside_read(kafka_settings, topic, 3 * CASES).values())) == 3 * CASES


def test_a_process_that_stops_answering_is_killed_within_the_lease_and_the_relay_goes_on(
    line: Pipeline, tmp_path: Path, kafka_settings: KafkaSettings,
) -> None:
    preparing = _preparing(line, from_lag=BATCH)
    with structlog.testing.capture_logs() as logs, \
            _relay(line, tmp_path, "stopped", preparing, lease=(3.0, 1.0)) as (relay, topic):
        _ready(preparing)
        pid = preparing.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # hangs: a lock wait, a stalled disk
        try:
            status = relay.run(threading.Event(), until_caught_up=True)
            holder = relay.status().holder
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    assert preparing.timeout_s == 1.0  # (lease - renewal) / 2
    assert (status.position, status.published) == (3 * CASES, 3 * CASES)
    assert holder == relay.holder_id  # it kept its lease: no other instance took over
    assert any(entry["event"] == "relay preparing its batches itself"
               and "did not answer within 1 s" in entry["error"] for entry in logs)
    assert _gone(pid)
    assert sum(map(len, _outside_read(kafka_settings, topic, 3 * CASES).values())) == 3 * CASES


def test_a_standby_ends_its_preparing_process(line: Pipeline, tmp_path: Path) -> None:
    preparing = _preparing(line, from_lag=BATCH)
    with _relay(line, tmp_path, "standby", preparing) as (relay, _):
        assert relay.hold_lease()
        _ready(preparing)
        pid = preparing.pid
        relay.release_lease()
        other = SQLitePositionStore(tmp_path / "positions-standby.db")
        try:
            assert other.acquire("standby", "another-instance", 15.0) is not None
            assert not relay.hold_lease()  # standby now
        finally:
            other.close()
        assert relay.role == "standby"
        assert not preparing.running and _gone(pid)


def test_a_relay_less_than_two_batches_behind_starts_no_process(
    line: Pipeline, tmp_path: Path,
) -> None:
    preparing = _preparing(line, from_lag=1)
    with _relay(line, tmp_path, "trickle", preparing) as (relay, _):
        relay.run(threading.Event(), until_caught_up=True)  # 120 behind: once, while it starts
        started = preparing.starts
        for n in range(CASES, CASES + 6):  # then 18 events: a full batch and 8 more
            open_supported_case(line.service, n)
        status = relay.run(threading.Event(), until_caught_up=True)

    assert status.lag == 0
    assert preparing.starts == started <= 1
    assert not preparing.running


# --- helpers ----------------------------------------------------------------------------------


def _gone(pid: int | None) -> bool:
    """The process `pid` has ended and was reaped (no zombie left)."""
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False



def _preparing(line: Pipeline, *, from_lag: int) -> PreparingProcess:
    return PreparingProcess(partial(relay_source, line.settings, line.container.kafka,
                                    "case-events"), from_lag=from_lag, name="test")


def _ready(preparing: PreparingProcess) -> None:
    """Start the process and wait until it takes batches (else the relay's first batches are
    its own while the process starts)."""
    preparing.start()
    wait_until(lambda: preparing.ready, within=60, what="the preparing process to start")


@contextmanager
def _relay(
    line: Pipeline, tmp_path: Path, name: str, preparing: PreparingProcess | None,
    lease: tuple[float, float] = (15.0, 5.0),
) -> Iterator[tuple[Relay, str]]:
    """A case-events relay named `name` publishing to a topic of its own."""
    kafka = line.container.kafka
    spec = TopicSpec(topic_name(kafka, "test", f"relay-{name}"), partitions=4)
    ensure_topics(kafka, [spec])
    codec = line.container.codec("case-events")
    assert isinstance(codec, EventCodec)
    encoder = case_event_encoder(codec)  # the dataset's own
    positions = SQLitePositionStore(tmp_path / f"positions-{name}.db")
    relay = Relay(service=line.service, encoder=encoder, positions=positions, settings=kafka,
                  topic=spec, name=name, batch_size=BATCH, preparing=preparing,
                  lease_seconds=lease[0], renew_seconds=lease[1])
    try:
        yield relay, spec.name
    finally:
        relay.close()
        positions.close()


def _outside_read(kafka: KafkaSettings, topic: str, count: int) -> dict[int, list[Message]]:
    """Every message of `topic` by partition, in offset order, as a plain confluent-kafka
    consumer reads it (key, value, headers without the relay's epoch, which differs)."""
    consumer = Consumer({"bootstrap.servers": ",".join(kafka.bootstrap_servers),
                         "group.id": f"outside-{topic}", "enable.auto.commit": False})
    found: dict[int, list[Message]] = {}

    def read() -> None:
        for message in consumer.consume(num_messages=500, timeout=0.3):
            assert message.error() is None, message.error()
            pairs: Any = message.headers() or []
            headers = [(k, v) for k, v in pairs if k != "relay_epoch"]
            found.setdefault(message.partition() or 0, []).append(
                (message.key(), message.value(), headers))

    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        wait_until(lambda: sum(map(len, found.values())) >= count, step=read,
                   within=60, what=f"{count} messages on {topic}")
        for _ in range(3):  # and nothing beyond them
            read()
    finally:
        consumer.close()
    return found


def _cannot_open() -> RelaySource:
    raise ConnectionError("the store is not reachable")


def _refusing_position(settings: Settings, kafka: KafkaSettings, refused: int) -> RelaySource:
    """The case-events source, its encoder refusing the event at store position `refused`
    (run in the preparing process: a module-level function, so that it pickles)."""
    source, encode, close = relay_source(settings, kafka, "case-events")
    positions = {(n.originator_id, n.originator_version): n.id
                 for n in source.notifications(gt=0, limit=10_000)}

    def refusing(event: Any) -> Any:
        if positions[(event.originator_id, event.originator_version)] == refused:
            raise EncodeError(f"position {refused} does not fit")
        return encode(event)

    return source, refusing, close

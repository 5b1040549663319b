"""The relay killed with SIGKILL at random moments while commands flow: nothing lost, and
every event takes effect exactly once in a consumer's database."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from tests.bus.pipeline import EffectCounter, Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until

KILLS = 20
LEASE = {"NERVENBAHN_RELAY_LEASE_SECONDS": "0.6", "NERVENBAHN_RELAY_RENEW_SECONDS": "0.2"}
"""A killed relay never releases its lease: the next one takes over once it runs out (a short
lease, so that the next process, which lives 0.3–2 s, gets to publish)."""


def relay_process(
    line: Pipeline, kafka: KafkaSettings, master_key: str, log: Path
) -> subprocess.Popen[bytes]:
    """`python -m nervenbahn relay run` on the test's store and topics, small batches."""
    env = {
        **os.environ,
        "NERVENBAHN_STORE": f"sqlite:///{line.settings.store.sqlite_path}",
        "NERVENBAHN_MASTER_KEY": master_key,
        "NERVENBAHN_KAFKA": ",".join(kafka.bootstrap_servers),
        "NERVENBAHN_KAFKA_PROFILE": kafka.profile,
        "NERVENBAHN_TOPIC_PREFIX": kafka.topic_prefix,
        "NERVENBAHN_LOG_FORMAT": "json",
        **LEASE,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nervenbahn", "relay", "run", "--batch-size", "5"],
            env=env,
            stdout=out,
            stderr=out,
        )


@pytest.mark.slow
def test_relay_killed_twenty_times_loses_nothing_and_duplicates_no_effect(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    rng = random.Random(20261122)
    with pipeline(tmp_path, master_key, kafka_settings, LEASE) as line:
        stop_writing = threading.Event()
        written: list[int] = []

        def write_commands() -> None:
            n = 0
            while not stop_writing.is_set():
                open_supported_case(line.service, n)
                written.append(n)
                n += 1
                stop_writing.wait(0.02)

        writer = threading.Thread(target=write_commands, name="commands")
        writer.start()
        log = tmp_path / "relay.log"
        try:
            for _ in range(KILLS):
                relay = relay_process(line, kafka_settings, master_key, log)
                # A random moment: while starting, while publishing, between batches.
                threading.Event().wait(rng.uniform(0.3, 2.0))
                relay.send_signal(signal.SIGKILL)
                relay.wait(timeout=30)
                assert relay.returncode == -signal.SIGKILL
        finally:
            stop_writing.set()
            writer.join(timeout=60)

        with line.container.relay("case-events") as relay:
            relay.run(threading.Event(), until_caught_up=True)
            assert relay.status().lag == 0
        counter = EffectCounter(tmp_path / "consumer.db")
        recorded = line.recorded()
        with line.consumer("exactly-once", counter) as consumer:
            wait_until(
                lambda: consumer.lag() == 0 and counter.count() >= len(recorded),
                step=lambda: consumer.poll_once(300),
                within=90,
                what="every event consumed",
            )

        effects = [(case, version) for _, _, case, version in counter.rows()]
        assert len(written) > 20
        assert len(recorded) == 3 * len(written)
        assert set(effects) == recorded  # nothing lost
        assert len(effects) == len(recorded)  # nothing twice
        topic = line.container.topic("case-events").name
        published = topic_message_counts(line.container.kafka, [topic])
        assert published[topic] >= len(recorded)
        print(f"\n{KILLS} kills: {len(recorded)} events, "
              f"{published[topic]} messages on the topic, "
              f"{len(effects)} effects")

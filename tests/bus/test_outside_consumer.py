"""examples/outside_consumer.py, an outside application, runs against `serve` on the embedded
broker: it subscribes in a group, decodes every case event through the served registry with a
bus_reader key, and handles a re-sent message once. It imports nothing of nervenbahn's."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from nervenbahn.api.app import REGISTRY_PREFIX
from tests.bus.pipeline import open_supported_case, pipeline, topic_contents
from tests.bus.test_registry_served import serving_bus_readers
from tests.bus.waiting import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "outside_consumer.py"


@pytest.mark.parametrize(
    "program", ["outside_consumer.py", "read_every_topic.py", "fund_application.py"])
def test_the_example_imports_only_the_standard_library_and_confluent_kafka(program: str) -> None:
    """Only the standard library and confluent-kafka, and the example's own neighbours in
    examples/ (fund_payments.py beside fund_application.py), which follow the same rule."""
    seen: set[str] = set()
    imported = _imports(EXAMPLES / program, seen)
    assert imported - sys.stdlib_module_names == {"confluent_kafka"}
    assert seen == ({"fund_payments"} if program == "fund_application.py" else set())


def _imports(path: Path, seen: set[str]) -> set[str]:
    """The top-level modules `path` imports, those of its neighbours in examples/ included
    (each neighbour's name added to `seen`)."""
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {str(node.module).split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    for name in sorted(imported):
        if (EXAMPLES / f"{name}.py").exists() and name not in seen:
            seen.add(name)
            imported |= _imports(EXAMPLES / f"{name}.py", seen)
    return imported - {name for name in seen}


def test_the_outside_consumer_decodes_every_case_event_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        cases = [open_supported_case(line.service, n) for n in range(3)]
        topic = line.container.topic("case-events").name
        recorded = {str(event_id(UUID(case), version)) for case, version in line.recorded()}
        bootstrap = ",".join(kafka_settings.bootstrap_servers)
        with serving_bus_readers(line, tmp_path) as (server, key):
            wait_until(lambda: set(topic_contents(kafka_settings, topic)[0]) == recorded,
                       within=60, what="every event on the topic")
            _resend_one(kafka_settings, topic)  # at least once: the same event again
            done = subprocess.run(
                [sys.executable, str(EXAMPLE), "--bootstrap", bootstrap, "--topic", topic,
                 "--registry", f"{server.url}{REGISTRY_PREFIX}", "--user", "vendor-app",
                 f"--key={key}", "--group", "vendor-app", "--idle-seconds", "8",
                 "--session-timeout-ms", "6000"],
                capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    *events, summary = lines
    assert summary == {"events": len(recorded), "duplicates": 1, "type_mismatches": 0}
    assert {e["event_id"] for e in events} == recorded and len(events) == len(recorded)
    assert {e["case_id"] for e in events} == {str(case) for case in cases}
    assert {e["event_type"] for e in events} >= {"CaseOpened"}


def _resend_one(kafka: KafkaSettings, topic: str) -> None:
    """Publish the first message of partition 0 (or the first partition holding one) again,
    key, value and headers unchanged, as a relay restarted after a crash would."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "resend"))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        found: list[object] = []
        wait_until(lambda: bool(found), what="a message to re-send",
                   step=lambda: found.extend(
                       r for records in reader.poll(200).values() for r in records[:1]))
        message = found[0]
    finally:
        reader.close()
    producer = KafkaProducer(**kafka.producer_kwargs("resend"))
    try:
        producer.send(topic, key=message.key, value=message.value,  # type: ignore[attr-defined]
                      headers=message.headers).get(timeout=30)  # type: ignore[attr-defined]
    finally:
        producer.close()

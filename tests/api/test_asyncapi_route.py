"""`GET /asyncapi.json`: the bus's AsyncAPI document, for anyone who reaches the API (it holds
no personal data), on the installation's own topic names, naming the schema registry `serve`
answers; and what an integrator's quick start (docs/bus.md) relies on of a running `serve`:
every topic exists from the start, and the CLI reaches serve's own broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bus.asyncapi import asyncapi_document
from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import installation_topics, list_topics
from tests.api.conftest import AppOn, ReadModels
from tests.api.http import get_json, serve_environment
from tests.bus.waiting import wait_until


def test_asyncapi_document_is_served_without_a_key_for_the_installations_topics(
    app_on: AppOn, seeded: ReadModels
) -> None:
    kafka = KafkaSettings(topic_prefix="canton-be", partitions=3)

    answer = app_on(seeded, kafka=kafka).get("/asyncapi.json")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == asyncapi_document(kafka, registry_url="http://testserver/registry")
    binding = answer.json()["servers"]["installation"]["bindings"]["kafka"]
    assert binding["schemaRegistryUrl"] == "http://testserver/registry"
    assert answer.json()["channels"]["casework.case-events.v1"]["address"] == (
        "canton-be.casework.case-events.v1")


def test_serve_on_its_embedded_broker_describes_that_broker_and_holds_every_topic(
    tmp_path: Path,
) -> None:
    """`nervenbahn serve` without NERVENBAHN_KAFKA starts an embedded broker after the API's
    context is built; the document still names the broker it started, not a placeholder, and
    serve's own registry. Every topic of the installation exists as soon as serve answers (the
    checkpoints' too, minutes before the first checkpoint), and the CLI, given that broker
    with the embedded profile, shows every relay."""
    env = serve_environment(tmp_path, NERVENBAHN_TOPIC_PREFIX="canton-so")
    nervenbahn = [sys.executable, "-m", "nervenbahn"]
    subprocess.run([*nervenbahn, "init"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    serving = subprocess.Popen([*nervenbahn, "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers: list[Any] = []
    try:
        wait_until(lambda: bool(answers), within=90, what="serve answering /asyncapi.json",
                   step=lambda: answers.extend(_document(f"http://127.0.0.1:{port}")))
        broker = answers[0]["servers"]["installation"]["host"]
        kafka = KafkaSettings(bootstrap_servers=(broker,), topic_prefix="canton-so",
                              profile="embedded")
        topics = list_topics(kafka)
        status = subprocess.run(
            [*nervenbahn, "--json", "relay", "status", "--all"],
            env={**env, "NERVENBAHN_KAFKA": broker, "NERVENBAHN_KAFKA_PROFILE": "embedded"},
            capture_output=True, text=True, timeout=60)
    finally:
        serving.terminate()
        # serve waits up to 30 s for its workers, then closes the broker and stores; on a
        # loaded CI machine (the browser tests beside it) the whole took more than 60 s once
        serving.wait(timeout=120)

    assert {spec.name for spec in installation_topics(kafka)} <= set(topics)
    assert "canton-so.audit.checkpoints.v1" in topics
    assert status.returncode == 0, status.stderr[-2000:]
    assert set(json.loads(status.stdout)) == {"case-events", "reporting", "benefits", "claims",
                                                 "payments"}
    server = answers[0]["servers"]["installation"]
    assert server["bindings"]["kafka"]["schemaRegistryUrl"] == (
        f"http://127.0.0.1:{port}/registry")
    host, _, broker_port = server["host"].partition(":")
    assert (host, server["protocol"]) == ("127.0.0.1", "kafka")
    assert int(broker_port) not in (0, port)
    assert answers[0]["channels"]["casework.case-events.v1"]["address"] == (
        "canton-so.casework.case-events.v1")


def _document(url: str) -> list[Any]:
    """The served document, or nothing while serve does not answer yet."""
    try:
        status, document = get_json(f"{url}/asyncapi.json")
    except OSError:
        return []
    return [document] if status == 200 else []

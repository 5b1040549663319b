"""`GET /asyncapi.json`: the bus's AsyncAPI document, for anyone who reaches the API (it holds
no personal data), on the installation's own topic names."""

from __future__ import annotations

from bus.asyncapi import asyncapi_document
from bus.kafka_settings import KafkaSettings
from tests.api.conftest import AppOn, ReadModels


def test_asyncapi_document_is_served_without_a_key_for_the_installations_topics(
    app_on: AppOn, seeded: ReadModels
) -> None:
    kafka = KafkaSettings(topic_prefix="canton-be", partitions=3)

    answer = app_on(seeded, kafka=kafka).get("/asyncapi.json")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == asyncapi_document(kafka)
    assert answer.json()["channels"]["casework.case-events.v1"]["address"] == (
        "canton-be.casework.case-events.v1")

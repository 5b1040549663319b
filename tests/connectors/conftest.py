"""Fixtures of the connector tests: a SQLite store of the test's own, its bus on the real
embedded broker, and the connector runtime on them (in marked sections; others may add theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from domain.application.cases import CaseService
from nervenbahn.config import Settings
from nervenbahn.container import Container, build_service, close_service
from tests.bus.pipeline import store_settings

# --- SDK runtime fixtures ---


@pytest.fixture
def connector_settings(tmp_path: Path, master_key: str) -> Settings:
    """A SQLite store in the test's folder."""
    return store_settings(tmp_path, master_key)


@pytest.fixture
def connector_service(connector_settings: Settings) -> Iterator[CaseService]:
    """The case service on that store."""
    service = build_service(connector_settings)
    yield service
    close_service(service)


@pytest.fixture
def connector_bus(
    connector_settings: Settings, connector_service: CaseService, kafka_settings: KafkaSettings
) -> Iterator[Container]:
    """The bus of that store on the real broker (a topic prefix of the test's own)."""
    bus = Container(connector_settings, kafka=kafka_settings, service=connector_service)
    ensure_topics(kafka_settings, catalogue(kafka_settings))
    yield bus
    bus.close()

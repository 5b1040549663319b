"""`serve` end to end: a command recorded while serving reaches the API's answers through the
relay, the broker, the projection's consumer and its read model."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.serve import Server
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until


def _get(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_case_recorded_while_serving_shows_in_the_regions_caseload(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service, 0)
        ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
        api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
        key = ApiKeyRegistry(api.api_keys).add("region", Scope("region", "so-olten"),
                                               now=datetime.now(UTC))
        context = build_api_context(line.settings, line.service, api)
        server = Server(line.container, create_app(context), port=free_port())
        try:
            server.start()
            assert server.wait_until_serving()
            caseload = f"{server.url}/v1/regions/so-olten/caseload"
            assert _get(caseload, key)["by_phase"] == {"supported": 1}

            open_supported_case(line.service, 1)  # recorded while serving

            wait_until(lambda: _get(caseload, key)["by_phase"] == {"supported": 2},
                       within=60, what="the new case in the API's answer")
        finally:
            server.stop()
            context.close()
        assert not any(server.workers_alive().values())

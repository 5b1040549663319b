"""`GET /metrics` and the read models' freshness header, under a real `serve` (store file,
embedded broker, relays, a projection's consumer), and the alert rules of docs/operations.md
checked against a real answer."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bus.broker import EmbeddedBroker, free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from domain.errors import CaseNotFoundError
from nervenbahn.api import create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.metrics import Metrics
from nervenbahn.progress import BROKER_WAIT_MS
from nervenbahn.serve import Server
from projections.reporting_facts import recorded_day
from tests.api.conftest import AppOn, Keys, ReadModels
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
CASELOAD_ROUTE = "/v1/regions/{region_id}/caseload"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Served:
    server: Server
    line: Pipeline
    key: str

    def scrape(self) -> str:
        with urllib.request.urlopen(f"{self.server.url}/metrics", timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    def samples(self) -> Samples:
        return _samples(self.scrape())

    def caseload(self) -> tuple[dict[str, int], dict[str, str]]:
        """The region's caseload by phase and the answer's headers."""
        request = urllib.request.Request(f"{self.server.url}/v1/regions/so-olten/caseload",
                                         headers={"X-API-Key": self.key})
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = {name.lower(): value for name, value in response.headers.items()}
            return json.loads(response.read())["by_phase"], headers


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@contextmanager
def _serving(tmp_path: Path, master_key: str, broker: EmbeddedBroker) -> Iterator[Served]:
    """`serve` with the region read model's consumer, on a store with one supported case;
    its API context from the container (so its commands and requests share one registry).

    On a broker of its own: the consumer group `projection-region` is the same in every test,
    and a group left while the broker still rebalances it stalls the next test's joining."""
    kafka_settings = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,), profile="embedded", topic_prefix="metrics",
        client_id_prefix="nervenbahn-test",
    )
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service, 0)
        ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
        api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
        key = ApiKeyRegistry(api.api_keys).add("region", Scope("region", "so-olten"),
                                               now=datetime.now(UTC))
        context = line.container.api_context(api)
        server = Server(line.container, create_app(context), port=free_port(),
                        projections=("region",))
        try:
            server.start()
            assert server.wait_until_serving()
            yield Served(server, line, key)
        finally:
            server.stop()
            context.close()


def _send_garbage(served: Served) -> None:
    """A message no codec can read, on the case-events topic."""
    kafka = served.line.container.kafka
    producer = KafkaProducer(**kafka.producer_kwargs(client_id="garbage"))
    try:
        topic = served.line.container.topic("case-events").name
        producer.send(topic, key=b"garbage", value=b"\x00not avro at all").get(timeout=30)
    finally:
        producer.close()


def test_serve_exports_lags_dead_letters_latencies_and_a_freshness_that_advances(
    tmp_path: Path, master_key: str, private_broker: EmbeddedBroker
) -> None:
    with _serving(tmp_path, master_key, private_broker) as served:
        group = "projection-region"
        caught_up = wait_until(
            lambda: (s := served.samples())
            and _value(s, "nervenbahn_relay_lag_events", relay="case-events") == 0
            and _value(s, "nervenbahn_consumer_lag_messages", group=group) == 0
            and _value(s, "nervenbahn_ready") == 1  # its consumer has met the end once
            and s,
            within=60, what="relay and consumer caught up",
        )
        assert served.line.container.relay_status("case-events").head > 0
        assert _value(caught_up, "nervenbahn_ready") == 1
        assert _value(caught_up, "nervenbahn_dead_letter_messages", group=group) == 0
        assert _value(caught_up, "nervenbahn_worker_up", worker="projection-region") == 1
        assert _value(caught_up, "nervenbahn_worker_restarts_total", worker="relay") == 0
        applied = _value(caught_up, "nervenbahn_consumer_last_applied_timestamp_seconds",
                         group=group)
        assert applied is not None and abs(applied - datetime.now(UTC).timestamp()) < 120

        by_phase, headers = served.caseload()
        assert by_phase == {"supported": 1}
        assert headers["x-read-model"] == "region"
        first_as_of = datetime.fromisoformat(headers["x-read-model-as-of"])

        commanded_at = datetime.now(UTC)
        case_id = open_supported_case(served.line.service, 1)  # recorded while serving
        by_phase, headers = wait_until(
            lambda: (answer := served.caseload())[0] == {"supported": 2} and answer,
            within=60, what="the new case in the caseload")
        as_of = datetime.fromisoformat(headers["x-read-model-as-of"])
        assert as_of > first_as_of and commanded_at <= as_of <= datetime.now(UTC)

        _send_garbage(served)
        after = wait_until(
            lambda: (s := served.samples())
            and _value(s, "nervenbahn_dead_letter_messages", group=group) == 1 and s,
            within=60, what="the garbage message counted as a dead letter")
        text = served.scrape()

    opened = _value(after, "nervenbahn_command_duration_seconds_count",
                    command="OpenCase", outcome="recorded")
    assert opened is not None and opened >= 1
    requests = _value(after, "nervenbahn_http_request_duration_seconds_count",
                      route=CASELOAD_ROUTE, method="GET", status="2xx")
    assert requests is not None and requests >= 2
    assert _value(after, "nervenbahn_read_model_as_of_timestamp_seconds",
                  read_model="region") == as_of.timestamp()
    assert str(case_id) not in text and "so-olten" not in text  # no case, no path asked


def test_every_metric_in_the_documented_alert_rules_is_exported(
    tmp_path: Path, master_key: str, private_broker: EmbeddedBroker
) -> None:
    rules = _documented_rules()
    with _serving(tmp_path, master_key, private_broker) as served:
        served.caseload()
        wait_until(
            lambda: _value(served.samples(), "nervenbahn_consumer_lag_messages",
                           group="projection-region") is not None,
            within=60, what="the consumer's lag exported")
        exported = {name for name, _ in served.samples()}

    used = {name for rule in rules for name in re.findall(r"\bnervenbahn_\w+", rule["expr"])}
    assert used and used <= exported, sorted(used - exported)
    assert {rule["alert"] for rule in rules} >= {
        "NervenbahnRelayLagHigh", "NervenbahnConsumerStalled", "NervenbahnDeadLetters",
        "NervenbahnWorkerRestarting", "NervenbahnApiErrors", "NervenbahnNotReady",
    }


def test_with_the_broker_down_a_scrape_answers_in_seconds_saying_so(
    tmp_path: Path, master_key: str, private_broker: EmbeddedBroker
) -> None:
    with _serving(tmp_path, master_key, private_broker) as served:
        wait_until(lambda: _value(served.samples(), "nervenbahn_broker_up") == 1,
                   within=60, what="the broker answering a scrape")

        private_broker.stop()
        started = time.monotonic()
        down = served.samples()
        took = time.monotonic() - started

    assert took < BROKER_WAIT_MS / 1000 + 3  # not the profile's request timeout
    assert _value(down, "nervenbahn_broker_up") == 0
    assert _value(down, "nervenbahn_consumer_lag_messages", group="projection-region") is None
    assert _value(down, "nervenbahn_relay_lag_events", relay="case-events") is not None


def _documented_rules() -> list[dict[str, str]]:
    blocks = re.findall(r"```yaml\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    groups = [group for block in blocks for group in yaml.safe_load(block).get("groups", [])]
    return [rule for group in groups for rule in group["rules"]]


def test_metrics_need_an_api_key_only_when_configured(
    app_on: AppOn, seeded: ReadModels, keys: Keys
) -> None:
    answer = app_on(seeded).get("/metrics")  # no key
    assert answer.status_code == 200
    assert _value(_samples(answer.text), "nervenbahn_ready") == 1  # not supervised: no checks

    keyed = app_on(seeded, metrics_access="key")
    assert keyed.get("/metrics").status_code == 401
    assert keyed.get("/metrics", headers={"X-API-Key": "not a key"}).status_code == 401
    assert keyed.get("/metrics", headers=keys.of("canton")).status_code == 200


def test_an_answer_from_a_read_model_names_it_and_its_freshness(
    client: TestClient, seeded: ReadModels, keys: Keys
) -> None:
    events = [seeded.service.decode(n) for n in seeded.service.notifications(gt=0, limit=10**6)]
    newest = max(event.timestamp for event in events)

    region = client.get("/v1/regions/so-olten/caseload", headers=keys.of("region:so-olten"))
    canton = client.get("/v1/canton/quarters/2025Q1", headers=keys.of("canton"))

    assert region.headers["X-Read-Model"] == "region"
    assert datetime.fromisoformat(region.headers["X-Read-Model-As-Of"]) == newest
    assert region.headers["X-Read-Model-As-Of"].endswith("Z")
    assert canton.headers["X-Read-Model"] == "reporting"
    assert datetime.fromisoformat(canton.headers["X-Read-Model-As-Of"]) == recorded_day(newest)


@dataclass
class FakeService:
    """A case service whose commands do what the test says."""

    failure: Exception | None = None

    def execute(self, command: object) -> str:
        if self.failure is not None:
            raise self.failure
        return "done"


@dataclass(frozen=True)
class OpenCase:
    """Stands for a command: only its type's name is a label."""


def test_commands_are_timed_by_type_and_outcome() -> None:
    metrics = Metrics()
    service = FakeService()
    metrics.time_commands(service)  # type: ignore[arg-type]

    assert service.execute(OpenCase()) == "done"
    service.failure = CaseNotFoundError("a case")
    with pytest.raises(CaseNotFoundError):
        service.execute(OpenCase())
    service.failure = OSError("disk")
    with pytest.raises(OSError, match="disk"):
        service.execute(OpenCase())

    counted = _samples(metrics.render().decode())
    for outcome in ("recorded", "rejected", "error"):
        assert _value(counted, "nervenbahn_command_duration_seconds_count",
                      command="OpenCase", outcome=outcome) == 1


def test_a_read_model_older_than_its_progress_table_answers_without_the_as_of_header(
    app_on: AppOn, seeded: ReadModels, keys: Keys, tmp_path: Path
) -> None:
    older = dataclasses.replace(seeded, region_db=tmp_path / "region.db")
    shutil.copyfile(seeded.region_db, older.region_db)
    with sqlite3.connect(older.region_db) as db:
        db.execute("DROP TABLE read_model_progress")

    answer = app_on(older).get("/v1/regions/so-olten/caseload",
                               headers=keys.of("region:so-olten"))

    assert answer.status_code == 200
    assert answer.headers["X-Read-Model"] == "region"
    assert "X-Read-Model-As-Of" not in answer.headers

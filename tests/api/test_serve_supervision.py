"""`serve` supervises its workers, on the real store and the embedded broker: a consumer that
fails is restarted and serves again; a worker that keeps failing stops `nervenbahn serve` with
exit 3 and one line; a consumer group that cannot name its dead-letter topic is refused before
any thread starts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from bus.broker import free_port
from bus.consumer import Consumer
from bus.effects import EffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.cli import EXIT_UNAVAILABLE
from nervenbahn.config import load_settings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.serve import InvalidNameError, Server
from projections import Projection
from projections.region import RegionProjection
from tests.api.http import serve_environment
from tests.api.test_serve import _get
from tests.bus.pipeline import open_supported_case
from tests.bus.waiting import wait_until

FAST_RESTARTS = {
    "NERVENBAHN_WORKER_BACKOFF_SECONDS": "0.1",
    "NERVENBAHN_WORKER_BACKOFF_MAX_SECONDS": "0.2",
    "NERVENBAHN_WORKER_MAX_RESTARTS": "2",
    "NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS": "60",
}


class ConsumerFailingFirst(Container):
    """The real container, whose projection consumers fail on their first `failures` runs
    (as one does when its database or the broker is gone for a moment)."""

    failures = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs = 0
        self.group = f"projection-region-{uuid4().hex[:8]}"

    def projection(self, name: str) -> Projection:
        # A group of this test's own: a group still leaving the shared broker when a serve
        # stops stalls the next test that joins the same group (tests/api/test_health.py).
        return OwnGroup(self.group)

    def projection_consumer(self, projection: Projection, store: EffectStore,
                            **options: Any) -> Consumer:
        self.runs += 1
        if self.runs <= self.failures:
            raise ConnectionError(f"consumer run {self.runs}: the database went away")
        return super().projection_consumer(projection, store, **options)


class OwnGroup(RegionProjection):
    def __init__(self, group: str) -> None:
        self._group = group

    @property
    def group(self) -> str:
        return self._group


class BadGroup(RegionProjection):
    @property
    def group(self) -> str:
        return "projection region/olten"


class BadGroupContainer(Container):
    def projection(self, name: str) -> Projection:
        return BadGroup()


@contextmanager
def _store(tmp_path: Path, master_key: str, kafka: KafkaSettings,
           kind: type[Container]) -> Iterator[tuple[Container, Any]]:
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "NERVENBAHN_MASTER_KEY": master_key,
        **FAST_RESTARTS,
    })
    service = build_service(settings)
    container = kind(settings, kafka=kafka, service=service)
    ensure_topics(kafka, catalogue(kafka, reporting=True))
    try:
        yield container, service
    finally:
        container.close()
        close_service(service)


def test_a_consumer_that_fails_is_restarted_with_back_off_and_serves_again(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with _store(tmp_path, master_key, kafka_settings, ConsumerFailingFirst) as (container, svc):
        api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
        key = ApiKeyRegistry(api.api_keys).add("region", Scope("region", "so-olten"),
                                               now=datetime.now(UTC))
        context = build_api_context(container.settings, svc, api)
        server = Server(container, create_app(context), port=free_port(),
                        projections=("region",), payments=False)
        try:
            server.start()
            assert server.wait_until_serving()
            open_supported_case(svc, 0)  # recorded while the consumer fails and restarts

            caseload = f"{server.url}/v1/regions/so-olten/caseload"
            wait_until(lambda: _get(caseload, key)["by_phase"] == {"supported": 1},
                       within=60, what="the case in the API's answer")
            assert server.worker_restarts()["projection-region"] == 2
            assert server.workers_alive()["projection-region"] is True
            assert server.failure is None
        finally:
            server.stop()
            context.close()


def test_an_invalid_consumer_group_is_refused_before_any_thread_starts(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with _store(tmp_path, master_key, kafka_settings, BadGroupContainer) as (container, svc):
        context = build_api_context(container.settings, svc, ApiSettings(
            api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db"))
        server = Server(container, create_app(context), port=free_port(),
                        projections=("region",))
        threads = set(threading.enumerate())
        try:
            with pytest.raises(InvalidNameError) as refused:
                server.start()
        finally:
            context.close()

        assert str(refused.value).startswith(
            "projection region: consumer group 'projection region/olten' or its dead-letter "
            "topic: consumer group 'projection region/olten': use letters, digits"
        )
        assert set(threading.enumerate()) == threads
        assert server.workers_alive() == {}
        assert not (tmp_path / "projections").exists()  # no read model built either


def test_serve_stops_with_exit_3_naming_a_worker_that_keeps_failing(tmp_path: Path) -> None:
    # serve's own embedded broker: its consumers' groups, left mid-join when it stops, must
    # not stall the groups of other tests on the shared broker.
    env = serve_environment(tmp_path, NERVENBAHN_LOG_FORMAT="json", **FAST_RESTARTS)
    nervenbahn = [sys.executable, "-m", "nervenbahn"]
    subprocess.run([*nervenbahn, "init"], env=env, check=True, capture_output=True, timeout=60)
    # A real cause only the API worker meets: its port is taken by another process.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([*nervenbahn, "serve", "--port", str(port)], env=env,
                                capture_output=True, text=True, timeout=120)

    assert result.returncode == EXIT_UNAVAILABLE, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: worker api failed 3 times within 60 s, serve stopped; last error: OSError: "
        f"[Errno 98] Address already in use (while attempting to bind on address "
        f"('127.0.0.1', {port}))"
    ]
    restarts = [json.loads(line) for line in result.stderr.splitlines()
                if line.startswith("{") and '"worker restarting"' in line]
    failed = [line for line in result.stderr.splitlines() if "worker failed" in line]
    assert [(r["worker"], r["attempt"]) for r in restarts] == [("api", 2), ("api", 3)], failed

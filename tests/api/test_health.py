"""`/health/live` and `/health/ready`: on a plain API app (no workers: "not supervised") and
under `serve` with the real store and the embedded broker (a worker that dies, a store that
goes away)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.settings import ApiSettings
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.config import StoreConfig
from nervenbahn.health import Readiness
from nervenbahn.progress import GroupReport
from nervenbahn.serve import Server
from tests.api.conftest import AppOn, ReadModels, context_of
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/test?schema=nowhere"
"""Port 1: nothing listens there, the connection is refused at once."""


def _readiness(models: ReadModels, access_log: Path, store: str | None = None,
               max_lag: int = 10_000) -> Readiness:
    path = Path(models.region_db).parent / "store.db"
    config = StoreConfig.parse(store) if store else StoreConfig(kind="sqlite", sqlite_path=path)
    SQLiteAccessLog(access_log).close()  # the access log exists, as under `serve`
    return Readiness(config, access_log, max_lag)


def test_a_plain_app_is_ready_with_its_workers_not_supervised_and_logs_nothing(
    app_on: AppOn, seeded: ReadModels, tmp_path: Path
) -> None:
    log = tmp_path / "access-log.db"
    client = app_on(seeded, readiness=_readiness(seeded, log))

    ready = client.get("/health/ready")  # no API key
    live = client.get("/health/live")

    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "failing": [],
        "checks": {"store": "ok", "access-log": "ok", "workers": "not supervised",
                   "relay-lag": "not supervised", "read-models": "not supervised"},
    }
    assert live.status_code == 200 and live.json() == {"status": "live"}
    assert context_of(client).access_log.select() == []


def test_an_unreachable_postgresql_store_makes_ready_503_naming_the_store(
    app_on: AppOn, seeded: ReadModels, tmp_path: Path
) -> None:
    readiness = _readiness(seeded, tmp_path / "access-log.db", store=UNREACHABLE_POSTGRES)
    client = app_on(seeded, readiness=readiness)

    ready = client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["store"]
    assert ready.json()["checks"]["store"].startswith(
        "PostgreSQL postgres@127.0.0.1:1/test schema nowhere unreachable: "
    )
    assert client.get("/health/live").status_code == 200


def test_an_access_log_that_cannot_be_opened_makes_ready_503_naming_it(
    app_on: AppOn, seeded: ReadModels, tmp_path: Path
) -> None:
    readiness = _readiness(seeded, tmp_path / "access-log.db")
    (tmp_path / "access-log.db").unlink()
    (tmp_path / "access-log.db").mkdir()  # a folder where the log should be
    client = app_on(seeded, readiness=readiness)

    ready = client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["access-log"]


@dataclass
class FakeSupervision:
    """Workers and relay lags as a test sets them."""

    workers: dict[str, bool]
    lags: dict[str, int | str]
    caught_up: dict[str, bool] = field(default_factory=dict)

    def workers_alive(self) -> Mapping[str, bool]:
        return self.workers

    def relay_lags(self) -> Mapping[str, int | str]:
        return self.lags

    def worker_restarts(self) -> Mapping[str, int]:
        return dict.fromkeys(self.workers, 0)

    def consumer_groups(self) -> Sequence[GroupReport]:
        return []

    def read_models_caught_up(self) -> Mapping[str, bool]:
        return self.caught_up


def test_a_relay_over_the_lag_bound_makes_ready_503_naming_it(
    app_on: AppOn, seeded: ReadModels, tmp_path: Path
) -> None:
    client = app_on(seeded, readiness=_readiness(seeded, tmp_path / "log.db", max_lag=100))
    client.app.state.supervision = FakeSupervision(  # type: ignore[attr-defined]
        {"relay": True}, {"case-events": 100, "case-facts": 101}
    )

    ready = client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["relay-lag"]
    assert ready.json()["checks"]["relay-lag"] == "case-facts: 101 events behind (bound 100)"
    assert ready.json()["checks"]["workers"] == "ok"


def test_a_read_model_still_catching_up_makes_ready_503_naming_it(
    app_on: AppOn, seeded: ReadModels, tmp_path: Path
) -> None:
    client = app_on(seeded, readiness=_readiness(seeded, tmp_path / "log.db", max_lag=100))
    client.app.state.supervision = FakeSupervision(  # type: ignore[attr-defined]
        {"relay": True}, {"case-events": 0}, {"region": True, "branch_office": False}
    )

    ready = client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["read-models"]
    assert ready.json()["checks"]["read-models"] == "catching up: branch_office"


# --- under `serve` ------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, Any]:
    """Status and JSON body, without an API key."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def _serving(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
             checkpointer: Any = None) -> Iterator[tuple[Server, Path]]:
    """`serve` (relays, checkpointer, API) on a store with one case; its checkpointer replaced
    if one is given."""
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service, 0)
        ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
        api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
        context = build_api_context(line.settings, line.service, api)
        # Without the projections' consumers: a group the broker is still joining when this
        # short-lived server stops stalls the same group in the next test that serves
        # (test_serve.py); relays, checkpointer and API are the workers checked here.
        server = Server(line.container, create_app(context), port=free_port(), projections=())
        if checkpointer is not None:
            server._checkpointer = checkpointer  # type: ignore[method-assign]
        try:
            server.start()
            assert server.wait_until_serving()
            assert line.settings.store.sqlite_path is not None
            yield server, line.settings.store.sqlite_path
        finally:
            server.stop()
            context.close()


def _ready(server: Server) -> tuple[int, Any]:
    return _get(f"{server.url}/health/ready")


def test_serve_is_ready_then_503_naming_a_worker_that_died(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    fail = threading.Event()

    def checkpointer() -> None:  # dies when the test says so
        fail.wait(60)
        raise RuntimeError("the checkpointer failed")

    with _serving(tmp_path, master_key, kafka_settings, checkpointer) as (server, _):
        _, body = wait_until(lambda: (r := _ready(server))[0] == 200 and r,
                                  within=60, what="ready")
        assert body["checks"] == {"store": "ok", "access-log": "ok", "workers": "ok",
                                  "relay-lag": "ok", "read-models": "ok"}

        fail.set()

        _, body = wait_until(lambda: (r := _ready(server))[0] == 503 and r,
                                  within=30, what="not ready")
        assert body["failing"] == ["workers"]
        assert body["checks"]["workers"] == "not alive: checkpointer"
        assert _get(f"{server.url}/health/live") == (200, {"status": "live"})


def test_serve_answers_503_naming_the_store_while_its_file_cannot_be_opened(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with _serving(tmp_path, master_key, kafka_settings) as (server, store):
        wait_until(lambda: _ready(server)[0] == 200, within=60, what="ready")

        # As root, chmod 000 would not stop a read; a folder in the file's place stops every
        # new connection, and none can create an empty database there meanwhile.
        store.rename(store.with_suffix(".moved"))
        store.mkdir()
        try:
            _, body = wait_until(lambda: (r := _ready(server))[0] == 503 and r,
                                      within=30, what="not ready")
            assert "store" in body["failing"]
            assert body["checks"]["store"].startswith(f"SQLite {store} unreachable: ")
            assert _get(f"{server.url}/health/live") == (200, {"status": "live"})
        finally:
            store.rmdir()
            store.with_suffix(".moved").rename(store)

        wait_until(lambda: _ready(server)[0] == 200, within=30, what="ready again")


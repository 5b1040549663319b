"""The "done when" of issue 12, finding 5: a running `serve` on PostgreSQL (events, keys,
relay positions, registry and read models) loses every one of its connections — a restart,
simulated by ending exactly this test's backends (`pg_terminate_backend` on its own
`application_name`; the shared server is never restarted) — and recovers without being
restarted: a new command reaches the read models, the personal-data read answers 200 and
`/health/ready` is 200 again, within `RECOVERY_BOUND_S`."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from bus.broker import free_port
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from domain.application.cases import CaseService
from nervenbahn.api import create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.config import load_settings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.serve import Server
from tests.api.http import get_json
from tests.bus.pipeline import open_supported_case
from tests.bus.waiting import wait_until
from tests.storage.test_postgres_recovery import terminate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RECOVERY_BOUND_S = 30.0
"""From the loss of every connection to a new case in the read model and ready again."""
READ_TIMEOUT_BOUND_S = 10.0
"""A request behind a lock, with a read timeout of 1 s, is answered (503) within this."""


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Serving:
    """`serve` running on a PostgreSQL store of the test's own, with what a test reads."""

    server: Server
    service: CaseService
    application_name: str
    read_models: str
    region_key: str
    office_key: str
    first_case: UUID

    def supported(self) -> int | None:
        """Supported cases in the region's caseload (None while it does not answer 200)."""
        status, body = get_json(f"{self.server.url}/v1/regions/so-olten/caseload", self.region_key)
        return body["by_phase"].get("supported", 0) if status == 200 else None

    def personal_data_status(self) -> int:
        """The status of a read of the first case's personal data."""
        url = f"{self.server.url}/v1/branch-offices/akso-olten/cases/{self.first_case}"
        return get_json(url, self.office_key)[0]

    def ready_status(self) -> int:
        """The status of `/health/ready`."""
        return get_json(f"{self.server.url}/health/ready")[0]


@contextmanager
def serving_on_postgres(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    postgres_server_url: str, postgres_dsn: str, more: dict[str, str] | None = None,
) -> Iterator[Serving]:
    """`serve` with every part on PostgreSQL (events, keys, positions, registry, read models in
    a schema of their own), one supported case recorded and projected, ready."""
    name = f"nbserve-{uuid4().hex[:10]}"
    read_models = f"rm_{uuid4().hex[:12]}"
    settings = load_settings({
        "NERVENBAHN_STORE": f"{postgres_dsn}&application_name={name}",
        "NERVENBAHN_PROJECTIONS_STORE":
            f"{postgres_server_url}?schema={read_models}&application_name={name}",
        "NERVENBAHN_MASTER_KEY": master_key,
        "NERVENBAHN_REPORTING_KEY": _key(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": _key(),
        **(more or {}),
    })
    service = build_service(settings)
    container = Container(settings, kafka=kafka_settings, service=service)
    ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
    api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
    keys = ApiKeyRegistry(api.api_keys)
    context = container.api_context(api)  # as `nervenbahn serve` builds it
    serving = Serving(
        Server(container, create_app(context), port=free_port()), service, name, read_models,
        keys.add("region", Scope("region", "so-olten"), now=datetime.now(UTC)),
        keys.add("office", Scope("branch_office", "akso-olten"), now=datetime.now(UTC)),
        open_supported_case(service, 0),
    )
    try:
        serving.server.start()
        assert serving.server.wait_until_serving()
        wait_until(lambda: serving.supported() == 1, within=90,
                   what="the first case in the read model")
        wait_until(lambda: serving.ready_status() == 200, within=60, what="ready")
        yield serving
    finally:
        serving.server.stop()
        context.close()
        container.close()
        close_service(service)
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(read_models)))


@contextmanager
def read_models_locked(server_url: str, schema: str) -> Iterator[None]:
    """Every table of the read models' `schema` locked (ACCESS EXCLUSIVE, as a migration
    or a rebuild's swap locks them) by a transaction of another connection, until exit."""
    with psycopg.connect(server_url) as locker:  # a transaction: the locks are held
        tables = [row[0] for row in locker.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        locker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(schema, table) for table in tables)))
        yield


def test_serve_on_postgresql_recovers_from_losing_every_connection_without_a_restart(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    postgres_server_url: str, postgres_dsn: str,
) -> None:
    with serving_on_postgres(tmp_path, master_key, kafka_settings, postgres_server_url,
                             postgres_dsn) as serving:
        assert serving.personal_data_status() == 200

        lost = terminate(postgres_server_url, serving.application_name)
        started = time.monotonic()
        assert lost >= 8, lost  # pools, key store, positions, read models, registry

        open_supported_case(serving.service, 1)  # the long-running process's own service
        wait_until(lambda: serving.supported() == 2, within=RECOVERY_BOUND_S,
                   what="the new case in the read model")
        wait_until(lambda: serving.personal_data_status() == 200, within=RECOVERY_BOUND_S,
                   what="the personal-data read answering 200")
        wait_until(lambda: serving.ready_status() == 200, within=RECOVERY_BOUND_S,
                   what="ready again")
        recovered_s = time.monotonic() - started
        print(f"{lost} connections lost; recorded, projected, read and ready again in "
              f"{recovered_s:.2f} s")
        assert recovered_s < RECOVERY_BOUND_S
        alive = serving.server.workers_alive()
        assert all(alive.values()), alive


@pytest.mark.parametrize(("path", "key", "read_model"), [
    ("/v1/regions/so-olten/caseload", "region_key", "region"),
    # Their readers first bring the read model up to date (`Container.refresh_read_model`):
    # that check reads with the timeout too (found by an attack on the readers' timeout).
    ("/v1/branch-offices/akso-olten/benefit-applications", "office_key",
     "benefit_applications"),
])
def test_a_read_model_locked_longer_than_the_read_timeout_answers_503_then_200_again(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    postgres_server_url: str, postgres_dsn: str, path: str, key: str, read_model: str,
) -> None:
    """A lock held on the read models (a migration, a rebuild's swap, an operator's
    transaction) makes a reader wait NERVENBAHN_POSTGRES_READ_TIMEOUT at most: the answer is a
    503 naming the read model, and once the lock is gone the same `serve` answers 200 again.
    Without the timeout the request waited as long as the lock was held."""
    with serving_on_postgres(tmp_path, master_key, kafka_settings, postgres_server_url,
                             postgres_dsn, {"NERVENBAHN_POSTGRES_READ_TIMEOUT": "1"}) as serving:
        url, api_key = serving.server.url + path, getattr(serving, key)
        first = get_json(url, api_key)
        assert first[0] == 200, first
        with read_models_locked(postgres_server_url, serving.read_models):
            started = time.monotonic()
            status, body = get_json(url, api_key)
            waited = time.monotonic() - started
            assert status == 503, body
            assert read_model in json.dumps(body)
            assert 0.9 <= waited < READ_TIMEOUT_BOUND_S, waited
        assert get_json(url, api_key)[0] == 200

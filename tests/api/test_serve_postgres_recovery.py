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
import socket
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from nervenbahn.api import build_api_context, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.api.settings import ApiSettings
from nervenbahn.config import load_settings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.serve import Server
from tests.bus.pipeline import open_supported_case
from tests.bus.waiting import wait_until
from tests.storage.test_postgres_recovery import terminate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RECOVERY_BOUND_S = 30.0
"""From the loss of every connection to a new case in the read model and ready again."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_serve_on_postgresql_recovers_from_losing_every_connection_without_a_restart(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    postgres_server_url: str, postgres_dsn: str,
) -> None:
    name = f"nbserve-{uuid4().hex[:10]}"
    read_models = f"rm_{uuid4().hex[:12]}"
    settings = load_settings({
        "NERVENBAHN_STORE": f"{postgres_dsn}&application_name={name}",
        "NERVENBAHN_PROJECTIONS_STORE":
            f"{postgres_server_url}?schema={read_models}&application_name={name}",
        "NERVENBAHN_MASTER_KEY": master_key,
        "NERVENBAHN_REPORTING_KEY": _key(),
        "NERVENBAHN_AUDIT_SIGNING_KEY": _key(),
    })
    service = build_service(settings)
    container = Container(settings, kafka=kafka_settings, service=service)
    ensure_topics(kafka_settings, catalogue(kafka_settings, reporting=True))
    first = open_supported_case(service, 0)
    api = ApiSettings(api_keys=tmp_path / "keys.json", access_log=tmp_path / "access.db")
    keys = ApiKeyRegistry(api.api_keys)
    region = keys.add("region", Scope("region", "so-olten"), now=datetime.now(UTC))
    office = keys.add("office", Scope("branch_office", "akso-olten"), now=datetime.now(UTC))
    context = build_api_context(settings, service, api)
    server = Server(container, create_app(context), port=_free_port())
    caseload = f"{server.url}/v1/regions/so-olten/caseload"
    detail = f"{server.url}/v1/branch-offices/akso-olten/cases/{first}"
    try:
        server.start()
        assert server.wait_until_serving()
        wait_until(lambda: _phases(caseload, region) == {"supported": 1}, within=90,
                   what="the first case in the read model")
        wait_until(lambda: _get(f"{server.url}/health/ready")[0] == 200, within=60,
                   what="ready before the loss")
        assert _get(detail, office)[0] == 200

        lost = terminate(postgres_server_url, name)
        started = time.monotonic()
        assert lost >= 8, lost  # pools, key store, positions, read models, registry

        open_supported_case(service, 1)  # the long-running process's own service
        wait_until(lambda: _phases(caseload, region) == {"supported": 2},
                   within=RECOVERY_BOUND_S, what="the new case in the read model")
        wait_until(lambda: _get(detail, office)[0] == 200, within=RECOVERY_BOUND_S,
                   what="the personal-data read answering 200")
        wait_until(lambda: _get(f"{server.url}/health/ready")[0] == 200,
                   within=RECOVERY_BOUND_S, what="ready again")
        recovered_s = time.monotonic() - started
        print(f"{lost} connections lost; recorded, projected, read and ready again in "
              f"{recovered_s:.2f} s")
        assert recovered_s < RECOVERY_BOUND_S
        assert all(server.workers_alive().values()), server.workers_alive()
    finally:
        server.stop()
        context.close()
        container.close()
        close_service(service)
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(read_models)))


def _phases(caseload: str, key: str) -> dict[str, int] | None:
    """The caseload's cases by phase (None while the API does not answer 200)."""
    status, body = _get(caseload, key)
    return body["by_phase"] if status == 200 else None

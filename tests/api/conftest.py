"""A seeded store with its read models, API keys for every scope, and apps on them."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.application.cases import CaseService
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api import ApiContext, create_app
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.scopes import Scope
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.container import build_service, close_service
from nervenbahn.synthetic import synthetic_history
from projections import BranchOfficeProjection, RegionProjection, rebuild
from projections.reporting import ReportingProjection
from tests.bus.pipeline import store_settings

NOW = datetime(2026, 10, 1, 8, 30, tzinfo=UTC)
"""The API's clock in these tests (the synthetic history ends on 30 Sep 2026)."""
REPORTING_KEY = secrets.token_bytes(32)
"""Pseudonymises case ids in the reporting read model."""


@dataclass(frozen=True)
class ReadModels:
    """A store and the read models rebuilt from it."""

    service: CaseService
    region_db: Path
    branch_office_db: Path
    reporting_db: Path


@dataclass(frozen=True)
class Keys:
    """A key registry with a consumer for every branch office, every region, the canton, an
    auditor and a bus reader; `of(scope)` gives the key of a scope such as "region:so-olten"."""

    registry: ApiKeyRegistry
    by_scope: dict[str, str]

    def of(self, scope: str) -> dict[str, str]:
        """The X-API-Key header of the consumer with this scope."""
        return {"X-API-Key": self.by_scope[scope]}


def build_read_models(service: CaseService, folder: Path) -> ReadModels:
    """Rebuild the region, branch-office and reporting read models of `service` in `folder`."""
    models = ReadModels(
        service, folder / "region.db", folder / "branch_office.db", folder / "reporting.db"
    )
    rebuild(RegionProjection(), service, models.region_db)
    rebuild(BranchOfficeProjection(), service, models.branch_office_db)
    rebuild(ReportingProjection(REPORTING_KEY), service, models.reporting_db)
    return models


def make_context(models: ReadModels, keys: Keys, folder: Path) -> ApiContext:
    """An API context on the read models with an access log of its own in `folder`."""
    return ApiContext(
        region_db=models.region_db,
        branch_office_db=models.branch_office_db,
        reporting_db=models.reporting_db,
        vault=models.service.vault,
        keys=keys.registry,
        access_log=SQLiteAccessLog(folder / "access-log.db"),
        branch_offices=load_branch_offices(),
        reference=load_reference_data(),
        clock=lambda: NOW,
    )


@pytest.fixture(scope="package")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadModels]:
    """150 synthetic households imported into a store, and both read models built from it."""
    folder = tmp_path_factory.mktemp("api-store")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    service = build_service(store_settings(folder, key))
    service.import_records(
        json.dumps(r) for r in synthetic_history(load_reference_data(), 150, 11)
    )
    yield build_read_models(service, folder)
    close_service(service)


@pytest.fixture(scope="package")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """A consumer for every scope there is."""
    registry = ApiKeyRegistry(tmp_path_factory.mktemp("keys") / "api-keys.json")
    scopes = [Scope("branch_office", office) for office in load_branch_offices()]
    scopes += [Scope("region", region) for region in load_reference_data().regions]
    scopes += [Scope("canton"), Scope("auditor"), Scope("bus_reader")]
    by_scope = {
        str(scope): registry.add(str(scope).replace(":", "-"), scope, now=NOW)
        for scope in scopes
    }
    return Keys(registry, by_scope)



def context_of(client: TestClient) -> ApiContext:
    """The context a test client's app was created with."""
    context = client.app.state.context  # type: ignore[attr-defined]
    assert isinstance(context, ApiContext)
    return context


AppOn = Callable[..., TestClient]
"""`app_on(models, **overrides)`: a client of the API on `models`, context fields replaced."""


@pytest.fixture
def app_on(tmp_path: Path, keys: Keys) -> Iterator[AppOn]:
    """Start the API on given read models, with a fresh access log unless overridden."""
    opened: list[tuple[TestClient, ApiContext]] = []

    def start(models: ReadModels, **overrides: Any) -> TestClient:
        context = make_context(models, keys, tmp_path / f"log-{len(opened)}")
        client = TestClient(
            create_app(dataclasses.replace(context, **overrides)), raise_server_exceptions=False
        )
        opened.append((client.__enter__(), context))
        return client

    yield start
    for client, context in opened:
        client.__exit__(None, None, None)
        context.close()


@pytest.fixture
def client(app_on: AppOn, seeded: ReadModels) -> TestClient:
    """The API on the seeded read models."""
    return app_on(seeded)

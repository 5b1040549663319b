"""The composition root's entry: `build_api_context` finds everything beside the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from nervenbahn.api import build_api_context
from nervenbahn.api.settings import load_api_settings, store_folder
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from nervenbahn.cli.projections import projection_path
from nervenbahn.config import StoreConfig
from nervenbahn.container import build_service, close_service
from tests.bus.pipeline import store_settings


def test_the_context_uses_the_read_models_and_files_beside_the_store(
    tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NERVENBAHN_API_KEYS", raising=False)
    monkeypatch.delenv("NERVENBAHN_ACCESS_LOG", raising=False)
    settings = store_settings(tmp_path, master_key)
    service = build_service(settings)

    context = build_api_context(settings, service)
    context.close()
    close_service(service)

    assert (context.region_db, context.branch_office_db, context.reporting_db) == tuple(
        projection_path(settings.store, name) for name in ("region", "branch_office", "reporting")
    )
    assert context.keys.path == tmp_path / "api-keys.json"
    assert isinstance(context.access_log, SQLiteAccessLog)
    assert context.access_log.path == tmp_path / "access-log.db"
    assert context.vault is service.vault
    assert {"akso-olten", "akso-solothurn"} <= set(context.branch_offices)


@pytest.mark.parametrize(
    "url", ["sqlite:///data/x/store.db", "sqlite:////srv/nb/store.db",
            "postgresql://nb@db:5432/nb?schema=so"],
)
def test_the_store_folder_is_where_the_read_models_live(url: str) -> None:
    store = StoreConfig.parse(url)

    assert store_folder(store) == projection_path(store, "region").parent.parent


def test_both_files_can_be_placed_elsewhere() -> None:
    env = {"NERVENBAHN_STORE": "sqlite:///data/store.db",
           "NERVENBAHN_API_KEYS": "/etc/nervenbahn/keys.json",
           "NERVENBAHN_ACCESS_LOG": "/var/log/nervenbahn/access.db"}

    api = load_api_settings(environ=env)
    default = load_api_settings(environ={"NERVENBAHN_STORE": "sqlite:///data/store.db"})

    assert (api.api_keys, api.access_log) == (Path("/etc/nervenbahn/keys.json"),
                                              Path("/var/log/nervenbahn/access.db"))
    assert (default.api_keys, default.access_log) == (Path("data/api-keys.json"),
                                                      Path("data/access-log.db"))

"""The schema registry over HTTP, route by route: Confluent's answers, error codes and auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bus.registry_sqlite import SQLiteSchemaRegistry
from nervenbahn.api.app import REGISTRY_PREFIX
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.api.registry import CONTENT_TYPE, create_registry_app
from nervenbahn.api.scopes import Scope
from tests.api.conftest import AppOn, ReadModels

SUBJECT = "case-events-ch.nervenbahn.Probe"
V1: dict[str, Any] = {
    "type": "record", "name": "Probe", "namespace": "ch.nervenbahn",
    "fields": [{"name": "a", "type": "string"}],
}
V2: dict[str, Any] = {
    **V1, "fields": [*V1["fields"], {"name": "b", "type": "int", "default": 0}],
}
INCOMPATIBLE: dict[str, Any] = {**V1, "fields": [{"name": "a", "type": "int"}]}


class Registry:
    """A registry app on a SQLite registry with two versions of one subject, and its keys."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = SQLiteSchemaRegistry(tmp_path / "registry.db")
        self.ids = [self.store.register(SUBJECT, V1), self.store.register(SUBJECT, V2)]
        self.keys = ApiKeyRegistry(tmp_path / "api-keys.json")
        now = datetime.now(UTC)
        self.reader_key = self.keys.add("vendor-app", Scope("bus_reader"), now=now)
        self.auditor_key = self.keys.add("auditor", Scope("auditor"), now=now)
        self.client = TestClient(create_registry_app(self.store, self.keys))

    def get(self, path: str, auth: tuple[str, str] | None = None) -> Any:
        return self.client.get(path, auth=auth or ("vendor-app", self.reader_key))

    def post(self, path: str, body: Any, auth: tuple[str, str] | None = None) -> Any:
        return self.client.post(
            path, content=json.dumps(body), auth=auth or ("vendor-app", self.reader_key),
            headers={"Content-Type": CONTENT_TYPE},
        )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    served = Registry(tmp_path)
    yield served
    served.store.close()


def _error(response: Any, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(CONTENT_TYPE)
    body = response.json()
    assert body["error_code"] == code
    return str(body["message"])


def test_schema_by_id_answers_the_registered_schema_as_text(registry: Registry) -> None:
    answer = registry.get(f"/schemas/ids/{registry.ids[0]}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(CONTENT_TYPE)
    assert json.loads(answer.json()["schema"]) == V1
    assert registry.get(f"/schemas/ids/{registry.ids[1]}/schema").json() == V2
    assert registry.get(f"/schemas/ids/{registry.ids[1]}/versions").json() == [
        {"subject": SUBJECT, "version": 2}
    ]


def test_an_unknown_schema_id_is_40403(registry: Registry) -> None:
    assert "999" in _error(registry.get("/schemas/ids/999"), 404, 40403)
    _error(registry.get("/schemas/ids/999/versions"), 404, 40403)


def test_types_subjects_and_versions_are_listed(registry: Registry) -> None:
    assert registry.get("/schemas/types").json() == ["AVRO"]
    assert registry.get("/subjects").json() == [SUBJECT]
    assert registry.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]


def test_a_version_by_number_or_latest(registry: Registry) -> None:
    first = registry.get(f"/subjects/{SUBJECT}/versions/1").json()
    assert (first["subject"], first["id"], first["version"]) == (SUBJECT, registry.ids[0], 1)
    assert json.loads(first["schema"]) == V1
    for latest in ("latest", "-1"):
        assert registry.get(f"/subjects/{SUBJECT}/versions/{latest}").json()["version"] == 2
    assert registry.get(f"/subjects/{SUBJECT}/versions/latest/schema").json() == V2


def test_unknown_subjects_and_versions_have_confluents_codes(registry: Registry) -> None:
    assert "nope" in _error(registry.get("/subjects/nope/versions"), 404, 40401)
    _error(registry.get("/subjects/nope/versions/1"), 404, 40401)
    _error(registry.get(f"/subjects/{SUBJECT}/versions/7"), 404, 40402)
    _error(registry.get(f"/subjects/{SUBJECT}/versions/zero"), 422, 42202)
    _error(registry.get("/config/nope"), 404, 40401)


def test_lookup_finds_the_version_holding_a_schema(registry: Registry) -> None:
    found = registry.post(f"/subjects/{SUBJECT}", {"schema": json.dumps(V2)}).json()
    assert (found["id"], found["version"], found["subject"]) == (registry.ids[1], 2, SUBJECT)
    _error(registry.post(f"/subjects/{SUBJECT}", {"schema": json.dumps(INCOMPATIBLE)}), 404, 40403)
    _error(registry.post("/subjects/nope", {"schema": json.dumps(V1)}), 404, 40401)


def test_a_malformed_schema_is_42201(registry: Registry) -> None:
    for body in ({"schema": "{not json"}, {"nothing": 1}, {"schema": '{"type": "recrod"}'},
                 {"schema": json.dumps(V1), "schemaType": "PROTOBUF"}):
        _error(registry.post(f"/subjects/{SUBJECT}", body), 422, 42201)


def test_compatibility_is_judged_backward_transitive(registry: Registry) -> None:
    path = f"/compatibility/subjects/{SUBJECT}/versions/latest"
    v3 = {**V2, "fields": [*V2["fields"], {"name": "c", "type": "string", "default": ""}]}
    assert registry.post(path, {"schema": json.dumps(v3)}).json() == {"is_compatible": True}
    refused = registry.post(path + "?verbose=true", {"schema": json.dumps(INCOMPATIBLE)}).json()
    assert refused["is_compatible"] is False
    assert any("a" in message for message in refused["messages"])
    _error(registry.post(f"/compatibility/subjects/{SUBJECT}/versions/9",
                         {"schema": json.dumps(v3)}), 404, 40402)


def test_the_compatibility_level_is_backward_transitive(registry: Registry) -> None:
    assert registry.get("/config").json() == {"compatibilityLevel": "BACKWARD_TRANSITIVE"}
    assert registry.get(f"/config/{SUBJECT}").json() == {
        "compatibilityLevel": "BACKWARD_TRANSITIVE"
    }


def test_plain_json_requests_are_accepted(registry: Registry) -> None:
    answer = registry.client.post(
        f"/subjects/{SUBJECT}", json={"schema": json.dumps(V1)},
        auth=("vendor-app", registry.reader_key),
    )
    assert answer.json()["version"] == 1


@pytest.mark.parametrize(
    "auth",
    [None, ("vendor-app", "wrong"), ("someone-else", "KEY"), ("vendor-app", "")],
    ids=["none", "wrong-key", "wrong-name", "empty-key"],
)
def test_without_valid_credentials_every_route_is_40101(
    registry: Registry, auth: tuple[str, str] | None
) -> None:
    if auth is not None and auth[1] == "KEY":
        auth = (auth[0], registry.reader_key)  # a real key under another consumer's name
    for path in ("/subjects", f"/schemas/ids/{registry.ids[0]}", "/config"):
        answer = registry.client.get(path, auth=auth)
        _error(answer, 401, 40101)
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_a_key_of_another_scope_is_refused(registry: Registry) -> None:
    message = _error(registry.get("/subjects", auth=("auditor", registry.auditor_key)), 403, 40301)
    assert "bus_reader" in message


def test_a_revoked_key_is_refused_at_its_next_request(registry: Registry) -> None:
    assert registry.get("/subjects").status_code == 200
    registry.keys.revoke("vendor-app")
    _error(registry.get("/subjects"), 401, 40101)


def test_readers_cannot_register_or_change_anything(registry: Registry) -> None:
    v3 = {"schema": json.dumps({**V2, "doc": "changed"})}
    message = _error(registry.post(f"/subjects/{SUBJECT}/versions", v3), 403, 40301)
    assert "read only" in message
    auth = ("vendor-app", registry.reader_key)
    _error(registry.client.delete(f"/subjects/{SUBJECT}", auth=auth), 403, 40301)
    _error(registry.client.put("/config", json={"compatibility": "NONE"}, auth=auth), 403, 40301)
    assert registry.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]


def test_an_unknown_path_or_malformed_id_answers_in_confluents_format(registry: Registry) -> None:
    _error(registry.get("/nothing/here"), 404, 404)
    _error(registry.get("/schemas/ids/abc"), 404, 404)


def test_the_api_serves_the_registry_under_registry_and_keeps_its_own_auth(
    registry: Registry, app_on: AppOn, seeded: ReadModels
) -> None:
    client = app_on(seeded, registry=registry.store, keys=registry.keys)
    reader = ("vendor-app", registry.reader_key)
    assert client.get(f"{REGISTRY_PREFIX}/subjects", auth=reader).json() == [SUBJECT]
    _error(client.get(f"{REGISTRY_PREFIX}/subjects"), 401, 40101)
    # the rest of the API still takes X-API-Key only, and a bus reader's key reads none of it
    assert client.get("/v1/canton/quarters/2026-Q1", auth=reader).status_code == 401
    assert client.get(
        "/v1/canton/quarters/2026-Q1", headers={"X-API-Key": registry.reader_key}
    ).status_code == 404


def test_the_api_without_a_registry_serves_none(app_on: AppOn, seeded: ReadModels) -> None:
    assert app_on(seeded).get(f"{REGISTRY_PREFIX}/subjects").status_code == 404

"""Every error is an RFC 9457 problem (application/problem+json) with the right status."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from eventsourcing.persistence import OperationalError as PersistenceOperationalError
from fastapi.testclient import TestClient

from domain.errors import (
    CaseNotFoundError,
    ConcurrentChangeError,
    InvalidCommandError,
    RuleViolationError,
)
from nervenbahn.api.keys import ApiKeyRegistry
from nervenbahn.audit.errors import (
    AccessLogTamperedError,
    AccessLogUnavailableError,
    UnchainedAccessLogError,
)
from nervenbahn.container import StoreUnavailableError
from nervenbahn.logging import configure_logging
from schemas.postgres import DatabaseUnavailableError
from tests.api.conftest import AppOn, Keys, ReadModels, context_of

OFFICE = "/v1/branch-offices/akso-olten/cases"
OLTEN = "branch_office:akso-olten"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}
UNKNOWN_CASE = "5d7e2c1a-0b3f-4c6d-9e8f-1a2b3c4d5e6f"
"""A case id that no store holds (fixed, so that parallel workers collect the same tests)."""

# (what, method, path, key: a scope, None for no header, or a literal key; status, type)
CASES = [
    ("no key", "GET", OFFICE, None, 401, "unauthorized"),
    ("an empty key", "GET", OFFICE, "", 401, "unauthorized"),
    ("an unknown key", "GET", OFFICE, "not-a-key", 401, "unauthorized"),
    ("no key, out of scope too", "GET", "/v1/regions/so-olten/caseload", None, 401,
     "unauthorized"),
    ("limit 0", "GET", f"{OFFICE}?limit=0", OLTEN, 422, "invalid-parameters"),
    ("limit too large", "GET", f"{OFFICE}?limit=501", OLTEN, 422, "invalid-parameters"),
    ("limit not a number", "GET", f"{OFFICE}?limit=ten", OLTEN, 422, "invalid-parameters"),
    ("negative offset", "GET", f"{OFFICE}?offset=-1", OLTEN, 422, "invalid-parameters"),
    ("unknown phase", "GET", f"{OFFICE}?phase=open", OLTEN, 422, "invalid-parameters"),
    ("case id not a UUID", "GET", f"{OFFICE}/12345", OLTEN, 422, "invalid-parameters"),
    ("a day that is not a date", "GET", "/v1/regions/so-olten/worklist?today=2026-13-01",
     "region:so-olten", 422, "invalid-parameters"),
    ("a quarter that is not one", "GET", "/v1/canton/quarters/2026Q5", "canton", 422,
     "invalid-parameters"),
    ("person id not a UUID", "GET", "/v1/access-log?person_id=anna", "auditor", 422,
     "invalid-parameters"),
    ("unknown case", "GET", f"{OFFICE}/{UNKNOWN_CASE}", OLTEN, 404, "not-found"),
    ("unknown office", "GET", "/v1/branch-offices/akso-atlantis/cases", OLTEN, 404,
     "not-found"),
    ("unknown region", "GET", "/v1/regions/so-atlantis/caseload", "region:so-olten", 404,
     "not-found"),
    ("another office", "GET", OFFICE, "branch_office:akso-solothurn", 404, "not-found"),
    ("bad parameters out of scope", "GET", f"{OFFICE}?limit=0",
     "branch_office:akso-solothurn", 404, "not-found"),
    ("unknown address", "GET", "/v1/nothing-here", OLTEN, 404, "not-found"),
    ("unknown problem type", "GET", "/problems/no-such-problem", None, 404, "not-found"),
    ("a write", "POST", OFFICE, OLTEN, 405, "method-not-allowed"),
    ("a delete", "DELETE", "/v1/access-log", "auditor", 405, "method-not-allowed"),
]


def assert_problem(answer: httpx.Response, status: int, slug: str, path: str) -> dict[str, object]:
    """The answer is a problem of this type and status about this path; returns its body."""
    body = answer.json()
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert set(body) == PROBLEM_MEMBERS | ({"errors"} if slug == "invalid-parameters" else set())
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["instance"] == path.split("?")[0]
    assert isinstance(body["detail"], str) and body["detail"]
    return dict(body)


def _headers(keys: Keys, key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    return keys.of(key) if key in keys.by_scope else {"X-API-Key": key}


@pytest.mark.parametrize(("what", "method", "path", "key", "status", "slug"), CASES,
                         ids=[row[0] for row in CASES])
def test_errors_are_problems_with_the_right_status(
    client: TestClient, keys: Keys, what: str, method: str, path: str, key: str | None,
    status: int, slug: str,
) -> None:
    answer = client.request(method, path, headers=_headers(keys, key))

    body = assert_problem(answer, status, slug, path)
    described = client.get(str(body["type"])).json()
    assert (described["status"], described["title"]) == (status, body["title"])


def test_unauthorized_names_the_header_and_the_scheme(client: TestClient) -> None:
    answer = client.get(OFFICE)

    assert answer.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert "X-API-Key" in answer.json()["detail"]


def test_invalid_parameters_are_each_named(client: TestClient, keys: Keys) -> None:
    answer = client.get(f"{OFFICE}?limit=0&phase=open&offset=-2", headers=keys.of(OLTEN))

    errors = answer.json()["errors"]
    assert sorted((e["name"], e["located_in"]) for e in errors) == [
        ("limit", "query"), ("offset", "query"), ("phase", "query")]
    assert answer.json()["detail"] == "invalid parameters: limit, offset, phase"


@pytest.mark.parametrize(
    ("path", "scope", "name"),
    [
        (OFFICE, OLTEN, "branch_office"),
        (f"{OFFICE}/{UNKNOWN_CASE}", OLTEN, "branch_office"),
        ("/v1/regions/so-olten/caseload", "region:so-olten", "region"),
        ("/v1/regions/so-olten/worklist", "region:so-olten", "region"),
        ("/v1/canton/quarters/2026Q1", "canton", "reporting"),
    ],
)
@pytest.mark.parametrize("state", ["missing", "half-built"])
def test_a_read_model_not_built_yet_is_a_503_naming_the_rebuild(
    tmp_path: Path, app_on: AppOn, keys: Keys, seeded: ReadModels, path: str, scope: str,
    name: str, state: str,
) -> None:
    unbuilt = ReadModels(seeded.service, tmp_path / "region.db", tmp_path / "branch_office.db",
                         tmp_path / "reporting.db")
    if state == "half-built":                          # a file without the tables
        for model in (unbuilt.region_db, unbuilt.branch_office_db, unbuilt.reporting_db):
            model.write_bytes(b"")
    client = app_on(unbuilt)

    answer = client.get(path, headers=keys.of(scope))

    body = assert_problem(answer, 503, "service-unavailable", path)
    assert f"`nervenbahn projections rebuild {name}`" in str(body["detail"])


def test_out_of_scope_is_404_even_when_the_read_model_is_missing(
    tmp_path: Path, app_on: AppOn, keys: Keys, seeded: ReadModels
) -> None:
    client = app_on(ReadModels(seeded.service, tmp_path / "no.db", tmp_path / "none.db",
                               tmp_path / "nil.db"))

    answer = client.get(OFFICE, headers=keys.of("region:so-olten"))

    assert_problem(answer, 404, "not-found", OFFICE)


def test_a_malformed_key_file_is_a_503_without_its_contents(
    tmp_path: Path, app_on: AppOn, seeded: ReadModels
) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text(json.dumps({"consumers": [{"name": "x", "key_sha256": "secret-ish"}]}))
    client = app_on(seeded, keys=ApiKeyRegistry(path))

    answer = client.get(OFFICE, headers={"X-API-Key": "anything"})

    body = assert_problem(answer, 503, "service-unavailable", OFFICE)
    assert "secret-ish" not in answer.text and str(tmp_path) not in answer.text
    assert "API-key registry" in str(body["detail"])


class _FailingVault:
    """A vault whose key store fails in an unforeseen way."""

    def decrypt(self, sealed: object) -> object:
        raise RuntimeError("key store exploded at /srv/nervenbahn/store.db")


def test_an_unexpected_failure_is_a_500_problem_that_reveals_nothing(
    app_on: AppOn, keys: Keys, seeded: ReadModels, client: TestClient
) -> None:
    case_id = client.get(OFFICE, headers=keys.of(OLTEN)).json()["cases"][0]["case_id"]
    failing = app_on(seeded, vault=_FailingVault())
    logs = io.StringIO()
    configure_logging("json", "info", logs)        # as `nervenbahn serve` will

    answer = failing.get(f"{OFFICE}/{case_id}", headers=keys.of(OLTEN))

    assert_problem(answer, 500, "internal-error", f"{OFFICE}/{case_id}")
    assert "exploded" not in answer.text and "/srv" not in answer.text
    logged = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [(e["event"], e["error"]) for e in logged] == [("unexpected error", "RuntimeError")]
    assert "exploded" in logged[0]["exception"]     # the operator sees the traceback
    assert context_of(failing).access_log.select() == []   # nothing was served


class _RaisingVault:
    """A vault whose decrypt raises what a deeper layer might, where no route catches it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def decrypt(self, sealed: object) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (CaseNotFoundError(UNKNOWN_CASE), 404, "not-found"),
        (InvalidCommandError("show", [("as_of", "before the case was opened")]), 422,
         "invalid-parameters"),
        (ConcurrentChangeError(UNKNOWN_CASE), 409, "conflict"),
        (RuleViolationError("actor-responsible", "not this region's case"), 422, "refused"),
        (StoreUnavailableError("cannot open the store /srv/x.db: disk I/O error"), 503,
         "service-unavailable"),
        (AccessLogUnavailableError("cannot open the access log /srv/log.db: disk I/O error"),
         503, "service-unavailable"),
        (UnchainedAccessLogError("/srv/log.db", 3), 503, "service-unavailable"),
        (DatabaseUnavailableError("the connection to PostgreSQL /srv:5432/x was lost"), 503,
         "service-unavailable"),
        (PersistenceOperationalError("consuming input failed: server closed the connection"),
         503, "service-unavailable"),
    ],
    ids=["not found", "invalid", "concurrent change", "rule", "store unavailable",
         "access log unavailable", "access log unchained", "database connection lost",
         "event store connection lost"],
)
def test_errors_no_route_answers_get_their_problem_not_a_500(
    app_on: AppOn, keys: Keys, seeded: ReadModels, client: TestClient,
    error: Exception, status: int, slug: str,
) -> None:
    case_id = client.get(OFFICE, headers=keys.of(OLTEN)).json()["cases"][0]["case_id"]
    failing = app_on(seeded, vault=_RaisingVault(error))

    answer = failing.get(f"{OFFICE}/{case_id}", headers=keys.of(OLTEN))

    body = assert_problem(answer, status, slug, f"{OFFICE}/{case_id}")
    assert "/srv" not in answer.text
    if slug == "invalid-parameters":
        assert body["errors"] == [{"name": "as_of", "located_in": "query",
                                   "reason": "before the case was opened"}]
    if slug == "not-found":  # the same answer as any missing or out-of-scope case
        assert body["detail"] == "Nothing was found at this address."


def test_an_audit_error_no_route_foresees_is_a_500_problem_that_reveals_nothing(
    app_on: AppOn, keys: Keys, seeded: ReadModels, client: TestClient
) -> None:
    case_id = client.get(OFFICE, headers=keys.of(OLTEN)).json()["cases"][0]["case_id"]
    failing = app_on(seeded, vault=_RaisingVault(AccessLogTamperedError("broken at /srv/7")))
    logs = io.StringIO()
    configure_logging("json", "info", logs)

    answer = failing.get(f"{OFFICE}/{case_id}", headers=keys.of(OLTEN))

    assert_problem(answer, 500, "internal-error", f"{OFFICE}/{case_id}")
    assert "/srv" not in answer.text
    logged = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [(e["event"], e["error"]) for e in logged] == [
        ("unexpected error", "AccessLogTamperedError")]


def test_openapi_documents_the_key_the_endpoints_and_problem_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    detail = schema["paths"]["/v1/branch-offices/{office_id}/cases/{case_id}"]["get"]

    assert client.get("/docs").status_code == 200
    assert set(schema["paths"]) >= {
        "/v1/branch-offices/{office_id}/cases",
        "/v1/branch-offices/{office_id}/cases/{case_id}",
        "/v1/regions/{region_id}/caseload",
        "/v1/regions/{region_id}/worklist",
        "/v1/canton/quarters/{quarter}",
        "/v1/access-log",
    }
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert set(detail["responses"]) == {"200", "401", "404", "422", "503"}
    assert all(
        set(detail["responses"][status]["content"]) == {"application/problem+json"}
        for status in ("401", "404", "422", "503")
    )
    assert "HTTPValidationError" not in schema["components"]["schemas"]

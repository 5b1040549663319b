"""Absurd parameters — offsets and ids past 2**63, years 0 and 9999 — are 422 problems naming
the parameter and one short log line, never a 500 with a traceback."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient

from nervenbahn.logging import configure_logging, configure_logging_from_environment
from tests.api.conftest import AppOn, Keys, ReadModels

CASE = "/v1/audit/cases/5d7e2c1a-0b3f-4c6d-9e8f-1a2b3c4d5e6f"
OFFICE = "/v1/branch-offices/akso-olten/cases"
WORKLIST = "/v1/regions/so-olten/worklist"
OLTEN, REGION, AUDITOR = "branch_office:akso-olten", "region:so-olten", "auditor"
TWO_TO_63 = str(2**63)

# (path with query, scope, the parameter named, where)
BAD = [
    (f"{OFFICE}?offset={TWO_TO_63}", OLTEN, "offset", "query"),
    (f"{OFFICE}?offset=1000000001", OLTEN, "offset", "query"),
    (f"{OFFICE}?limit={TWO_TO_63}", OLTEN, "limit", "query"),
    (f"/v1/access-log?gt={TWO_TO_63}", AUDITOR, "gt", "query"),
    (f"/v1/access-log?gt=-{TWO_TO_63}", AUDITOR, "gt", "query"),
    (f"/v1/access-log?limit={TWO_TO_63}", AUDITOR, "limit", "query"),
    ("/v1/canton/quarters/0000Q1", "canton", "quarter", "path"),
    ("/v1/canton/quarters/9999Q4", "canton", "quarter", "path"),
    ("/v1/canton/quarters/1899Q4", "canton", "quarter", "path"),
    (f"{CASE}?as_of=9999-12-31", AUDITOR, "as_of", "query"),
    (f"{CASE}?as_of=0001-01-01", AUDITOR, "as_of", "query"),
    (f"{CASE}?as_of=9999-12-31T23:59:59%2B14:00", AUDITOR, "as_of", "query"),
    (f"{CASE}?as_of=3000-01-01T00:00:00", AUDITOR, "as_of", "query"),
    (f"{CASE}/months/9999-12?as_known_at=2026-06-30", AUDITOR, "month", "path"),
    (f"{CASE}/months/0000-01?as_known_at=2026-06-30", AUDITOR, "month", "path"),
    (f"{CASE}/months/2026-03?as_known_at=9999-12-31", AUDITOR, "as_known_at", "query"),
    (f"{CASE}/months/2026-03/diff?known_at=9999-12-31&compared_to=2026-06-30", AUDITOR,
     "known_at", "query"),
    (f"{CASE}/months/2026-03/diff?known_at=2026-05-31&compared_to=9999-12-31", AUDITOR,
     "compared_to", "query"),
    (f"{WORKLIST}?today=9999-12-31", REGION, "today", "query"),
    (f"{WORKLIST}?today=0001-01-01", REGION, "today", "query"),
    (f"{WORKLIST}?limit=0", REGION, "limit", "query"),
    (f"{WORKLIST}?limit=501", REGION, "limit", "query"),
    (f"{WORKLIST}?offset={TWO_TO_63}", REGION, "offset", "query"),
]


@pytest.fixture
def api(app_on: AppOn, seeded: ReadModels) -> TestClient:
    """The API with the seeded store as its event store."""
    return app_on(seeded, service=seeded.service)


@pytest.mark.parametrize(("path", "scope", "name", "located_in"), BAD,
                         ids=[b[0].split("/")[-1] for b in BAD])
def test_an_absurd_parameter_is_a_422_naming_it_and_one_short_log_line(
    api: TestClient, keys: Keys, path: str, scope: str, name: str, located_in: str
) -> None:
    logs = io.StringIO()
    configure_logging("json", "info", logs)
    try:
        answer = api.get(path, headers=keys.of(scope))
    finally:
        configure_logging_from_environment()

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "/problems/invalid-parameters"
    assert [(e["name"], e["located_in"]) for e in problem["errors"]] == [(name, located_in)]
    assert name in problem["detail"]
    lines = logs.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, lines
    logged = json.loads(lines[0])
    assert (logged["event"], logged["parameters"]) == ("invalid parameters", [name])
    assert "exception" not in logged


@pytest.mark.parametrize(("path", "scope"), [
    (f"{OFFICE}?offset=1000000000", OLTEN),
    (f"/v1/access-log?gt={2**63 - 1}", AUDITOR),
    ("/v1/canton/quarters/2999Q4", "canton"),
    (f"{WORKLIST}?today=2999-12-31", REGION),
])
def test_the_largest_accepted_values_answer(
    api: TestClient, keys: Keys, path: str, scope: str
) -> None:
    assert api.get(path, headers=keys.of(scope)).status_code == 200

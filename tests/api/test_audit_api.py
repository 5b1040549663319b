"""The auditor's bitemporal endpoints on a real SQLite store holding the retroactive case:
the hand-computed table through HTTP, the diff, the state with its timeline, other scopes
answered exactly like a missing resource, RFC 9457 problems naming the parameter."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.application.cases import CaseService
from nervenbahn.config import load_settings
from nervenbahn.container import build_service, close_service
from tests.api.conftest import AppOn, Keys, ReadModels, context_of
from tests.api.test_personal_data_reads import BrokenLog
from tests.domain.bitemporal_case import EXPECTED, MONTHS, record_story_in_sqlite

KNOWN_DAYS = {"30 April": "2026-04-30", "31 May": "2026-05-31", "30 June": "2026-06-30"}
AUDITOR = "auditor"
OTHER_SCOPES = ["branch_office:akso-solothurn", "region:so-solothurn", "canton"]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaseService, UUID]]:
    """The retroactive case in a SQLite store, opened as the API's service would be."""
    env, case_id = record_story_in_sqlite(tmp_path_factory.mktemp("audit-api"))
    service = build_service(load_settings(env))
    yield service, case_id
    close_service(service)


@pytest.fixture
def api(app_on: AppOn, seeded: ReadModels, story: tuple[CaseService, UUID]) -> TestClient:
    """The API with the story's store as its event store."""
    return app_on(seeded, service=story[0])


def get(client: TestClient, keys: Keys, path: str, scope: str = AUDITOR, **params: str) -> Any:
    return client.get(path, params=params, headers=keys.of(scope))


def test_month_as_known_at_matches_the_hand_computed_table(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    for known, day in KNOWN_DAYS.items():
        amounts = []
        for month in MONTHS:
            response = get(api, keys, f"/v1/audit/cases/{case_id}/months/{month:%Y-%m}",
                           as_known_at=day)
            assert response.status_code == 200, response.text
            amounts.append(Decimal(response.json()["amount"]))
        assert amounts == EXPECTED[known], known


def test_month_answer_names_its_segments_and_the_events_it_rests_on(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    body = get(api, keys, f"/v1/audit/cases/{case_id}/months/2026-05",
               as_known_at="2026-06-30T12:00:00+02:00").json()
    # 1–20 May: income of V2, rent of V3, the rest of the grant (1061 + 1000 + 350 − 600 =
    # 1811 a month): 1811 × 20/31 = 36220/31 = 1168.387… → 1168.39
    assert (body["amount"], body["supported_days"], body["days_in_month"]) == ("1168.39", 20, 31)
    assert [(r["version"], r["event"]) for r in body["rests_on"]] == [
        (3, "SupportGranted"), (4, "BudgetChanged"), (5, "BudgetChanged"), (6, "CaseClosed"),
    ]
    assert [s["budget_event_versions"] for s in body["segments"]] == [[3, 4, 5]]
    assert body["rests_on"][0]["actor"] == {
        "user_id": "anna.keller", "role": "caseworker", "organisation": "so-solothurn",
    }


def test_diff_between_two_knowledge_times(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    response = get(api, keys, f"/v1/audit/cases/{case_id}/months/2026-03/diff",
                   known_at="2026-05-31", compared_to="2026-06-30")
    assert response.status_code == 200, response.text
    diff = response.json()
    # 2004.55 − 2204.55 (see tests/domain/bitemporal_case.py)
    assert (diff["before"], diff["after"], diff["difference"]) == ("2204.55", "2004.55", "-200.00")
    housing = next(line for line in diff["lines"] if line["code"] == "housing")
    # 1200 all March before; 1000 all March after (the cut holds after 11 March)
    assert (housing["before"], housing["after"], housing["difference"]) == (
        "1200.00", "1000.00", "-200.00",
    )
    assert [(e["event"], e["effective_date"]) for e in diff["caused_by"]] == [
        ("BudgetChanged", "2026-02-01"),
    ]


def test_case_as_of_has_the_state_and_the_timeline_then_without_personal_data(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    service, case_id = story
    response = get(api, keys, f"/v1/audit/cases/{case_id}", as_of="2026-05-31")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["phase"], body["version"], body["budget"]["total"]) == ("supported", 4, "2011.00")
    assert [(e["event"], e["total"]) for e in body["timeline"]] == [
        ("CaseOpened", None), ("AssessmentCompleted", None), ("SupportGranted", "2611.00"),
        ("BudgetChanged", "2011.00"),
    ]
    applicant = service.get_case(case_id).applicant.to_plain()
    for field in ("given_name", "family_name", "ahvn13", "street"):
        assert applicant[field] not in response.text


def without_instance(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    body.pop("instance")
    return response.status_code, response.headers["content-type"], body


@pytest.mark.parametrize("scope", OTHER_SCOPES)
@pytest.mark.parametrize(
    "path",
    ["/v1/audit/cases/{id}?as_of=2026-05-31",
     "/v1/audit/cases/{id}/months/2026-03?as_known_at=2026-06-30",
     "/v1/audit/cases/{id}/months/2026-03/diff?known_at=2026-05-31&compared_to=2026-06-30",
     "/v1/audit/cases/{id}/months/2026-3?as_known_at=yesterday",
     "/v1/audit/cases/not-a-uuid?as_of=2026-05-31"],
)
def test_other_scopes_get_the_answer_of_a_missing_resource(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID], scope: str, path: str
) -> None:
    _, case_id = story
    url = path.replace("{id}", str(case_id))
    answer = api.get(url, headers=keys.of(scope))
    missing = api.get("/v1/no-such-thing", headers=keys.of(scope))
    assert answer.status_code == 404
    assert without_instance(answer) == without_instance(missing)
    assert answer.json()["instance"] == url.split("?")[0]


@pytest.mark.parametrize(
    ("path", "name", "located_in"),
    [
        ("/v1/audit/cases/{id}/months/2026-3?as_known_at=2026-06-30", "month", "path"),
        ("/v1/audit/cases/{id}/months/2026-03?as_known_at=30.6.2026", "as_known_at", "query"),
        ("/v1/audit/cases/{id}/months/2026-03", "as_known_at", "query"),
        ("/v1/audit/cases/{id}/months/2026-03/diff?known_at=2026-06-30&compared_to=2026-05-31",
         "compared_to", "query"),
        ("/v1/audit/cases/{id}?as_of=soon", "as_of", "query"),
        ("/v1/audit/cases/not-a-uuid?as_of=2026-05-31", "case_id", "path"),
    ],
)
def test_bad_input_is_a_problem_naming_the_parameter(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID], path: str, name: str,
    located_in: str,
) -> None:
    _, case_id = story
    response = api.get(path.replace("{id}", str(case_id)), headers=keys.of(AUDITOR))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/invalid-parameters"
    assert [(e["name"], e["located_in"]) for e in problem["errors"]] == [(name, located_in)]
    assert name in problem["detail"]


def test_unknown_cases_and_times_before_the_case_are_not_found(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    unknown = get(api, keys, f"/v1/audit/cases/{uuid4()}", as_of="2026-05-31")
    before = get(api, keys, f"/v1/audit/cases/{case_id}/months/2026-01", as_known_at="2026-01-04")
    for response in (unknown, before):
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"


def test_without_the_event_store_the_endpoints_are_unavailable(
    app_on: AppOn, seeded: ReadModels, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    client = app_on(seeded)  # a context without a service
    response = get(client, keys, f"/v1/audit/cases/{case_id}", as_of="2026-05-31")
    assert response.status_code == 503
    assert "event store" in response.json()["detail"]


AS_OF_READS = [
    ("/v1/audit/cases/{id}", {"as_of": "2026-05-31"}, ("case_state", "timeline"),
     "GET /v1/audit/cases/{case_id}"),
    ("/v1/audit/cases/{id}/months/2026-03", {"as_known_at": "2026-06-30"}, ("budget_month",),
     "GET /v1/audit/cases/{case_id}/months/{month}"),
    ("/v1/audit/cases/{id}/months/2026-03/diff",
     {"known_at": "2026-05-31", "compared_to": "2026-06-30"}, ("budget_month_diff",),
     "GET /v1/audit/cases/{case_id}/months/{month}/diff"),
]


@pytest.mark.parametrize(("path", "params", "fields", "endpoint"), AS_OF_READS,
                         ids=["state", "month", "diff"])
def test_each_as_of_read_is_in_the_access_log_under_every_household_member(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID], path: str,
    params: dict[str, str], fields: tuple[str, ...], endpoint: str,
) -> None:
    service, case_id = story
    case = service.get_case(case_id)
    persons = [str(p.person_id) for p in (case.applicant, *case.other_members)]

    response = api.get(path.replace("{id}", str(case_id)), params=params,
                       headers=keys.of(AUDITOR))

    assert response.status_code == 200, response.text
    logged = [item.entry for item in context_of(api).access_log.select(case_id=str(case_id))]
    assert [(e.person_id, e.consumer, e.scope, e.fields, e.endpoint) for e in logged] == [
        (person, "auditor", "auditor", fields, endpoint) for person in persons]


@pytest.mark.parametrize(("path", "params", "fields", "endpoint"), AS_OF_READS,
                         ids=["state", "month", "diff"])
def test_an_as_of_read_that_cannot_be_logged_is_not_answered(
    app_on: AppOn, seeded: ReadModels, keys: Keys, story: tuple[CaseService, UUID],
    path: str, params: dict[str, str], fields: tuple[str, ...], endpoint: str,
) -> None:
    service, case_id = story
    client = app_on(seeded, service=service, access_log=BrokenLog())

    response = client.get(path.replace("{id}", str(case_id)), params=params,
                          headers=keys.of(AUDITOR))

    assert response.status_code == 503
    assert "access log" in response.json()["detail"]


def test_refused_and_missing_as_of_reads_leave_no_entry(
    api: TestClient, keys: Keys, story: tuple[CaseService, UUID]
) -> None:
    _, case_id = story
    api.get(f"/v1/audit/cases/{case_id}", params={"as_of": "2026-05-31"},
            headers=keys.of("canton"))
    api.get(f"/v1/audit/cases/{uuid4()}", params={"as_of": "2026-05-31"},
            headers=keys.of(AUDITOR))

    assert context_of(api).access_log.select() == []

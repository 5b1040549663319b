"""The access log through the API: only the auditor scope reads it; every other key gets the
answer an address that does not exist gets, whatever it asks; entries say who, whose, what,
when and where; the log the API writes is one verifiable chain."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient

from domain.reference import load_branch_offices
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.audit.access_log_store import SQLiteAccessLog
from tests.api.conftest import NOW, Keys, ReadModels, context_of

DETAIL = "GET /v1/branch-offices/{office_id}/cases/{case_id}"
OFFICES = ("akso-olten", "akso-solothurn")


def cases_of(models: ReadModels, office: str) -> list[tuple[str, str]]:
    """(case id, applicant person id) of the cases an office serves."""
    served = load_branch_offices()[office].municipalities
    with sqlite3.connect(models.branch_office_db) as db:
        rows = db.execute(
            "SELECT case_id, applicant_person_id, municipality_bfs FROM office_cases"
        ).fetchall()
    return sorted((case_id, person) for case_id, person, bfs in rows if bfs in served)


def read_cases(client: TestClient, keys: Keys, seeded: ReadModels) -> list[dict[str, object]]:
    """Each office reads its first case twice; what the log should hold, in order."""
    expected: list[dict[str, object]] = []
    for office in OFFICES:
        case_id, person_id = cases_of(seeded, office)[0]
        for _ in range(2):
            answer = client.get(f"/v1/branch-offices/{office}/cases/{case_id}",
                                headers=keys.of(f"branch_office:{office}"))
            assert answer.status_code == 200
            expected.append({
                "id": len(expected) + 1, "at": "2026-10-01T08:30:00Z",
                "consumer": f"branch_office-{office}", "scope": f"branch_office:{office}",
                "case_id": case_id, "person_id": person_id, "fields": list(APPLICANT_FIELDS),
                "endpoint": DETAIL,
            })
    return expected


def test_every_scope_but_the_auditor_gets_not_found_whatever_it_asks(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    logged = read_cases(client, keys, seeded)
    person = str(logged[0]["person_id"])
    queries = [{}, {"person_id": person}, {"case_id": str(logged[0]["case_id"]), "gt": 1},
               {"person_id": "not-a-uuid", "limit": 100000}]
    others = [scope for scope in keys.by_scope if scope != "auditor"]
    unknown = client.get("/v1/no-such-thing", headers=keys.of("auditor")).json()

    answers = [(scope, client.get("/v1/access-log", params=query, headers=keys.of(scope)))
               for scope in others for query in queries]

    assert len(others) == 53 + 13 + 2  # every branch office, region, the canton, the bus reader
    assert {answer.status_code for _, answer in answers} == {404}
    assert all(answer.json() == unknown | {"instance": "/v1/access-log"}
               for _, answer in answers)
    assert not [scope for scope, answer in answers if person in answer.text]


def test_without_a_valid_key_the_access_log_answers_like_any_address(
    client: TestClient,
) -> None:
    headers = {"X-API-Key": "nb_not-a-key"}
    log_answer = client.get("/v1/access-log", headers=headers)
    elsewhere = client.get("/v1/regions/so-olten/caseload", headers=headers)
    no_key = client.get("/v1/access-log")

    assert (log_answer.status_code, no_key.status_code) == (401, 401)
    assert log_answer.json() | {"instance": ""} == elsewhere.json() | {"instance": ""}


def test_the_auditor_sees_who_read_whose_data_which_fields_when_and_where(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    expected = read_cases(client, keys, seeded)

    answer = client.get("/v1/access-log", headers=keys.of("auditor"))

    assert answer.status_code == 200
    assert answer.json() == {"entries": expected}


def test_the_log_the_api_writes_is_one_chain_that_verifies(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    expected = read_cases(client, keys, seeded)
    log = context_of(client).access_log
    assert isinstance(log, SQLiteAccessLog)

    result = log.verify([log.head()])

    assert (result.ok, result.records, result.head.position) == (True, len(expected),
                                                                len(expected))
    assert all(item.entry.at == NOW for item in log.select())

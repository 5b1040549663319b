"""Every read of personal data is in the access log (exactly one entry, before the answer);
reads without personal data leave no entry; auditors can query the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from domain.reference import load_branch_offices
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.audit.access_log import AccessEntry, AccessLog, LoggedAccess
from nervenbahn.audit.errors import AccessLogUnavailableError
from nervenbahn.container import build_service, close_service
from tests.api.conftest import NOW, AppOn, Keys, ReadModels, build_read_models, context_of
from tests.bus.pipeline import command, store_settings

DETAIL = "GET /v1/branch-offices/{office_id}/cases/{case_id}"
OLTEN = "branch_office:akso-olten"


def olten_cases(models: ReadModels) -> list[tuple[str, str]]:
    """(case id, applicant person id) of the cases Olten's office serves."""
    served = load_branch_offices()["akso-olten"].municipalities
    with sqlite3.connect(models.branch_office_db) as db:
        rows = db.execute(
            "SELECT case_id, applicant_person_id, municipality_bfs FROM office_cases"
        ).fetchall()
    return sorted((case_id, person_id) for case_id, person_id, bfs in rows if bfs in served)


def test_reading_a_case_appends_one_entry_with_who_what_and_when(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    case_id, person_id = olten_cases(seeded)[0]

    answer = client.get(f"/v1/branch-offices/akso-olten/cases/{case_id}", headers=keys.of(OLTEN))

    assert answer.status_code == 200
    assert set(APPLICANT_FIELDS) <= set(answer.json()["applicant"])
    assert context_of(client).access_log.select() == [
        LoggedAccess(1, AccessEntry(at=NOW, consumer="branch_office-akso-olten", scope=OLTEN,
                                    case_id=case_id, person_id=person_id,
                                    fields=APPLICANT_FIELDS, endpoint=DETAIL))
    ]


def test_each_read_is_one_more_entry_and_reads_without_personal_data_none(
    client: TestClient, keys: Keys, seeded: ReadModels
) -> None:
    log = context_of(client).access_log
    (first, _), (second, _) = olten_cases(seeded)[:2]
    elsewhere = "/v1/branch-offices/akso-solothurn/cases"
    no_personal_data = [
        ("/v1/branch-offices/akso-olten/cases", OLTEN),
        ("/v1/branch-offices/akso-olten/cases?phase=supported&limit=3", OLTEN),
        (f"/v1/branch-offices/akso-olten/cases/{first}", "branch_office:akso-solothurn"),
        (f"{elsewhere}/{first}", "branch_office:akso-solothurn"),          # not its case
        ("/v1/regions/so-olten/caseload", "region:so-olten"),
        ("/v1/regions/so-olten/worklist", "region:so-olten"),
        ("/v1/access-log", "auditor"),
    ]
    counts = []
    for case_id in (first, second, first):
        client.get(f"/v1/branch-offices/akso-olten/cases/{case_id}", headers=keys.of(OLTEN))
        counts.append(len(log.select()))
    for path, scope in no_personal_data:
        client.get(path, headers=keys.of(scope))

    assert counts == [1, 2, 3]
    assert [item.entry.case_id for item in log.select()] == [first, second, first]


def test_an_erased_applicant_reads_as_erased_and_the_read_is_still_logged(
    tmp_path: Path, master_key: str, app_on: AppOn, keys: Keys
) -> None:
    service = build_service(store_settings(tmp_path, master_key))
    applicant = {"given_name": "Vera", "family_name": "Vergessen", "ahvn13": "756.9217.0769.85",
                 "birth_date": "1970-01-01", "street": "Weg 1", "postal_code": "4600",
                 "town": "Olten"}
    case_id = str(service.execute(command(
        "open_case", municipality_bfs=2581, household_size=1, applicant=applicant
    )).case_id)
    client = app_on(build_read_models(service, tmp_path))
    path = f"/v1/branch-offices/akso-olten/cases/{case_id}"
    person_id = client.get(path, headers=keys.of(OLTEN)).json()["applicant"]["person_id"]

    service.erase_person(UUID(person_id))
    answer = client.get(path, headers=keys.of(OLTEN)).json()
    close_service(service)

    assert answer["applicant"] == {"person_id": person_id, "erased": True} | dict.fromkeys(
        APPLICANT_FIELDS, "[erased]")
    assert [item.entry.person_id for item in context_of(client).access_log.select()] == [
        person_id, person_id]


class BrokenLog(AccessLog):
    """An access log whose disk is full."""

    def append(self, entry: AccessEntry) -> int:
        raise AccessLogUnavailableError("disk full")

    def select(self, **_: object) -> list[LoggedAccess]:
        return []

    def close(self) -> None:
        pass


def test_personal_data_is_not_served_when_the_read_cannot_be_logged(
    app_on: AppOn, keys: Keys, seeded: ReadModels
) -> None:
    case_id, _ = olten_cases(seeded)[0]
    client = app_on(seeded, access_log=BrokenLog())

    answer = client.get(f"/v1/branch-offices/akso-olten/cases/{case_id}", headers=keys.of(OLTEN))

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert "access log" in answer.json()["detail"]
    assert "given_name" not in answer.text and "disk full" not in answer.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [0, 1, 2]),
        ({"case_id": "{c0}"}, [0, 2]),
        ({"person_id": "{p1}"}, [1]),
        ({"person_id": "{p0}", "case_id": "{c0}"}, [0, 2]),
        ({"limit": 2}, [0, 1]),
        ({"gt": 2}, [2]),
    ],
)
def test_auditors_query_the_log_by_person_and_case(
    client: TestClient, keys: Keys, seeded: ReadModels, query: dict[str, object],
    expected: list[int],
) -> None:
    (c0, p0), (c1, p1) = olten_cases(seeded)[:2]
    for case_id in (c0, c1, c0):
        client.get(f"/v1/branch-offices/akso-olten/cases/{case_id}", headers=keys.of(OLTEN))
    names = {"c0": c0, "p0": p0, "c1": c1, "p1": p1}
    params = {k: str(v).format(**names) for k, v in query.items()}

    answer = client.get("/v1/access-log", params=params, headers=keys.of("auditor"))

    entries = answer.json()["entries"]
    assert answer.status_code == 200
    assert [e["case_id"] for e in entries] == [(c0, c1, c0)[i] for i in expected]
    assert [e["id"] for e in entries] == [i + 1 for i in expected]
    assert all(e["fields"] == list(APPLICANT_FIELDS) and e["endpoint"] == DETAIL
               for e in entries)
    assert all(e["at"] == "2026-10-01T08:30:00Z" for e in entries)

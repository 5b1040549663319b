"""The region's work list over HTTP carries the population register's open proposals (a
handover and a closure proposal once answered 500 because the answer's model did not know
their kinds)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from nervenbahn.container import build_service, close_service
from tests.api.conftest import AppOn, Keys, build_read_models
from tests.bus.pipeline import command, store_settings

OLTEN, SOLOTHURN = 2581, 2601
REGISTER = {"user_id": "population-register", "role": "system", "organisation": "so-canton"}


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _open(service: CaseService) -> str:
    person = {"given_name": "Lia", "family_name": "Muster", "ahvn13": "756.9217.0769.85",
              "birth_date": "1990-01-01", "street": "Weg 1", "postal_code": "4600",
              "town": "Olten"}
    case_id: UUID = service.execute(command(
        "open_case", municipality_bfs=OLTEN, household_size=1, applicant=person,
        application_date="2026-03-02",
    )).case_id
    return str(case_id)


def _propose(service: CaseService, name: str, case_id: str, **fields: Any) -> None:
    service.execute(command(name, case_id=case_id, actor=REGISTER,
                            source="population_register", **fields))


def test_work_list_answers_with_the_registers_open_proposals(
    tmp_path: Path, master_key: str, app_on: AppOn, keys: Keys
) -> None:
    service = build_service(store_settings(tmp_path, master_key),
                            clock=_Clock(datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME)))
    try:
        moved, died = _open(service), _open(service)
        _propose(service, "propose_handover", moved, external_reference="m-7/0",
                 to_municipality_bfs=SOLOTHURN, effective_date="2026-02-10")
        _propose(service, "propose_closure", died, external_reference="m-7/1",
                 reason="death", effective_date="2026-03-01")
        client: TestClient = app_on(build_read_models(service, tmp_path))

        olten = client.get("/v1/regions/so-olten/worklist", params={"today": "2026-03-02"},
                           headers=keys.of("region:so-olten"))
        solothurn = client.get("/v1/regions/so-solothurn/worklist",
                               params={"today": "2026-03-02"},
                               headers=keys.of("region:so-solothurn"))
    finally:
        close_service(service)

    assert olten.status_code == 200, olten.text
    assert solothurn.status_code == 200, solothurn.text
    proposals = [(i["kind"], i["case_id"], i["due"], i["overdue"])
                 for i in olten.json()["items"] if i["kind"].endswith("_proposal")]
    assert proposals == [
        ("handover_proposal", moved, date(2026, 2, 10).isoformat(), True),
        ("closure_proposal", died, date(2026, 3, 1).isoformat(), False),
    ]


def test_the_api_description_names_every_work_item_kind(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["WorkItem"]

    assert set(schema["properties"]["kind"]["enum"]) == {
        "assessment", "review", "goal", "handover_proposal", "closure_proposal",
        "budget_proposal", "advance"}
    assert "handover_proposal" in schema["description"]


def test_the_work_list_comes_in_pages_that_add_up_to_the_whole_list(
    client: TestClient, keys: Keys
) -> None:
    def page(**params: int) -> dict[str, Any]:
        answer = client.get("/v1/regions/so-olten/worklist",
                            params={"today": "2027-06-30", **params},
                            headers=keys.of("region:so-olten"))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    whole = page(limit=500)
    total = whole["total"]
    pages = [page(limit=3, offset=offset) for offset in range(0, total + 3, 3)]

    assert total == len(whole["items"]) > 3, "the seeded region has more than a page"
    assert page()["limit"] == 100 and len(page()["items"]) == min(total, 100)
    assert all(p["total"] == total and len(p["items"]) <= 3 for p in pages)
    assert [p["offset"] for p in pages] == list(range(0, total + 3, 3))
    assert [item for p in pages for item in p["items"]] == whole["items"]
    assert pages[-1]["items"] == []  # past the end: an empty page, not an error

"""The branch offices' benefit applications and delegations in the API: only the office's
own, no personal data in the list, the detail's applicant read logged, freshness headers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from domain import benefit_commands as bc
from nervenbahn.api.models import APPLICANT_FIELDS
from nervenbahn.api.readmodels import AS_OF_HEADER, READ_MODEL_HEADER
from nervenbahn.audit.access_log import AccessEntry, LoggedAccess
from nervenbahn.container import (
    Container,
    build_benefit_service,
    build_service,
    close_service,
)
from projections.benefit_applications import BenefitApplicationsProjection
from projections.framework import rebuild
from tests.api.conftest import NOW, AppOn, Keys, build_read_models, context_of
from tests.bus.pipeline import store_settings
from tests.domain.case_desk import person_input
from tests.domain.fakes import FakeClock
from tests.projections.benefit_office_fixture import GRENCHEN_OFFICE, START, record_offices

GRENCHEN = "branch_office:akso-grenchen"
BASE = "/v1/branch-offices/akso-grenchen"
DETAIL = "GET /v1/branch-offices/{office_id}/benefit-applications/{application_id}"


@pytest.fixture
def office(tmp_path: Path, master_key: str, app_on: AppOn) -> Iterator[Any]:
    """An app on the fixture's benefit applications (clock: `NOW`), and what was recorded."""
    settings = store_settings(tmp_path, master_key)
    cases = build_service(settings)
    clock = FakeClock(START)
    benefits = build_benefit_service(settings, cases, clock)
    recorded = record_offices(benefits, clock)
    path = tmp_path / "benefit_applications.db"
    rebuild(BenefitApplicationsProjection(), benefits, path)
    models = build_read_models(cases, tmp_path)

    def start(**overrides: Any) -> TestClient:
        return app_on(models, **({"benefit_applications_db": path} | overrides))

    yield start, recorded
    benefits.close()
    close_service(cases)


def test_the_list_shows_the_offices_applications_without_personal_data(
    office: Any, keys: Keys
) -> None:
    start, recorded = office
    client = start()
    answer = client.get(f"{BASE}/benefit-applications", headers=keys.of(GRENCHEN))

    assert answer.status_code == 200
    assert answer.headers[READ_MODEL_HEADER] == "benefit_applications"
    assert answer.headers[AS_OF_HEADER].startswith("2025-11-10T")
    body = answer.json()
    listed = {a["application_id"]: a for a in body["applications"]}
    assert set(listed) == {str(recorded.ids[x]) for x in "ABCDE"}
    a = listed[str(recorded.ids["A"])]
    assert (a["stage"], a["received_on"], a["days_since_receipt"]) == (
        "received", "2025-11-03", (NOW.date() - datetime(2025, 11, 3).date()).days)
    assert a["missing_documents"] == ["rent_contract"]
    assert a["open_document_requests"] == [{"documents": ["rent_contract"],
                                            "requested_on": "2025-11-03",
                                            "due_on": "2025-12-03", "open": ["rent_contract"]}]
    assert listed[str(recorded.ids["B"])]["decision"] == {
        "outcome": "granted", "decided_on": "2025-11-10", "granted_from": "2025-11-01",
        "last_month": None, "refusal_reason": None}
    assert listed[str(recorded.ids["E"])]["decision"]["refusal_reason"] == "income_sufficient"
    assert "Muster" not in answer.text and "applicant" not in answer.text
    assert context_of(client).access_log.select() == []


def test_the_list_filters_by_stage_and_kind(office: Any, keys: Keys) -> None:
    start, recorded = office
    client = start()
    forwarded = client.get(f"{BASE}/benefit-applications?stage=forwarded",
                           headers=keys.of(GRENCHEN)).json()["applications"]
    ipv = client.get(f"{BASE}/benefit-applications?kind=ipv",
                     headers=keys.of(GRENCHEN)).json()["applications"]
    wrong = client.get(f"{BASE}/benefit-applications?stage=lost", headers=keys.of(GRENCHEN))

    assert [a["application_id"] for a in forwarded] == [str(recorded.ids["C"])]
    assert ipv == []
    assert wrong.status_code == 422 and "stage" in wrong.text


def test_the_detail_opens_the_applicant_and_logs_the_read(office: Any, keys: Keys) -> None:
    start, recorded = office
    client = start()
    application_id = str(recorded.ids["A"])
    answer = client.get(f"{BASE}/benefit-applications/{application_id}",
                        headers=keys.of(GRENCHEN))

    assert answer.status_code == 200
    body = answer.json()
    assert body["applicant"]["family_name"] == "Muster" and not body["applicant"]["erased"]
    assert body["document_requests"][0]["due_on"] == "2025-12-03"
    assert "rent_contract" not in body["documents_present"]
    assert context_of(client).access_log.select() == [
        LoggedAccess(1, AccessEntry(at=NOW, consumer="branch_office-akso-grenchen",
                                    scope=GRENCHEN, case_id=application_id,
                                    person_id=str(recorded.person_ids["A"]),
                                    fields=APPLICANT_FIELDS, endpoint=DETAIL))
    ]


def test_another_offices_application_answers_as_an_unknown_one(office: Any, keys: Keys) -> None:
    start, recorded = office
    client = start()
    others = str(recorded.ids["L"])
    theirs = client.get(f"{BASE}/benefit-applications/{others}", headers=keys.of(GRENCHEN))
    unknown = client.get(f"{BASE}/benefit-applications/{uuid4()}", headers=keys.of(GRENCHEN))
    other_office = client.get(f"/v1/branch-offices/akso-lommiswil/benefit-applications/{others}",
                              headers=keys.of(GRENCHEN))
    unknown_office = client.get(f"/v1/branch-offices/akso-nowhere/benefit-applications/{others}",
                                headers=keys.of(GRENCHEN))

    assert theirs.status_code == unknown.status_code == 404
    assert _problem(theirs) == _problem(unknown)
    assert other_office.status_code == unknown_office.status_code == 404
    assert _problem(other_office) == _problem(unknown_office)
    assert context_of(client).access_log.select() == []
    own = client.get(f"/v1/branch-offices/akso-lommiswil/benefit-applications/{others}",
                     headers=keys.of("branch_office:akso-lommiswil"))
    assert own.status_code == 200


OUT_OF_SCOPE = ["region:so-olten", "region:so-oberer-leberberg", "canton", "auditor", "bus_reader",
                "branch_office:akso-lommiswil"]
"""Keys that are not Grenchen's office: each must be refused every route of it."""


@pytest.mark.parametrize("scope", OUT_OF_SCOPE)
def test_no_other_key_lists_or_reads_an_offices_applications(
    office: Any, keys: Keys, scope: str
) -> None:
    start, recorded = office
    client = start()
    routes = [f"{BASE}/benefit-applications", f"{BASE}/delegations",
              *(f"{BASE}/benefit-applications/{recorded.ids[x]}" for x in "AB")]
    unknown = client.get(f"{BASE}/benefit-applications/{uuid4()}", headers=keys.of(GRENCHEN))

    answers = [client.get(route, headers=keys.of(scope)) for route in routes]

    assert [a.status_code for a in answers] == [404] * len(routes)
    assert all(_problem(a) == _problem(unknown) for a in answers)
    assert not any("Muster" in a.text for a in answers)
    assert context_of(client).access_log.select() == []


def test_delegations_show_status_and_the_open_tasks_of_a_live_one(
    office: Any, keys: Keys
) -> None:
    start, recorded = office
    client = start(clock=lambda: datetime(2025, 11, 20, 8, 0, tzinfo=UTC))
    answer = client.get(f"{BASE}/delegations", headers=keys.of(GRENCHEN))
    elsewhere = client.get("/v1/branch-offices/akso-lommiswil/delegations",
                           headers=keys.of(GRENCHEN))

    assert answer.status_code == 200
    assert answer.headers[READ_MODEL_HEADER] == "benefit_applications"
    by_id = {d["delegation_id"]: d for d in answer.json()["delegations"]}
    active = by_id[str(recorded.active_delegation)]
    assert (active["task"], active["status"], active["valid_until"]) == (
        "document_request", "active", "2025-12-31")
    assert active["open_tasks"] == [{"application_id": str(recorded.ids["C"]),
                                     "task": "document_request",
                                     "missing_documents": ["tax_assessment"]}]
    assert by_id[str(recorded.revoked_delegation)]["status"] == "revoked"
    assert elsewhere.status_code == 404


def test_without_the_read_model_the_answer_is_503_naming_it(
    office: Any, keys: Keys, tmp_path: Path
) -> None:
    start, _ = office
    client = start(benefit_applications_db=tmp_path / "missing.db")
    answer = client.get(f"{BASE}/benefit-applications", headers=keys.of(GRENCHEN))
    assert answer.status_code == 503
    assert "benefit_applications" in answer.text


def _problem(answer: Any) -> dict[str, Any]:
    """The problem document without `instance` (the request's own path)."""
    body = dict(answer.json())
    body.pop("instance")
    return body


def test_through_the_container_an_application_recorded_after_the_last_read_is_listed(
    tmp_path: Path, master_key: str, app_on: AppOn, keys: Keys
) -> None:
    settings = store_settings(tmp_path, master_key)
    clock = FakeClock(START)
    container = Container(settings, clock=clock)
    try:
        recorded = record_offices(container.benefits, clock)
        models = build_read_models(container.service, tmp_path)
        client = app_on(models, benefit_applications_db=container.read_model(
            "benefit_applications"), refresh_benefit_applications=lambda: (
                container.refresh_read_model("benefit_applications")))
        before = client.get(f"{BASE}/benefit-applications", headers=keys.of(GRENCHEN))
        late = container.benefits.execute(bc.ReceiveApplication.model_validate({
            "actor": GRENCHEN_OFFICE, "correlation_id": uuid4(), "kind": "ipv",
            "municipality_bfs": 2546, "applicant": person_input(9),
            "received_on": clock().date()}))
        after = client.get(f"{BASE}/benefit-applications?kind=ipv", headers=keys.of(GRENCHEN))
        unchanged = container.refresh_read_model("benefit_applications")
    finally:
        container.close()

    assert len(before.json()["applications"]) == len(recorded.ids) - 1  # L is Lommiswil's
    assert [a["application_id"] for a in after.json()["applications"]] == [str(late.id)]
    assert unchanged is None  # up to date: no second rebuild

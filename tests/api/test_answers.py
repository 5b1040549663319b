"""`answer`: a route's model sent as FastAPI would send it, without validating it again; the
OpenAPI document still names each route's answer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from nervenbahn.api.answers import answer


class Line(BaseModel):
    amount: Decimal
    note: str | None = None


class Answer(BaseModel):
    case_id: UUID
    on: date
    at: datetime
    name: str = Field(serialization_alias="displayName")
    lines: list[Line]
    share: float | None


MODEL = Answer(
    case_id=UUID("12345678-1234-5678-1234-567812345678"), on=date(2026, 12, 7),
    at=datetime(2026, 12, 7, 8, 30, 0, 123456, tzinfo=UTC), name='Zürich "Ost"',
    lines=[Line(amount=Decimal("1234.50")), Line(amount=Decimal("-0.05"), note="√")],
    share=1 / 3,
)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/fastapi", response_model=Answer)
    def by_fastapi() -> Answer:
        return MODEL

    @app.get("/answer", response_model=Answer)
    def by_answer(response: Response) -> Response:
        response.status_code = 203
        response.headers["X-Read-Model"] = "region"
        response.headers.append("Vary", "X-One")
        response.headers.append("Vary", "X-Two")
        return answer(MODEL, response)

    return app


def test_the_body_is_fastapis_own() -> None:
    with TestClient(_app()) as client:
        theirs, ours = client.get("/fastapi"), client.get("/answer")

    assert ours.content == theirs.content
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    assert ours.json()["displayName"] == 'Zürich "Ost"'  # by alias, as FastAPI sends it


def test_the_status_and_headers_the_route_set_are_sent() -> None:
    with TestClient(_app()) as client:
        ours = client.get("/answer")

    assert ours.status_code == 203
    assert ours.headers["x-read-model"] == "region"
    assert ours.headers.get_list("vary") == ["X-One", "X-Two"]
    assert int(ours.headers["content-length"]) == len(ours.content)


# Every route that sends its model through `answer`, and the model it documents.
ANSWERS = {
    "/v1/branch-offices/{office_id}/cases": "OfficeCaseList",
    "/v1/branch-offices/{office_id}/cases/{case_id}": "OfficeCaseDetail",
    "/v1/branch-offices/{office_id}/benefit-applications": "BenefitApplicationList",
    "/v1/branch-offices/{office_id}/benefit-applications/{application_id}":
        "BenefitApplicationDetail",
    "/v1/branch-offices/{office_id}/delegations": "DelegationList",
    "/v1/regions/{region_id}/caseload": "Caseload",
    "/v1/regions/{region_id}/worklist": "WorkList",
    "/v1/regions/{region_id}/cases/{case_id}/claims": "CaseClaims",
    "/v1/canton/quarters/{quarter}": "CantonQuarter",
    "/v1/canton/benefits/backlog": "CantonBacklog",
    "/v1/canton/benefits/advances": "CantonAdvances",
    "/v1/access-log": "AccessLogPage",
    "/v1/audit/cases/{case_id}": "CaseAsOf",
    "/v1/audit/cases/{case_id}/months/{month}": "MonthAsKnown",
    "/v1/audit/cases/{case_id}/months/{month}/diff": "MonthDiff",
    "/problems/{slug}": "ProblemType",
}


def test_the_openapi_document_still_names_every_routes_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path, model in ANSWERS.items():
        documented = paths[path]["get"]["responses"]["200"]["content"]["application/json"]
        assert documented["schema"]["$ref"] == f"#/components/schemas/{model}", path

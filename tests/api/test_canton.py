"""The canton's quarterly figures: aggregates only, per social region and for the canton."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from nervenbahn.api.routes import canton
from nervenbahn.container import build_service, close_service
from projections.framework import open_projection_store
from projections.reporting import ReportingProjection, stored_figures
from projections.reporting_facts import CaseFact
from tests.api.conftest import REPORTING_KEY, AppOn, Keys, ReadModels, build_read_models
from tests.bus.pipeline import store_settings
from tests.projections import reporting_fixture as seven_cases


@pytest.fixture
def canton_api(tmp_path: Path, master_key: str, app_on: AppOn) -> TestClient:
    """The API on the seven cases of the reporting tests, whose 2026Q1 figures are known."""
    service = build_service(store_settings(tmp_path, master_key))
    service.import_records(seven_cases.lines())
    client = app_on(build_read_models(service, tmp_path))
    close_service(service)
    return client


def test_the_canton_gets_the_quarters_figures_per_region_and_in_total(
    canton_api: TestClient, keys: Keys
) -> None:
    answer = canton_api.get("/v1/canton/quarters/2026Q1", headers=keys.of("canton"))

    body = answer.json()
    regions = {figures.pop("region"): figures for figures in body["regions"]}
    canton = body["canton"]
    assert answer.status_code == 200
    assert body["quarter"] == "2026Q1" and canton.pop("region") == "canton"
    assert len(regions) == 13
    for region, expected in seven_cases.EXPECTED_2026Q1.items():
        assert {k: regions[region][k] for k in expected} == expected
    assert {k: canton[k] for k in seven_cases.EXPECTED_CANTON_2026Q1} == (
        seven_cases.EXPECTED_CANTON_2026Q1)
    assert canton["goal_agreement_share"] == pytest.approx(3 / 5)


def test_the_canton_figures_hold_no_case_and_no_personal_data(
    canton_api: TestClient, keys: Keys
) -> None:
    text = canton_api.get("/v1/canton/quarters/2026-Q1", headers=keys.of("canton")).text

    assert seven_cases.APPLICANT_NAME[1] not in text
    assert all(str(case_id) not in text for case_id in seven_cases.CASES.values())
    assert "case_id" not in text


@pytest.mark.parametrize("scope", ["region:so-olten", "branch_office:akso-olten", "auditor"])
def test_only_the_canton_reads_the_quarterly_figures(
    client: TestClient, keys: Keys, seeded: ReadModels, scope: str
) -> None:
    assert client.get("/v1/canton/quarters/2026Q1", headers=keys.of(scope)).status_code == 404


def test_the_figures_are_read_again_only_when_the_aggregates_changed(
    canton_api: TestClient, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer is kept under the aggregates' version it was read at: asked again, it is
    given without reading the aggregates; a fact that changes them draws a new version, and
    the next answer holds it."""
    reads: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(str(args[1]))
        return stored_figures(*args, **kwargs)

    monkeypatch.setattr(canton, "stored_figures", counted)

    def new_cases() -> int:
        body = canton_api.get("/v1/canton/quarters/2026Q1", headers=keys.of("canton")).json()
        return int(body["canton"]["new_cases"])

    before = new_cases()
    assert (new_cases(), reads) == (before, ["2026Q1"])  # the second from what was kept
    projection = ReportingProjection(REPORTING_KEY)
    store = open_projection_store(projection, tmp_path / "reporting.db")
    try:
        with store.transaction() as tx:
            projection.apply_fact(CaseFact(
                fact_id=uuid4(), case_pseudonym="a-new-case", sequence=1,
                social_region="so-olten", fact="opened", effective_date=date(2026, 1, 5),
                recorded_at=datetime(2026, 1, 5, tzinfo=UTC)), tx)
    finally:
        store.close()

    assert new_cases() == before + 1
    assert new_cases() == before + 1
    assert reads == ["2026Q1", "2026Q1"]

"""The canton's quarterly figures: aggregates only, per social region and for the canton."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nervenbahn.container import build_service, close_service
from tests.api.conftest import AppOn, Keys, ReadModels, build_read_models
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

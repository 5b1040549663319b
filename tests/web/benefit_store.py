"""A web app whose benefits store holds the branch offices' fixture applications and
delegations (tests/projections/benefit_office_fixture.py), for the fund's and the canton's
pages: the benefits service, its read model (brought up to date before each read, as
`serve` does), and the app's access log and vault on the same store.

Beyond the fixture's: Grenchen's office asked for C's tax assessment under the active
delegation on 10.11.2025 (an action done under a delegation). Then the service's clock moves
on to the app's (`NOW`, 1.10.2026), where the fixture's delegations have run out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from domain import benefit_commands as bc
from domain.application.benefits import BenefitService
from nervenbahn.api.context import ApiContext
from nervenbahn.container import build_benefit_service, build_service, close_service
from projections.benefit_applications import BenefitApplicationsProjection
from projections.framework import rebuild
from tests.api.conftest import NOW, build_read_models
from tests.bus.pipeline import store_settings
from tests.domain.fakes import FakeClock
from tests.projections.benefit_office_fixture import (
    GRENCHEN_OFFICE,
    START,
    Recorded,
    record_offices,
)
from tests.web.conftest import WebOn

__all__ = ["BenefitWeb", "benefit_web", "without_path"]


@dataclass(frozen=True)
class BenefitWeb:
    """The app (not signed in), the benefits service behind it and what the fixture
    recorded."""

    client: TestClient
    benefits: BenefitService
    recorded: Recorded

    @property
    def context(self) -> ApiContext:
        """The app's context (its access log)."""
        context = self.client.app.state.context  # type: ignore[attr-defined]
        assert isinstance(context, ApiContext)
        return context


@pytest.fixture
def benefit_web(tmp_path: Path, master_key: str, web_on: WebOn) -> Iterator[BenefitWeb]:
    """The fixture's applications in a store of their own, served with its read model."""
    settings = store_settings(tmp_path, master_key)
    cases = build_service(settings)
    clock = FakeClock(START)
    benefits = build_benefit_service(settings, cases, clock)
    recorded = record_offices(benefits, clock)
    benefits.execute(bc.RequestDocuments(
        actor=GRENCHEN_OFFICE, correlation_id=uuid4(), application_id=recorded.ids["C"],
        documents=["tax_assessment"], due_on=date(2025, 12, 10),
        delegation_id=recorded.active_delegation))
    clock.advance(seconds=(NOW - clock()).total_seconds())
    path = tmp_path / "benefit_applications.db"

    def refresh() -> None:
        rebuild(BenefitApplicationsProjection(), benefits, path)

    refresh()
    client = web_on(build_read_models(cases, tmp_path), benefits=lambda: benefits,
                    benefit_applications_db=path, refresh_benefit_applications=refresh)
    yield BenefitWeb(client, benefits, recorded)
    benefits.close()
    close_service(cases)


def without_path(page: str) -> str:
    """A page without the address it was asked at (the language form's way back), to compare
    the 404 pages of two addresses."""
    return re.sub(r'name="back" value="[^"]*"', "", page)

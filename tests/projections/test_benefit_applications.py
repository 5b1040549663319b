"""The branch offices' read model of benefit applications, rebuilt from a real SQLite
benefits store (`benefits_events`) filled through `BenefitService` commands."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from domain.application.benefits import BenefitService
from domain.application.cases import CaseService
from nervenbahn.config import StoreConfig
from nervenbahn.container import build_benefit_service, build_service, close_service
from projections.benefit_applications import (
    BenefitApplicationsProjection,
    days_since_receipt,
    office_application,
    office_applications,
    office_delegations,
)
from projections.framework import rebuild
from projections.storage import PostgresReadModels, ReadModelTarget, read_model_connection
from tests.bus.pipeline import store_settings
from tests.domain.fakes import FakeClock
from tests.projections.benefit_office_fixture import START, Recorded, record_offices


@pytest.fixture
def store(
    tmp_path: Path, master_key: str
) -> Iterator[tuple[CaseService, BenefitService, Recorded]]:
    """The fixture's applications in a SQLite store of the test's own."""
    cases = build_service(store_settings(tmp_path, master_key))
    clock = FakeClock(START)
    benefits = build_benefit_service(store_settings(tmp_path, master_key), cases, clock)
    recorded = record_offices(benefits, clock)
    yield cases, benefits, recorded
    benefits.close()
    close_service(cases)


def _rebuilt(benefits: BenefitService, tmp_path: Path) -> tuple[int, Path]:
    path = tmp_path / "benefit_applications.db"
    return rebuild(BenefitApplicationsProjection(), benefits, path), path


def test_rebuild_from_the_benefits_store_gives_each_application_as_recorded(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path
) -> None:
    _, benefits, recorded = store
    events, path = _rebuilt(benefits, tmp_path)
    ids = {str(application_id): letter for letter, application_id in recorded.ids.items()}

    assert events == benefits.max_position() > 0
    with sqlite3.connect(path) as db:
        rows = {ids[a.application_id]: a for a in office_applications(db, "akso-grenchen")}
        other = office_applications(db, "akso-lommiswil")
    assert sorted(rows) == ["A", "B", "C", "D", "E"]
    assert [ids[a.application_id] for a in other] == ["L"]
    assert {letter: row.stage for letter, row in rows.items()} == {
        "A": "received", "B": "granted", "C": "forwarded", "D": "withdrawn", "E": "refused"}
    a, b, c, e = rows["A"], rows["B"], rows["C"], rows["E"]
    assert (a.received_on, a.checked, a.missing) == (date(2025, 11, 3), True, ["rent_contract"])
    assert [(r.documents, r.due_on, r.open) for r in a.open_requests] == [
        (["rent_contract"], date(2025, 12, 3), ["rent_contract"])]
    assert (b.forwarded_on, b.granted_from, b.decided_on) == (
        date(2025, 11, 3), date(2025, 11, 1), date(2025, 11, 10))
    assert (c.forwarded_on, c.missing, c.granted_from) == (
        date(2025, 11, 10), ["tax_assessment"], None)
    assert (e.refusal_reason, e.decided_on) == ("income_sufficient", date(2025, 11, 10))
    assert days_since_receipt(a, date(2025, 12, 3)) == 30


def test_the_read_model_keeps_the_applicant_sealed_and_erasure_makes_it_unreadable(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path
) -> None:
    cases, benefits, recorded = store
    _, path = _rebuilt(benefits, tmp_path)
    with sqlite3.connect(path) as db:
        a = office_application(db, "akso-grenchen", str(recorded.ids["A"]))
        raw = db.execute("SELECT applicant_sealed FROM benefit_applications").fetchall()
    assert a is not None and a.applicant_person_id == str(recorded.person_ids["A"])
    assert not any("Muster" in row[0] for row in raw)  # no name in clear in the file
    assert cases.vault.decrypt(a.applicant_sealed).to_plain()["family_name"] == "Muster"

    cases.vault.erase(recorded.person_ids["A"])

    opened = cases.vault.decrypt(a.applicant_sealed)
    assert opened.is_erased
    assert opened.to_plain()["family_name"] == "[erased]"


def test_another_offices_application_is_not_found_from_this_office(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path
) -> None:
    _, benefits, recorded = store
    _, path = _rebuilt(benefits, tmp_path)
    with sqlite3.connect(path) as db:
        assert office_application(db, "akso-grenchen", str(recorded.ids["L"])) is None
        assert office_application(db, "akso-lommiswil", str(recorded.ids["L"])) is not None
        assert office_application(db, None, str(recorded.ids["L"])) is not None


def test_delegations_show_their_status_and_the_tasks_a_live_one_leaves_open(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path
) -> None:
    _, benefits, recorded = store
    _, path = _rebuilt(benefits, tmp_path)
    with sqlite3.connect(path) as db:
        on_day = {d.delegation_id: d for d in office_delegations(db, "akso-grenchen",
                                                                  date(2025, 11, 20))}
        later = office_delegations(db, "akso-grenchen", date(2026, 1, 5))
        none = office_delegations(db, "akso-lommiswil", date(2025, 11, 20))

    active = on_day[str(recorded.active_delegation)]
    revoked = on_day[str(recorded.revoked_delegation)]
    assert (active.task, active.status, active.valid_until) == (
        "document_request", "active", date(2025, 12, 31))
    assert [(t.application_id, t.missing) for t in active.open_tasks] == [
        (str(recorded.ids["C"]), ["tax_assessment"])]
    assert (revoked.status, revoked.revoked_on, revoked.open_tasks) == (
        "revoked", date(2025, 11, 10), [])
    assert sorted(d.status for d in later) == ["expired", "revoked"]
    assert all(d.open_tasks == [] for d in later)
    assert none == []


def test_an_event_met_again_changes_nothing(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path
) -> None:
    _, benefits, _ = store
    _, path = _rebuilt(benefits, tmp_path)
    projection = BenefitApplicationsProjection()
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT * FROM benefit_applications ORDER BY 1").fetchall()
        for notification in benefits.notifications(gt=0, limit=1000):
            projection.apply(benefits.decode(notification), db)
        after = db.execute("SELECT * FROM benefit_applications ORDER BY 1").fetchall()
    assert after == before


@pytest.mark.postgres
def test_a_rebuild_into_postgresql_gives_the_same_rows_and_answers(
    store: tuple[CaseService, BenefitService, Recorded], tmp_path: Path, postgres_dsn: str
) -> None:
    _, benefits, recorded = store
    _, path = _rebuilt(benefits, tmp_path)
    config = StoreConfig.parse(postgres_dsn)
    schema = PostgresReadModels(config.conninfo(), config.schema_name)
    rebuild(BenefitApplicationsProjection(), benefits, schema)

    def rows(target: ReadModelTarget) -> dict[str, list[tuple[Any, ...]]]:
        with read_model_connection(target) as db:
            tables = {table: sorted(tuple(row) for row in db.execute(
                f"SELECT * FROM {table}").fetchall())
                for table in BenefitApplicationsProjection.tables}
            tables["delegations"] = [
                (d.delegation_id, d.status, tuple(t.application_id for t in d.open_tasks))
                for d in office_delegations(db, "akso-grenchen", date(2025, 11, 20))]
        return tables

    postgres, sqlite = rows(schema), rows(path)
    assert postgres == sqlite
    assert len(postgres["benefit_applications"]) == len(recorded.ids)

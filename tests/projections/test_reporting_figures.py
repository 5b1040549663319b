"""Quarterly figures per social region, checked against a small canton worked out by hand
(tests/projections/reporting_fixture.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from domain.reference import load_reference_data
from nervenbahn.config import Settings
from nervenbahn.container import build_service, close_service
from projections.framework import open_projection_store, rebuild
from projections.reporting import (
    Quarter,
    RegionQuarter,
    ReportingKeyMissingError,
    ReportingProjection,
    canton_figures,
    quarterly_figures,
)
from projections.reporting_facts import CaseFact
from tests.bus.pipeline import store_settings
from tests.projections import reporting_fixture as fixture

REGIONS = list(load_reference_data().regions)


@pytest.fixture
def settings(tmp_path: Path, master_key: str) -> Settings:
    return store_settings(tmp_path, master_key)


@pytest.fixture
def reporting_db(tmp_path: Path, settings: Settings) -> Iterator[sqlite3.Connection]:
    """The reporting read model of the hand-worked canton, rebuilt from the store."""
    service = build_service(settings)
    try:
        service.import_records(fixture.lines())
        rebuild(ReportingProjection.from_settings(settings), service, tmp_path / "reporting.db")
    finally:
        close_service(service)
    db = sqlite3.connect(tmp_path / "reporting.db")
    yield db
    db.close()


def figures(row: RegionQuarter) -> dict[str, Any]:
    """The figures of a row, without region and quarter."""
    values = dataclasses.asdict(row)
    del values["region"], values["quarter"]
    return values


def test_2026q1_per_region_matches_the_figures_worked_out_by_hand(
    reporting_db: sqlite3.Connection,
) -> None:
    rows = quarterly_figures(reporting_db, "2026Q1")

    assert [row.region for row in rows] == REGIONS
    assert len(rows) == 13
    by_region = {row.region: figures(row) for row in rows}
    assert by_region.pop("so-olten") == fixture.EXPECTED_2026Q1["so-olten"]
    assert by_region.pop("so-solothurn") == fixture.EXPECTED_2026Q1["so-solothurn"]
    assert by_region == {region: fixture.EMPTY_REGION for region in by_region}
    assert {row.quarter for row in rows} == {"2026Q1"}


def test_2026q1_for_the_canton_matches_the_figures_worked_out_by_hand(
    reporting_db: sqlite3.Connection,
) -> None:
    canton = canton_figures(reporting_db, Quarter(2026, 1))

    assert (canton.region, canton.quarter) == ("canton", "2026Q1")
    assert figures(canton) == fixture.EXPECTED_CANTON_2026Q1
    assert canton.goal_agreement_share == pytest.approx(3 / 5)


def test_2025q4_matches_the_figures_worked_out_by_hand(reporting_db: sqlite3.Connection) -> None:
    # Q4 2025 (1 October to 31 December):
    # Olten      new: D 10-01, A 11-10 = 2; decisions: D 10-01 → 10-20 = 19, A 11-10 → 12-01 = 21
    #            (median 20); supported: D (goal 11-03), A (from 12-01, goal 12-15) = 2, both
    #            with a goal; nothing closed, no measures.
    # Solothurn  new: E 12-01 = 1; no decision (E decided 2026-01-08); supported: F (goal
    #            2025-07-01) = 1 with a goal.
    rows = {row.region: row for row in quarterly_figures(reporting_db, "2025Q4")}
    olten, solothurn = rows["so-olten"], rows["so-solothurn"]

    assert (olten.new_cases, olten.decisions, olten.median_days_to_decision) == (2, 2, 20.0)
    assert (olten.supported_cases, olten.with_goal_agreement, olten.closed_cases) == (2, 2, 0)
    assert (solothurn.new_cases, solothurn.decisions, solothurn.median_days_to_decision) == (
        1, 0, None)
    assert (solothurn.supported_cases, solothurn.with_goal_agreement) == (1, 1)
    assert olten.median_duration_days is None and olten.goal_agreement_share == 1.0


def test_a_region_without_supported_cases_has_no_goal_agreement_share(
    reporting_db: sqlite3.Connection,
) -> None:
    (dorneck,) = quarterly_figures(reporting_db, "2026Q1", regions=["so-dorneck"])

    assert dorneck.supported_cases == 0
    assert dorneck.goal_agreement_share is None


def test_the_read_model_holds_one_pseudonymised_fact_per_event(
    reporting_db: sqlite3.Connection, settings: Settings
) -> None:
    rows = reporting_db.execute("SELECT DISTINCT case_pseudonym FROM reporting_facts").fetchall()
    count = reporting_db.execute("SELECT count(*) FROM reporting_facts").fetchone()[0]
    projection = ReportingProjection.from_settings(settings)
    key = projection._pseudonyms
    assert key is not None

    assert count == fixture.EVENTS
    assert sorted(row[0] for row in rows) == sorted(key.case(c) for c in fixture.CASES.values())
    dump = "\n".join(str(row) for row in reporting_db.execute("SELECT * FROM reporting_facts"))
    assert not any(str(case_id) in dump for case_id in fixture.CASES.values())
    assert fixture.APPLICANT_NAME[1] not in dump


def test_rebuilding_needs_the_reporting_key(tmp_path: Path, settings: Settings) -> None:
    service = build_service(settings)
    try:
        service.import_records(fixture.lines()[:1])
        with pytest.raises(ReportingKeyMissingError, match="NERVENBAHN_REPORTING_KEY"):
            rebuild(ReportingProjection(), service, tmp_path / "reporting.db")
    finally:
        close_service(service)
    assert not (tmp_path / "reporting.db").exists()


def test_a_fact_before_its_case_was_opened_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    service = build_service(settings)
    try:
        service.import_records(fixture.lines()[:2])
        opened, assessed = service.events.get(fixture.CASES["A"])
    finally:
        close_service(service)
    projection = ReportingProjection(bytes(32))
    store = open_projection_store(projection, tmp_path / "reporting.db")

    with (
        pytest.raises(LookupError, match="a fact before its opening"),
        store.transaction() as tx,
    ):
        projection.apply(assessed, tx)
    with store.transaction() as tx:
        projection.apply(opened, tx)
        projection.apply(assessed, tx)
    rows = store.db.execute("SELECT fact, social_region FROM reporting_facts ORDER BY sequence")
    assert rows.fetchall() == [("opened", "so-olten"), ("assessed", "so-olten")]
    store.close()


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2024Q1", date(2024, 1, 1), date(2024, 3, 31)),
        ("2026-q2", date(2026, 4, 1), date(2026, 6, 30)),
        ("2026Q3", date(2026, 7, 1), date(2026, 9, 30)),
        (" 2026Q4 ", date(2026, 10, 1), date(2026, 12, 31)),
    ],
)
def test_a_quarter_is_written_like_2026q1(text: str, start: date, end: date) -> None:
    quarter = Quarter.parse(text)

    assert (quarter.start, quarter.end) == (start, end)
    assert str(quarter) == f"{start.year}Q{(start.month + 2) // 3}"
    assert quarter.contains(start) and quarter.contains(end)


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "Q1 2026", "26Q1", "2026", ""])
def test_what_is_not_a_quarter_is_refused_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="write it like 2026Q1"):
        Quarter.parse(text)


def test_a_fact_met_again_under_a_keyed_id_replaces_its_old_row(
    reporting_db: sqlite3.Connection,
) -> None:
    # After an upgrade the topic is filled again: the same case fact (pseudonym, sequence)
    # arrives with its keyed id and recorded day instead of the public id it was stored with.
    before = figures(canton_figures(reporting_db, "2026Q1"))
    pseudonym, sequence, region, code, day, old_id = reporting_db.execute(
        "SELECT case_pseudonym, sequence, social_region, fact, effective_date, fact_id "
        "FROM reporting_facts ORDER BY case_pseudonym, sequence LIMIT 1").fetchone()
    again = CaseFact(fact_id=uuid.uuid4(), case_pseudonym=pseudonym, sequence=sequence,
                     social_region=region, fact=code, effective_date=date.fromisoformat(day),
                     recorded_at=datetime(2026, 1, 4, 23, tzinfo=UTC))

    ReportingProjection().apply_fact(again, reporting_db)

    rows = reporting_db.execute(
        "SELECT fact_id, recorded_at, fact FROM reporting_facts WHERE case_pseudonym = ? "
        "AND sequence = ?", (pseudonym, sequence)).fetchall()
    assert rows == [(str(again.fact_id), "2026-01-04T23:00:00+00:00", code)]
    assert str(again.fact_id) != old_id
    assert figures(canton_figures(reporting_db, "2026Q1")) == before

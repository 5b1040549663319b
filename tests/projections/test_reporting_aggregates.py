"""The quarterly figures read from the aggregates the reporting read model keeps equal the
figures computed per request from every fact, on the same history: the hand-worked canton,
a synthetic canton, and random case histories with backdated facts, handovers, reopenings,
re-grants, facts met again and quarters far from any fact."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from domain.reference import load_reference_data
from nervenbahn.config import Settings, StoreConfig
from nervenbahn.container import build_service, close_service
from nervenbahn.synthetic import synthetic_history
from projections.framework import open_projection_store, rebuild
from projections.reporting import (
    Quarter,
    ReportingProjection,
    aggregates_version,
    canton_figures,
    quarterly_figures,
    stored_figures,
)
from projections.reporting_facts import CaseFact
from projections.storage import PostgresReadModels, read_model_connection
from tests.bus.pipeline import store_settings
from tests.bus.waiting import wait_until
from tests.projections import reporting_fixture as fixture

REGIONS = ["so-olten", "so-solothurn", "so-grenchen"]
FACTS = (
    "opened",
    "assessed",
    "granted",
    "refused",
    "goal_agreed",
    "measure_started",
    "measure_completed",
    "handed_over",
    "closed",
    "reopened",
    "budget_changed",
)


def assert_same_figures(db: sqlite3.Connection, quarters: list[Quarter]) -> None:
    """Every quarter's figures, per region and for the canton, equal both ways."""
    for quarter in quarters:
        stored = stored_figures(db, quarter)
        assert stored is not None, "the read model keeps its aggregates"
        regions, canton = stored
        assert regions == quarterly_figures(db, quarter), str(quarter)
        assert canton == canton_figures(db, quarter), str(quarter)


def quarters_between(first: date, last: date) -> list[Quarter]:
    found, day = [], first
    while day <= last:
        found.append(Quarter(day.year, (day.month - 1) // 3 + 1))
        day += timedelta(days=80)
    return sorted(set(found))


@pytest.fixture
def settings(tmp_path: Path, master_key: str) -> Settings:
    return store_settings(tmp_path, master_key)


def rebuilt(settings: Settings, path: Path, records: Iterator[str]) -> sqlite3.Connection:
    service = build_service(settings)
    try:
        service.import_records(records)
        rebuild(ReportingProjection.from_settings(settings), service, path)
    finally:
        close_service(service)
    return sqlite3.connect(path)


def test_aggregates_of_the_hand_worked_canton_equal_the_facts_computation(
    tmp_path: Path, settings: Settings
) -> None:
    db = rebuilt(settings, tmp_path / "reporting.db", iter(fixture.lines()))
    try:
        assert_same_figures(db, quarters_between(date(2025, 1, 1), date(2027, 12, 31)))
        assert stored_figures(db, "2026Q1") is not None
        regions, _ = stored_figures(db, "2026Q1")  # type: ignore[misc]
        assert {row.region: row for row in regions}["so-olten"].new_cases == (
            fixture.EXPECTED_2026Q1["so-olten"]["new_cases"]
        )
    finally:
        db.close()


def test_aggregates_of_a_synthetic_canton_equal_the_facts_computation(
    tmp_path: Path, settings: Settings
) -> None:
    import json

    records = synthetic_history(load_reference_data(), 150, seed=3)
    db = rebuilt(settings, tmp_path / "reporting.db", (json.dumps(r) for r in records))
    try:
        first, last = db.execute(
            "SELECT min(effective_date), max(effective_date) FROM reporting_facts"
        ).fetchone()
        assert_same_figures(
            db,
            quarters_between(
                date.fromisoformat(first) - timedelta(days=100),
                date.fromisoformat(last) + timedelta(days=400),
            ),
        )
    finally:
        db.close()


def random_case(rng: random.Random, pseudonym: str) -> list[CaseFact]:
    """A case's facts in sequence order, their days drawn around 2025, often backdated."""
    day, region, facts = date(2025, 1, 1) + timedelta(days=rng.randint(0, 700)), "so-olten", []
    for sequence in range(1, rng.randint(2, 14)):
        code = "opened" if sequence == 1 else rng.choice(FACTS)
        day += timedelta(days=rng.randint(-120, 150))  # backdated now and then
        to_region = rng.choice(REGIONS) if code == "handed_over" else None
        facts.append(
            CaseFact(
                fact_id=uuid.uuid4(),
                case_pseudonym=pseudonym,
                sequence=sequence,
                social_region=rng.choice(REGIONS) if code == "opened" else region,
                fact=code,  # type: ignore[arg-type]
                effective_date=day,
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
                to_region=to_region,
                closure_reason=rng.choice(("employment", "moved_away", None))
                if code == "closed"
                else None,
            )
        )
        region = to_region or facts[-1].social_region
    return facts


def test_aggregates_of_random_histories_equal_the_facts_computation_after_every_fact(
    tmp_path: Path,
) -> None:
    # Two instances take turns (as consumers after a restart or a rebalance): each keeps the
    # walks of the cases it met, which the other's facts make stale.
    projections = [ReportingProjection(bytes(32)), ReportingProjection(bytes(32))]
    store = open_projection_store(projections[0], tmp_path / "reporting.db")
    rng = random.Random(17)
    cases = [random_case(rng, f"case-{n}") for n in range(60)]
    checked = [*quarters_between(date(2024, 1, 1), date(2028, 12, 31)), Quarter(2999, 4)]
    try:
        step = 0
        while any(cases):
            case = rng.choice([facts for facts in cases if facts])
            fact = case.pop(0)
            with store.transaction() as tx:
                rng.choice(projections).apply_fact(fact, tx)
            if rng.random() < 0.2:  # the same fact met again (a batch published twice)
                with store.transaction() as tx:
                    rng.choice(projections).apply_fact(fact, tx)
            step += 1
            if step % 40 == 0:
                assert_same_figures(store.db, checked)  # type: ignore[attr-defined]
        assert_same_figures(store.db, checked)  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_read_model_migrated_with_facts_in_it_is_read_per_request(tmp_path: Path) -> None:
    path = tmp_path / "reporting.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE reporting_facts (fact_id TEXT PRIMARY KEY, case_pseudonym TEXT NOT NULL, "
        "sequence INTEGER NOT NULL, social_region TEXT NOT NULL, fact TEXT NOT NULL, "
        "effective_date TEXT NOT NULL, recorded_at TEXT NOT NULL, imported INTEGER NOT NULL, "
        "support_from TEXT, employability TEXT, refusal_reasons TEXT NOT NULL, "
        "goal_category TEXT, item_ref TEXT, measure_kind TEXT, break_off_reason TEXT, "
        "budget_reason TEXT, review_outcome TEXT, to_region TEXT, closure_reason TEXT, "
        "reopening_reason TEXT, UNIQUE (case_pseudonym, sequence))"
    )
    db.execute(
        "INSERT INTO reporting_facts VALUES ('f', 'c', 1, 'so-olten', 'opened', "
        "'2026-01-05', '2026-01-05', 0, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL)"
    )
    db.commit()
    assert stored_figures(db, "2026Q1") is None  # an older release's read model
    db.close()
    store = open_projection_store(ReportingProjection(bytes(32)), path)  # migrates it
    try:
        assert stored_figures(store.db, "2026Q1") is None  # type: ignore[attr-defined]
        assert canton_figures(store.db, "2026Q1").new_cases == 1  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_read_model_marked_kept_more_than_once_is_migrated_to_one_mark(tmp_path: Path) -> None:
    # Three instances sharing a read model, before migration 3, each marked the aggregates as
    # kept when they applied their first facts at once: the served read model held three rows
    # of state where a rebuild holds one.
    path = tmp_path / "reporting.db"
    store = open_projection_store(ReportingProjection(bytes(32)), path)
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE reporting_aggregates_state")
    db.execute("CREATE TABLE reporting_aggregates_state (maintained INTEGER NOT NULL)")
    db.executemany("INSERT INTO reporting_aggregates_state VALUES (?)", [(1,), (1,), (1,)])
    db.execute("UPDATE schema_versions SET version = 2 "
               "WHERE component = 'read_model_reporting'")
    db.commit()
    db.close()
    store = open_projection_store(ReportingProjection(bytes(32)), path)  # migration 3
    try:
        rows = store.db.execute(  # type: ignore[attr-defined]
            "SELECT maintained FROM reporting_aggregates_state").fetchall()
        assert rows == [(1,)]
        assert stored_figures(store.db, "2026Q1") is not None  # type: ignore[attr-defined]
    finally:
        store.close()


def test_the_aggregates_version_is_drawn_anew_by_each_change_only(tmp_path: Path) -> None:
    """A fact that changes the aggregates draws a new version; the same fact met again does
    not; a read model migrated from before the version gets one."""
    path = tmp_path / "reporting.db"
    projection = ReportingProjection(bytes(32))
    store = open_projection_store(projection, path)
    try:
        first = aggregates_version(store.db)  # type: ignore[attr-defined]
        fact = _opened("case-a")
        with store.transaction() as tx:
            projection.apply_fact(fact, tx)
        changed = aggregates_version(store.db)  # type: ignore[attr-defined]
        with store.transaction() as tx:
            projection.apply_fact(fact, tx)  # met again: nothing changes
        assert aggregates_version(store.db) == changed != first  # type: ignore[attr-defined]
        store.db.executescript(  # type: ignore[attr-defined]
            "DROP TABLE reporting_aggregates_version; UPDATE schema_versions SET version = 3 "
            "WHERE component = 'read_model_reporting';")
        assert aggregates_version(store.db) is None  # type: ignore[attr-defined]
    finally:
        store.close()
    store = open_projection_store(projection, path)  # migration 4
    try:
        assert aggregates_version(store.db) is not None  # type: ignore[attr-defined]
    finally:
        store.close()


def _opened(case: str) -> CaseFact:
    return CaseFact(fact_id=uuid.uuid4(), case_pseudonym=case, sequence=1,
                    social_region="so-olten", fact="opened", effective_date=date(2026, 1, 5),
                    recorded_at=datetime(2026, 1, 5, tzinfo=UTC))


def _waits_for_a_row(shared: PostgresReadModels) -> bool:
    with read_model_connection(shared) as db:
        return db.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO reporting_%'").fetchone() is not None


@pytest.mark.postgres
def test_instances_applying_their_first_facts_at_once_mark_the_aggregates_kept_once(
    postgres_dsn: str,
) -> None:
    config = StoreConfig.parse(postgres_dsn)
    shared = PostgresReadModels(config.conninfo(), config.schema_name)
    first, second = (open_projection_store(ReportingProjection(bytes(32)), shared)
                     for _ in range(2))
    applied = threading.Event()
    try:
        with first.transaction() as tx:  # as a rebuild in PostgreSQL leaves it
            tx.execute("DELETE FROM reporting_aggregates_state")
        with first.transaction() as tx:  # not committed while the other instance applies
            ReportingProjection(bytes(32)).apply_fact(_opened("case-1"), tx)

            def other_instance() -> None:
                with second.transaction() as other:
                    ReportingProjection(bytes(32)).apply_fact(_opened("case-2"), other)
                applied.set()

            thread = threading.Thread(target=other_instance, daemon=True)
            thread.start()
            # The other instance waits for this transaction's mark (the key); with the old
            # unkeyed table it inserted a mark of its own and waits for the figures' row.
            wait_until(lambda: applied.is_set() or _waits_for_a_row(shared),
                       what="the other instance waiting for this one's rows, or done")
        thread.join(30)
        assert applied.is_set(), "the other instance never applied its fact"
        with read_model_connection(shared) as db:
            marks = db.execute("SELECT maintained FROM reporting_aggregates_state").fetchall()
            figures = stored_figures(db, "2026Q1")
        assert [tuple(row) for row in marks] == [(1,)]
        assert figures is not None and figures[1].new_cases == 2
    finally:
        first.close()
        second.close()

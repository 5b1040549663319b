"""The social region's read model: rebuilt or fed by the bus, the same; handovers move cases;
work lists flag what is due and overdue."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from uuid import UUID

from bus.kafka_settings import KafkaSettings
from domain.application.cases import CaseService
from domain.case import SWISS_TIME, BenefitOnRecord
from domain.reference import load_reference_data
from nervenbahn.container import build_service
from nervenbahn.synthetic import synthetic_history
from projections.framework import open_projection_store, rebuild
from projections.region import (
    ASSESSMENT_WITHIN_DAYS,
    RegionProjection,
    _work_items,
    caseload,
    work_list,
)
from tests.bus.pipeline import command, pipeline, store_settings
from tests.bus.waiting import wait_until

OLTEN, SOLOTHURN = 2581, 2601


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the projection's own tables, sorted."""
    with sqlite3.connect(path) as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("region_cases", "region_goals")
        }


def seed(service: CaseService, households: int = 120) -> int:
    lines = [json.dumps(r) for r in synthetic_history(load_reference_data(), households, 7)]
    return service.import_records(lines).events


def test_rebuild_and_the_bus_give_identical_tables(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    projection = RegionProjection()
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        events = seed(line.service)
        with line.container.relay("case-events") as relay:
            relay.run(threading.Event(), until_caught_up=True)
        fed = open_projection_store(projection, tmp_path / "fed.db")
        with line.container.consumer("case-events", projection.group,
                                     lambda r, tx: projection.apply(r.event, tx), fed) as consumer:
            wait_until(lambda: _processed(fed.db) >= events,
                       step=lambda: consumer.poll_once(300), what=f"{events} events applied")
        fed.close()
        rebuilt = rebuild(projection, line.service, tmp_path / "rebuilt.db")

    assert rebuilt == events
    assert dump(tmp_path / "fed.db") == dump(tmp_path / "rebuilt.db")
    assert len(dump(tmp_path / "rebuilt.db")["region_cases"]) == 120


def test_after_a_rebuild_the_bus_changes_nothing_twice(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    projection = RegionProjection()
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        events = seed(line.service, 40)
        rebuild(projection, line.service, tmp_path / "region.db")
        before = dump(tmp_path / "region.db")
        with line.container.relay("case-events") as relay:
            relay.run(threading.Event(), until_caught_up=True)
        store = open_projection_store(projection, tmp_path / "region.db")
        with line.container.consumer("case-events", projection.group,
                                     lambda r, tx: projection.apply(r.event, tx),
                                     store) as consumer:
            wait_until(lambda: consumer.lag() == 0 and _offsets_total(store.db) >= events,
                       step=lambda: consumer.poll_once(300))
        store.close()

    assert dump(tmp_path / "region.db") == before


def test_a_handover_moves_the_case_from_one_regions_view_to_the_others(
    tmp_path: Path, master_key: str
) -> None:
    service = build_service(store_settings(tmp_path, master_key))
    case_id = _open(service, OLTEN, "2026-11-02")
    olten_actor = {"user_id": "cw", "role": "caseworker", "organisation": "so-olten"}
    projection, path = RegionProjection(), tmp_path / "region.db"

    rebuild(projection, service, path)
    before = _caseloads(path)
    service.execute(command("hand_over_case", case_id=str(case_id), to_municipality_bfs=SOLOTHURN,
                            actor=olten_actor))
    rebuild(projection, service, path)
    after = _caseloads(path)

    assert (before["so-olten"], before["so-solothurn"]) == ({"intake": 1}, {})
    assert (after["so-olten"], after["so-solothurn"]) == ({}, {"intake": 1})


def test_a_handover_moves_the_cases_open_goals_to_the_other_regions_work_list(
    tmp_path: Path, master_key: str
) -> None:
    """A goal carries its case's region (migration 4): the handover moves it too, fed one
    event at a time as in a rebuild."""
    clock = _Clock(datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME))
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    sid = str(_open(service, OLTEN, "2026-02-10"))
    service.execute(command("complete_assessment", case_id=sid, needs=["financial"],
                            employability="employable"))
    service.execute(command("grant_support", case_id=sid, support_from="2026-03-01",
                            housing="1000", health_insurance="300", income="0"))
    service.execute(command("agree_goal", case_id=sid, goal_id=str(UUID(int=7)),
                            category="employment", title="Apply for jobs", due_date="2026-03-10"))
    path = tmp_path / "region.db"

    def goals() -> dict[str, list[str]]:
        rebuild(RegionProjection(), service, path)
        with sqlite3.connect(path) as db:
            return {region: [item.case_id for item in work_list(db, region, date(2026, 3, 2))
                             if item.kind == "goal"] for region in ("so-olten", "so-solothurn")}

    assert goals() == {"so-olten": [sid], "so-solothurn": []}
    service.execute(command("hand_over_case", case_id=sid, to_municipality_bfs=SOLOTHURN,
                            actor={"user_id": "cw", "role": "caseworker",
                                   "organisation": "so-olten"}))
    assert goals() == {"so-olten": [], "so-solothurn": [sid]}


def test_work_list_flags_assessments_reviews_and_goals_due_and_overdue(
    tmp_path: Path, master_key: str
) -> None:
    clock = _Clock(datetime(2025, 3, 10, 9, tzinfo=SWISS_TIME))
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    supported = _open(service, OLTEN, "2025-03-10")          # a year of support by now
    sid = str(supported)
    clock.now = datetime(2025, 3, 20, 9, tzinfo=SWISS_TIME)
    service.execute(command("complete_assessment", case_id=sid, needs=["financial"],
                            employability="employable"))
    service.execute(command("grant_support", case_id=sid, support_from="2025-03-01",
                            housing="1000", health_insurance="300", income="0"))
    goal_late, goal_soon, goal_later = (UUID(int=n) for n in (1, 2, 3))
    for goal_id, due in ((goal_late, "2026-02-15"), (goal_soon, "2026-03-10"),
                         (goal_later, "2026-06-30")):
        service.execute(command("agree_goal", case_id=sid, goal_id=str(goal_id),
                                category="employment", title="Apply for jobs", due_date=due))
    clock.now = datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME)
    waiting = _open(service, OLTEN, "2026-02-20")            # assessment due 2026-03-22
    path = tmp_path / "region.db"
    rebuild(RegionProjection(), service, path)

    with sqlite3.connect(path) as db:
        items = work_list(db, "so-olten", date(2026, 3, 2))

    assert [(i.kind, i.case_id, i.due, i.overdue) for i in items] == [
        ("goal", sid, date(2026, 2, 15), True),
        ("review", sid, date(2026, 3, 1), True),        # support from 2025-03-01 + 12 months
        ("goal", sid, date(2026, 3, 10), False),
        ("assessment", str(waiting), date(2026, 2, 20) + timedelta(ASSESSMENT_WITHIN_DAYS),
         False),
    ]


def test_work_list_shows_open_proposals_until_dismissed_or_handed_over(
    tmp_path: Path, master_key: str
) -> None:
    clock = _Clock(datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME))
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    register = {"user_id": "population-register", "role": "system", "organisation": "so-canton"}
    moved, died = str(_open(service, OLTEN, "2026-03-02")), str(_open(service, OLTEN, "2026-03-02"))
    service.execute(command("propose_handover", case_id=moved, actor=register,
                            external_reference="m-7/0", source="population_register",
                            to_municipality_bfs=SOLOTHURN, effective_date="2026-02-10"))
    service.execute(command("propose_closure", case_id=died, actor=register,
                            external_reference="m-7/1", source="population_register",
                            reason="death", effective_date="2026-03-01"))
    path = tmp_path / "region.db"

    def proposals() -> list[tuple[str, str, date, bool, str]]:
        rebuild(RegionProjection(), service, path)
        with sqlite3.connect(path) as db:
            items = work_list(db, "so-olten", date(2026, 3, 2))
        return [(i.kind, i.case_id, i.due, i.overdue, i.detail) for i in items
                if i.kind.endswith("_proposal")]

    # Reported 2026-02-10, more than 14 days before 2026-03-02: overdue.
    assert proposals() == [
        ("handover_proposal", moved, date(2026, 2, 10), True,
         "moved to 2601 (so-solothurn); ref m-7/0"),
        ("closure_proposal", died, date(2026, 3, 1), False, "death; ref m-7/1"),
    ]
    service.execute(command("dismiss_proposal", case_id=died, external_reference="m-7/1",
                            reason="register_error"))
    service.execute(command("hand_over_case", case_id=moved, to_municipality_bfs=SOLOTHURN))
    assert proposals() == []


def test_a_read_model_from_before_migration_4_gets_the_work_lists_indexes(
    tmp_path: Path, master_key: str
) -> None:
    """Migration 4 indexes the work list's open items; a read model built before it is
    migrated when opened, lists the same items, and its proposals and advances are then
    found from their partial indexes instead of by walking every case of the region (55 ms a
    page at 1 million events, benchmarks/scale.py)."""
    clock = _Clock(datetime(2026, 12, 1, 9, tzinfo=SWISS_TIME))  # after the synthetic history
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    seed(service, 60)
    register = {"user_id": "population-register", "role": "system", "organisation": "so-canton"}
    moved = str(_open(service, OLTEN, "2026-03-02"))
    service.execute(command("propose_handover", case_id=moved, actor=register,
                            external_reference="m-8/0", source="population_register",
                            to_municipality_bfs=SOLOTHURN, effective_date="2026-02-10"))
    path = tmp_path / "region.db"
    rebuild(RegionProjection(), service, path)
    today = date(2026, 12, 1)
    with sqlite3.connect(path) as db:
        before = work_list(db, "so-olten", today)
        db.executescript(  # the read model as migration 3 left it
            "DROP INDEX region_cases_by_region_due; DROP INDEX region_goals_due; "
            "DROP INDEX region_proposals_open; DROP INDEX region_advances_running; "
            "ALTER TABLE region_goals DROP COLUMN social_region; "
            "ALTER TABLE region_goals DROP COLUMN case_phase; "
            "CREATE INDEX region_cases_by_region ON region_cases (social_region, phase); "
            "UPDATE schema_versions SET version = 3 WHERE component = 'read_model_region';")
    assert {"handover_proposal", "goal"} <= {item.kind for item in before}

    open_projection_store(RegionProjection(), path).close()  # migrations 4 and 5

    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'region_%'")}
        assert {"region_cases_by_region_due", "region_goals_due", "region_proposals_open",
                "region_advances_running"} <= indexes
        assert not {"region_cases_by_region", "region_goals_open"} & indexes
        assert work_list(db, "so-olten", today) == before
        items, params = _work_items(db, "so-olten", today)
        plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {items}", params))
    assert "SCAN r USING INDEX region_proposals_open" in plan
    assert "SCAN a USING INDEX region_advances_running" in plan
    assert "(social_region=? AND phase=? AND next_review_due<?)" in plan


def test_a_read_model_from_before_migration_5_lists_the_goals_from_their_own_index(
    tmp_path: Path, master_key: str
) -> None:
    """Migration 5 writes each goal's case phase on it: a read model built before it is
    migrated when opened, lists the same items, and reads its goals from the covering index
    of the open goals alone, visiting no case."""
    clock = _Clock(datetime(2026, 12, 1, 9, tzinfo=SWISS_TIME))  # after the synthetic history
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    seed(service, 80)
    path = tmp_path / "region.db"
    rebuild(RegionProjection(), service, path)
    lists = {}
    with sqlite3.connect(path) as db:
        for today in (date(2025, 6, 1), date(2026, 3, 1), date(2026, 12, 1)):
            lists[today] = work_list(db, "so-olten", today)
        phases = db.execute("SELECT goal_id, case_phase FROM region_goals").fetchall()
        db.executescript(  # the read model as migration 4 left it
            "DROP INDEX region_goals_due; ALTER TABLE region_goals DROP COLUMN case_phase; "
            "CREATE INDEX region_goals_open ON region_goals (social_region, due_date) "
            "WHERE status = 'open'; "
            "UPDATE schema_versions SET version = 4 WHERE component = 'read_model_region';")
    assert any(item.kind == "goal" for items in lists.values() for item in items)
    assert {phase for _, phase in phases} >= {"supported", "closed"}

    open_projection_store(RegionProjection(), path).close()  # migration 5

    with sqlite3.connect(path) as db:
        assert sorted(db.execute("SELECT goal_id, case_phase FROM region_goals")) == sorted(phases)
        for today, items in lists.items():
            assert work_list(db, "so-olten", today) == items
        query, params = _work_items(db, "so-olten", date(2026, 3, 1))
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", params)]
    assert ("SEARCH region_goals USING COVERING INDEX region_goals_due "
            "(social_region=? AND case_phase=? AND due_date<?)") in plan


def test_a_closed_cases_goals_leave_the_work_list_and_come_back_with_support(
    tmp_path: Path, master_key: str
) -> None:
    """A goal is on the work list while its case is supported: closing the case takes it off
    (the goal itself stays open), reopening keeps it off, support granted again brings it
    back; fed one event at a time, as in a rebuild."""
    clock = _Clock(datetime(2026, 3, 2, 9, tzinfo=SWISS_TIME))
    service = build_service(store_settings(tmp_path, master_key), clock=clock)
    sid = str(_open(service, OLTEN, "2026-02-10"))

    def support(since: str) -> None:
        service.execute(command("complete_assessment", case_id=sid, needs=["financial"],
                                employability="employable"))
        service.execute(command("grant_support", case_id=sid, support_from=since,
                                housing="1000", health_insurance="300", income="0"))

    def goals() -> list[str]:
        rebuild(RegionProjection(), service, path)
        with sqlite3.connect(path) as db:
            return [item.case_id for item in work_list(db, "so-olten", date(2026, 3, 2))
                    if item.kind == "goal"]

    path = tmp_path / "region.db"
    support("2026-03-01")
    service.execute(command("agree_goal", case_id=sid, goal_id=str(UUID(int=9)),
                            category="employment", title="Apply for jobs", due_date="2026-03-10"))
    assert goals() == [sid]
    service.execute(command("close_case", case_id=sid, reason="employment"))
    assert goals() == []
    service.execute(command("reopen_case", case_id=sid, reason="closed_in_error"))
    assert goals() == []
    support("2026-03-03")  # from the day after the reopening
    assert goals() == [sid]


def test_work_list_shows_open_advances_with_their_age_and_the_el_decisions_proposal(
    tmp_path: Path, master_key: str
) -> None:
    clock = _Clock(datetime(2026, 1, 5, 9, tzinfo=SWISS_TIME))
    application = UUID(int=0xE1)
    stage = {"now": "forwarded"}
    service = build_service(
        store_settings(tmp_path, master_key), clock=clock,
        benefits=lambda _: BenefitOnRecord(application, "el_ahv", applicant, stage["now"]))
    case_id = _open(service, OLTEN, "2026-01-05")
    cid = str(case_id)
    applicant = service.get_case(case_id).applicant.person_id
    service.execute(command("complete_assessment", case_id=cid, needs=["financial"],
                            employability="employable"))
    service.execute(command("grant_support", case_id=cid, support_from="2026-01-01",
                            housing="1000", health_insurance="300", income="0"))
    service.execute(command("start_advance", case_id=cid, application_id=str(application),
                            advance_from="2026-01-01", commitment_kind="commitment",
                            commitment_date="2026-01-05"))
    path = tmp_path / "region.db"

    def items(today: date) -> list[tuple[str, date, bool, str]]:
        rebuild(RegionProjection(), service, path)
        with sqlite3.connect(path) as db:
            found = work_list(db, "so-olten", today)
        return [(i.kind, i.due, i.overdue, i.detail) for i in found
                if i.kind in ("advance", "budget_proposal", "closure_proposal")]

    waiting = f"EL application {application}; advanced for"
    assert items(date(2026, 3, 2)) == [
        ("advance", date(2026, 1, 1), False, f"{waiting} 60 days")]
    assert items(date(2026, 7, 1))[0][2:] == (True, f"{waiting} 181 days")  # > 180
    # 20 May: EL of 500.00 a month decided; the budget (about 2,300) stays above it.
    clock.now = datetime(2026, 5, 20, 9, tzinfo=SWISS_TIME)
    stage["now"] = "granted"
    system = {"user_id": "advance-claims", "role": "system", "organisation": "so-canton"}
    service.execute(command("record_reimbursement", case_id=cid, actor=system,
                            application_id=str(application), decided_on="2026-05-20",
                            el={"2026-05-01": "500.00"}, paid={"2026-05-01": "2300.00"},
                            monthly_el="500.00"))
    reference = f"el:{application}:2026-05:500.00"
    assert items(date(2026, 5, 21)) == [
        ("budget_proposal", date(2026, 5, 20), False, f"other_insurance; ref {reference}")]
    service.execute(command("change_budget", case_id=cid, effective_date="2026-05-01",
                            reason="income_change", housing="1000", health_insurance="300",
                            income="500"))
    assert items(date(2026, 5, 21)) == []


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _open(service: CaseService, bfs: int, applied: str) -> UUID:
    person = {"given_name": "Lia", "family_name": "Muster", "ahvn13": "756.9217.0769.85",
              "birth_date": "1990-01-01", "street": "Weg 1", "postal_code": "4600",
              "town": "Olten"}
    return service.execute(command(
        "open_case", municipality_bfs=bfs, household_size=1, applicant=person,
        application_date=applied,
    )).case_id


def _caseloads(path: Path) -> dict[str, dict[str, int]]:
    with sqlite3.connect(path) as db:
        return {region: caseload(db, region) for region in ("so-olten", "so-solothurn")}


def _processed(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM processed_events").fetchone()[0])


def _offsets_total(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets")
               .fetchone()[0])

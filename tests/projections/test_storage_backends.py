"""The read models on either backend (projections/storage.py): rebuilt from the same store into
SQLite or into a PostgreSQL schema, every projection has the same rows, and the query
functions answer the same."""

from __future__ import annotations

import base64
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from bus.envelope import event_id
from domain.application.cases import CaseService
from domain.case import BenefitOnRecord
from domain.commands import (
    Actor,
    ProposeClosure,
    RecordReimbursement,
    RecordReimbursementPaid,
    StartAdvance,
    swiss_today,
)
from domain.events import claims_of
from domain.reference import load_reference_data
from nervenbahn.config import ConfigError, StoreConfig, load_settings
from nervenbahn.container import build_service, close_service
from nervenbahn.paths import read_model_target
from nervenbahn.synthetic import synthetic_history
from projections import PROJECTIONS, Projection
from projections.branch_office import office_case, office_cases
from projections.framework import open_projection_store, rebuild
from projections.region import caseload, work_list, work_page
from projections.reporting import (
    ReportingProjection,
    canton_figures,
    quarterly_figures,
    stored_figures,
)
from projections.reporting_facts import NO_FACT_EVENTS, Pseudonymiser, recorded_day
from projections.storage import (
    PostgresReadModels,
    ReadModelTarget,
    read_model_built,
    read_model_connection,
    read_progress,
    record_progress,
)
from schemas.sql import placeholder
from tests.bus.pipeline import store_settings

REPORTING_KEY = secrets.token_bytes(32)
REGIONS = list(load_reference_data().regions)
ALL_BFS = sorted(load_reference_data().municipalities)


def projection(name: str) -> Projection:
    if name == ReportingProjection.name:
        return ReportingProjection(REPORTING_KEY)
    return PROJECTIONS[name]()


def dump(target: ReadModelTarget, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the projection's own tables, sorted."""
    with read_model_connection(target) as db:
        return {
            table: sorted(tuple(row) for row in db.execute(f"SELECT * FROM {table}").fetchall())
            for table in PROJECTIONS[name].tables
        }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseService]:
    """A SQLite event store with 80 synthetic households."""
    folder = tmp_path_factory.mktemp("backends")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    pending: dict[UUID, BenefitOnRecord] = {}
    service = build_service(store_settings(folder, key), benefits=pending.__getitem__)
    lines = [json.dumps(r) for r in synthetic_history(load_reference_data(), 80, 5)]
    service.import_records(lines)
    _propose_closures(service, wanted=3)
    _advance(service, pending, wanted=2)
    yield service
    close_service(service)


def _advance(service: CaseService, pending: dict[UUID, BenefitOnRecord], wanted: int) -> None:
    """Advances in view of EL on the first supported cases (for the region read model's
    advances), each for a pending application of the case's applicant."""
    system = Actor("advances", "system", "so-canton")
    supported = (service.get_case(c) for c in service.case_ids())
    for case in [c for c in supported if c.phase == "supported"][:wanted]:
        application_id = uuid4()
        pending[application_id] = BenefitOnRecord(application_id, "el_ahv",
                                                   case.applicant.person_id, "forwarded")
        service.execute(StartAdvance(
            actor=system, correlation_id=uuid4(), case_id=case.id,
            application_id=application_id, advance_from=swiss_today(),
            commitment_kind="commitment", commitment_date=swiss_today()))
    # The first advance decided and its claim paid, so that the claims and reimbursements
    # tables have a row (and the advance ends).
    month = swiss_today().replace(day=1)
    service.execute(RecordReimbursement(
        actor=system, correlation_id=uuid4(), case_id=case.id, application_id=application_id,
        decided_on=swiss_today(), el={month: "500.00"}, paid={month: "900.00"},
        monthly_el="500.00"))
    (claim,) = claims_of(service.get_case(case.id))
    service.execute(RecordReimbursementPaid(
        actor=Actor("fund-decisions", "system", "akso"), correlation_id=uuid4(),
        case_id=case.id, application_id=application_id, claim_version=claim.case_version,
        to_region="500.00", to_person="0.00", message_id="claim-test", paid_on=swiss_today()))


def _propose_closures(service: CaseService, wanted: int) -> None:
    """Closure proposals (population register) on the first open cases, so that every table of
    the region read model has rows."""
    register = Actor("population-register", "system", "so-canton")
    made = 0
    for case_id in service.case_ids():
        if made == wanted:
            return
        if service.get_case(case_id).phase == "closed":
            continue
        service.execute(
            ProposeClosure(
                actor=register,
                correlation_id=uuid4(),
                case_id=case_id,
                external_reference=f"msg-{made}/0",
                source="population_register",
                reason="death",
                effective_date=swiss_today(),
            )
        )
        made += 1


@pytest.fixture(scope="module")
def reference(
    service: CaseService, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Every read model rebuilt into SQLite files: what the backend under test must match."""
    folder = tmp_path_factory.mktemp("reference")
    paths = {name: folder / f"{name}.db" for name in PROJECTIONS}
    for name, path in paths.items():
        rebuild(projection(name), service, path)
    return paths


class ReadModelStorageContract(ABC):
    """What every backend of the read models must do."""

    @abstractmethod
    def target(self, name: str) -> ReadModelTarget:
        """Where the backend under test keeps the read model `name`."""

    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_a_rebuild_gives_the_same_rows_as_into_sqlite(
        self, name: str, service: CaseService, reference: dict[str, Path]
    ) -> None:
        target = self.target(name)
        assert not read_model_built(target, PROJECTIONS[name].tables[0])

        events = rebuild(projection(name), service, target)

        assert events == service.recorder.max_notification_id()
        assert read_model_built(target, PROJECTIONS[name].tables[0])
        rows = dump(target, name)
        assert rows == dump(reference[name], name)
        assert all(rows[table] for table in rows)

    def test_a_reporting_rebuild_records_the_keyed_fact_ids_only(
        self, service: CaseService
    ) -> None:
        """What the reporting topic's consumer will skip: each fact's keyed id, nothing for a
        work-list proposal (no fact), and no event's public id (which a case id computes)."""
        target = self.target("reporting")
        rebuild(projection("reporting"), service, target)
        events = [service.mapper.to_domain_event(n)
                  for n in service.recorder.select_notifications(start=1, limit=10**9)]
        keys = Pseudonymiser(REPORTING_KEY)

        with read_model_connection(target) as db:
            recorded = {UUID(str(row[0])) for row in db.execute(
                f"SELECT event_id FROM processed_events WHERE group_id = {placeholder(db)}",
                ("projection-reporting",))}
        proposals = [e for e in events if type(e).__name__ in NO_FACT_EVENTS]
        assert proposals  # the store has events without a fact
        assert recorded == {keys.fact_id(e.originator_id, e.originator_version)
                            for e in events if e not in proposals}
        assert not recorded & {event_id(e.originator_id, e.originator_version) for e in events}

    def test_a_second_rebuild_replaces_the_first(
        self, service: CaseService, reference: dict[str, Path]
    ) -> None:
        target = self.target("region")
        store = open_projection_store(projection("region"), target)
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO region_cases (case_id, social_region, municipality_bfs, phase, "
                f"opened_on, intake_on, version) VALUES ({placeholder(tx)}, 'so-olten', 2581, "
                "'intake', '2020-01-01', '2020-01-01', 1)",
                ("stale",),
            )
        store.close()

        rebuild(projection("region"), service, target)
        rebuild(projection("region"), service, target)

        assert dump(target, "region") == dump(reference["region"], "region")

    def test_a_rebuild_records_the_newest_recorded_time_as_the_read_models_freshness(
        self, service: CaseService
    ) -> None:
        events = [service.decode(n) for n in service.notifications(gt=0, limit=10**6)]
        newest = max(event.timestamp for event in events)
        before = datetime.now(UTC)

        for name in ("region", "reporting"):
            rebuild(projection(name), service, self.target(name))

        with read_model_connection(self.target("region")) as db:
            region = read_progress(db, "region")
        with read_model_connection(self.target("reporting")) as db:
            reporting = read_progress(db, "reporting")
        assert region is not None and region.as_of == newest
        assert reporting is not None and reporting.as_of == recorded_day(newest)
        assert before <= region.applied_at <= datetime.now(UTC)

    def test_an_older_event_never_moves_the_freshness_back(self) -> None:
        store = open_projection_store(projection("region"), self.target("region"))
        newer = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
        try:
            for as_of in (newer, newer - timedelta(days=40), None):
                with store.transaction() as tx:
                    record_progress(tx, "region", as_of, datetime.now(UTC))
        finally:
            store.close()

        with read_model_connection(self.target("region")) as db:
            progress = read_progress(db, "region")
            nothing = read_progress(db, "branch_office")
        assert progress is not None and progress.as_of == newer
        assert nothing is None

    def test_the_query_functions_answer_the_same(
        self, service: CaseService, reference: dict[str, Path]
    ) -> None:
        for name in PROJECTIONS:
            rebuild(projection(name), service, self.target(name))
        today = date(2025, 6, 30)
        some = ALL_BFS[::3]
        with (
            read_model_connection(self.target("region")) as ours,
            read_model_connection(reference["region"]) as theirs,
        ):
            longest = 0
            for region in REGIONS:
                assert caseload(ours, region) == caseload(theirs, region)
                whole = work_list(ours, region, today)
                longest = max(longest, len(whole))
                assert whole == work_list(theirs, region, today)
                for db in (ours, theirs):  # pages cut by the database are slices of the whole
                    pages = [work_page(db, region, today, limit=2, offset=offset)
                             for offset in range(0, len(whole) + 2, 2)]
                    assert all(total == len(whole) for _, total in pages)
                    assert [item for items, _ in pages for item in items] == whole
            assert longest > 2, "a region's work list runs over several pages"
        with (
            read_model_connection(self.target("branch_office")) as ours,
            read_model_connection(reference["branch_office"]) as theirs,
        ):
            for phase in (None, "supported", "closed"):
                page = office_cases(ours, some, phase=phase, limit=25, offset=5)
                assert page == office_cases(theirs, some, phase=phase, limit=25, offset=5)
            cases = office_cases(theirs, ALL_BFS, limit=1000)
            assert len(cases) == 80
            for case in cases[:20]:
                for scope in (some, ALL_BFS):
                    assert office_case(ours, scope, case.case_id) == office_case(
                        theirs, scope, case.case_id
                    )
        with (
            read_model_connection(self.target("reporting")) as ours,
            read_model_connection(reference["reporting"]) as theirs,
        ):
            for quarter in ("2024Q3", "2025Q1", "2025Q2"):
                computed = (quarterly_figures(ours, quarter), canton_figures(ours, quarter))
                assert computed == (quarterly_figures(theirs, quarter),
                                    canton_figures(theirs, quarter))
                # the figures read from the aggregates equal those computed from the facts
                assert stored_figures(ours, quarter) == computed


class TestSQLiteReadModels(ReadModelStorageContract):
    """A SQLite file per read model (NERVENBAHN_PROJECTIONS_STORE unset)."""

    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.folder = tmp_path

    def target(self, name: str) -> ReadModelTarget:
        return self.folder / f"{name}.db"


@pytest.mark.postgres
class TestPostgresReadModels(ReadModelStorageContract):
    """Every read model in one PostgreSQL schema of this test's own."""

    @pytest.fixture(autouse=True)
    def _schema(self, postgres_dsn: str) -> None:
        store = StoreConfig.parse(postgres_dsn)
        self.schema = PostgresReadModels(store.conninfo(), store.schema_name)

    def target(self, name: str) -> ReadModelTarget:
        return self.schema

    def test_a_failed_rebuild_leaves_the_previous_rows(
        self, service: CaseService, reference: dict[str, Path]
    ) -> None:
        rebuild(projection("region"), service, self.schema)
        failing = projection("region")
        half = (service.recorder.max_notification_id() or 0) // 2
        applied = 0

        def apply_batch(events: Sequence[Any], tx: Any) -> None:
            nonlocal applied
            applied += len(events)
            if applied > half:
                raise RuntimeError("disk full")
            type(failing).apply_batch(failing, events, tx)

        failing.apply_batch = apply_batch  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="disk full"):
            rebuild(failing, service, self.schema, batch_size=10)  # batches before it written

        assert dump(self.schema, "region") == dump(reference["region"], "region")


del ReadModelStorageContract  # collected through its subclasses only


def test_the_setting_puts_every_read_model_in_the_schema(
    tmp_path: Path, master_key: str
) -> None:
    url = "postgresql://nb@db:5432/nb?schema=read_models"
    settings = load_settings({
        "NERVENBAHN_STORE": f"sqlite:///{tmp_path}/store.db",
        "NERVENBAHN_MASTER_KEY": master_key,
        "NERVENBAHN_PROJECTIONS_STORE": url,
    })

    targets = {read_model_target(settings, name) for name in PROJECTIONS}

    assert targets == {PostgresReadModels(StoreConfig.parse(url).conninfo(), "read_models")}
    assert isinstance(read_model_target(store_settings(tmp_path, master_key), "region"), Path)


@pytest.mark.parametrize(
    "url", ["sqlite:///read.db", "postgresql://nb@db:5432/nb", "postgresql://nb@db/nb?schema=A-"]
)
def test_the_setting_must_name_a_postgresql_schema(url: str, master_key: str) -> None:
    with pytest.raises(ConfigError, match="NERVENBAHN_PROJECTIONS_STORE"):
        load_settings({"NERVENBAHN_MASTER_KEY": master_key, "NERVENBAHN_PROJECTIONS_STORE": url})

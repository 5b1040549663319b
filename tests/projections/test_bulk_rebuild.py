"""A rebuild applies the notification log in batches, each read once and written in bulk
(`Projection.apply_batch`); the read models it leaves are the ones that applying the same
history one event at a time leaves (the consumer's way: one transaction per event), wherever
the batches cut a case's history, and events met again change nothing."""

from __future__ import annotations

import base64
import gc
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from domain.application.cases import CaseService
from domain.reference import load_reference_data
from nervenbahn.container import build_service, close_service
from nervenbahn.synthetic import synthetic_history
from projections.branch_office import BranchOfficeProjection
from projections.framework import (
    REBUILD_GC_THRESHOLD,
    Projection,
    applied_notification_id,
    catch_up,
    open_projection_store,
    rebuild,
)
from projections.region import RegionProjection
from projections.reporting import ReportingProjection
from projections.reporting_facts import NO_FACT_EVENTS, CaseFacts, Pseudonymiser
from tests.bus.pipeline import store_settings

REPORTING_KEY = secrets.token_bytes(32)


def projections() -> dict[str, Projection]:
    """A fresh instance of each projection fed from the case store."""
    return {"region": RegionProjection(), "branch_office": BranchOfficeProjection(),
            "reporting": ReportingProjection(REPORTING_KEY)}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseService]:
    """A store with 80 synthetic households (handovers, reopenings, goals, budget changes)."""
    folder = tmp_path_factory.mktemp("bulk")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    store = build_service(store_settings(folder, key))
    store.import_records(json.dumps(r) for r in synthetic_history(load_reference_data(), 80, 3))
    yield store
    close_service(store)


def dump(path: Path, projection: Projection) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the projection's tables and of what its group processed, sorted."""
    with sqlite3.connect(path) as db:
        tables = {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
                  for table in projection.tables}
        tables["processed_events"] = sorted(db.execute(
            "SELECT event_id FROM processed_events WHERE group_id = ?", (projection.group,)
        ).fetchall())
    return tables


def one_by_one(projection: Projection, events: list[Any], path: Path) -> None:
    """Apply `events` as the projection's consumer does: each in a transaction of its own,
    with its processed id (the reporting projection: the fact the reporting relay publishes)."""
    store = open_projection_store(projection, path)
    facts = CaseFacts(Pseudonymiser(REPORTING_KEY))
    try:
        for event in events:
            with store.transaction() as tx:
                if isinstance(projection, ReportingProjection):
                    if type(event).__name__ in NO_FACT_EVENTS:
                        continue
                    fact = facts(event)
                    projection.apply_fact(fact, tx)
                    store.mark(tx, projection.group, fact.fact_id)
                    continue
                projection.apply(event, tx)
                processed = projection.processed_id(event)
                if processed is not None and not store.seen(tx, projection.group, processed):
                    store.mark(tx, projection.group, processed)
    finally:
        store.close()


def history(service: CaseService) -> list[Any]:
    """Every event of the store, in the order recorded."""
    return [service.decode(n) for n in service.notifications(gt=0, limit=1_000_000)]


@pytest.mark.parametrize("name", ["region", "branch_office", "reporting"])
@pytest.mark.parametrize("batch_size", [1, 7, 2000])
def test_a_bulk_rebuild_leaves_the_tables_of_applying_one_event_at_a_time(
    service: CaseService, tmp_path: Path, name: str, batch_size: int
) -> None:
    events = history(service)
    one_by_one(projections()[name], events, tmp_path / "one.db")

    applied = rebuild(projections()[name], service, tmp_path / "bulk.db", batch_size=batch_size)

    assert applied == len(events)
    assert dump(tmp_path / "bulk.db", projections()[name]) == dump(
        tmp_path / "one.db", projections()[name]
    )


@pytest.mark.parametrize("name", ["region", "branch_office", "reporting"])
def test_events_met_again_in_a_batch_change_nothing(
    service: CaseService, tmp_path: Path, name: str
) -> None:
    projection = projections()[name]
    path = tmp_path / "bulk.db"
    rebuild(projection, service, path, batch_size=500)
    before = dump(path, projection)
    events = history(service)
    store = open_projection_store(projection, path)
    try:
        with store.transaction() as tx:  # the whole history again, old events between new
            projection.apply_batch(events[::2] + events[1::2] + events, tx)
    finally:
        store.close()

    assert dump(path, projection) == before


class _Crash(RuntimeError):
    """The process died half-way through applying a batch."""


@pytest.mark.parametrize("name", ["region", "branch_office", "reporting"])
def test_a_crash_half_way_through_a_batch_counts_nothing_twice(
    service: CaseService, tmp_path: Path, name: str
) -> None:
    path = tmp_path / "caught-up.db"
    failing, batches = projections()[name], 0

    def apply_batch(events: Sequence[Any], tx: Any) -> None:
        nonlocal batches
        batches += 1
        type(failing).apply_batch(failing, events[: len(events) // 2], tx)
        if batches == 3:
            raise _Crash("killed")
        type(failing).apply_batch(failing, events[len(events) // 2:], tx)

    failing.apply_batch = apply_batch  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        catch_up(failing, service, path, after=0, batch_size=50)
    after = applied_notification_id(projections()[name], path)
    caught_up = catch_up(projections()[name], service, path, after=after or 0, batch_size=50)
    rebuild(projections()[name], service, tmp_path / "rebuilt.db")

    assert after == 100  # two whole batches, nothing of the third
    assert caught_up == service.max_position() - 100
    assert dump(path, projections()[name]) == dump(tmp_path / "rebuilt.db", projections()[name])


def test_a_rebuild_that_dies_half_way_leaves_the_read_model_as_it_was(
    service: CaseService, tmp_path: Path
) -> None:
    """A rebuild writes its fresh file without a write-ahead log and without syncing each
    batch (`projections.framework._private_writes`): that file is no one's until it is
    complete. A rebuild that dies half-way leaves the read model as it was; whatever it left
    of its file, the next rebuild starts afresh; the rebuilt file is back in WAL mode."""
    path = tmp_path / "region.db"
    rebuild(RegionProjection(), service, path, batch_size=50)
    before = dump(path, RegionProjection())
    failing, batches = RegionProjection(), 0

    def apply_batch(events: Sequence[Any], tx: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise _Crash("killed")
        RegionProjection.apply_batch(failing, events, tx)

    failing.apply_batch = apply_batch  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        rebuild(failing, service, path, batch_size=50)
    assert dump(path, RegionProjection()) == before

    fresh = tmp_path / "region.db.rebuild"  # what a killed process could have left
    fresh.write_bytes(secrets.token_bytes(8192))
    assert rebuild(RegionProjection(), service, path, batch_size=50) == service.max_position()

    assert dump(path, RegionProjection()) == before
    assert not fresh.exists()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_rebuild_gives_the_cycle_collector_back_as_it_found_it(
    service: CaseService, tmp_path: Path
) -> None:
    """A rebuild looks at the youngest generation less often while it runs
    (`projections.framework.REBUILD_GC_THRESHOLD`); a `serve` that rebuilds a read model
    keeps its own thresholds afterwards, also when the rebuild fails."""
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    failing = RegionProjection()

    def apply_batch(events: Sequence[Any], tx: Any) -> None:
        seen.append(gc.get_threshold())
        raise _Crash("killed")

    failing.apply_batch = apply_batch  # type: ignore[method-assign]
    try:
        gc.set_threshold(900, 11, 12)
        rebuild(RegionProjection(), service, tmp_path / "region.db", batch_size=50)
        assert gc.get_threshold() == (900, 11, 12)
        with pytest.raises(_Crash):
            rebuild(failing, service, tmp_path / "region.db", batch_size=50)
        assert seen == [(REBUILD_GC_THRESHOLD, 11, 12)]
        assert gc.get_threshold() == (900, 11, 12)
    finally:
        gc.set_threshold(*before)

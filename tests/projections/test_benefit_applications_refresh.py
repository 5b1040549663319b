"""Refreshing the benefit applications' read model from the benefits store
(`Container.refresh_read_model`): by the id of the last notification it applied, not by a count
of events, so that a gap in the store's ids (a rolled-back insert, a SQLite rowid gap) does not
make every read rebuild it; only the notifications after that id are applied; and the CLI's
rebuild takes the same turn as the refresh, so neither swaps in the other's half-written file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import pytest

import projections.framework as framework_module
from nervenbahn.config import StoreConfig
from nervenbahn.container import Container
from nervenbahn.store_opening import sqlite_turn
from projections.benefit_applications import BenefitApplicationsProjection
from projections.errors import ReadModelUnreadableError
from projections.framework import rebuild
from projections.storage import read_model_connection
from tests.bus.pipeline import store_settings
from tests.cli.test_backlog_report import _Recorder
from tests.domain.fakes import FakeClock
from tests.projections.benefit_office_fixture import (
    GRENCHEN,
    GRENCHEN_OFFICE,
    START,
    record_offices,
)

NAME = BenefitApplicationsProjection.name
TABLES = BenefitApplicationsProjection.tables


class Rebuilds:
    """A spy on the container's rebuilds: counts them, then rebuilds for real."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        return rebuild(*args, **kwargs)


@pytest.fixture
def store(tmp_path: Path, master_key: str) -> Iterator[tuple[Container, _Recorder]]:
    """A container on a SQLite store with the offices' applications, and a recorder that
    records more of them (people other than the fixture's)."""
    clock = FakeClock(START)
    container = Container(store_settings(tmp_path, master_key), clock=clock)
    record_offices(container.benefits, clock)
    desk = _Recorder(container.benefits, clock)
    desk.serial = 100
    try:
        yield container, desk
    finally:
        container.close()


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> Rebuilds:
    """The container's rebuilds, counted (it calls `projections.framework.rebuild`)."""
    spy = Rebuilds()
    monkeypatch.setattr(framework_module, "rebuild", spy)
    return spy


def rows(target: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read model's tables, in key order."""
    with sqlite3.connect(target) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in TABLES}


def rebuilt_rows(container: Container, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rows a full rebuild from the store gives, in a file of its own."""
    fresh = tmp_path / "fresh" / "benefit_applications.db"
    fresh.parent.mkdir()
    rebuild(BenefitApplicationsProjection(), container.benefits, fresh)
    return rows(fresh)


def move_last_id_up(tmp_path: Path, by: int) -> int:
    """Leave a gap before the benefits store's last notification (its SQLite rowid moved up,
    as a rolled-back insert leaves one on PostgreSQL); the store's new last position."""
    with sqlite3.connect(tmp_path / "store.db") as db:
        (last,) = db.execute("SELECT max(rowid) FROM benefits_events").fetchone()
        db.execute("UPDATE benefits_events SET rowid = ? WHERE rowid = ?", (last + by, last))
    return int(last + by)


def forget_notification_id(target: Path) -> None:
    """Make the read model look built by a release that recorded no notification id."""
    with sqlite3.connect(target, timeout=30) as db:
        db.execute("UPDATE read_model_progress SET notification_id = NULL")


def more_events(desk: _Recorder) -> int:
    """A new application received, checked with a document missing and forwarded: three
    events."""
    desk.on(date(2025, 11, 17))
    application = desk.receive(GRENCHEN_OFFICE, GRENCHEN)
    desk.check(GRENCHEN_OFFICE, application, ("rent_contract",))
    desk.forward(GRENCHEN_OFFICE, application, "the rent contract follows")
    return 3


def test_after_a_gap_in_the_ids_a_refresh_with_nothing_new_does_nothing(
    store: tuple[Container, _Recorder], tmp_path: Path, rebuilds: Rebuilds
) -> None:
    container, _ = store
    events = len(container.benefits.notifications(gt=0, limit=1000))
    last = move_last_id_up(tmp_path, by=40)
    assert container.benefits.max_position() == last > events

    first = container.refresh_read_model(NAME)
    again = [container.refresh_read_model(NAME) for _ in range(3)]

    assert first == events  # built once, from every event
    assert again == [None, None, None]
    assert rebuilds.calls == 1


def test_after_a_gap_a_refresh_applies_exactly_the_new_events_as_a_rebuild_would(
    store: tuple[Container, _Recorder], tmp_path: Path, rebuilds: Rebuilds
) -> None:
    container, desk = store
    move_last_id_up(tmp_path, by=40)
    container.refresh_read_model(NAME)
    new = more_events(desk)

    applied = container.refresh_read_model(NAME)
    unchanged = container.refresh_read_model(NAME)

    assert applied == new == 3
    assert unchanged is None
    assert rebuilds.calls == 1  # the first build only: the new events were applied in place
    target = container.read_model(NAME)
    assert isinstance(target, Path)
    assert rows(target) == rebuilt_rows(container, tmp_path)
    assert len(rows(target)["benefit_applications"]) == 7


def test_a_read_model_of_an_older_release_without_a_notification_id_is_rebuilt(
    store: tuple[Container, _Recorder], rebuilds: Rebuilds
) -> None:
    container, _ = store
    container.refresh_read_model(NAME)
    target = container.read_model(NAME)
    assert isinstance(target, Path)
    forget_notification_id(target)

    assert container.refresh_read_model(NAME) == container.benefits.max_position()
    assert rebuilds.calls == 2
    assert container.refresh_read_model(NAME) is None


def test_the_cli_rebuild_and_a_concurrent_refresh_leave_the_read_model_of_a_rebuild(
    store: tuple[Container, _Recorder], tmp_path: Path, master_key: str
) -> None:
    container, desk = store
    container.refresh_read_model(NAME)
    # The CLI's own container (`nervenbahn projections rebuild` calls rebuild_read_model).
    cli = Container(store_settings(tmp_path, master_key))
    failures: list[BaseException] = []

    def repeatedly(work: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                for _ in range(6):
                    work()
            except BaseException as exc:  # reported by the assertions below
                failures.append(exc)
        return run

    target = container.read_model(NAME)
    assert isinstance(target, Path)

    def write_and_refresh() -> None:
        more_events(desk)
        with sqlite_turn(target):  # as if built by an older release: a rebuild
            forget_notification_id(target)
        container.refresh_read_model(NAME)

    threads = [threading.Thread(target=repeatedly(lambda: cli.rebuild_read_model(NAME))),
               threading.Thread(target=repeatedly(write_and_refresh))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        cli.close()

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    container.refresh_read_model(NAME)
    assert rows(target) == rebuilt_rows(container, tmp_path)
    assert len(rows(target)["benefit_applications"]) == 6 + 6
    assert not target.with_name(target.name + ".rebuild").exists()


def test_a_servers_reader_waits_for_the_turn_of_a_sqlite_read_model_the_read_timeout_at_most(
    tmp_path: Path, master_key: str
) -> None:
    clock = FakeClock(START)
    container = Container(
        store_settings(tmp_path, master_key, {"NERVENBAHN_POSTGRES_READ_TIMEOUT": "1"}),
        clock=clock,
    )
    try:
        record_offices(container.benefits, clock)
        container.refresh_read_model(NAME)
        desk = _Recorder(container.benefits, clock)
        desk.serial = 100
        new = more_events(desk)  # so the reader needs the turn to catch up
        target = container.read_model(NAME)
        assert isinstance(target, Path)
        with sqlite_turn(target):  # held by a rebuild (`nervenbahn projections rebuild`)
            started = time.monotonic()
            with pytest.raises(ReadModelUnreadableError, match=r"not taken within 1 s"):
                container.refresh_read_model(NAME, timed=True)
            waited = time.monotonic() - started
        assert 1 <= waited < 5
        assert container.refresh_read_model(NAME, timed=True) == new  # free again: caught up
    finally:
        container.close()


@pytest.mark.postgres
def test_on_postgresql_a_rolled_back_insert_leaves_a_gap_and_a_refresh_catches_up(
    tmp_path: Path, master_key: str, postgres_dsn: str, rebuilds: Rebuilds
) -> None:
    clock = FakeClock(START)
    container = Container(store_settings(tmp_path, master_key, {"NERVENBAHN_STORE": postgres_dsn}),
                          clock=clock)
    try:
        record_offices(container.benefits, clock)
        desk = _Recorder(container.benefits, clock)
        desk.serial = 100
        container.refresh_read_model(NAME)
        _roll_back_an_insert(postgres_dsn)  # the id sequence moves on, no row
        assert container.refresh_read_model(NAME) is None

        new = more_events(desk)
        applied = container.refresh_read_model(NAME)

        assert applied == new and container.refresh_read_model(NAME) is None
        assert rebuilds.calls == 1
        with read_model_connection(container.read_model(NAME)) as db:
            applications = db.execute("SELECT count(*) FROM benefit_applications").fetchone()
        assert applications[0] == len(list(container.benefits.application_ids()))
    finally:
        container.close()


def _roll_back_an_insert(dsn: str) -> None:
    """Take one value of the benefits events' id sequence and roll back: a gap, as a
    conflicting insert leaves one."""
    config = StoreConfig.parse(dsn)
    with psycopg.connect(config.conninfo()) as conn:
        sequence = psycopg.sql.SQL("pg_get_serial_sequence({}, 'notification_id')").format(
            psycopg.sql.Literal(f"{config.schema_name}.benefits_events"))
        conn.execute(psycopg.sql.SQL("SELECT nextval({})").format(sequence))
        conn.rollback()

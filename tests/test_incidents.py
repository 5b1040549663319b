"""Incidents (`nervenbahn.incidents`), the monitor that opens and closes them and the monthly
availability computed from them, on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from domain.case import SWISS_TIME
from nervenbahn.availability import month_availability, quarter_months
from nervenbahn.config import StoreConfig
from nervenbahn.incident_monitor import MONITOR, IncidentMonitor
from nervenbahn.incidents import LEFT_OPEN_NOTE, STOPPED_NOTE, Incident, open_incident_store
from tests.api.test_health import FakeSupervision
from tests.storage.test_postgres_recovery import _named, terminate

T0 = datetime(2026, 4, 10, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreConfig:
    if request.param == "sqlite":
        return StoreConfig.parse(f"sqlite:///{tmp_path / 'store.db'}")
    return StoreConfig.parse(request.getfixturevalue("postgres_dsn"))


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


def _down() -> None:
    raise OSError("connection refused")


@pytest.fixture
def watched(store: StoreConfig) -> Iterator[tuple[IncidentMonitor, FakeSupervision, Clock]]:
    supervision = FakeSupervision({"relay": True, MONITOR: False}, {"case-events": 0})
    clock = Clock()
    monitor = IncidentMonitor(lambda: open_incident_store(store), supervision, max_lag=100,
                              probe_broker=lambda: None, probe_store=lambda: None, clock=clock)
    yield monitor, supervision, clock
    if monitor._store is not None:
        monitor._store.close_connection()


def _recorded(store: StoreConfig) -> list[Incident]:
    incidents = open_incident_store(store)
    try:
        return incidents.incidents()
    finally:
        incidents.close_connection()


def test_a_dead_worker_opens_an_incident_closed_when_it_runs_again(
    store: StoreConfig, watched: tuple[IncidentMonitor, FakeSupervision, Clock]
) -> None:
    monitor, supervision, clock = watched
    monitor.look()
    supervision.workers["relay"] = False
    clock.advance(1)
    monitor.look()
    clock.advance(1)
    monitor.look()
    assert _recorded(store) == [Incident("worker-down", "relay", T0 + timedelta(minutes=1))]

    supervision.workers["relay"] = True
    clock.advance(3)
    monitor.look()

    assert _recorded(store) == [Incident("worker-down", "relay", T0 + timedelta(minutes=1),
                                         T0 + timedelta(minutes=5))]


def test_lag_over_the_bound_opens_an_incident_closed_when_it_is_back_under(
    store: StoreConfig, watched: tuple[IncidentMonitor, FakeSupervision, Clock]
) -> None:
    monitor, supervision, clock = watched
    supervision.lags = {"case-events": 101, "case-facts": "not started yet"}
    monitor.look()
    supervision.lags = {"case-events": 100, "case-facts": 0}
    clock.advance(2)
    monitor.look()

    assert _recorded(store) == [Incident("relay-lag", "case-events", T0,
                                         T0 + timedelta(minutes=2))]


def test_an_unreachable_store_is_recorded_once_it_answers_again(
    store: StoreConfig, watched: tuple[IncidentMonitor, FakeSupervision, Clock]
) -> None:
    monitor, _, clock = watched
    monitor.probe_store = _down
    monitor.look()
    clock.advance(7)
    monitor.look()
    monitor.probe_store = lambda: None
    clock.advance(1)
    monitor.look()

    assert _recorded(store) == [Incident("store-unreachable", "event store", T0,
                                         T0 + timedelta(minutes=8),
                                         "recorded when the store answered again")]


def test_an_incident_left_open_by_a_killed_serve_ends_at_its_last_heartbeat(
    store: StoreConfig, watched: tuple[IncidentMonitor, FakeSupervision, Clock]
) -> None:
    monitor, _, clock = watched
    monitor.probe_broker = _down
    monitor.look()
    clock.advance(4)
    monitor.look()  # the last heartbeat before serve is killed (nothing closes it)
    assert _recorded(store) == [Incident("broker-unreachable", "kafka", T0)]

    incidents = open_incident_store(store)  # the next start
    try:
        assert incidents.close_left_open() == 1
    finally:
        incidents.close_connection()

    assert _recorded(store) == [Incident("broker-unreachable", "kafka", T0,
                                         T0 + timedelta(minutes=4), LEFT_OPEN_NOTE)]


def test_a_clean_stop_closes_what_is_open(
    store: StoreConfig, watched: tuple[IncidentMonitor, FakeSupervision, Clock]
) -> None:
    import threading

    monitor, supervision, _ = watched
    supervision.workers["relay"] = False
    stop = threading.Event()
    stop.set()
    monitor.look()
    monitor.run(stop, interval=60)

    assert _recorded(store) == [Incident("worker-down", "relay", T0, T0, STOPPED_NOTE)]


def test_availability_per_month_from_a_crafted_incident_table(store: StoreConfig) -> None:
    june = datetime(2026, 6, 1, tzinfo=SWISS_TIME)
    incidents = open_incident_store(store)
    try:  # 90 minutes out in June (30 days): 60 + 30, one overlapping the first
        incidents.record(Incident("worker-down", "relay", june + timedelta(hours=5),
                                  june + timedelta(hours=6)))
        incidents.record(Incident("relay-lag", "case-events", june + timedelta(hours=5, minutes=30),
                                  june + timedelta(hours=6, minutes=30)))
        incidents.record(Incident("broker-unreachable", "kafka",  # 20 s: one minute
                                  june + timedelta(days=3, seconds=10),
                                  june + timedelta(days=3, seconds=30)))
        recorded = incidents.incidents(gte=june)
    finally:
        incidents.close_connection()

    months = [month_availability(m, recorded, now=june + timedelta(days=90))
              for m in quarter_months(date(2026, 4, 1))]

    april, may, result = months
    assert (april.minutes, april.minutes_out, april.availability_percent) == (43200, 0, 100.0)
    assert (may.minutes, may.incidents) == (44640, 0)
    assert result.minutes == 43200
    assert result.minutes_out == 91
    assert result.minutes_by_kind == {"worker-down": 60, "relay-lag": 60,
                                      "broker-unreachable": 1, "store-unreachable": 0}
    assert result.incidents == 3
    assert result.availability_percent == 99.79


def test_march_has_an_hour_less_and_an_ongoing_incident_counts_until_now() -> None:
    start = datetime(2026, 3, 31, 23, 0, tzinfo=SWISS_TIME)
    ongoing = [Incident("worker-down", "api", start)]

    march = month_availability(date(2026, 3, 1), ongoing, now=start + timedelta(hours=5))

    assert march.minutes == 31 * 24 * 60 - 60
    assert march.minutes_out == 60


@pytest.mark.postgres
def test_the_incidents_connection_lost_in_a_restart_is_made_again(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    """A PostgreSQL restart ends the monitor's connection between two looks; the probe of the
    store answers again by then. The monitor died on its next look and stayed dead."""
    url, name = _named(postgres_dsn)
    store = StoreConfig.parse(url)
    supervision = FakeSupervision({"relay": True, MONITOR: False}, {"case-events": 0})
    clock = Clock()
    monitor = IncidentMonitor(lambda: open_incident_store(store), supervision, max_lag=100,
                              probe_broker=lambda: None, probe_store=lambda: None, clock=clock)
    try:
        monitor.look()
        assert terminate(postgres_server_url, name) == 1  # what a restart does to it
        clock.advance(1)
        monitor.look()  # no error: the store counts as down from here
        supervision.workers["relay"] = False
        clock.advance(1)
        monitor.look()
    finally:
        if monitor._store is not None:
            monitor._store.close_connection()

    assert _recorded(store) == [
        Incident("store-unreachable", "event store", T0 + timedelta(minutes=1),
                 T0 + timedelta(minutes=2), "recorded when the store answered again"),
        Incident("worker-down", "relay", T0 + timedelta(minutes=2)),
    ]

"""`nervenbahn status --incidents`: the incidents serve recorded, as a table or JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from domain.case import SWISS_TIME
from nervenbahn.config import StoreConfig
from nervenbahn.incidents import Incident, open_incident_store
from tests.cli.conftest import Cli

MAY = datetime(2026, 5, 4, 9, 0, tzinfo=SWISS_TIME)


def _recorded(tmp_path: Path) -> None:
    incidents = open_incident_store(StoreConfig.parse(f"sqlite:///{tmp_path / 'store.db'}"))
    try:
        incidents.record(Incident("worker-down", "projection-region", MAY,
                                  MAY + timedelta(minutes=3, seconds=5)))
        incidents.open("relay-lag", "case-events", MAY + timedelta(days=30))
    finally:
        incidents.close_connection()


def test_incidents_lists_kind_subject_start_end_and_duration(cli: Cli, tmp_path: Path) -> None:
    _recorded(tmp_path)

    table = cli("status", "--incidents")
    listed = cli("status", "--incidents", "--json")

    assert table.code == 0, table.err
    assert "worker-down" in table.out and "projection-region" in table.out
    assert "2026-05-04 09:00:00" in table.out and "3m 05s" in table.out
    assert "ongoing" in table.out
    rows = listed.json()
    assert [(r["kind"], r["subject"], r["ongoing"]) for r in rows] == [  # type: ignore[index, union-attr]
        ("worker-down", "projection-region", False), ("relay-lag", "case-events", True)]
    assert rows[0]["duration_seconds"] == 185  # type: ignore[index]


def test_incidents_since_a_day_leaves_out_those_ended_before(cli: Cli, tmp_path: Path) -> None:
    _recorded(tmp_path)

    since = cli("status", "--incidents", "--json", "--since", "2026-05-05")
    bad = cli("status", "--incidents", "--since", "May")

    assert [r["kind"] for r in since.json()] == ["relay-lag"]  # type: ignore[union-attr]
    assert bad.code == 1 and "since" in bad.err


def test_status_counts_the_open_incidents_and_since_needs_incidents(
    cli: Cli, tmp_path: Path
) -> None:
    _recorded(tmp_path)

    shown = cli("status")
    listed = cli("status", "--json")
    refused = cli("status", "--since", "2026-05-05")

    assert shown.code == 0, shown.err
    assert "open incidents: 1 (`nervenbahn status --incidents` lists them)" in shown.out
    assert listed.json()["open_incidents"] == 1  # type: ignore[index, call-overload]
    assert refused.code == 1 and "since" in refused.err and "--incidents" in refused.err

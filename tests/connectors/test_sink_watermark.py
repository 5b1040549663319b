"""A sink's completeness signal: `context.watermark()` and `context.complete_until(day)`, read in
`deliver` during a run and from the host after it, on the real broker and relay."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bus.consumer import Received
from connectors.errors import ConnectorError
from connectors.host import ConnectorHost, ConnectorSpec
from connectors.sdk import Sink
from domain.application.cases import CaseService
from domain.case import SWISS_TIME
from nervenbahn.container import Container, private_files
from tests.bus.pipeline import command
from tests.domain.case_desk import person_input

HERE = "tests.connectors.test_sink_watermark"


class DaySink(Sink):
    """Records each event's recorded time; in `deliver`, the watermark it was told."""

    def setup(self, tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS seen (recorded_at TEXT)")
        tx.execute("CREATE TABLE IF NOT EXISTS told (until TEXT, today_complete INTEGER)")

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO seen VALUES (?)", (received.headers["recorded_at"],))

    def deliver(self, tx: sqlite3.Connection) -> list[str]:
        assert self.context is not None
        mark = self.context.watermark()
        today = datetime.now(SWISS_TIME).date()
        until = None if mark.until is None else mark.until.isoformat()
        tx.execute("INSERT INTO told VALUES (?, ?)", (until, self.context.complete_until(today)))
        return []


def _host(tmp_path: Path, service: CaseService, bus: Container) -> ConnectorHost:
    spec = ConnectorSpec("days", "sink", f"{HERE}:DaySink", {}, base=tmp_path)
    return ConnectorHost({"days": spec}, service, tmp_path / "connectors", lambda: bus,
                         files=private_files())


def test_a_sink_is_told_up_to_when_everything_was_delivered(
    tmp_path: Path, connector_service: CaseService, connector_bus: Container
) -> None:
    for n in range(8):  # spread over the topic's partitions by case id
        connector_service.execute(command("open_case", municipality_bfs=2581,
                                          household_size=1, applicant=person_input(200 + n)))
    connector_bus.relay("case-events").run(threading.Event(), until_caught_up=True)
    host = _host(tmp_path, connector_service, connector_bus)
    try:
        assert host.watermark("days").until is None  # nothing delivered yet
        assert host.run("days", until_idle=True).ok
        mark = host.watermark("days")
        db = sqlite3.connect(tmp_path / "connectors" / "days.db")
        newest = max(datetime.fromisoformat(r[0]) for r in db.execute("SELECT * FROM seen"))
        told = db.execute("SELECT until, today_complete FROM told").fetchall()
        db.close()
        # Every partition at its end: complete up to the newest event the relay published.
        assert len({p.partition for p in mark.partitions}) >= 2
        assert mark.until == newest.astimezone(UTC)
        yesterday = datetime.now(SWISS_TIME).date() - timedelta(days=1)
        assert mark.complete_until(yesterday)
        assert not mark.complete_until(yesterday + timedelta(days=1))  # today is not over
        # Inside the run, deliver saw it too (the last time, after the last batch).
        assert told and told[-1] == (newest.astimezone(UTC).isoformat(), 0)
    finally:
        host.close()


def test_a_source_has_no_watermark(tmp_path: Path, connector_service: CaseService) -> None:
    spec = ConnectorSpec("front", "source", "tests.connectors.test_host:ListSource",
                         {"records": []}, base=tmp_path)
    host = ConnectorHost({"front": spec}, connector_service, tmp_path / "connectors",
                         files=private_files())
    try:
        with pytest.raises(ConnectorError, match="front is not a sink"):
            host.watermark("front")
        source = host.connector("front")
        assert source.context is not None
        with pytest.raises(ConnectorError, match="only a sink has a watermark"):
            source.context.watermark()
    finally:
        host.close()

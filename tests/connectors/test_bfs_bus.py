"""The BFS statistics sink end to end on the real broker, run by the connector runtime: cases
recorded in a SQLite store → reporting relay → case facts topic → sink → monthly files; the
same facts again give the same files; a crash mid-batch resumes without loss or duplicates."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest

from bus.consumer import Received
from bus.kafka_settings import KafkaSettings
from connectors._config import load_config
from connectors.bfs_statistics import BfsStatisticsSink
from connectors.host import ConnectorHost
from domain.case import SWISS_TIME
from domain.reference import load_reference_data
from nervenbahn.container import private_files
from projections.reporting_facts import Pseudonymiser
from tests.bus.pipeline import Pipeline, pipeline
from tests.projections.reporting_fixture import ADMIN, ahvn13

OLTEN, SOLOTHURN = 2581, 2601
X, Y = UUID(int=0xB5F0001), UUID(int=0xB5F0002)
_NS = UUID("0d7e3c1a-4b6f-4a55-9a0b-5c2f7e1d9b33")
MONTHS = ("2026-01", "2026-02", "2026-03")


def records() -> list[dict[str, Any]]:
    """X: Olten, support from 2026-01-16 (decided 01-20), open. Y: Solothurn, support from
    2026-02-01 (decided 01-28), closed 2026-03-15 (employment). One person each, housing 1200,
    health insurance 350, no income; recorded on their effective days."""
    out: list[dict[str, Any]] = []

    def add(case: UUID, day: str, command: str, **data: Any) -> None:
        at = datetime.combine(date.fromisoformat(day), time(10), tzinfo=SWISS_TIME)
        out.append({
            "recorded_at": (at + timedelta(minutes=len(out))).isoformat(), "command": command,
            "data": {"actor": ADMIN, "correlation_id": str(uuid5(_NS, str(len(out)))),
                     "case_id": str(case), **data},
        })

    for case, bfs, opened, decided, support_from in (
        (X, OLTEN, "2026-01-05", "2026-01-20", "2026-01-16"),
        (Y, SOLOTHURN, "2026-01-10", "2026-01-28", "2026-02-01"),
    ):
        applicant = {"given_name": "Mira", "family_name": "Statistik",
                     "ahvn13": ahvn13(case.int % 97), "birth_date": "1975-03-02",
                     "street": "Bahnhofstrasse 3", "postal_code": "4600", "town": "Olten"}
        add(case, opened, "open_case", municipality_bfs=bfs, household_size=1,
            applicant=applicant, application_date=opened)
        add(case, opened, "complete_assessment", needs=["financial"], employability="employable",
            assessment_date=opened)
        add(case, decided, "grant_support", support_from=support_from, decision_date=decided,
            housing="1200.00", health_insurance="350.00", income="0.00")
    add(Y, "2026-03-15", "close_case", reason="employment", closing_date="2026-03-15")
    return out


def expected_files(pseudonym: dict[UUID, str]) -> dict[str, list[str]]:
    """By hand: the monthly budget is the SKOS basic need for one person (reference data file)
    + 1200 + 350; January 16 of 31 days for X; March 15 of 31 days for Y."""
    total = load_reference_data().skos.rate_on(date(2026, 1, 16)).one_person + Decimal("1550")
    assert load_reference_data().skos.rate_on(date(2026, 3, 1)).one_person + 1550 == total

    def part(days: int, of: int) -> str:
        return str((total * days / of).quantize(Decimal("0.01"), ROUND_HALF_UP))

    x, y = pseudonym[X], pseudonym[Y]
    first_x, first_y = x < y, y < x  # rows are sorted by dossier id
    header = ("record,reporting_month,dossier_id,dossier_seq,canton,municipality_bfs,status,"
              "support_start,support_end,end_reason,household_size,booking_month,booking_kind,"
              "amount_chf")
    d_x = {m: f"dossier,{m},{x},1,SO,{OLTEN},{s},2026-01-16,,,1,,," for m, s in
           (("2026-01", "new"), ("2026-02", "ongoing"), ("2026-03", "ongoing"))}
    d_y = {"2026-02": f"dossier,2026-02,{y},1,SO,{SOLOTHURN},new,2026-02-01,,,1,,,",
           "2026-03": f"dossier,2026-03,{y},1,SO,{SOLOTHURN},closed,2026-02-01,2026-03-15,"
                      "employment,1,,,"}
    b_x = {m: f"booking,{m},{x},1,SO,,,,,,,{m},regular,{a}" for m, a in
           (("2026-01", part(16, 31)), ("2026-02", part(1, 1)), ("2026-03", part(1, 1)))}
    b_y = {m: f"booking,{m},{y},1,SO,,,,,,,{m},regular,{a}" for m, a in
           (("2026-02", part(1, 1)), ("2026-03", part(15, 31)))}
    files = {}
    for m in MONTHS:
        dossiers = [r for r in (d_x.get(m), d_y.get(m)) if r]
        bookings = [r for r in (b_x.get(m), b_y.get(m)) if r]
        if not first_x:
            dossiers.reverse()
            bookings.reverse()
        assert first_x or first_y
        files[f"bfs-shs-so-{m}.csv"] = [header, *dossiers, *bookings]
    return files


class Crash(BaseException):
    """The process dies (not an error a consumer could dead-letter)."""


class CrashingSink(BfsStatisticsSink):
    """Dies at its `crash_at`-th fact (counted over the process), once."""

    handled = 0
    crash_at = 5

    def handle(self, received: Received, tx: Any) -> None:
        type(self).handled += 1
        if type(self).handled == self.crash_at:
            raise Crash(f"died at fact {self.crash_at}")
        super().handle(received, tx)


SINK = "connectors.bfs_statistics:BfsStatisticsSink"
NAME = "bfs_crash"


def configure(tmp_path: Path, cls: str, outbox: Path, name: str = "bfs", *,
              closed: bool = False) -> Path:
    """The configuration file; `closed`: the operator declares January to March complete."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[connectors.{name}]\nkind = "sink"\nclass = "{cls}"\n'
        f'[connectors.{name}.options]\noutbox = "{outbox}"\nfirst_month = "2026-01"\n'
        + ('complete_through = "2026-03"\n' if closed else "")
    )
    return path


def run(line: Pipeline, tmp_path: Path, config: Path, name: str = "bfs") -> Any:
    runtime = ConnectorHost(load_config(config), line.service, tmp_path / "connectors",
                             bus=lambda: line.container, files=private_files())
    try:
        return runtime.run(name, until_idle=True, poll_seconds=0.3)
    finally:
        runtime.close()


def seeded(line: Pipeline) -> dict[UUID, str]:
    """Record the cases, relay their facts; the pseudonyms of X and Y."""
    line.service.import_records(json.dumps(r) for r in records())
    key = line.settings.reporting_key
    assert key is not None
    with line.container.relay("case-facts") as relay:
        relay.run(threading.Event(), until_caught_up=True)
    pseudonyms = Pseudonymiser(base64.b64decode(key.get_secret_value()))
    return {case: pseudonyms.case(case) for case in (X, Y)}


def contents(outbox: Path) -> dict[str, list[str]]:
    return {p.name: p.read_text().splitlines() for p in sorted(outbox.glob("*.csv"))}


def test_facts_on_the_broker_become_the_monthly_files_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        pseudonym = seeded(line)
        outbox = tmp_path / "outbox"
        first = run(line, tmp_path, configure(tmp_path, SINK, outbox))
        # X's partition has seen nothing recorded after January: no month is complete yet
        held = contents(outbox)
        closing = run(line, tmp_path, configure(tmp_path, SINK, outbox, closed=True))
        files = contents(outbox)
        again = run(line, tmp_path, configure(tmp_path, SINK, outbox, closed=True))
        replay = tmp_path / "replay"  # the same facts, a second sink with its own database
        run(line, tmp_path, configure(tmp_path, SINK, replay, "bfs_replay"), "bfs_replay")
        run(line, tmp_path, configure(tmp_path, SINK, replay, "bfs_replay", closed=True),
            "bfs_replay")

    assert first.ok and first.handled == len(records()) and first.rejected == 0
    assert held == {}
    assert closing.ok and sorted(closing.delivered) == sorted(expected_files(pseudonym))
    assert files == expected_files(pseudonym)
    assert again.handled == 0 and again.delivered == []
    assert contents(outbox) == files == contents(replay)
    raw = "".join("".join(lines) for lines in files.values())
    assert str(X) not in raw and "Statistik" not in raw  # pseudonyms only


def test_a_crash_mid_batch_resumes_without_loss_or_duplicate_rows(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    # a group of its own: the broker is shared by the tests of this session
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        pseudonym = seeded(line)
        outbox = tmp_path / "outbox"
        with pytest.raises(Crash):
            run(line, tmp_path, configure(tmp_path, f"{__name__}:CrashingSink", outbox, NAME),
                NAME)
        with sqlite3.connect(tmp_path / "connectors" / f"{NAME}.db") as db:
            kept = db.execute("SELECT count(*) FROM bfs_facts").fetchone()[0]
        resumed = run(line, tmp_path, configure(tmp_path, SINK, outbox, NAME), NAME)
        closing = run(line, tmp_path, configure(tmp_path, SINK, outbox, NAME, closed=True), NAME)

    assert kept < CrashingSink.crash_at  # the dying batch was rolled back
    assert resumed.ok and kept + resumed.handled == len(records())
    assert closing.ok and contents(outbox) == expected_files(pseudonym)
    with sqlite3.connect(tmp_path / "connectors" / f"{NAME}.db") as db:
        facts = db.execute("SELECT count(*), count(DISTINCT pseudonym || sequence) "
                           "FROM bfs_facts").fetchone()
        bookings = db.execute("SELECT count(*) FROM bfs_bookings").fetchone()[0]
    assert facts == (len(records()), len(records()))
    assert bookings == 5  # X in three months, Y in two: no booking twice

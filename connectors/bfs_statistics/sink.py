"""The BFS statistics sink: case facts in, one delivery file per complete month out.

`handle` keeps each fact's statistical fields in `bfs_facts`, marks its case as changed
(`bfs_cases`) and moves its partition's watermark (the latest recorded day seen there, Swiss
time) — all in the consumer's transaction. `deliver` writes every complete month not yet
delivered, in order:

- a month is **complete** once every partition of the facts topic (option `partitions`,
  default NERVENBAHN_KAFKA_PARTITIONS, 4) has shown a fact recorded on or after the first day
  of the next month plus `grace_days` (default 0) — a case's facts stay in one partition, so a
  lagging partition, or one not read yet (after a restart the first batches may come from a
  single partition), holds the month back; a partition that never carries a fact holds every
  month back until the operator closes months with `complete_through` — or when
  option `complete_through` ("YYYY-MM") names it or a later month; that option takes effect at
  the next `deliver` (the runtime calls it when a run starts): set it for a run after the sink
  has caught up. Deliveries start at option `first_month` ("YYYY-MM"; default: the month of
  the earliest support seen);
- a delivery is **recorded** (content, SHA-256, its bookings) in the sink's database in the
  same transaction as the consumer's offsets, then written atomically (temporary file,
  `os.replace`) as `<outbox>/bfs-shs-<canton>-<YYYY-MM>.csv`; a recorded delivery is never
  computed again, and a missing or damaged file is rewritten from the recorded content;
- a fact that arrives after its month was delivered changes nothing in that file: the next
  delivery carries a `correction` booking per earlier month whose amount owed now differs from
  what was delivered for it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import structlog
from pydantic import Field, field_validator

from bus.consumer import Received, Rejected
from connectors.bfs_statistics.builder import (
    BookingRow,
    CaseDossiers,
    DossierRow,
    ReportingFact,
    fold,
    month_rows,
    next_month,
    owed,
    render_csv,
)
from connectors.sdk import ConnectorContext, ConnectorOptions, Sink
from domain.case import SWISS_TIME
from domain.entitlement import month_of, months_between
from schemas.sql import Component, Migration, migrate, placeholder

__all__ = ["BfsStatisticsOptions", "BfsStatisticsSink"]

log = structlog.get_logger("nervenbahn.connectors.bfs_statistics")

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_TABLES = (
    "CREATE TABLE IF NOT EXISTS bfs_facts (pseudonym TEXT NOT NULL, sequence INTEGER NOT NULL, "
    "fact TEXT NOT NULL, effective_date TEXT NOT NULL, recorded_at TEXT NOT NULL, "
    "support_from TEXT, municipality_bfs INTEGER, household_size INTEGER, budget_total TEXT, "
    "closure_reason TEXT, PRIMARY KEY (pseudonym, sequence))",
    "CREATE TABLE IF NOT EXISTS bfs_cases (pseudonym TEXT PRIMARY KEY, "
    "changed INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bfs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bfs_deliveries (month TEXT PRIMARY KEY, file TEXT NOT NULL, "
    "sha256 TEXT NOT NULL, dossiers INTEGER NOT NULL, bookings INTEGER NOT NULL, "
    "content TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bfs_bookings (reporting_month TEXT NOT NULL, "
    "dossier_id TEXT NOT NULL, dossier_seq INTEGER NOT NULL, booking_month TEXT NOT NULL, "
    "kind TEXT NOT NULL, amount TEXT NOT NULL)",
)
MIGRATIONS = Component(
    "bfs_statistics_sink",
    [Migration(1, "facts, cases, deliveries, bookings", sqlite=_TABLES, postgres=_TABLES)],
    tables=["bfs_facts"],
)
"""The sink's tables: the same portable DDL on both backends (on PostgreSQL it runs in the
connection's current schema)."""
_FACT_COLUMNS = (
    "sequence", "fact", "effective_date", "recorded_at", "support_from", "municipality_bfs",
    "household_size", "budget_total", "closure_reason",
)


@dataclass(frozen=True)
class _StoredFact:
    """A fact as the sink keeps it (what `builder.fold` reads)."""

    sequence: int
    fact: str
    effective_date: date
    recorded_at: datetime
    support_from: date | None
    municipality_bfs: int | None
    household_size: int | None
    budget_total: Decimal | None
    closure_reason: str | None


class BfsStatisticsOptions(ConnectorOptions):
    """The options of the BFS statistics sink."""

    outbox: str | None = Field(
        None,
        description="The folder the delivery files go to (relative: to the configuration "
        "file); default `outbox` in the connector's working folder.",
    )
    canton: str = Field("SO", description="The canton's abbreviation, in the file names.")
    first_month: str | None = Field(
        None, description="The first month delivered (YYYY-MM); default: the month of the "
        "earliest support seen."
    )
    complete_through: str | None = Field(
        None, description="Close every month up to this one (YYYY-MM) even if a partition "
        "has not shown a later fact; set it for a run after the sink has caught up."
    )
    grace_days: int = Field(
        0, description="Days after a month's end before a fact closes it (0..60)."
    )
    partitions: int | None = Field(
        None, description="The partitions of the facts topic; default "
        "NERVENBAHN_KAFKA_PARTITIONS."
    )

    @field_validator("canton")
    @classmethod
    def _canton(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"{value!r} is not a canton abbreviation like 'SO'")
        return value

    @field_validator("first_month", "complete_through")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value is not None and not _MONTH.fullmatch(value):
            raise ValueError(f"{value!r} is not a month YYYY-MM")
        return value

    @field_validator("grace_days")
    @classmethod
    def _grace(cls, value: int) -> int:
        if not 0 <= value <= 60:
            raise ValueError(f"{value!r} is not a whole number of days 0..60")
        return value

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"{value!r} is not a number of partitions (>= 1)")
        return value


class BfsStatisticsSink(Sink):
    """Monthly delivery modelled on the BFS social-assistance statistics (SHS), from the
    pseudonymised case facts only (dataset "case-facts").

    Options (`BfsStatisticsOptions`): `outbox` (folder; default `<connector folder>/outbox`),
    `canton` ("SO"), `first_month`, `complete_through` ("YYYY-MM"), `grace_days` (0),
    `partitions` (of the facts topic; default NERVENBAHN_KAFKA_PARTITIONS).
    """

    dataset: ClassVar[str] = "case-facts"
    Options = BfsStatisticsOptions
    options: BfsStatisticsOptions

    def __init__(self, name: str, options: Mapping[str, Any] | ConnectorOptions) -> None:
        super().__init__(name, options)
        self.canton = self.options.canton
        self.first_month = _month_option(self.options.first_month)
        self.complete_through = _month_option(self.options.complete_through)
        self.grace_days = self.options.grace_days
        self._partitions: int | None = self.options.partitions

    @property
    def partitions(self) -> int:
        """The partitions of the facts topic: the option, else those of the bus's topics
        (the context's, NERVENBAHN_KAFKA_PARTITIONS)."""
        if self._partitions is not None:
            return self._partitions
        return self.context.partitions if self.context else ConnectorContext.partitions

    # --- the SDK ------------------------------------------------------------------------------

    def setup(self, tx: Any) -> None:
        """Create the sink's tables (idempotent)."""
        migrate(getattr(tx, "raw", tx), MIGRATIONS)

    def handle(self, received: Received, tx: Any) -> None:
        """Keep the fact's statistical fields; mark its case changed; move the watermark."""
        p = placeholder(tx)
        fact = received.event
        if not isinstance(fact, ReportingFact):
            raise Rejected(f"{received.event_type} is not a CaseFact")
        tx.execute(
            f"INSERT INTO bfs_facts (pseudonym, {', '.join(_FACT_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join([p] * (len(_FACT_COLUMNS) + 1))}) "
            "ON CONFLICT (pseudonym, sequence) DO NOTHING",
            (
                fact.case_pseudonym, fact.sequence, fact.fact, fact.effective_date.isoformat(),
                fact.recorded_at.isoformat(), _iso(fact.support_from), fact.municipality_bfs,
                fact.household_size,
                None if fact.budget_total is None else str(fact.budget_total),
                fact.closure_reason,
            ),
        )
        tx.execute(
            f"INSERT INTO bfs_cases (pseudonym, changed) VALUES ({p}, 1) "  # noqa: S608
            "ON CONFLICT (pseudonym) DO UPDATE SET changed = 1",
            (fact.case_pseudonym,),
        )
        day = fact.recorded_at.astimezone(SWISS_TIME).date().isoformat()
        key = f"watermark:{received.topic}:{received.partition}"
        if day > (_meta(tx, key) or ""):
            _set_meta(tx, key, day)

    def deliver(self, tx: Any) -> list[str]:
        """Record and write every complete month not yet delivered; rewrite a recorded
        delivery whose file is missing. The files written."""
        written = self._restore_files(tx)
        months = self._pending_months(tx)
        if not months:
            return written
        cases = self._cases(tx)
        for month in months:
            written.append(self._deliver_month(tx, month, cases))
        return written

    def problems(self, tx: Any) -> list[str]:
        """Recorded deliveries whose file is not in the outbox as recorded."""
        return [
            f"{file}: missing or changed in {self.outbox}; the next run writes it again"
            for _, file, digest in self._recorded(tx)
            if _digest(self.outbox / file) != digest
        ]

    # --- deliveries ---------------------------------------------------------------------------

    @property
    def outbox(self) -> Path:
        """The folder the delivery files go to."""
        if self.options.outbox is not None:
            value = self.options.outbox
            return self.context.path(value) if self.context else Path(value)
        if self.context is None:
            raise ValueError("outbox: not set, and no connector folder to default to")
        return self.context.folder / "outbox"

    def file_name(self, month: date) -> str:
        """`bfs-shs-<canton>-<YYYY-MM>.csv`."""
        return f"bfs-shs-{self.canton.lower()}-{month:%Y-%m}.csv"

    def _pending_months(self, db: Any) -> list[date]:
        """The complete months after the last delivered one (or from the first month)."""
        last_complete = self._last_complete(db)
        if last_complete is None:
            return []
        delivered = _scalar(db, "SELECT max(month) FROM bfs_deliveries")
        if delivered is not None:
            start = next_month(date.fromisoformat(delivered + "-01"))
        else:
            start_or_none = self.first_month or _earliest_support(db)
            if start_or_none is None:
                return []
            start = start_or_none
        return months_between(start, last_complete) if start <= last_complete else []

    def _last_complete(self, db: Any) -> date | None:
        candidates = []
        p, watermarks = placeholder(db), ("watermark:%",)  # a literal `%` would not pass psycopg
        watermark = _scalar(
            db, f"SELECT min(value) FROM bfs_meta WHERE key LIKE {p}", watermarks  # noqa: S608
        )
        seen_partitions = _scalar(
            db, f"SELECT count(*) FROM bfs_meta WHERE key LIKE {p}", watermarks  # noqa: S608
        )
        if watermark is not None and int(seen_partitions or 0) >= self.partitions:
            seen = date.fromisoformat(watermark) - timedelta(days=self.grace_days)
            candidates.append(month_of(month_of(seen) - timedelta(days=1)))
        if self.complete_through is not None:
            candidates.append(self.complete_through)
        return max(candidates, default=None)

    def _deliver_month(
        self, db: Any, month: date, cases: dict[str, CaseDossiers]
    ) -> str:
        p = placeholder(db)
        dossiers: list[DossierRow] = []
        bookings: list[BookingRow] = []
        for case in cases.values():
            rows, regular = month_rows(case, month)
            dossiers += rows
            bookings += regular
        bookings += self._corrections(db, month, cases)
        content = render_csv(self.canton, dossiers, bookings)
        name = self.file_name(month)
        digest = hashlib.sha256(content.encode()).hexdigest()
        db.execute(
            "INSERT INTO bfs_deliveries (month, file, sha256, dossiers, bookings, content) "  # noqa: S608
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
            (f"{month:%Y-%m}", name, digest, len(dossiers), len(bookings), content),
        )
        for b in bookings:
            db.execute(
                f"INSERT INTO bfs_bookings VALUES ({p}, {p}, {p}, {p}, {p}, {p})",  # noqa: S608
                (f"{b.reporting_month:%Y-%m}", b.dossier_id, b.dossier_seq,
                 f"{b.booking_month:%Y-%m}", b.kind, str(b.amount)),
            )
        db.execute("UPDATE bfs_cases SET changed = 0 WHERE changed = 1")
        self._write(name, content, digest)
        log.info("bfs delivery recorded", month=f"{month:%Y-%m}", file=name,
                 dossiers=len(dossiers), bookings=len(bookings))
        return name

    def _corrections(
        self, db: Any, month: date, cases: dict[str, CaseDossiers]
    ) -> list[BookingRow]:
        """For each case changed since the last delivery: what earlier delivered months are
        owed now minus what was delivered for them."""
        changed = {
            row[0] for row in db.execute("SELECT pseudonym FROM bfs_cases WHERE changed = 1")
        }
        delivered: dict[tuple[str, int, str], Decimal] = defaultdict(Decimal)
        for dossier_id, seq, booking_month, amount in db.execute(
            "SELECT dossier_id, dossier_seq, booking_month, amount FROM bfs_bookings"
        ):
            if dossier_id in changed:
                delivered[(dossier_id, seq, booking_month)] += Decimal(amount)
        first = _scalar(db, "SELECT min(month) FROM bfs_deliveries")
        if first is None:
            return []
        earlier = months_between(date.fromisoformat(first + "-01"), month - timedelta(days=1))
        corrections = []
        for pseudonym in sorted(changed & set(cases)):
            case = cases[pseudonym]
            for dossier in case.dossiers():
                for booked in earlier:
                    key = (pseudonym, dossier.seq, f"{booked:%Y-%m}")
                    difference = owed(dossier, case.budgets, booked) - delivered[key]
                    if difference:
                        corrections.append(BookingRow(month, pseudonym, dossier.seq, booked,
                                                      "correction", difference))
        return corrections

    def _cases(self, db: Any) -> dict[str, CaseDossiers]:
        facts: dict[str, list[_StoredFact]] = defaultdict(list)
        for row in db.execute(
            f"SELECT pseudonym, {', '.join(_FACT_COLUMNS)} FROM bfs_facts"  # noqa: S608
        ):
            facts[row[0]].append(_stored(row[1:]))
        return {pseudonym: fold(pseudonym, rows) for pseudonym, rows in facts.items()}

    # --- files --------------------------------------------------------------------------------

    def _recorded(self, db: Any) -> list[tuple[str, str, str]]:
        return [tuple(row) for row in db.execute(
            "SELECT month, file, sha256 FROM bfs_deliveries ORDER BY month"
        )]

    def _restore_files(self, db: Any) -> list[str]:
        p = placeholder(db)
        written = []
        for month, name, digest in self._recorded(db):
            if _digest(self.outbox / name) != digest:
                content = str(_scalar(db, f"SELECT content FROM bfs_deliveries WHERE month = {p}",  # noqa: S608
                                      (month,)))
                self._write(name, content, digest)
                written.append(name)
        return written

    def _write(self, name: str, content: str, digest: str) -> None:
        """Write the file atomically, unless it is there with this content already."""
        target = self.outbox / name
        if _digest(target) == digest:
            return
        if target.exists():
            log.warning("bfs delivery file replaced by its recorded content", file=name)
        self.outbox.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{name}.tmp")
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)




def _scalar(db: Any, statement: str, parameters: tuple[Any, ...] = ()) -> Any:
    row = db.execute(statement, parameters).fetchone()
    return None if row is None else row[0]


def _meta(db: Any, key: str) -> str | None:
    p = placeholder(db)
    row = db.execute(f"SELECT value FROM bfs_meta WHERE key = {p}", (key,)).fetchone()  # noqa: S608
    return None if row is None else str(row[0])


def _set_meta(db: Any, key: str, value: str) -> None:
    p = placeholder(db)
    db.execute(
        f"INSERT INTO bfs_meta (key, value) VALUES ({p}, {p}) "  # noqa: S608
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _earliest_support(db: Any) -> date | None:
    row = db.execute(
        "SELECT min(support_from) FROM bfs_facts WHERE fact = 'granted'"
    ).fetchone()
    return None if row is None or row[0] is None else month_of(date.fromisoformat(row[0]))


def _stored(row: Any) -> _StoredFact:
    sequence, fact, effective, recorded, support_from, bfs, size, total, reason = row
    return _StoredFact(
        int(sequence), fact, date.fromisoformat(effective), datetime.fromisoformat(recorded),
        date.fromisoformat(support_from) if support_from else None,
        bfs, size, Decimal(total) if total is not None else None, reason,
    )


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _month_option(value: str | None) -> date | None:
    """The first day of a month option ("YYYY-MM", checked by the options' model)."""
    return None if value is None else date.fromisoformat(value + "-01")

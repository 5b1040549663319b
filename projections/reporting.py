"""The canton's reporting read model: pseudonymised case facts, and quarterly figures per
social region computed from them (definitions in docs/reporting.md).

It holds no personal data: only the facts of the reporting topic (`reporting_facts`), keyed
by fact id and ordered per case pseudonym. It is fed two ways that give the same table:
incrementally by a consumer of the reporting topic (`handle`, decoded `CaseFact`s), and by a
rebuild straight from the event store (`apply`, case events turned into facts by the same
`case_fact` the reporting relay uses, with the same reporting key). Either way the
bookkeeping of what was applied (`processed_events`) holds the keyed fact ids, never the
source events' public ids (`processed_id`).
"""

from __future__ import annotations

import base64
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from itertools import groupby, pairwise
from typing import Any, ClassVar, Self, get_args
from uuid import UUID

from bus.consumer import Received
from domain.commands import ClosureReason
from domain.events import CaseHandedOver, CaseOpened
from domain.reference import load_reference_data
from projections.framework import Projection, ProjectionError, ProjectionSettings
from projections.reporting_aggregates import (
    AGGREGATE_TABLES,
    AGGREGATES_MIGRATION,
    DECISION,
    DURATION,
    ONE_STATE_MIGRATION,
    VERSION_MIGRATION,
    CaseContributions,
    CaseFactRow,
    CaseHead,
    Contributions,
    QuarterCounts,
    SupportPeriod,
    aggregates_version,
    quarter_counts,
    start_maintaining,
    update_aggregates,
)
from projections.reporting_facts import (
    NO_FACT_EVENTS,
    CaseFact,
    Pseudonymiser,
    case_fact,
    recorded_day,
)
from projections.storage import SQLConnection, execute_many
from schemas.sql import Component, Migration, placeholder

__all__ = [
    "CANTON",
    "CLOSURE_REASONS",
    "Quarter",
    "RegionQuarter",
    "ReportingKeyMissingError",
    "ReportingProjection",
    "aggregates_version",
    "canton_figures",
    "quarterly_figures",
    "stored_figures",
]

CLOSURE_REASONS: tuple[str, ...] = get_args(ClosureReason)
"""Every closure reason, in the order reports show them."""
CANTON = "canton"
"""The `region` of the figures for the whole canton."""

_COLUMNS = (
    "fact_id", "case_pseudonym", "sequence", "social_region", "fact", "effective_date",
    "recorded_at", "imported", "support_from", "employability", "refusal_reasons",
    "goal_category", "item_ref", "measure_kind", "break_off_reason", "budget_reason",
    "review_outcome", "to_region", "closure_reason", "reopening_reason",
)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS reporting_facts (fact_id TEXT PRIMARY KEY, "
    "case_pseudonym TEXT NOT NULL, sequence INTEGER NOT NULL, social_region TEXT NOT NULL, "
    "fact TEXT NOT NULL, effective_date TEXT NOT NULL, recorded_at TEXT NOT NULL, "
    "imported INTEGER NOT NULL, support_from TEXT, employability TEXT, "
    "refusal_reasons TEXT NOT NULL, goal_category TEXT, item_ref TEXT, measure_kind TEXT, "
    "break_off_reason TEXT, budget_reason TEXT, review_outcome TEXT, to_region TEXT, "
    "closure_reason TEXT, reopening_reason TEXT, UNIQUE (case_pseudonym, sequence))",
)
MIGRATIONS = Component(
    "read_model_reporting",
    [Migration(1, "the pseudonymised reporting facts", sqlite=_TABLES, postgres=_TABLES),
     AGGREGATES_MIGRATION, ONE_STATE_MIGRATION, VERSION_MIGRATION],
    tables=["reporting_facts"],
)
"""The read model's tables: the same portable DDL on both backends (on PostgreSQL it runs in
the read models' schema, the connection's search path)."""


class ReportingKeyMissingError(ProjectionError):
    """The reporting projection was asked to turn case events into facts without the key."""


class ReportingProjection(Projection):
    """Pseudonymised case facts, the source of the canton's quarterly figures."""

    name: ClassVar[str] = "reporting"
    tables: ClassVar[tuple[str, ...]] = ("reporting_facts", *AGGREGATE_TABLES)
    migrations: ClassVar[Component] = MIGRATIONS
    dataset: ClassVar[str] = "case-facts"

    def __init__(self, reporting_key: bytes | None = None) -> None:
        self._pseudonyms = Pseudonymiser(reporting_key) if reporting_key is not None else None
        self._contributions = CaseContributions()

    @classmethod
    def from_settings(cls, settings: ProjectionSettings) -> Self:
        """With the installation's reporting key (`Settings.reporting_key`), as the relay."""
        key = settings.reporting_key
        return cls(base64.b64decode(key.get_secret_value()) if key is not None else None)

    def apply(self, event: Any, tx: SQLConnection) -> None:
        """Rebuild path: a case event from the store, turned into its fact first."""
        self.apply_batch([event], tx)

    def apply_batch(self, events: Sequence[Any], tx: SQLConnection) -> None:
        """Rebuild path: case events from the store, turned into their facts in order. A
        case whose facts in the batch all come after its last one (a rebuild's usual case)
        has its head read once, its facts walked in memory and inserted with the others in
        one statement, and the batch's aggregates changed in one more: the sum of what each
        fact changes, as `apply_fact` one by one leaves them. Any other case (a fact met
        again, one older than the case's last) goes fact by fact through `_store`."""
        pseudonyms = self._key()
        cases: dict[str, list[Any]] = {}
        for event in events:
            if type(event).__name__ not in NO_FACT_EVENTS:
                cases.setdefault(pseudonyms.case(event.originator_id), []).append(event)
        heads = {case: _case_head(tx, case) for case in cases}
        if any(not head.facts for head in heads.values()):
            start_maintaining(tx)
        rows: list[tuple[Any, ...]] = []
        added = Contributions()
        for case, case_events in cases.items():
            head = heads[case]
            versions = [event.originator_version for event in case_events]
            after_last = head.last.sequence if head.last is not None else 0
            if versions[0] <= after_last or any(a >= b for a, b in pairwise(versions)):
                for event in case_events:
                    now = _case_head(tx, case)
                    self._store(self._fact(event, now, pseudonyms, case), tx, now)
                continue
            last, facts = head.last, []
            for event in case_events:
                fact = self._fact(event, CaseHead(1, last), pseudonyms, case)
                rows.append(_row(fact))
                last = _fact_row(fact)
                facts.append(last)
            added.add(self._contributions.extend(
                case, head, facts, partial(_case_fact_rows, tx, case)))
        if rows:
            execute_many(tx, _insert_fact(tx), rows)
        update_aggregates(tx, Contributions(), added)

    @staticmethod
    def _fact(event: Any, head: CaseHead, pseudonyms: Pseudonymiser,
              case: str | None = None) -> CaseFact:
        """The fact of a case event, the case's head before it giving its region."""
        region = None
        if not isinstance(event, CaseOpened | CaseHandedOver):
            region = _region_now(head, case or pseudonyms.case(event.originator_id))
        return case_fact(event, region=region, pseudonyms=pseudonyms)

    def processed_id(self, event: Any) -> UUID | None:
        """The keyed fact id the reporting relay publishes the event's fact under (the
        `event_id` header the consumer records), None for an event without a fact: never
        the event's public id, which anyone who knows the case id can compute."""
        if type(event).__name__ in NO_FACT_EVENTS:
            return None
        return self._key().fact_id(event.originator_id, event.originator_version)

    def _key(self) -> Pseudonymiser:
        if self._pseudonyms is None:
            raise ReportingKeyMissingError(
                "the reporting projection needs the reporting key to pseudonymise case ids: "
                "set NERVENBAHN_REPORTING_KEY (the same as the reporting relay's)"
            )
        return self._pseudonyms

    def recorded_at(self, event: Any) -> datetime | None:
        """A fact's recorded day (a case event of the rebuild: its recorded time coarsened to
        the day, as its fact): the reporting read model knows no more precise time."""
        if isinstance(event, CaseFact):
            return event.recorded_at
        moment = super().recorded_at(event)
        return recorded_day(moment) if moment is not None else None

    def handle(self, received: Received, tx: SQLConnection) -> None:
        """Incremental path: the handler of a consumer of the reporting topic (a CaseFact)."""
        self.apply_fact(received.event, tx)

    def apply_fact(self, fact: CaseFact, tx: SQLConnection) -> None:
        """Record one fact (facts arrive in order per case), and what it changes in the
        quarterly figures' aggregates (`projections.reporting_aggregates`)."""
        self._store(fact, tx, _case_head(tx, fact.case_pseudonym))

    def _store(self, fact: CaseFact, tx: SQLConnection, head: CaseHead) -> None:
        """`apply_fact`, given the case's head so far (count of facts, last fact)."""
        case = fact.case_pseudonym
        if not head.facts:
            start_maintaining(tx)
        met_again = head.last is not None and fact.sequence <= head.last.sequence and any(
            known.sequence == fact.sequence for known in _case_fact_rows(tx, case))
        tx.execute(_insert_fact(tx), _row(fact))
        if met_again:
            return  # the same fact again: nothing the figures use changed
        new = _fact_row(fact)
        self._contributions.update(tx, case, head, new, lambda: [
            known for known in _case_fact_rows(tx, case) if known.sequence != fact.sequence])


def _insert_fact(tx: SQLConnection) -> str:
    """The statement of a fact's row (`_row`). A case's fact at a sequence is one fact: met
    again under another id (facts published before fact ids were keyed, then again after the
    topic was emptied), it takes the new id and recorded day instead of counting twice."""
    return (
        f"INSERT INTO reporting_facts ({', '.join(_COLUMNS)}) "  # noqa: S608 - our names
        f"VALUES ({', '.join([placeholder(tx)] * len(_COLUMNS))}) "
        "ON CONFLICT (case_pseudonym, sequence) DO UPDATE SET "
        "fact_id = excluded.fact_id, recorded_at = excluded.recorded_at"
    )


def _row(fact: CaseFact) -> tuple[Any, ...]:
    """A fact as the values of `_insert_fact`."""
    row = {name: getattr(fact, name) for name in _COLUMNS}
    row |= {
        "effective_date": fact.effective_date.isoformat(),
        "recorded_at": fact.recorded_at.isoformat(),
        "fact_id": str(fact.fact_id),
        "imported": int(fact.imported),
        "support_from": fact.support_from.isoformat() if fact.support_from else None,
        "refusal_reasons": ",".join(fact.refusal_reasons),
    }
    return tuple(row[name] for name in _COLUMNS)


def _fact_row(fact: CaseFact) -> CaseFactRow:
    """What the figures use of a fact."""
    return CaseFactRow(fact.sequence, fact.social_region, fact.fact, fact.effective_date,
                       fact.to_region, fact.closure_reason)


def _case_fact_rows(tx: SQLConnection, pseudonym: str) -> list[CaseFactRow]:
    """What the figures use of a case's facts, in sequence order."""
    p = placeholder(tx)
    return [
        CaseFactRow(int(sequence), region, fact, date.fromisoformat(day), to_region, reason)
        for sequence, region, fact, day, to_region, reason in tx.execute(
            "SELECT sequence, social_region, fact, effective_date, to_region, "  # noqa: S608
            f"closure_reason FROM reporting_facts WHERE case_pseudonym = {p} ORDER BY sequence",
            (pseudonym,),
        )
    ]


def _case_head(tx: SQLConnection, pseudonym: str) -> CaseHead:
    """How many facts the case has, and its last one."""
    p = placeholder(tx)
    row = tx.execute(
        "SELECT sequence, social_region, fact, effective_date, to_region, closure_reason, "  # noqa: S608
        f"(SELECT count(*) FROM reporting_facts WHERE case_pseudonym = {p}) FROM reporting_facts "
        f"WHERE case_pseudonym = {p} ORDER BY sequence DESC LIMIT 1",
        (pseudonym, pseudonym),
    ).fetchone()
    if row is None:
        return CaseHead(0, None)
    sequence, region, fact, day, to_region, reason, count = row
    return CaseHead(int(count), CaseFactRow(int(sequence), region, fact, date.fromisoformat(day),
                                            to_region, reason))


def _region_now(head: CaseHead, pseudonym: str) -> str:
    """The case's region after its last fact."""
    last = head.last
    if last is None:
        raise LookupError(f"case {pseudonym[:12]}…: a fact before its opening")
    return last.to_region if last.fact == "handed_over" and last.to_region else last.region


# --- quarters and figures --------------------------------------------------------------------

_QUARTER = re.compile(r"(?P<year>[0-9]{4})-?[Qq](?P<number>[1-4])")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, written `2026Q1`."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """`2026Q1` (or `2026-Q1`); ValueError naming the expected form otherwise."""
        match = _QUARTER.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a quarter; write it like 2026Q1 (Q1 to Q4)")
        return cls(int(match["year"]), int(match["number"]))

    @property
    def start(self) -> date:
        """The quarter's first day."""
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """The quarter's last day."""
        if self.number == 4:
            return date(self.year, 12, 31)
        return date(self.year, 3 * self.number + 1, 1) - timedelta(days=1)

    def contains(self, day: date) -> bool:
        """True if `day` lies in the quarter."""
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"


@dataclass(frozen=True)
class RegionQuarter:
    """The figures of one social region (or the canton) for one quarter."""

    region: str
    quarter: str
    new_cases: int
    closed_cases: int
    closures_by_reason: Mapping[str, int]
    median_duration_days: float | None
    decisions: int
    median_days_to_decision: float | None
    supported_cases: int
    with_goal_agreement: int
    measures_started: int
    measures_completed: int

    @property
    def goal_agreement_share(self) -> float | None:
        """Share of the supported cases with a goal agreement (None without supported cases)."""
        if not self.supported_cases:
            return None
        return self.with_goal_agreement / self.supported_cases


def quarterly_figures(
    db: SQLConnection, quarter: str | Quarter, regions: Sequence[str] | None = None
) -> list[RegionQuarter]:
    """The figures of each of `regions`; by default of all 13 social regions in the reference
    data's order (zeros where nothing happened) and any other region the facts name."""
    period = Quarter.parse(quarter) if isinstance(quarter, str) else quarter
    tallies = _tallies(db, period, lambda region: region)
    order = list(regions) if regions is not None else list(load_reference_data().regions)
    if regions is None:
        order += sorted(set(tallies) - set(order))
    return [tallies.get(region, _Tally()).figures(region, period) for region in order]


def canton_figures(db: SQLConnection, quarter: str | Quarter) -> RegionQuarter:
    """The same figures for the whole canton (medians over all its cases, not of regions)."""
    period = Quarter.parse(quarter) if isinstance(quarter, str) else quarter
    return _tallies(db, period, lambda _: CANTON).get(CANTON, _Tally()).figures(CANTON, period)


def stored_figures(
    db: SQLConnection, quarter: str | Quarter, regions: Sequence[str] | None = None
) -> tuple[list[RegionQuarter], RegionQuarter] | None:
    """`quarterly_figures` and `canton_figures` of `quarter`, read from the aggregates the
    read model keeps (a few hundred rows, not every fact); None if it keeps none for all of
    its facts (built before them: compute per request, or rebuild it)."""
    period = Quarter.parse(quarter) if isinstance(quarter, str) else quarter
    counts = quarter_counts(db, str(period))
    if counts is None:
        return None
    tallies = {region: _stored_tally(region_counts) for region, region_counts in counts.items()}
    order = list(regions) if regions is not None else list(load_reference_data().regions)
    if regions is None:
        order += sorted(set(tallies) - set(order))
    canton = _Tally()
    for tally in tallies.values():
        canton.add(tally)
    return ([tallies.get(region, _Tally()).figures(region, period) for region in order],
            canton.figures(CANTON, period))


def _stored_tally(counts: QuarterCounts) -> _Tally:
    closed: Counter[str] = Counter()
    for figure, cases in counts.counts.items():
        if figure.startswith("closed:"):
            closed[figure.removeprefix("closed:")] += cases
    return _Tally(
        new=counts.counts["new"], closed=closed,
        durations=sorted(counts.days.get(DURATION, Counter()).elements()),
        decision_days=sorted(counts.days.get(DECISION, Counter()).elements()),
        supported=counts.counts["supported"], with_goal=counts.counts["with_goal"],
        measures_started=counts.counts["measures_started"],
        measures_completed=counts.counts["measures_completed"],
    )


@dataclass
class _Tally:
    """What one region's cases contributed to its figures."""

    new: int = 0
    closed: Counter[str] = field(default_factory=Counter)
    durations: list[int] = field(default_factory=list)
    decision_days: list[int] = field(default_factory=list)
    supported: int = 0
    with_goal: int = 0
    measures_started: int = 0
    measures_completed: int = 0

    def add(self, other: _Tally) -> None:
        """Add another region's tally (the canton's is the sum of its regions')."""
        self.new += other.new
        self.closed.update(other.closed)
        self.durations += other.durations
        self.decision_days += other.decision_days
        self.supported += other.supported
        self.with_goal += other.with_goal
        self.measures_started += other.measures_started
        self.measures_completed += other.measures_completed

    def figures(self, region: str, quarter: Quarter) -> RegionQuarter:
        return RegionQuarter(
            region=region,
            quarter=str(quarter),
            new_cases=self.new,
            closed_cases=sum(self.closed.values()),
            closures_by_reason={reason: self.closed[reason] for reason in CLOSURE_REASONS},
            median_duration_days=_median(self.durations),
            decisions=len(self.decision_days),
            median_days_to_decision=_median(self.decision_days),
            supported_cases=self.supported,
            with_goal_agreement=self.with_goal,
            measures_started=self.measures_started,
            measures_completed=self.measures_completed,
        )


def _tallies(
    db: SQLConnection, quarter: Quarter, key: Callable[[str], str]
) -> dict[str, _Tally]:
    tallies: defaultdict[str, _Tally] = defaultdict(_Tally)
    for facts in _cases(db):
        _count_case(facts, quarter, lambda region: tallies[key(region)])
    return dict(tallies)


def _cases(db: SQLConnection) -> Iterator[list[CaseFactRow]]:
    """The facts of each case, in case order."""
    rows = db.execute(
        "SELECT case_pseudonym, sequence, social_region, fact, effective_date, to_region, "
        "closure_reason FROM reporting_facts ORDER BY case_pseudonym, sequence"
    )
    for _, case in groupby(rows, key=lambda row: row[0]):
        yield [CaseFactRow(int(s), r, f, date.fromisoformat(d), t, why)
               for _, s, r, f, d, t, why in case]


def _count_case(facts: list[CaseFactRow], quarter: Quarter, tally: Callable[[str], _Tally]) -> None:
    """Add one case's facts to the tallies of the regions it was in when they happened."""
    intake: CaseFactRow | None = None
    decided = False
    periods: list[SupportPeriod] = []
    current: SupportPeriod | None = None
    for fact in facts:
        inside = quarter.contains(fact.day)
        if fact.fact in ("opened", "reopened"):
            intake, decided = fact, False
            if inside:
                tally(fact.region).new += 1
        elif fact.fact in ("granted", "refused"):
            if inside and intake is not None and not decided:
                tally(fact.region).decision_days.append((fact.day - intake.day).days)
            decided = True
            if fact.fact == "granted":
                current = SupportPeriod(fact.day, fact.region)
                periods.append(current)
        elif fact.fact == "closed":
            if current is not None:
                current.end, current = fact.day, None
            if inside:
                counts = tally(fact.region)
                counts.closed[fact.closure_reason or "other"] += 1
                if intake is not None:
                    counts.durations.append((fact.day - intake.day).days)
        elif fact.fact == "goal_agreed" and current is not None:
            current.goals.append(fact.day)
        elif fact.fact == "handed_over" and current is not None and fact.to_region:
            current.handovers.append((fact.day, fact.to_region))
        elif fact.fact == "measure_started" and inside:
            tally(fact.region).measures_started += 1
        elif fact.fact == "measure_completed" and inside:
            tally(fact.region).measures_completed += 1
    _count_support(periods, quarter, tally)


def _count_support(
    periods: list[SupportPeriod], quarter: Quarter, tally: Callable[[str], _Tally]
) -> None:
    """A case supported at any time in the quarter counts once, in the region it was in on
    its last supported day of the quarter; with a goal agreement if one of those periods had
    a goal agreed on or before the quarter's last day."""
    overlapping = [period for period in periods if period.overlaps(quarter.start, quarter.end)]
    if not overlapping:
        return
    last = overlapping[-1]
    last_day = min(quarter.end, last.end or quarter.end)
    counts = tally(last.region_on(last_day))
    counts.supported += 1
    if any(day <= quarter.end for period in overlapping for day in period.goals):
        counts.with_goal += 1


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None

"""The canton's quarterly figures kept as aggregates in the reporting read model, updated in
the transaction that applies each fact, so that a request for a quarter reads a few hundred
rows instead of every fact (issue 17: computed per request over ~22k facts, a quarter took
~0.45 s of Python and made the API's tail; read from the aggregates, ~1 ms).

The figures are those of `projections.reporting` (definitions in docs/reporting.md), which
computes them per quarter from a case's facts. Here each case's *contributions* to every
quarter are computed from its facts (`case_contributions`); when a fact arrives, the case's
contributions before and after it are compared and only the difference is added to two
tables:

- `reporting_quarter_figures (quarter, region, figure, days, cases)`: what happened in a
  quarter — new cases, closures by reason, measures started and completed (`days` 0), and
  the durations and days to decision as histograms (`days` the value, `cases` how many);
- `reporting_support_steps (quarter, region, figure, cases)`: supported cases and those with a
  goal agreement, as steps: a case counts from the quarter it enters a region's count until
  the quarter it leaves it (+1, then -1), so that a case supported without end needs two rows,
  not one per quarter up to the year 2999. A quarter's figure is the sum of the steps up to it.

A fact met again (same case and sequence) changes nothing the figures use, so it adds
nothing. Backdated facts and corrections are just facts: a case's contributions are always
recomputed from all of its facts in sequence order, exactly as the per-request computation
does (tested against it on the same history: tests/projections/test_reporting_aggregates.py).

A read model built before these tables existed has facts but no aggregates: its migration
leaves `reporting_aggregates_state` empty, and `quarter_counts` says so (None); readers then
compute per request until the read model is rebuilt (`nervenbahn projections rebuild`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

import psycopg

from projections.storage import SQLConnection, execute_many
from schemas.sql import Migration, placeholder

__all__ = [
    "AGGREGATES_MIGRATION",
    "AGGREGATE_TABLES",
    "ONE_STATE_MIGRATION",
    "VERSION_MIGRATION",
    "CaseContributions",
    "CaseFactRow",
    "CaseHead",
    "Contributions",
    "QuarterCounts",
    "SupportPeriod",
    "aggregates_version",
    "case_contributions",
    "quarter_counts",
    "quarter_key",
    "start_maintaining",
    "update_aggregates",
]

_DDL = (
    "CREATE TABLE IF NOT EXISTS reporting_quarter_figures (quarter TEXT NOT NULL, "
    "region TEXT NOT NULL, figure TEXT NOT NULL, days INTEGER NOT NULL, "
    "cases INTEGER NOT NULL, PRIMARY KEY (quarter, region, figure, days))",
    "CREATE TABLE IF NOT EXISTS reporting_support_steps (quarter TEXT NOT NULL, "
    "region TEXT NOT NULL, figure TEXT NOT NULL, cases INTEGER NOT NULL, "
    "PRIMARY KEY (quarter, region, figure))",
    "CREATE TABLE IF NOT EXISTS reporting_aggregates_state (maintained INTEGER NOT NULL)",
    # Only a read model without facts can start keeping aggregates: one that has facts
    # already would have them missing (its readers compute per request until a rebuild).
    "INSERT INTO reporting_aggregates_state (maintained) SELECT 1 "
    "WHERE NOT EXISTS (SELECT 1 FROM reporting_facts)",
)
AGGREGATES_MIGRATION = Migration(
    2, "the quarterly figures as aggregates, updated with each fact", sqlite=_DDL, postgres=_DDL
)
"""Migration 2 of the reporting read model (`projections.reporting.MIGRATIONS`)."""
_ONE_STATE = (
    "CREATE TABLE IF NOT EXISTS reporting_aggregates_kept (maintained INTEGER PRIMARY KEY)",
    "INSERT INTO reporting_aggregates_kept (maintained) "
    "SELECT DISTINCT maintained FROM reporting_aggregates_state",
    "DROP TABLE reporting_aggregates_state",
    "ALTER TABLE reporting_aggregates_kept RENAME TO reporting_aggregates_state",
)
ONE_STATE_MIGRATION = Migration(
    3, "one row of aggregates state, however many instances start keeping it at once",
    sqlite=_ONE_STATE, postgres=_ONE_STATE,
)
"""Migration 3: `reporting_aggregates_state` keyed, so that instances sharing the read model
that apply their first facts at the same moment mark it once, not once each (a rebuild then
held one row where the served read model held three: the scale test's tables differed)."""
_VERSIONED = "CREATE TABLE IF NOT EXISTS reporting_aggregates_version (version BIGINT NOT NULL)"
VERSION_MIGRATION = Migration(
    4, "a version of the aggregates, drawn anew with every change",
    sqlite=(_VERSIONED,
            "INSERT INTO reporting_aggregates_version (version) VALUES (abs(random() / 2))"),
    postgres=(_VERSIONED, "INSERT INTO reporting_aggregates_version (version) "
                          "VALUES (floor(random() * 4611686018427387904)::bigint)"),
)
"""Migration 4: `reporting_aggregates_version` holds one number, drawn at random whenever a
transaction changes the aggregates (and when the table is made, so a rebuilt SQLite file has
a new one): a reader that kept an answer under the version it read it at may give it again
while the version is the same (the canton's figures, `nervenbahn.api.routes.canton`). Drawn,
not counted: a count would start again after a rebuild and meet the numbers of answers kept
from before it. Not one of the read model's compared tables (`tables`): its value differs
between two read models with the same facts."""
AGGREGATE_TABLES = (
    "reporting_quarter_figures",
    "reporting_support_steps",
    "reporting_aggregates_state",
)
"""Emptied with the facts by a rebuild in PostgreSQL; its first fact marks the aggregates as
kept again (`start_maintaining`)."""

SUPPORTED, WITH_GOAL = "supported", "with_goal"
NEW, DECISION, DURATION = "new", "decision", "duration"
MEASURES_STARTED, MEASURES_COMPLETED = "measures_started", "measures_completed"
CLOSED = "closed:"
"""A closure's figure is `closed:<reason>`."""


class CaseFactRow(NamedTuple):
    """What the figures use of one fact (a row of `reporting_facts`)."""

    sequence: int
    region: str
    fact: str
    day: date
    to_region: str | None
    closure_reason: str | None


QuarterKey = tuple[str, str, str, int]
"""(quarter, region, figure, days) of `reporting_quarter_figures`."""
StepKey = tuple[str, str, str]
"""(quarter, region, figure) of `reporting_support_steps`."""


@dataclass
class Contributions:
    """What one case adds to the two tables."""

    quarters: Counter[QuarterKey] = field(default_factory=Counter)
    steps: Counter[StepKey] = field(default_factory=Counter)

    def add(self, other: Contributions) -> None:
        """Add `other`'s counts (negative ones too) to these."""
        self.quarters.update(other.quarters)
        self.steps.update(other.steps)


def quarter_key(day: date) -> str:
    """The quarter `day` lies in, as the tables key it: `2026Q1` (sorts as text)."""
    return _key(_index(day))


_AFTER_LAST = 10000 * 4
"""The index of the quarter after 9999Q4 (no date lies in it)."""


def _index(day: date) -> int:
    return day.year * 4 + (day.month - 1) // 3


def _key(index: int) -> str:
    return f"{index // 4:04d}Q{index % 4 + 1}"


def _first_day(index: int) -> date:
    return date(index // 4, 3 * (index % 4) + 1, 1)


def _last_day(index: int) -> date:
    year, number = index // 4, index % 4 + 1
    if number == 4:
        return date(year, 12, 31)
    return date(year, 3 * number + 1, 1) - timedelta(days=1)


@dataclass
class SupportPeriod:
    """One period of support of a case: from the grant to the closure (None: still open),
    with the goals agreed and the handovers in it."""

    start: date
    region: str
    end: date | None = None
    goals: list[date] = field(default_factory=list)
    handovers: list[tuple[date, str]] = field(default_factory=list)

    def overlaps(self, first: date, last: date) -> bool:
        """True if the period meets the days `first` to `last`."""
        return self.start <= last and (self.end is None or self.end >= first)

    def region_on(self, day: date) -> str:
        """The region the case was in on `day` (after the handovers up to then)."""
        region = self.region
        for effective, to_region in self.handovers:
            if effective <= day:
                region = to_region
        return region

    def days(self) -> Iterable[date]:
        """Every day the period names."""
        yield self.start
        if self.end is not None:
            yield self.end
        yield from self.goals
        yield from (day for day, _ in self.handovers)


def case_contributions(facts: Sequence[CaseFactRow]) -> Contributions:
    """One case's contributions to every quarter, from its facts in sequence order: the same
    rules as `projections.reporting._count_case`, for all quarters at once."""
    walk = _CaseWalk()
    for fact in facts:
        walk.add(fact)
    return walk.contributions


_PERIOD_FACTS = frozenset({"granted", "closed", "goal_agreed", "handed_over"})
"""The facts that can change a case's periods of support (and so its support steps)."""


class _CaseWalk:
    """A case's facts walked in sequence order: the state the next fact is judged in (intake,
    decided, periods of support) and the contributions so far. A fact after the last one only
    adds to them (`add`), so a case's walk is kept between its facts."""

    def __init__(self) -> None:
        self.contributions = Contributions()
        self.intake: date | None = None
        self.decided = False
        self.periods: list[SupportPeriod] = []
        self.current: SupportPeriod | None = None

    def add(self, fact: CaseFactRow) -> Contributions:
        """Walk one more fact; what it changed in the contributions."""
        added = Contributions()
        self._count(fact, added.quarters)
        self.contributions.quarters.update(added.quarters)
        if fact.fact in _PERIOD_FACTS:
            steps: Counter[StepKey] = Counter()
            _support_steps(self.periods, steps)
            added.steps.update(steps)
            added.steps.subtract(self.contributions.steps)
            self.contributions.steps = steps
        return added

    def _count(self, fact: CaseFactRow, quarters: Counter[QuarterKey]) -> None:
        quarter = quarter_key(fact.day)
        if fact.fact in ("opened", "reopened"):
            self.intake, self.decided = fact.day, False
            quarters[(quarter, fact.region, NEW, 0)] += 1
        elif fact.fact in ("granted", "refused"):
            if self.intake is not None and not self.decided:
                quarters[(quarter, fact.region, DECISION, (fact.day - self.intake).days)] += 1
            self.decided = True
            if fact.fact == "granted":
                self.current = SupportPeriod(fact.day, fact.region)
                self.periods.append(self.current)
        elif fact.fact == "closed":
            if self.current is not None:
                self.current.end, self.current = fact.day, None
            quarters[(quarter, fact.region, CLOSED + (fact.closure_reason or "other"), 0)] += 1
            if self.intake is not None:
                quarters[(quarter, fact.region, DURATION, (fact.day - self.intake).days)] += 1
        elif fact.fact == "goal_agreed" and self.current is not None:
            self.current.goals.append(fact.day)
        elif fact.fact == "handed_over" and self.current is not None and fact.to_region:
            self.current.handovers.append((fact.day, fact.to_region))
        elif fact.fact == "measure_started":
            quarters[(quarter, fact.region, MEASURES_STARTED, 0)] += 1
        elif fact.fact == "measure_completed":
            quarters[(quarter, fact.region, MEASURES_COMPLETED, 0)] += 1


def _support_steps(periods: list[SupportPeriod], steps: Counter[StepKey]) -> None:
    """The case's supported and goal figures as steps. They can change only in the quarter of
    one of its days or the one after; past the last of those they stay as they are."""
    if not periods:
        return
    candidates = sorted(
        {
            i
            for period in periods
            for day in period.days()
            for i in (_index(day), _index(day) + 1)
            if i < _AFTER_LAST
        }
    )
    before: tuple[str, bool] | None = None
    for index in candidates:
        now = _supported_in(periods, index)
        if now == before:
            continue
        quarter = _key(index)
        if before is not None:
            steps[(quarter, before[0], SUPPORTED)] -= 1
            if before[1]:
                steps[(quarter, before[0], WITH_GOAL)] -= 1
        if now is not None:
            steps[(quarter, now[0], SUPPORTED)] += 1
            if now[1]:
                steps[(quarter, now[0], WITH_GOAL)] += 1
        before = now


def _supported_in(periods: list[SupportPeriod], index: int) -> tuple[str, bool] | None:
    """(region, with a goal agreement) of a case supported in the quarter, None if it was not
    (`projections.reporting._count_support`)."""
    first, end = _first_day(index), _last_day(index)
    overlapping = [period for period in periods if period.overlaps(first, end)]
    if not overlapping:
        return None
    last = overlapping[-1]
    last_day = min(end, last.end or end)
    goal = any(day <= end for period in overlapping for day in period.goals)
    return last.region_on(last_day), goal


class CaseHead(NamedTuple):
    """How many facts a case has and its last one (by sequence; None without facts)."""

    facts: int
    last: CaseFactRow | None


class CaseContributions:
    """Adds to the aggregates the difference a case's new fact makes. Keeps the walks of the
    cases it met last (a case's facts come in runs): a fact after a case's last one is added
    to its walk (`_CaseWalk.add`) if the case's head in the database (count and last fact) is
    the one its walk was made of; any other fact, or a stale walk (a transaction rolled back,
    another instance applied the case's facts), has the case's facts read and walked again
    from the start, before and after the fact."""

    def __init__(self, keep: int = 4096) -> None:
        self._known: OrderedDict[str, tuple[CaseHead, _CaseWalk]] = OrderedDict()
        self._keep = keep

    def update(
        self,
        tx: SQLConnection,
        case: str,
        head: CaseHead,
        fact: CaseFactRow,
        facts: Callable[[], list[CaseFactRow]],
    ) -> None:
        """Through the transaction that stores `fact` of `case`, whose head before it was
        `head`; `facts` reads the case's other facts (in sequence order) if they are needed."""
        known = self._known.pop(case, None)
        at_end = head.last is None or fact.sequence > head.last.sequence
        if known is not None and known[0] == head and at_end:
            walk = known[1]
            update_aggregates(tx, Contributions(), walk.add(fact))
        else:
            before = facts() if head.facts else []
            walk = _CaseWalk()
            for each in sorted([*before, fact]):
                walk.add(each)
            update_aggregates(tx, case_contributions(before), walk.contributions)
        self._remember(case, CaseHead(head.facts + 1, max(fact, head.last or fact)), walk)

    def extend(
        self,
        case: str,
        head: CaseHead,
        facts: Sequence[CaseFactRow],
        read: Callable[[], list[CaseFactRow]],
    ) -> Contributions:
        """What `facts` of `case`, each after its last one (in sequence order, after `head`),
        change in the aggregates, not yet written (`update_aggregates`: a rebuild adds up a
        batch's changes and writes them once); `read` reads the case's facts if its walk is
        not at hand."""
        known = self._known.pop(case, None)
        if known is not None and known[0] == head:
            walk = known[1]
        else:
            walk = _CaseWalk()
            for each in read() if head.facts else []:
                walk.add(each)
        added = Contributions()
        for fact in facts:
            added.add(walk.add(fact))
        self._remember(case, CaseHead(head.facts + len(facts), facts[-1]), walk)
        return added

    def _remember(self, case: str, head: CaseHead, walk: _CaseWalk) -> None:
        self._known[case] = (head, walk)
        if len(self._known) > self._keep:
            self._known.popitem(last=False)


def update_aggregates(tx: SQLConnection, old: Contributions, new: Contributions) -> None:
    """Add to the aggregates the difference between a case's contributions before and after
    a fact (or the sum of such differences over a batch), through the transaction that
    stores the facts. A row that comes to 0 is removed, so that the tables hold the same
    rows however the facts were grouped (one by one, or a rebuild's batches: a +1 and a -1
    in one batch never make the row)."""
    p = placeholder(tx)
    changed = False
    for table, keys, before, after in (
        ("reporting_quarter_figures", "quarter, region, figure, days", old.quarters, new.quarters),
        ("reporting_support_steps", "quarter, region, figure", old.steps, new.steps),
    ):
        # In key order: two instances sharing the read model lock the rows they add to in
        # the same order, which keeps them from deadlocking over one fact's rows.
        changes = [(*key, delta) for key in sorted(before.keys() | after.keys())
                   if (delta := after[key] - before[key])]  # type: ignore[index]
        if not changes:
            continue
        changed = True
        marks = ", ".join([p] * (keys.count(",") + 2))
        execute_many(
            tx,
            f"INSERT INTO {table} ({keys}, cases) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({keys}) DO UPDATE SET cases = {table}.cases + excluded.cases",
            changes,
        )
        match = " AND ".join(f"{key} = {p}" for key in keys.split(", "))
        execute_many(
            tx,
            f"DELETE FROM {table} WHERE {match} AND cases = 0",  # noqa: S608
            [change[:-1] for change in changes],
        )
    if changed:  # last, after the rows above: the same lock order in every transaction
        tx.execute(f"UPDATE reporting_aggregates_version SET version = {p}",  # noqa: S608
                   (secrets.randbits(62),))


def aggregates_version(db: SQLConnection) -> int | None:
    """The aggregates' version now (`VERSION_MIGRATION`); None for a read model without one
    (of an older release, opened read-only)."""
    try:
        row = db.execute("SELECT version FROM reporting_aggregates_version").fetchone()
    except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
        return None
    return None if row is None else int(row[0])


def start_maintaining(tx: SQLConnection) -> None:
    """Mark the aggregates as kept, if the read model has no facts yet (its first fact is
    being applied: after a rebuild in PostgreSQL emptied the tables, the state with them)."""
    tx.execute(
        "INSERT INTO reporting_aggregates_state (maintained) SELECT 1 WHERE NOT EXISTS "
        "(SELECT 1 FROM reporting_facts) ON CONFLICT (maintained) DO NOTHING"
    )


@dataclass(frozen=True)
class QuarterCounts:
    """A quarter's aggregates of one region: counts by figure, histograms of days."""

    counts: Counter[str] = field(default_factory=Counter)
    days: dict[str, Counter[int]] = field(default_factory=dict)


def quarter_counts(db: SQLConnection, quarter: str) -> dict[str, QuarterCounts] | None:
    """Every region's aggregates of `quarter` (written `2026Q1`), by region; None if the read
    model does not keep them for all of its facts (built before them, or of an older release
    opened read-only)."""
    p = placeholder(db)
    # One statement, one row: whether the aggregates are kept, and every region's figures and
    # support steps as JSON. Under the API's concurrent requests, each row a statement steps
    # gives the interpreter's lock away (SQLite runs without it) and waits to take it back,
    # up to a switch interval (5 ms) behind a busy thread: a quarter's ~150 rows made the
    # canton's figures the slowest endpoint at p99 (wall time 6.4 ms at p50 but 54 ms at
    # p99 against 1.1 / 3.6 ms of CPU). A histogram's days and cases are joined into one
    # text ("days:cases,…"): a quarter's histograms hold about a row per case.
    if p == "%s":
        joined, rows = "string_agg", "json_agg(json_build_array({}))"
    else:
        joined, rows = "group_concat", "json_group_array(json_array({}))"
    statement = (
        "SELECT (SELECT count(*) FROM reporting_aggregates_state), "  # noqa: S608
        f"(SELECT {rows.format('region, figure, total, pairs')} FROM ("
        f"SELECT region, figure, sum(cases) AS total, {joined}(days || ':' || cases, ',') "
        f"AS pairs FROM reporting_quarter_figures WHERE quarter = {p} AND cases <> 0 "
        "GROUP BY region, figure) AS figures), "
        f"(SELECT {rows.format('region, figure, total')} FROM ("
        "SELECT region, figure, sum(cases) AS total FROM reporting_support_steps "
        f"WHERE quarter <= {p} GROUP BY region, figure) AS steps)"
    )
    try:
        maintained, figures, steps = db.execute(statement, (quarter, quarter)).fetchone()
    except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
        return None  # a read model of an older release, opened read-only (not migrated)
    if not maintained:
        return None
    regions: defaultdict[str, QuarterCounts] = defaultdict(QuarterCounts)
    for region, figure, total, pairs in _rows(figures):
        counts = regions[region]
        if figure in (DECISION, DURATION):
            histogram = counts.days.setdefault(figure, Counter())
            for pair in str(pairs).split(","):
                days, cases = pair.split(":")
                histogram[int(days)] += int(cases)
        else:
            counts.counts[figure] += int(total)
    for region, figure, cases in _rows(steps):
        if cases:
            regions[region].counts[figure] += int(cases)
    return dict(regions)


def _rows(aggregated: str | list[list[Any]] | None) -> list[list[Any]]:
    """The rows of a JSON array of arrays: SQLite's text, PostgreSQL's (already decoded) list,
    or None (PostgreSQL's aggregate over no rows)."""
    if aggregated is None:
        return []
    return json.loads(aggregated) if isinstance(aggregated, str) else aggregated

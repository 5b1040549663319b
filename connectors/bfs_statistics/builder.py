"""The monthly BFS social-assistance delivery, built from a case's pseudonymised facts (pure).

`fold` turns the facts of one case (its `CaseFact`s, or rows the sink kept of them, in order)
into a `CaseDossiers`: the budget versions and support periods the case holds (the same
values the case aggregate keeps, so that `domain.entitlement.month_entitlement` gives what is
owed), its household sizes and the BFS **dossiers**: the BFS closes a dossier when the
supported household moves to another municipality and opens a new one there, so every handover
starts a new dossier of the case (`dossier_seq` 1, 2, …). `month_rows` gives one month's
dossier rows and regular bookings; the sink adds corrections (see `connectors.bfs_statistics`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from connectors.bfs_statistics.catalogue import COLUMNS
from domain.entitlement import month_entitlement, month_of
from domain.events import BudgetVersion, SupportPeriod

__all__ = [
    "BookingRow",
    "CaseDossiers",
    "Dossier",
    "DossierRow",
    "FactLike",
    "ReportingFact",
    "fold",
    "month_rows",
    "next_month",
    "render_csv",
]

MUNICIPALITY_CHANGE = "municipality_change"
"""End reason of a dossier closed because the case was handed over to another municipality."""


class FactLike(Protocol):
    """What `fold` reads of a fact (a `CaseFact`, or the sink's stored row of one)."""

    @property
    def sequence(self) -> int: ...
    @property
    def fact(self) -> str: ...
    @property
    def effective_date(self) -> date: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def support_from(self) -> date | None: ...
    @property
    def municipality_bfs(self) -> int | None: ...
    @property
    def household_size(self) -> int | None: ...
    @property
    def budget_total(self) -> Decimal | None: ...
    @property
    def closure_reason(self) -> str | None: ...


@runtime_checkable
class ReportingFact(FactLike, Protocol):
    """A fact of the reporting dataset ("case-facts") as the sink reads it: what `fold` reads,
    and the case's pseudonym. The read port of `projections.reporting_facts.CaseFact`, which
    connectors do not import (the bus decodes the topic into those)."""

    @property
    def case_pseudonym(self) -> str: ...


@dataclass(frozen=True)
class Dossier:
    """One BFS dossier of a case: the case's time in one municipality."""

    seq: int
    municipality_bfs: int | None
    periods: tuple[SupportPeriod, ...]
    """The case's support periods clipped to the dossier's time in its municipality."""
    end_reasons: tuple[str | None, ...]
    """Why each period ended (closure reason, `municipality_change`), None while it lasts."""


@dataclass
class CaseDossiers:
    """What the facts of one case say, for the statistics."""

    pseudonym: str
    budgets: list[BudgetVersion] = field(default_factory=list)
    periods: list[SupportPeriod] = field(default_factory=list)
    closure_reasons: list[str | None] = field(default_factory=list)
    households: list[tuple[date, int]] = field(default_factory=list)
    municipalities: list[tuple[date, int | None]] = field(default_factory=list)
    """(from, BFS number): the case's municipality from each day on, the first from date.min."""

    def dossiers(self) -> list[Dossier]:
        """The case's dossiers, one per municipality it was supported in (in order)."""
        places = self.municipalities or [(date.min, None)]
        result = []
        for index, (start, bfs) in enumerate(places):
            until = places[index + 1][0] - timedelta(days=1) if index + 1 < len(places) else None
            periods, reasons = self._clipped(start, until)
            result.append(Dossier(index + 1, bfs, tuple(periods), tuple(reasons)))
        return result

    def household_size(self, day: date) -> int | None:
        """The household size in force on `day` (latest effective date; later recording wins)."""
        chosen: tuple[date, int] | None = None
        for effective, size in self.households:  # in recording order
            if effective <= day and (chosen is None or effective >= chosen[0]):
                chosen = (effective, size)
        return chosen[1] if chosen else None

    def _clipped(
        self, start: date, until: date | None
    ) -> tuple[list[SupportPeriod], list[str | None]]:
        periods: list[SupportPeriod] = []
        reasons: list[str | None] = []
        for period, reason in zip(self.periods, self.closure_reasons, strict=True):
            first = max(period.start, start)
            last = _earlier(period.until, until)
            if last is not None and first > last:
                continue
            moved = until is not None and (period.until is None or period.until > until)
            periods.append(SupportPeriod(first, last))
            reasons.append(MUNICIPALITY_CHANGE if moved else reason)
        return periods, reasons


def fold(pseudonym: str, facts: Iterable[FactLike]) -> CaseDossiers:
    """The dossiers, budgets and periods of a case from its facts (any order: sorted here)."""
    case = CaseDossiers(pseudonym)
    for fact in sorted(facts, key=lambda f: f.sequence):
        _apply(case, fact)
    return case


def _apply(case: CaseDossiers, fact: FactLike) -> None:
    """Evolve the case by one fact, as the case aggregate evolves by its event."""
    code = fact.fact
    if code == "opened":
        case.municipalities = [(date.min, fact.municipality_bfs)]
        _add_household(case, fact.effective_date, fact.household_size)
    elif code == "granted" and fact.support_from is not None:
        case.periods.append(SupportPeriod(fact.support_from))
        case.closure_reasons.append(None)
        _add_budget(case, fact.support_from, fact, "initial_decision")
    elif code == "budget_changed":
        _add_budget(case, fact.effective_date, fact, "budget_changed")
        _add_household(case, fact.effective_date, fact.household_size)
    elif code == "handed_over":
        case.municipalities.append((fact.effective_date, fact.municipality_bfs))
    elif code == "closed" and case.periods and case.periods[-1].until is None:
        case.periods[-1] = replace(case.periods[-1], until=fact.effective_date)
        case.closure_reasons[-1] = fact.closure_reason


def _add_budget(case: CaseDossiers, effective: date, fact: FactLike, reason: str) -> None:
    if fact.budget_total is not None:
        case.budgets.append(BudgetVersion(effective, [], fact.budget_total, reason,
                                          fact.recorded_at))


def _add_household(case: CaseDossiers, effective: date, size: int | None) -> None:
    if size is not None:
        case.households.append((effective, size))


@dataclass(frozen=True)
class DossierRow:
    """A dossier's basic fields in a reporting month."""

    reporting_month: date
    dossier_id: str
    dossier_seq: int
    municipality_bfs: int | None
    status: str
    support_start: date
    support_end: date | None
    end_reason: str | None
    household_size: int | None


@dataclass(frozen=True)
class BookingRow:
    """Support booked in a reporting month for a month (`booking_month`) of a dossier."""

    reporting_month: date
    dossier_id: str
    dossier_seq: int
    booking_month: date
    kind: str
    """`regular` (the reporting month's support) or `correction` (an earlier month's change)."""
    amount: Decimal


def owed(dossier: Dossier, budgets: Sequence[BudgetVersion], month: date) -> Decimal:
    """What the dossier is owed for `month` (domain.entitlement: pro rata, rounded once)."""
    return month_entitlement(budgets, dossier.periods, month).amount


def month_rows(
    case: CaseDossiers, month: date
) -> tuple[list[DossierRow], list[BookingRow]]:
    """The rows of `case` in the delivery of `month`: a dossier row for every dossier with
    support in the month, a regular booking for each non-zero amount owed for it."""
    first, last = month_of(month), next_month(month) - timedelta(days=1)
    dossiers: list[DossierRow] = []
    bookings: list[BookingRow] = []
    for dossier in case.dossiers():
        supported = [
            (period, reason)
            for period, reason in zip(dossier.periods, dossier.end_reasons, strict=True)
            if period.start <= last and (period.until is None or period.until >= first)
        ]
        if not supported:
            continue
        period, reason = supported[-1]  # the current spell of support
        ended = period.until is not None and period.until <= last
        status = "closed" if ended else "new" if period.start >= first else "ongoing"
        last_day = period.until if ended and period.until is not None else last
        dossiers.append(DossierRow(
            first, case.pseudonym, dossier.seq, dossier.municipality_bfs, status, period.start,
            period.until if ended else None, reason if ended else None,
            case.household_size(last_day),
        ))
        amount = owed(dossier, case.budgets, first)
        if amount:
            bookings.append(BookingRow(first, case.pseudonym, dossier.seq, first, "regular",
                                       amount))
    return dossiers, bookings


def render_csv(canton: str, dossiers: Sequence[DossierRow], bookings: Sequence[BookingRow]) -> str:
    """The delivery file: a header, the dossier rows, then the booking rows (sorted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for d in sorted(dossiers, key=lambda r: (r.dossier_id, r.dossier_seq)):
        writer.writerow(_row(
            record="dossier", reporting_month=_ym(d.reporting_month), dossier_id=d.dossier_id,
            dossier_seq=d.dossier_seq, canton=canton, municipality_bfs=d.municipality_bfs,
            status=d.status, support_start=d.support_start.isoformat(),
            support_end=d.support_end.isoformat() if d.support_end else None,
            end_reason=d.end_reason, household_size=d.household_size,
        ))
    for b in sorted(bookings, key=lambda r: (r.dossier_id, r.dossier_seq, r.booking_month,
                                             r.kind)):
        writer.writerow(_row(
            record="booking", reporting_month=_ym(b.reporting_month), dossier_id=b.dossier_id,
            dossier_seq=b.dossier_seq, canton=canton, booking_month=_ym(b.booking_month),
            booking_kind=b.kind, amount_chf=f"{b.amount:.2f}",
        ))
    return buffer.getvalue()


def next_month(month: date) -> date:
    """The first day of the month after `month`'s."""
    first = month_of(month)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _row(**values: Any) -> list[str]:
    return ["" if values.get(name) is None else str(values[name]) for name in COLUMNS]


def _ym(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _earlier(a: date | None, b: date | None) -> date | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)

"""Advances in view of EL and their reimbursement, per social region and quarter (issue 15,
point 5): the canton's figures, from the region read model (`projections.region`).

Per region and for the canton (definitions in docs/reporting.md, "Advances in view of EL"):

- **advances open** at the quarter's last day (started on or before it, not ended by then);
- **advances decided** in the quarter (ended with reason `decided`: the fund decided the
  application), and the **median days** from the advance's first day to that decision;
- **claims recorded** in the quarter (a first claim or a correction, each a
  `ReimbursementRecorded` of a case) and the **CHF claimed** by them, net of corrections (a
  correction that returns part of a claim counts negative), and the **surplus** CHF they
  assign to the persons;
- **reimbursed**: the CHF the fund paid to the social region in the quarter (by paid day), and
  the number of those payments, from the `ReimbursementPaid` the fund-decisions connector
  records on the case when the fund reports a claim paid (`RegionProjection._on_ReimbursementPaid`).

Where: a claim and a decision count in the region the case was in when they were recorded (a
later handover does not move them), a payment in the region of the claim it pays (the region
the fund pays, even if the case was handed over before the payment came back); an open
advance counts in the region the case is in now (the read model keeps no history of where a
case was), which for a past quarter can differ if the case was handed over since. Figures
follow effective dates like the other quarterly figures: a claim recorded late counts in the
quarter it was recorded.

Why from the region read model and not the reporting facts: the claims' amounts are no case
facts of the reporting topic (its Avro schema), and the canton receives only these sums; the
read model's rows stay inside nervenbahn. Small counts (`withheld`) are protected with the
rules of `projections.reporting_disclosure`: a count of 1 to `min_count - 1`, a median or an
amount over fewer cases, and what would reveal them from the canton's total.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from domain.money import ZERO
from projections.reporting import CANTON, Quarter
from projections.reporting_disclosure import DEFAULT_MIN_COUNT, Cell
from projections.storage import SQLConnection
from schemas.sql import placeholder

__all__ = [
    "ADVANCE_AMOUNT_COLUMNS",
    "ADVANCE_COUNT_COLUMNS",
    "AdvanceFigures",
    "advance_figures",
    "withheld_advances",
]

ADVANCE_COUNT_COLUMNS = ("advances_open", "advances_decided", "claims_recorded",
                         "reimbursements_paid")
"""The figures that count (advances, claims, payments) and add up to the canton's."""
ADVANCE_AMOUNT_COLUMNS = {"claimed_chf": "claims_recorded", "surplus_chf": "claims_recorded",
                          "reimbursed_chf": "reimbursements_paid"}
"""The CHF sums, each with the count it is taken over (withheld when that count is small)."""
_MEDIAN_BASE = {"median_days_to_decision": "advances_decided"}


@dataclass(frozen=True)
class AdvanceFigures:
    """The advances' figures of one social region (or the canton, `region` "canton") for one
    quarter; amounts in CHF."""

    region: str
    quarter: str
    advances_open: int
    advances_decided: int
    median_days_to_decision: float | None
    claims_recorded: int
    claimed_chf: Decimal
    surplus_chf: Decimal
    reimbursements_paid: int
    reimbursed_chf: Decimal


@dataclass
class _Tally:
    open: int = 0
    decision_days: list[int] = field(default_factory=list)
    claims: int = 0
    claimed: Decimal = ZERO
    surplus: Decimal = ZERO
    payments: int = 0
    reimbursed: Decimal = ZERO

    def figures(self, region: str, quarter: Quarter) -> AdvanceFigures:
        days = self.decision_days
        return AdvanceFigures(
            region=region, quarter=str(quarter), advances_open=self.open,
            advances_decided=len(days),
            median_days_to_decision=float(statistics.median(days)) if days else None,
            claims_recorded=self.claims, claimed_chf=self.claimed, surplus_chf=self.surplus,
            reimbursements_paid=self.payments, reimbursed_chf=self.reimbursed)


def advance_figures(
    db: SQLConnection, quarter: Quarter, regions: Iterable[str]
) -> tuple[list[AdvanceFigures], AdvanceFigures]:
    """The figures of each of `regions` (in that order) and of the whole canton (every
    region's cases, also of a region not listed) for `quarter`."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    canton = _Tally()
    p, start, end = placeholder(db), quarter.start.isoformat(), quarter.end.isoformat()
    for (region,) in db.execute(
        "SELECT c.social_region FROM region_advances a JOIN region_cases c "  # noqa: S608
        f"ON c.case_id = a.case_id WHERE a.started_on <= {p} "
        f"AND (a.ended_on IS NULL OR a.ended_on > {p})", (end, end),
    ):
        for tally in (tallies[region], canton):
            tally.open += 1
    for region, started, ended in db.execute(
        "SELECT coalesce(a.ended_in_region, c.social_region), a.started_on, a.ended_on "  # noqa: S608
        "FROM region_advances a JOIN region_cases c ON c.case_id = a.case_id "
        f"WHERE a.end_reason = 'decided' AND a.ended_on >= {p} AND a.ended_on <= {p}",
        (start, end),
    ):
        days = (date.fromisoformat(ended) - date.fromisoformat(started)).days
        for tally in (tallies[region], canton):
            tally.decision_days.append(days)
    for region, claimed, surplus in db.execute(
        "SELECT social_region, claim_total, surplus_total FROM region_claims "  # noqa: S608
        f"WHERE recorded_on >= {p} AND recorded_on <= {p}", (start, end),
    ):
        for tally in (tallies[region], canton):
            tally.claims += 1
            tally.claimed += Decimal(claimed)
            tally.surplus += Decimal(surplus)
    for region, to_region in db.execute(
        "SELECT social_region, to_region FROM region_reimbursements "  # noqa: S608
        f"WHERE paid_on >= {p} AND paid_on <= {p}", (start, end),
    ):
        for tally in (tallies[region], canton):
            tally.payments += 1
            tally.reimbursed += Decimal(to_region)
    return ([tallies[region].figures(region, quarter) for region in regions],
            canton.figures(CANTON, quarter))


def withheld_advances(
    regions: Sequence[AdvanceFigures], canton: AdvanceFigures,
    min_count: int = DEFAULT_MIN_COUNT,
) -> frozenset[Cell]:
    """The cells `(region, column)` a published report withholds (none with `min_count` 1
    or less), by the rules of `projections.reporting_disclosure`: counts of 1 to
    `min_count - 1`; medians and CHF sums over so few; then, in each column that adds up
    from the regions to the canton, a second region's cell where exactly one is withheld
    and the canton's shown (the smallest other non-zero one), until nothing changes.
    ValueError for a negative `min_count`."""
    if min_count < 0:
        raise ValueError(f"min_count: {min_count} is negative; give 0 or more cases")
    rows = [*regions, canton]
    bases = {c: c for c in ADVANCE_COUNT_COLUMNS} | ADVANCE_AMOUNT_COLUMNS
    hidden = {(row.region, column) for row in rows for column, base in bases.items()
              if 0 < _count(row, base) < min_count}
    while _protect_sums(hidden, regions, canton, bases):
        pass
    hidden |= {(row.region, median) for row in rows for median, base in _MEDIAN_BASE.items()
               if 0 < _count(row, base) < min_count}
    return frozenset(hidden)


def _count(row: AdvanceFigures, column: str) -> int:
    value = getattr(row, column)
    assert isinstance(value, int)
    return value


def _protect_sums(hidden: set[Cell], regions: Sequence[AdvanceFigures],
                  canton: AdvanceFigures, bases: dict[str, str]) -> bool:
    """One round of secondary suppression over the regions' sums; True if it withheld more."""
    more = False
    for column, base in bases.items():
        parts = [(r.region, column) for r in regions]
        if (canton.region, column) in hidden or sum(c in hidden for c in parts) != 1:
            continue
        others = [(_count(r, base), (r.region, column)) for r in regions
                  if (r.region, column) not in hidden and _count(r, base) > 0]
        if others:
            hidden.add(min(others)[1])
            more = True
    return more

"""Small-count protection for quarterly figures that leave the canton (docs/reporting.md,
"Small counts").

A count of one to `min_count - 1` cases in a region (a closure for death in a small region,
two decisions in a quarter) can point at a family that readers of a published report know;
so can a median or share over so few cases, or a small count worked out by subtraction from
the figures around it. `withheld` names the cells a published report must not show:

1. **primary:** every count from 1 to `min_count - 1` (zero is shown: it names nobody), and
   every median or share over fewer than `min_count` cases (its base: closed cases,
   decisions, supported cases); the goal-agreement count and share also when the supported
   cases *without* a goal agreement are that few;
2. **secondary:** where figures add up — the closure reasons to the closed cases of a row, the
   regions to the canton in each count column — a group with exactly one withheld cell and its
   total shown also withholds its smallest other non-zero cell, so the first cannot be
   recovered by subtraction; repeated until nothing changes.

Cells are named `(region, column)` with the columns of the quarterly CSV
(`closed_<reason>` for the closure reasons). The figures themselves are not changed: the
canton's own statistics office reads them exactly (API, read model).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from projections.reporting import CLOSURE_REASONS, RegionQuarter

__all__ = ["COUNT_COLUMNS", "DEFAULT_MIN_COUNT", "Cell", "withheld"]

DEFAULT_MIN_COUNT = 5
"""Counts below this (and medians and shares over fewer cases) are withheld by default."""

Cell = tuple[str, str]
"""(region, column) of one figure."""

REASON_COLUMNS = tuple(f"closed_{reason}" for reason in CLOSURE_REASONS)
COUNT_COLUMNS: tuple[str, ...] = (
    "new_cases", "closed_cases", *REASON_COLUMNS, "decisions", "supported_cases",
    "with_goal_agreement", "measures_started", "measures_completed",
)
"""The columns that count cases (or measures) and add up from the regions to the canton."""

_BASES = {
    "median_duration_days": "closed_cases",
    "median_days_to_decision": "decisions",
    "goal_agreement_share": "supported_cases",
}
"""Each median or share, and the count it is taken over."""


def withheld(
    regions: Sequence[RegionQuarter], canton: RegionQuarter, min_count: int = DEFAULT_MIN_COUNT
) -> frozenset[Cell]:
    """The cells of `regions` and `canton` a published report withholds (none with
    `min_count` 1 or less); ValueError for a negative `min_count`."""
    if min_count < 0:
        raise ValueError(f"min_count: {min_count} is negative; give 0 or more cases")
    rows = [*regions, canton]
    hidden = {
        (row.region, column)
        for row in rows
        for column in COUNT_COLUMNS
        if 0 < count(row, column) < min_count
    }
    for row in rows:
        without_goal = row.supported_cases - row.with_goal_agreement
        if 0 < without_goal < min_count:
            hidden.add((row.region, "with_goal_agreement"))
    while _protect_sums(hidden, rows, canton):
        pass
    for row in rows:
        for derived, base in _BASES.items():
            if 0 < count(row, base) < min_count:
                hidden.add((row.region, derived))
        if (row.region, "with_goal_agreement") in hidden:
            hidden.add((row.region, "goal_agreement_share"))
    return frozenset(hidden)


def count(row: RegionQuarter, column: str) -> int:
    """The count in `column` of `row` (a column of `COUNT_COLUMNS`)."""
    if column in REASON_COLUMNS:
        return row.closures_by_reason[column.removeprefix("closed_")]
    value = getattr(row, column)
    assert isinstance(value, int)
    return value


def _protect_sums(hidden: set[Cell], rows: list[RegionQuarter], canton: RegionQuarter) -> bool:
    """One round of secondary suppression; True if it withheld anything more."""
    more = False
    for parts, total in _sums(rows, canton):
        if total in hidden or sum(part in hidden for part, _ in parts) != 1:
            continue
        others = [(value, part) for part, value in parts if part not in hidden and value > 0]
        if others:  # (none: the others are zero, so the total is that small cell, withheld)
            hidden.add(min(others)[1])
            more = True
    return more


def _sums(
    rows: list[RegionQuarter], canton: RegionQuarter
) -> Iterator[tuple[list[tuple[Cell, int]], Cell]]:
    """Every group of cells that adds up to a shown total: (cells with values, total)."""
    for row in rows:
        reasons = [((row.region, c), count(row, c)) for c in REASON_COLUMNS]
        yield reasons, (row.region, "closed_cases")
    regions = [row for row in rows if row is not canton]
    for column in COUNT_COLUMNS:
        yield [((r.region, column), count(r, column)) for r in regions], (canton.region, column)

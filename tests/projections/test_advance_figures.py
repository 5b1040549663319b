"""The advances' figures per social region and quarter (projections.advance_figures), from
the region read model, and what a published report withholds of them.

The events are fakes with the fields the region projection reads (it dispatches on the
event's class name): the real events go through the same projection in
tests/api/test_region_claims.py (the worked example) and the storage backends' suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bus.effects_sqlite import SQLiteEffectStore
from nervenbahn.quarterly_report import AdvanceSection
from projections.advance_figures import AdvanceFigures, advance_figures, withheld_advances
from projections.framework import open_projection_store
from projections.region import RegionProjection
from projections.reporting import Quarter

OLTEN, SOLOTHURN = "so-olten", "so-solothurn"
A, B, C = UUID(int=0xA), UUID(int=0xB), UUID(int=0xC)
APPLICATION = UUID(int=0xE1)


class _Case:
    """Fake events of one case, numbered like the store numbers them."""

    def __init__(self, case_id: UUID) -> None:
        self.case_id, self.version = case_id, 0

    def event(self, kind: str, day: str, **fields: Any) -> Any:
        self.version += 1
        return type(kind, (), {"originator_id": self.case_id,
                               "originator_version": self.version,
                               "effective_date": date.fromisoformat(day),
                               "application_id": APPLICATION, **fields})()


@pytest.fixture
def region_db(tmp_path: Path) -> Iterator[SQLiteEffectStore]:
    """The region read model with three cases (dates below), fed event by event."""
    projection = RegionProjection()
    store = open_projection_store(projection, tmp_path / "region.db")
    assert isinstance(store, SQLiteEffectStore)
    a, b, c = _Case(A), _Case(B), _Case(C)
    events = [
        a.event("CaseOpened", "2026-01-05", social_region=OLTEN, municipality_bfs=2581),
        a.event("AdvanceStarted", "2026-01-15"),
        a.event("AdvanceEnded", "2026-04-10", reason="decided"),  # 85 days
        a.event("ReimbursementRecorded", "2026-04-12", claim_total=Decimal("1000.00"),
                surplus_total=Decimal("50.00"), ipv_offset_total=Decimal("0.00")),
        a.event("ReimbursementRecorded", "2026-07-02", claim_total=Decimal("-100.00"),
                surplus_total=Decimal("100.00"), ipv_offset_total=Decimal("0.00")),
        b.event("CaseOpened", "2026-02-01", social_region=OLTEN, municipality_bfs=2581),
        b.event("AdvanceStarted", "2026-03-01"),
        c.event("CaseOpened", "2026-01-20", social_region=SOLOTHURN, municipality_bfs=2601),
        c.event("AdvanceStarted", "2026-02-01"),
        c.event("AdvanceEnded", "2026-05-01", reason="decided"),  # 89 days
        c.event("ReimbursementRecorded", "2026-05-03", claim_total=Decimal("2000.00"),
                surplus_total=Decimal("0.00"), ipv_offset_total=Decimal("0.00")),
        c.event("ReimbursementPaid", "2026-05-20", claim_version=4,
                to_region=Decimal("2000.00"), to_person=Decimal("0.00")),
        c.event("CaseHandedOver", "2026-06-01", to_region=OLTEN, to_municipality_bfs=2581),
    ]
    with store.transaction() as tx:
        for event in events:
            projection.apply(event, tx)
    yield store
    store.close()


def _figures(store: SQLiteEffectStore, quarter: str) -> dict[str, AdvanceFigures]:
    regions, canton = advance_figures(store.db, Quarter.parse(quarter), [OLTEN, SOLOTHURN])
    return {row.region: row for row in [*regions, canton]}


def _chf(text: str) -> Decimal:
    return Decimal(text)


def test_figures_of_a_quarter_count_where_the_case_was_when_it_happened(
    region_db: SQLiteEffectStore,
) -> None:
    q2 = _figures(region_db, "2026Q2")

    # Olten: B still advanced on 30 June; A decided (85 days) and claimed 1,000.00.
    assert q2[OLTEN] == AdvanceFigures(OLTEN, "2026Q2", 1, 1, 85.0, 1, _chf("1000.00"),
                                       _chf("50.00"), 0, _chf("0"))
    # Solothurn: C decided, claimed and paid there before it was handed over to Olten.
    assert q2[SOLOTHURN] == AdvanceFigures(SOLOTHURN, "2026Q2", 0, 1, 89.0, 1,
                                           _chf("2000.00"), _chf("0.00"), 1, _chf("2000.00"))
    assert q2["canton"] == AdvanceFigures("canton", "2026Q2", 1, 2, 87.0, 2, _chf("3000.00"),
                                          _chf("50.00"), 1, _chf("2000.00"))


def test_a_correction_counts_net_in_the_quarter_it_was_recorded(
    region_db: SQLiteEffectStore,
) -> None:
    q3 = _figures(region_db, "2026Q3")

    assert (q3[OLTEN].claims_recorded, q3[OLTEN].claimed_chf, q3[OLTEN].surplus_chf) == (
        1, _chf("-100.00"), _chf("100.00"))
    assert (q3["canton"].advances_open, q3["canton"].advances_decided) == (1, 0)
    assert q3["canton"].median_days_to_decision is None


def test_an_open_advance_counts_in_the_region_the_case_is_in_now(
    region_db: SQLiteEffectStore,
) -> None:
    q1 = _figures(region_db, "2026Q1")

    # A, B and C were open on 31 March; C was in Solothurn then, in Olten now (the read
    # model keeps no history of where a case was: docs/reporting.md says so).
    assert (q1[OLTEN].advances_open, q1[SOLOTHURN].advances_open) == (3, 0)
    assert q1["canton"].claims_recorded == 0


def _row(region: str, claims: int, decided: int = 10) -> AdvanceFigures:
    return AdvanceFigures(region, "2026Q2", 10, decided, 80.0, claims, _chf("100.00") * claims,
                          _chf("10.00") * claims, 0, _chf("0"))


def test_small_counts_and_what_reveals_them_are_withheld() -> None:
    regions = [_row("r1", 10), _row("r2", 3, decided=2), _row("r3", 7)]
    canton = replace(_row("canton", 20, decided=22), advances_open=30)

    hidden = withheld_advances(regions, canton, min_count=5)

    # r2's 3 claims and their sums (primary); r3's, the smallest other, so that r2's cannot
    # be worked out from the canton's total (secondary); r2's median over 2 decisions.
    claims = {"claims_recorded", "claimed_chf", "surplus_chf"}
    assert hidden == {(r, c) for r in ("r2", "r3") for c in claims} | {
        ("r2", "advances_decided"), ("r1", "advances_decided"), ("r2", "median_days_to_decision")}
    assert withheld_advances(regions, canton, min_count=0) == frozenset()
    with pytest.raises(ValueError, match="min_count"):
        withheld_advances(regions, canton, min_count=-1)


def test_a_report_shows_the_withheld_cells_as_x() -> None:
    regions = [_row("r1", 10), _row("r2", 3, decided=2), _row("r3", 7)]
    canton = replace(_row("canton", 20, decided=22), advances_open=30)
    section = AdvanceSection(regions, canton, withheld_advances(regions, canton, min_count=5))

    assert section.cells("r2") == ["10", "x", "x", "x", "x", "x", "0", "0.00"]
    assert section.cells("canton") == ["30", "22", "80", "20", "2000.00", "200.00", "0", "0.00"]
    assert section.cells("so-nowhere") == [""] * 8


def test_a_payment_counts_in_the_region_the_claim_was_made_for_after_a_handover(
    tmp_path: Path,
) -> None:
    """Claimed in Solothurn, handed over to Olten, paid afterwards: the fund pays Solothurn
    (the claim's region), so Solothurn is reimbursed, not Olten (which claimed nothing)."""
    projection = RegionProjection()
    store = open_projection_store(projection, tmp_path / "region.db")
    assert isinstance(store, SQLiteEffectStore)
    d = _Case(UUID(int=0xD))
    events = [
        d.event("CaseOpened", "2026-07-01", social_region=SOLOTHURN, municipality_bfs=2601),
        d.event("AdvanceStarted", "2026-07-01"),
        d.event("AdvanceEnded", "2026-07-02", reason="decided"),
        d.event("ReimbursementRecorded", "2026-07-03", claim_total=Decimal("300.00"),
                surplus_total=Decimal("0.00"), ipv_offset_total=Decimal("0.00")),
        d.event("CaseHandedOver", "2026-07-10", to_region=OLTEN, to_municipality_bfs=2581),
        d.event("ReimbursementPaid", "2026-07-20", claim_version=4,
                to_region=Decimal("300.00"), to_person=Decimal("0.00")),
    ]
    with store.transaction() as tx:
        for event in events:
            projection.apply(event, tx)
    q3 = _figures(store, "2026Q3")
    store.close()

    assert (q3[SOLOTHURN].reimbursements_paid, q3[SOLOTHURN].reimbursed_chf) == (
        1, _chf("300.00"))
    assert (q3[OLTEN].reimbursements_paid, q3[OLTEN].reimbursed_chf) == (0, _chf("0"))

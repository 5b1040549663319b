"""A few cases as pseudonymised facts, with their BFS delivery rows worked out by hand.

    P1  Olten (2581), household 2; granted 2026-01-20 with support from 2026-01-16, CHF 3100;
        budget 2480 (household 3) from 2026-03-01; closed 2026-04-10 (employment)
    P2  Solothurn (2601), household 1; support from 2025-12-01, CHF 1500; handed over to Olten
        (2581) on 2026-02-15, support goes on: dossier 1 in Solothurn ends 2026-02-14,
        dossier 2 in Olten starts 2026-02-15
    P3  refused: no dossier
    P4  Olten, support from 2026-02-01 with a budget of CHF -200 (income above needs): a
        dossier, no booking

Amounts (pro rata by calendar days, rounded once):
    P1  2026-01: 16 of 31 days × 3100 = 1600.00   2026-02: 3100.00   2026-03: 2480.00
        2026-04: 10 of 30 days × 2480 = 826.666… → 826.67
    P2  dossier 1: 2025-12 1500.00, 2026-01 1500.00, 2026-02: 14 of 28 days × 1500 = 750.00
        dossier 2: 2026-02: 14 of 28 days × 1500 = 750.00, 2026-03 1500.00
Late fact (LATE_P2, recorded 2026-03-05): P2's budget is 1800 from 2026-01-01. Corrections in
the first delivery after it, for months already delivered:
    dossier 1: 2026-01 +300.00, 2026-02 14/28 × 1800 − 750 = +150.00
    dossier 2: 2026-02 +150.00
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from projections.reporting_facts import CaseFact

P1, P2, P3, P4 = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)
OLTEN, SOLOTHURN = 2581, 2601


def fact(pseudonym: str, sequence: int, code: str, day: str, recorded: str | None = None,
         **details: Any) -> CaseFact:
    """A fact recorded at noon UTC of `recorded` (default: its effective day)."""
    at = datetime.combine(date.fromisoformat(recorded or day), time(12), tzinfo=UTC)
    return CaseFact(
        fact_id=uuid5(NAMESPACE_URL, f"{pseudonym}/{sequence}"), case_pseudonym=pseudonym,
        sequence=sequence, social_region="so-olten", fact=code,  # type: ignore[arg-type]
        effective_date=date.fromisoformat(day), recorded_at=at, **details,
    )


def facts() -> list[CaseFact]:
    """The facts of P1 to P4 through March 2026 (P1's closure comes in April)."""
    d = date.fromisoformat
    return [
        fact(P1, 1, "opened", "2026-01-05", municipality_bfs=OLTEN, household_size=2),
        fact(P1, 2, "granted", "2026-01-20", support_from=d("2026-01-16"),
             budget_total=Decimal("3100.00")),
        fact(P1, 3, "budget_changed", "2026-03-01", "2026-03-03", budget_reason="household",
             budget_total=Decimal("2480.00"), household_size=3),
        fact(P2, 1, "opened", "2025-12-01", municipality_bfs=SOLOTHURN, household_size=1),
        fact(P2, 2, "granted", "2025-12-01", support_from=d("2025-12-01"),
             budget_total=Decimal("1500.00")),
        fact(P2, 3, "handed_over", "2026-02-15", to_region="so-olten", municipality_bfs=OLTEN),
        fact(P3, 1, "opened", "2026-02-02", municipality_bfs=OLTEN, household_size=4),
        fact(P3, 2, "refused", "2026-02-10", refusal_reasons=("income_sufficient",)),
        fact(P4, 1, "opened", "2026-01-25", municipality_bfs=OLTEN, household_size=1),
        fact(P4, 2, "granted", "2026-02-03", support_from=d("2026-02-01"),
             budget_total=Decimal("-200.00")),
    ]


CLOSE_P1 = fact(P1, 4, "closed", "2026-04-10", closure_reason="employment")
LATE_P2 = fact(P2, 4, "budget_changed", "2026-01-01", "2026-03-05", budget_reason="income_change",
               budget_total=Decimal("1800.00"), household_size=1)
AFTER_APRIL = fact(P3, 3, "closed", "2026-05-04", closure_reason="other")
"""A fact recorded in May: April is complete."""

HEADER = ("record,reporting_month,dossier_id,dossier_seq,canton,municipality_bfs,status,"
          "support_start,support_end,end_reason,household_size,booking_month,booking_kind,"
          "amount_chf")


def dossier(month: str, pseudonym: str, seq: int, bfs: int, status: str, start: str,
            end: str = "", reason: str = "", household: int = 1) -> str:
    """An expected dossier line."""
    return (f"dossier,{month},{pseudonym},{seq},SO,{bfs},{status},{start},{end},{reason},"
            f"{household},,,")


def booking(month: str, pseudonym: str, seq: int, booked: str, amount: str,
            kind: str = "regular") -> str:
    """An expected booking line."""
    return f"booking,{month},{pseudonym},{seq},SO,,,,,,,{booked},{kind},{amount}"


EXPECTED_FEBRUARY = [
    HEADER,
    dossier("2026-02", P1, 1, OLTEN, "ongoing", "2026-01-16", household=2),
    dossier("2026-02", P2, 1, SOLOTHURN, "closed", "2025-12-01", "2026-02-14",
            "municipality_change"),
    dossier("2026-02", P2, 2, OLTEN, "new", "2026-02-15"),
    dossier("2026-02", P4, 1, OLTEN, "new", "2026-02-01"),
    booking("2026-02", P1, 1, "2026-02", "3100.00"),
    booking("2026-02", P2, 1, "2026-02", "750.00"),
    booking("2026-02", P2, 2, "2026-02", "750.00"),
]
